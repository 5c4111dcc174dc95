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
//! rebinding) gains nothing, plus a check of IP-literal hosts, which are never resolved.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_smithy_runtime_api::client::dns::{
    DnsFuture, ResolveDns, ResolveDnsError, SharedDnsResolver,
};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use http::{Method, Uri};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use percent_encoding::percent_decode_str;
use tokio::sync::Semaphore;
use triggerline::delivery::{ATTEMPT_TIMEOUT, MAX_RESPONSE_BYTES, Reply};
use triggerline::ports::{WebhookClient, WebhookRequest};
use triggerline_http_client::DirectClient;
use url::{Host, Url};

const USER_AGENT_VALUE: &str = concat!("Triggerline/", env!("CARGO_PKG_VERSION"));

/// Idle connections kept per subscriber host. Generous, because a burst of deliveries to one
/// busy receiver should reuse connections instead of paying a TCP and TLS handshake each.
const POOL_MAX_IDLE_PER_HOST: usize = 1024;

/// Requests in flight to one URL at most; an attempt past it waits for one of them to end,
/// within its own timeout. An HTTP/1.1 request in flight is a connection of its own, and each
/// costs memory in the client (its dispatch channel and buffers, about 20 KiB) as well as a
/// socket at the receiver. With the local worker's 512 deliveries at once going to one
/// receiver, 512 connections made the 10-way fan-out's peak RSS 65.5 MiB; capped at 128 it was
/// 54 MiB, and the fan-out ran 5 % faster (docs/performance.md, 2026-12-06 09:05-10:10 UTC). A
/// receiver that slows down holds 128 connections, not all of them, and another URL's
/// deliveries do not wait for its slots.
pub const MAX_IN_FLIGHT_PER_URL: usize = 128;

/// URLs whose judgement a client keeps. Past this the memo starts over: it is there for the
/// URLs deliveries go to again and again, and a process delivers to as many URLs as it has
/// subscriptions, so a bound this size is rarely reached.
const MAX_KEPT_TARGETS: usize = 1024;

/// Posts webhooks with one pooled HTTP client (rustls, keep-alive, no redirects, no proxy).
///
/// The client is the one the AWS SDK clients use too ([`triggerline_http_client`]: hyper,
/// HTTP/1.1), resolving names through a [`SharedDnsResolver`] exactly as
/// `triggerline_aws::Clients` does.
/// The same types, built in that one crate, mean the function binaries that post webhooks carry
/// one copy of the HTTP/TLS client code, not a second HTTP stack beside the SDK's (a third of a
/// megabyte of each bootstrap). It follows no redirects
/// and uses no proxy: a 3xx is the subscriber's answer like any other non-2xx (following it would
/// also let a public host bounce the request to an internal one behind the guard's back), and
/// through a proxy the guard would judge the proxy's address, not the target's.
///
/// Cloning is cheap and shares the pool and the judged targets.
#[derive(Debug, Clone)]
pub struct HttpWebhookClient {
    client: DirectClient,
    timeout: Duration,
    allow_private_targets: bool,
    targets: Arc<Targets>,
}

impl HttpWebhookClient {
    /// One pooled client for the whole process, with [`ATTEMPT_TIMEOUT`] per attempt.
    /// `allow_private_targets` lets deliveries reach loopback and private addresses (the local
    /// stack's default, for localhost receivers).
    pub fn new(allow_private_targets: bool) -> Self {
        Self::with_timeout(allow_private_targets, ATTEMPT_TIMEOUT)
    }

    /// Same as [`HttpWebhookClient::new`] with another per-attempt timeout (tests).
    ///
    /// The timeout covers the whole attempt, from connecting to the last byte of the answer,
    /// so a subscriber that trickles its body cannot hold a delivery open.
    pub fn with_timeout(allow_private_targets: bool, timeout: Duration) -> Self {
        let resolver = if allow_private_targets {
            triggerline_http_client::tokio_resolver()
        } else {
            SharedDnsResolver::new(PublicOnlyResolver)
        };
        Self {
            client: DirectClient::new(resolver, Some(POOL_MAX_IDLE_PER_HOST)),
            timeout,
            allow_private_targets,
            targets: Arc::default(),
        }
    }
}

