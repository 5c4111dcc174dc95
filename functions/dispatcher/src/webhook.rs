//! The HTTP adapter of the [`WebhookClient`] port: posts one delivery through a process-wide
//! pooled client, reads at most [`MAX_RESPONSE_BYTES`] of the answer, and maps every way an
//! attempt can end onto a [`Reply`].
//!
//! Subscribers choose their URLs, so a delivery is a request the service makes on someone else's
//! behalf. Unless private targets are allowed (the local stack, whose receivers are on
//! localhost), the client refuses to dial any address that is not publicly routable, so that a
//! subscription cannot be used to reach the cloud metadata endpoint or services inside the VPC
//! (SSRF). The address judged is the one actually dialled: a resolver that keeps only public
//! addresses, so a name that resolves differently between validation and delivery (DNS
//! rebinding) gains nothing, plus a check of IP-literal hosts, which reqwest never resolves.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::redirect;
use triggerline::delivery::{ATTEMPT_TIMEOUT, MAX_RESPONSE_BYTES, Reply};
use triggerline::ports::{WebhookClient, WebhookRequest};
use url::{Host, Url};

const USER_AGENT: &str = concat!("Triggerline/", env!("CARGO_PKG_VERSION"));

/// Idle connections kept per subscriber host. Generous, because a burst of deliveries to one
/// busy receiver should reuse connections instead of paying a TCP and TLS handshake each.
const POOL_MAX_IDLE_PER_HOST: usize = 1024;

/// Posts webhooks with one pooled HTTP client (rustls, keep-alive, no redirects).
///
/// Cloning is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct HttpWebhookClient {
    client: reqwest::Client,
    allow_private_targets: bool,
}

impl HttpWebhookClient {
    /// One pooled client for the whole process, with [`ATTEMPT_TIMEOUT`] per attempt.
    /// `allow_private_targets` lets deliveries reach loopback and private addresses (the local
    /// stack's default, for localhost receivers).
    ///
    /// Errors: when the TLS backend cannot be initialised.
    pub fn new(allow_private_targets: bool) -> Result<Self, reqwest::Error> {
        Self::with_timeout(allow_private_targets, ATTEMPT_TIMEOUT)
    }

    /// Same as [`HttpWebhookClient::new`] with another per-attempt timeout (tests).
    ///
    /// The timeout covers the whole attempt, from connecting to the last byte of the answer,
    /// so a subscriber that trickles its body cannot hold a delivery open.
    pub fn with_timeout(
        allow_private_targets: bool,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            // A 3xx is the subscriber's answer like any other non-2xx. Following it would also
            // let a public host bounce the request to an internal one behind the guard's back.
            .redirect(redirect::Policy::none())
            // Through a proxy the resolver would judge the proxy's address, not the target's;
            // deliveries go direct so that the guard sees what is dialled.
            .no_proxy()
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(60))
            .user_agent(USER_AGENT);
        if !allow_private_targets {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        Ok(Self {
            client: builder.build()?,
            allow_private_targets,
        })
    }
}

#[async_trait]
impl WebhookClient for HttpWebhookClient {
    async fn post(&self, request: WebhookRequest) -> Reply {
        let url = match target(&request.url, self.allow_private_targets) {
            Ok(url) => url,
            Err(why) => return Reply::Blocked(why),
        };
        let headers = match headers(&request.headers) {
            Ok(headers) => headers,
            Err(why) => return Reply::Blocked(why),
        };
        let host = url.host_str().unwrap_or_default().to_owned();
        let reply = send(&self.client, url, headers, request.body).await;
        match &reply {
            Reply::Answered { .. } => {}
            // Only the host: the URL may carry credentials in its userinfo, path or query.
            other => tracing::debug!(%host, reply = ?other, "webhook delivery failed"),
        }
        reply
    }
}