#[async_trait]
impl WebhookClient for HttpWebhookClient {
    async fn post(&self, request: WebhookRequest) -> Reply {
        let target = match self
            .targets
            .judged(&request.url, self.allow_private_targets)
        {
            Ok(target) => target,
            Err(why) => return Reply::Blocked(why),
        };
        let prepared = match prepare(&target, request.headers, request.body) {
            Ok(prepared) => prepared,
            Err(why) => return Reply::Blocked(why),
        };
        let attempt = async {
            // The semaphore is never closed, so `acquire` only waits.
            let _slot = target.in_flight.acquire().await;
            send(&self.client, prepared).await
        };
        let reply = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(reply) => reply,
            Err(_elapsed) => Reply::TimedOut,
        };
        match &reply {
            Reply::Answered { .. } => {}
            // Only the host: the URL may carry credentials in its userinfo, path or query.
            other => {
                tracing::debug!(host = %target.host, reply = ?other, "webhook delivery failed")
            }
        }
        reply
    }

    fn host_of(&self, url: &str) -> String {
        match self.targets.judged(url, self.allow_private_targets) {
            Ok(target) => target.host.to_string(),
            // A refused URL is not kept with its host; parsed again, as it is rarely sent.
            Err(_) => triggerline::delivery::url_host(url),
        }
    }
}

async fn send(client: &DirectClient, request: http::Request<SdkBody>) -> Reply {
    let response = match client.send(request).await {
        Ok(response) => response,
        Err(error) => return failure(&error),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, SystemTime::now()));
    match read_capped(response.into_body(), MAX_RESPONSE_BYTES).await {
        Ok(body) => Reply::Answered {
            status,
            body,
            retry_after,
        },
        // The answer was cut off mid-body, so the attempt did not complete: judged like a
        // connection failure rather than handing a truncated body to output validation.
        Err(error) => Reply::Unreachable(describe(&error)),
    }
}

/// A URL as a delivery uses it: parsed, judged dialable, without its userinfo and fragment.
struct Target {
    uri: Uri,
    /// For the log of a failed delivery, which must not show the rest of the URL.
    host: Box<str>,
    /// Basic auth from the URL's userinfo, if it had one.
    basic: Option<HeaderValue>,
    /// [`MAX_IN_FLIGHT_PER_URL`] permits; never closed.
    in_flight: Semaphore,
}

/// Only the host: the path and query may carry credentials, like the URL they came from.
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Each URL's judgement ([`target`]), kept: a URL is parsed and judged once, not on every
/// delivery (parsing it twice, as a `Url` and as the request's `Uri`, was about 7 % of a
/// delivery's CPU). The judgement depends on nothing but the URL and the client's fixed
/// `allow_private_targets`; the addresses a name resolves to are still judged on every connect.
#[derive(Default)]
struct Targets(RwLock<HashMap<String, Result<Arc<Target>, String>>>);

/// How many, never which: the keys are whole URLs, credentials included.
impl fmt::Debug for Targets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = self.0.read().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Targets").field("kept", &kept).finish()
    }
}

impl Targets {
    fn judged(&self, raw: &str, allow_private_targets: bool) -> Result<Arc<Target>, String> {
        // A poisoned lock guards a map that is whole after every write (one insert or clear).
        if let Some(kept) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(raw)
        {
            return kept.clone();
        }
        let judged = target(raw, allow_private_targets).map(Arc::new);
        let mut kept = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= MAX_KEPT_TARGETS {
            kept.clear();
        }
        kept.insert(raw.to_owned(), judged.clone());
        judged
    }
}

/// Parses the URL and refuses what may not be dialled before any connection is made. Messages
/// never echo the URL, which may carry credentials.
fn target(raw: &str, allow_private_targets: bool) -> Result<Target, String> {
    let mut url = Url::parse(raw).map_err(|e| format!("the URL is not valid: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the scheme {} is not allowed", url.scheme()));
    }
    // The connector dials IP-literal hosts without asking the resolver, so they are judged here.
    // The parser has already normalised forms like `2130706433` or `[::ffff:127.0.0.1]`.
    let literal = match url.host() {
        None => return Err("the URL has no host".to_owned()),
        Some(Host::Domain(_)) => None,
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
    };
    let host: Box<str> = url.host_str().unwrap_or_default().into();
    if let Some(ip) = literal {
        if !allow_private_targets && !is_public(ip) {
            return Err(BlockedTarget { host: host.into() }.to_string());
        }
    }
    let basic = take_userinfo(&mut url);
    // The fragment is the client's own; it is never sent.
    url.set_fragment(None);
    let uri =
        Uri::try_from(url.as_str()).map_err(|_| "the URL is not valid for HTTP".to_owned())?;
    Ok(Target {
        uri,
        host,
        basic,
        in_flight: Semaphore::new(MAX_IN_FLIGHT_PER_URL),
    })
}