async fn send(client: &reqwest::Client, url: Url, headers: HeaderMap, body: Vec<u8>) -> Reply {
    let response = match client.post(url).headers(headers).body(body).send().await {
        Ok(response) => response,
        Err(error) => return failure(error),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| parse_retry_after(value, SystemTime::now()));
    match read_capped(response, MAX_RESPONSE_BYTES).await {
        Ok(body) => Reply::Answered {
            status,
            body,
            retry_after,
        },
        // The answer was cut off mid-body, so the attempt did not complete: judged like a
        // connection failure rather than handing a truncated body to output validation.
        Err(error) => failure(error),
    }
}

/// Parses the URL and refuses what may not be dialled before any connection is made. Messages
/// never echo the URL, which may carry credentials.
fn target(raw: &str, allow_private_targets: bool) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("the URL is not valid: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the scheme {} is not allowed", url.scheme()));
    }
    // reqwest dials IP-literal hosts without asking the resolver, so they are judged here.
    // The parser has already normalised forms like `2130706433` or `[::ffff:127.0.0.1]`.
    let literal = match url.host() {
        None => return Err("the URL has no host".to_owned()),
        Some(Host::Domain(_)) => None,
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
    };
    if let Some(ip) = literal {
        if !allow_private_targets && !is_public(ip) {
            return Err(BlockedTarget {
                host: url.host_str().unwrap_or_default().to_owned(),
            }
            .to_string());
        }
    }
    Ok(url)
}

/// `Content-Type: application/json` plus the request's headers. A request header replaces a
/// default of the same name; a name given twice is sent twice.
fn headers(extra: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut given = HeaderMap::with_capacity(extra.len());
    for (name, value) in extra {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| "a header name is not valid".to_owned())?;
        // The value is never echoed: custom headers usually carry the subscriber's credentials.
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header {name} is not valid"))?;
        value.set_sensitive(true);
        given.append(name, value);
    }
    let mut headers = HeaderMap::with_capacity(given.len() + 1);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // `extend` with a map replaces every value of a name it brings and keeps repeated names.
    headers.extend(given);
    Ok(headers)
}

/// Reads the body chunk by chunk and stops at `cap`, so an endless or huge answer costs at most
/// `cap` bytes of memory.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let announced = response
        .content_length()
        .map_or(0, |n| usize::try_from(n).unwrap_or(cap).min(cap));
    let mut body = Vec::with_capacity(announced);
    while let Some(chunk) = response.chunk().await? {
        let room = cap - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Maps a transport error onto the reply the delivery rules judge.
fn failure(error: reqwest::Error) -> Reply {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(blocked) = cause.downcast_ref::<BlockedTarget>() {
            return Reply::Blocked(blocked.to_string());
        }
        source = cause.source();
    }
    if error.is_timeout() {
        return Reply::TimedOut;
    }
    Reply::Unreachable(describe(&error.without_url()))
}

/// The cause chain in one line, without reqwest's and hyper's generic wrappers ("error sending
/// request", "client error (Connect)"), which say nothing the rest does not. No link of the
/// chain carries the URL: reqwest keeps it only on the top error, dropped by `without_url`.
fn describe(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        let wrapper = cause.is::<reqwest::Error>()
            || part.starts_with("client error (")
            || parts.last() == Some(&part);
        if !wrapper {
            parts.push(part);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3), relative to `now`.
fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 still means "much later", not "no advice".
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    // A date already past means "now"; the retry rules clamp it to their minimum.
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Whether a delivery may go to `ip`: only publicly routable unicast addresses.
///
/// IPv4 refuses "this network" 0/8 (with 0.0.0.0), private 10/8, 172.16/12 and 192.168/16,
/// loopback 127/8, link-local 169.254/16 (the cloud metadata endpoint 169.254.169.254), shared
/// CGNAT 100.64/10 (also Alibaba's metadata 100.100.100.200), IETF protocol assignments
/// 192.0.0/24, the documentation nets 192.0.2/24, 198.51.100/24 and 203.0.113/24, benchmarking
/// 198.18/15, multicast 224/4, reserved 240/4 and broadcast. IPv6 allows only global unicast
/// 2000::/3 less documentation 2001:db8::/32, so loopback ::1, unspecified ::, link-local
/// fe80::/10, unique-local fc00::/7 (AWS's fd00:ec2::254), multicast and anything IANA has not
/// allocated are refused; an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) address
/// is judged by the IPv4 address it reaches.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(a == 0
                || v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || v4.is_documentation()
                || (a == 198 && (18..20).contains(&b))
                || a >= 224)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let nat64 = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
                return is_public(IpAddr::V4(nat64));
            }
            (s[0] & 0xe000) == 0x2000 && !(s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

/// The resolver's refusal, found again in reqwest's error chain to tell it from a DNS failure.
#[derive(Debug)]
struct BlockedTarget {
    host: String,
}

impl fmt::Display for BlockedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} resolves to a private address", self.host)
    }
}