/// The POST itself: `Content-Type: application/json`, the user agent, Basic auth from the
/// URL's userinfo (as curl and browsers send it), then the request's own headers. A request
/// header replaces a default of the same name; a name given twice is sent twice.
fn prepare(
    target: &Target,
    given: Vec<(String, String)>,
    body: Vec<u8>,
) -> Result<http::Request<SdkBody>, String> {
    let mut headers = HeaderMap::with_capacity(given.len() + 3);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    if let Some(basic) = &target.basic {
        headers.insert(AUTHORIZATION, basic.clone());
    }
    add_given(&mut headers, given)?;
    let mut request = http::Request::new(SdkBody::from(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = target.uri.clone();
    *request.headers_mut() = headers;
    Ok(request)
}

/// Removes the userinfo from `url` and returns it as a Basic `Authorization` value.
fn take_userinfo(url: &mut Url) -> Option<HeaderValue> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |part: &str| percent_decode_str(part).decode_utf8_lossy().into_owned();
    let user = decode(url.username());
    let password = url.password().map(decode).unwrap_or_default();
    // Both setters only fail for URLs without a host, which `target` has already refused.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let encoded = BASE64.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The defaults [`prepare`] sets, which a request header of the same name replaces.
const DEFAULTS: [HeaderName; 3] = [CONTENT_TYPE, USER_AGENT, AUTHORIZATION];

/// Adds the request's headers, validated: the first of a default's name replaces it, every
/// other is appended. Messages never echo a value: custom headers usually carry the
/// subscriber's credentials.
fn add_given(headers: &mut HeaderMap, given: Vec<(String, String)>) -> Result<(), String> {
    let mut replaced = DEFAULTS.map(|_| false);
    for (name, value) in given {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| "a header name is not valid".to_owned())?;
        // From the `String` itself: its bytes become the value's without a copy.
        let mut value = HeaderValue::try_from(value)
            .map_err(|_| format!("the value of header {name} is not valid"))?;
        value.set_sensitive(true);
        match DEFAULTS.iter().position(|default| *default == name) {
            Some(i) if !replaced[i] => {
                replaced[i] = true;
                headers.insert(name, value);
            }
            _ => {
                headers.append(name, value);
            }
        }
    }
    Ok(())
}

/// Reads the body frame by frame and stops at `cap`, so an endless or huge answer costs at most
/// `cap` bytes of memory.
async fn read_capped(mut body: Incoming, cap: usize) -> Result<Vec<u8>, hyper::Error> {
    let announced = body
        .size_hint()
        .exact()
        .map_or(0, |n| usize::try_from(n).unwrap_or(cap).min(cap));
    let mut read = Vec::with_capacity(announced);
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame?.into_data() else {
            continue; // trailers
        };
        let room = cap - read.len();
        if chunk.len() >= room {
            read.extend_from_slice(&chunk[..room]);
            break;
        }
        read.extend_from_slice(&chunk);
    }
    Ok(read)
}

/// Maps a transport error onto the reply the delivery rules judge.
fn failure(error: &ConnectorError) -> Reply {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(blocked) = cause.downcast_ref::<BlockedTarget>() {
            return Reply::Blocked(blocked.to_string());
        }
        source = cause.source();
    }
    if error.is_timeout() {
        return Reply::TimedOut;
    }
    Reply::Unreachable(describe(error))
}

/// The cause chain in one line, without the generic wrappers ("io error", "client error
/// (Connect)"), which say nothing the rest does not. No link of the chain carries the URL: the
/// connector's errors name neither the request nor its address.
fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = Some(error);
    while let Some(cause) = source {
        let part = cause.to_string();
        let wrapper = cause.is::<ConnectorError>()
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
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let text = value.trim();
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

/// The resolver's refusal, found again in the connector's error chain to tell it from a DNS
/// failure.
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

impl ResolveDns for PublicOnlyResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        DnsFuture::new(async move {
            // Port 0: the connector puts the URL's port (or the scheme's) on every address.
            let found: Vec<IpAddr> = tokio::net::lookup_host((name, 0))
                .await
                .map_err(ResolveDnsError::new)?
                .map(|address| address.ip())
                .collect();
            if found.is_empty() {
                return Err(ResolveDnsError::new(format!("no address found for {name}")));
            }
            let public: Vec<IpAddr> = found.into_iter().filter(|ip| is_public(*ip)).collect();
            if public.is_empty() {
                return Err(ResolveDnsError::new(BlockedTarget {
                    host: name.to_owned(),
                }));
            }
            Ok(public)
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

    fn prepared(url: &str, given: &[(&str, &str)]) -> http::Request<SdkBody> {
        try_prepare(url, given).unwrap()
    }

    fn try_prepare(url: &str, given: &[(&str, &str)]) -> Result<http::Request<SdkBody>, String> {
        let given: Vec<(String, String)> = given
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        prepare(&target(url, false).unwrap(), given, b"{}".to_vec())
    }

    fn header<'r>(request: &'r http::Request<SdkBody>, name: &str) -> Option<&'r str> {
        request.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn request_headers_join_and_replace_the_defaults() {
        let request = prepared(
            "http://example.com/hook",
            &[
                ("Content-Type", "application/cloudevents+json"),
                ("X-Tag", "a"),
                ("x-tag", "b"),
                ("content-type", "text/plain"),
            ],
        );
        assert_eq!(
            request
                .headers()
                .get_all("content-type")
                .iter()
                .collect::<Vec<_>>(),
            ["application/cloudevents+json", "text/plain"],
            "the first given replaces the default, the second joins it"
        );
        assert_eq!(request.headers().get_all("x-tag").iter().count(), 2);
        assert_eq!(
            header(&request, "user-agent"),
            Some(USER_AGENT_VALUE),
            "a default the request did not replace is kept"
        );
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "http://example.com/hook");
        let plain = prepared("http://example.com/hook", &[]);
        assert_eq!(header(&plain, "content-type"), Some("application/json"));
        let url = "http://example.com/";
        let bad = try_prepare(url, &[("X-Key", "line\nbreak-secret")]);
        assert!(!bad.unwrap_err().contains("secret"));
        assert!(try_prepare(url, &[("bad name", "v")]).is_err());
    }

    #[test]
    fn userinfo_becomes_basic_auth_and_leaves_the_url() {
        let request = prepared("https://us%40er:p%3Ass@example.com/hook?x=1#frag", &[]);
        // "us@er:p:ss"
        assert_eq!(
            header(&request, "authorization"),
            Some("Basic dXNAZXI6cDpzcw==")
        );
        assert_eq!(request.uri(), "https://example.com/hook?x=1");
        let explicit = prepared(
            "https://user:pw@example.com/",
            &[("Authorization", "Bearer t0ken")],
        );
        assert_eq!(
            explicit.headers().get_all("authorization").iter().count(),
            1
        );
        assert_eq!(
            header(&explicit, "authorization"),
            Some("Bearer t0ken"),
            "the subscription's own header wins"
        );
    }

    #[test]
    fn the_clients_debug_output_shows_no_url_it_has_judged() {
        let client = HttpWebhookClient::new(false);
        let judged = client
            .targets
            .judged("https://user:pa55@example.com/hook?token=s3cret", false)
            .unwrap();
        let shown = format!("{client:?} {judged:?}");
        for secret in ["pa55", "s3cret", "/hook", "user"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("kept: 1") && shown.contains("example.com"),
            "{shown}"
        );
    }

    #[test]
    fn a_url_is_judged_once_and_the_memo_stays_bounded() {
        let targets = Targets::default();
        let first = targets.judged("http://example.com/a", false).unwrap();
        let again = targets.judged("http://example.com/a", false).unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second delivery reuses the first's"
        );
        assert_eq!(
            targets.judged("http://127.0.0.1/", false).unwrap_err(),
            "127.0.0.1 resolves to a private address"
        );
        assert_eq!(
            targets.judged("http://127.0.0.1/", false).unwrap_err(),
            "127.0.0.1 resolves to a private address",
            "a refusal is kept too"
        );
        for i in 0..MAX_KEPT_TARGETS + 10 {
            targets
                .judged(&format!("http://example.com/{i}"), false)
                .unwrap();
        }
        let kept = targets.0.read().unwrap().len();
        assert!(kept <= MAX_KEPT_TARGETS, "{kept} URLs kept");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let parse = |v: &str| parse_retry_after(v, now);
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