impl StdError for BlockedTarget {}

/// Resolves with the system resolver and keeps only public addresses. A name with some public
/// addresses is delivered to those; one with none is refused.
#[derive(Debug)]
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port (or the scheme's) on every address.
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if found.is_empty() {
                return Err(format!("no address found for {host}").into());
            }
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(BlockedTarget { host }.into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(ip: &str) -> bool {
        is_public(ip.parse().unwrap())
    }

    #[test]
    fn private_and_special_addresses_are_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.100.100.200",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd00:ec2::254",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "100::1",
        ] {
            assert!(!public(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "52.94.76.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "3fff::1",
        ] {
            assert!(public(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn ip_literal_hosts_are_judged_before_dialling() {
        let refused = |url: &str| target(url, false).unwrap_err();
        assert_eq!(
            refused("http://127.0.0.1:8080/"),
            "127.0.0.1 resolves to a private address"
        );
        assert_eq!(
            refused("http://[::1]/"),
            "[::1] resolves to a private address"
        );
        assert!(refused("http://2130706433/").contains("127.0.0.1"));
        assert!(refused("http://[::ffff:7f00:1]/").contains("private address"));
        assert!(refused("ftp://example.com/").contains("scheme ftp"));
        assert!(refused("file:///etc/passwd").contains("scheme file"));
        assert!(refused("not a url").contains("not valid"));
        assert!(target("http://127.0.0.1:8080/", true).is_ok());
        assert!(target("https://user:pw@example.com/hook", false).is_ok());
    }

    #[test]
    fn request_headers_join_and_replace_the_defaults() {
        let given = [
            (
                "Content-Type".to_owned(),
                "application/cloudevents+json".to_owned(),
            ),
            ("X-Tag".to_owned(), "a".to_owned()),
            ("x-tag".to_owned(), "b".to_owned()),
        ];
        let map = headers(&given).unwrap();
        assert_eq!(map[CONTENT_TYPE], "application/cloudevents+json");
        assert_eq!(map.get_all("x-tag").iter().count(), 2);
        assert_eq!(headers(&[]).unwrap()[CONTENT_TYPE], "application/json");
        let bad = headers(&[("X-Key".to_owned(), "line\nbreak-secret".to_owned())]).unwrap_err();
        assert!(!bad.contains("secret"), "{bad}");
        assert!(headers(&[("bad name".to_owned(), "v".to_owned())]).is_err());
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let parse = |v: &'static str| parse_retry_after(&HeaderValue::from_static(v), now);
        assert_eq!(parse("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            parse("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example, in all three forms.
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:50:37 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse("Sunday, 06-Nov-94 08:50:37 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse("Sun Nov  6 08:50:37 1994"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse("-5"), None);
        assert_eq!(parse("+5"), None);
        assert_eq!(parse("soon"), None);
        assert_eq!(parse(""), None);
    }
}
