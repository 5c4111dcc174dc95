//! The outbound HTTP/TLS stack of a process: one pooled hyper client (HTTP/1.1, keep-alive,
//! rustls on ring, the system's root certificates), resolving names through a
//! [`SharedDnsResolver`]. The SDK clients and the Secrets Manager call (`triggerline-aws`) and
//! the webhook client (`triggerline-webhook`, through [`DirectClient`]) all build their clients
//! here.
//!
//! Why not the SDK's own `aws-smithy-http-client`: its manifest turns on HTTP/2 in hyper, so
//! every bootstrap carried `h2` (256 kB of the x86_64 dispatcher, which had about 60 kB left
//! under the 6 MB budget) although DynamoDB, SQS, EventBridge and Secrets Manager all speak
//! HTTP/1.1 and webhooks are posted over HTTP/1.1. The adapter below is the part of that crate
//! the functions used: a hyper-util client behind the SDK's [`HttpConnector`] trait, with its
//! error classification (what the SDK's retry rules read).
//!
//! What differs from the SDK's client, on purpose: TLS offers `http/1.1` alone in ALPN (the SDK's
//! offered `h2` first, so an HTTPS webhook receiver that speaks HTTP/2 now gets HTTP/1.1, which
//! every HTTPS server accepts); ring's default cipher suites are kept (the SDK's list leaves out
//! the two ChaCha20-Poly1305 ones; all are AEAD with forward secrecy); there is no proxy support
//! (the SDK's was off unless configured, and a proxy would defeat the webhook client's check of
//! the address it dials); the connect timeout covers the TCP connect (hyper-util's, per
//! address), not the TLS handshake, which the SDK's attempt timeout (2 s, `triggerline-aws`) and
//! the webhook client's per-attempt timeout bound instead.
//!
//! The SDK's connection poisoning works as with its own client: a request carries a capture of
//! its connection, which the SDK closes after a transient error.
//!
//! Why a crate of its own: the client's code is generic (over the resolver, and all of hyper
//! under it), and Rust instantiates generic code in the crate that calls it. A binary that talks
//! to AWS and posts webhooks (the dispatcher) shares one copy only when both adapters call into
//! one crate upstream of them both.
//!
//! Connectors share one TLS configuration per process (the system roots, read and parsed once),
//! and a process builds as few connectors as it can: [`AwsHttpClient`] is one per set of
//! timeouts for every SDK client and the Secrets Manager call, and the webhook client has its
//! own only because its resolver differs. Each connector has its own pool.
#![forbid(unsafe_code)]

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime::client::dns::TokioDnsResolver;
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::dns::{ResolveDns, ResolveDnsError, SharedDnsResolver};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::{
    CaptureConnection, HttpConnector as TcpConnector, HttpInfo, capture_connection,
};
use hyper_util::rt::{TokioExecutor, TokioTimer};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Resolves names with tokio (the system resolver), keeping every address.
pub fn tokio_resolver() -> SharedDnsResolver {
    SharedDnsResolver::new(TokioDnsResolver::new())
}

/// The HTTP client of the SDK clients of one configuration, whose connectors the Secrets Manager
/// call borrows ([`AwsHttpClient::connector`]): one connector over [`tokio_resolver`] per set of
/// connector timeouts, built when first asked for. Clones share the connectors.
#[derive(Debug, Clone, Default)]
pub struct AwsHttpClient {
    connectors: Arc<Mutex<Vec<(ConnectorKey, SharedHttpConnector)>>>,
}

/// What a connector is built from, besides the resolver: the SDK's timeouts for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConnectorKey {
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
}

impl AwsHttpClient {
    /// The connector for `settings`, built on first use and shared afterwards.
    pub fn connector(&self, settings: &HttpConnectorSettings) -> SharedHttpConnector {
        let key = ConnectorKey {
            connect_timeout: settings.connect_timeout(),
            read_timeout: settings.read_timeout(),
        };
        // Poisoning cannot leave the list half-updated (one push), so a poisoned lock is usable.
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, connector)) = connectors.iter().find(|(k, _)| *k == key) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(Hyper::new(
            tokio_resolver(),
            None,
            key.connect_timeout,
            key.read_timeout,
        ));
        connectors.push((key, connector.clone()));
        connector
    }

    /// For the SDK's configuration (`SdkConfig::http_client`).
    pub fn shared(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.clone())
    }
}

impl HttpClient for AwsHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector(settings)
    }

    // What the SDK's user agent reports as its `http` metadata.
    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some("1.x".into())))
    }
}

/// One pooled connector (keep-alive, `TCP_NODELAY`, no proxy, no redirects) over `resolver`,
/// keeping at most `pool_max_idle_per_host` idle connections per host (`None`: hyper's default).
/// It sets no timeouts: the caller bounds each call.
pub fn connector(
    resolver: SharedDnsResolver,
    pool_max_idle_per_host: Option<usize>,
) -> SharedHttpConnector {
    SharedHttpConnector::new(Hyper::new(resolver, pool_max_idle_per_host, None, None))
}

/// The same pooled client as [`connector`], for a caller that builds `http` requests itself and
/// reads `http` responses: no conversion into the SDK's request type and back on each call,
/// which cost every webhook delivery allocations and a second parse of its URI
/// (`docs/performance.md`). Errors are sorted as the connector sorts them. Cloning is cheap and
/// shares the pool.
#[derive(Debug, Clone)]
pub struct DirectClient(Client<Https, SdkBody>);

impl DirectClient {
    /// One pooled client over `resolver`, like [`connector`]; it sets no timeouts.
    pub fn new(resolver: SharedDnsResolver, pool_max_idle_per_host: Option<usize>) -> Self {
        DirectClient(pooled(resolver, pool_max_idle_per_host, None))
    }

    /// Sends `request` (an absolute URI) and returns the response once its head has arrived.
    pub async fn send(
        &self,
        request: hyper::Request<SdkBody>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ConnectorError> {
        self.0.request(request).await.map_err(classify)
    }
}

type Https = hyper_rustls::HttpsConnector<TcpConnector<Resolve>>;

/// The SDK's [`HttpConnector`] over a hyper-util client.
#[derive(Debug, Clone)]
struct Hyper {
    client: Client<Https, SdkBody>,
    /// Until the response's head has arrived, from the start of the call (connecting included).
    read_timeout: Option<Duration>,
}

impl Hyper {
    fn new(
        resolver: SharedDnsResolver,
        pool_max_idle_per_host: Option<usize>,
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
    ) -> Self {
        Hyper {
            client: pooled(resolver, pool_max_idle_per_host, connect_timeout),
            read_timeout,
        }
    }
}

/// The hyper-util client under [`Hyper`] and [`DirectClient`]: one type, so a binary that has
/// both carries its code once.
fn pooled(
    resolver: SharedDnsResolver,
    pool_max_idle_per_host: Option<usize>,
    connect_timeout: Option<Duration>,
) -> Client<Https, SdkBody> {
    let mut tcp = TcpConnector::new_with_resolver(Resolve(resolver));
    tcp.enforce_http(false); // https:// URLs pass through to the TLS layer
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config())
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    let mut builder = Client::builder(TokioExecutor::new());
    // The timer is what lets idle pooled connections expire (hyper's 90 s).
    builder.pool_timer(TokioTimer::new());
    if let Some(max) = pool_max_idle_per_host {
        builder.pool_max_idle_per_host(max);
    }
    builder.build(https)
}

impl HttpConnector for Hyper {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        // The SDK's retry rules poison (close) the connection of a request that failed in a
        // transient way, through the capture it put on the request. Webhooks carry none, and
        // skip the capture's channel.
        if let Some(capture) = request
            .extensions()
            .get::<CaptureSmithyConnection>()
            .cloned()
        {
            let captured = capture_connection(&mut request);
            capture.set_connection_retriever(move || connection_metadata(&captured));
        }
        let response = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                Some(limit) => match tokio::time::timeout(limit, response).await {
                    Ok(response) => response,
                    Err(elapsed) => return Err(ConnectorError::timeout(elapsed.into())),
                },
                None => response.await,
            };
            match response {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// The connection a request went out on, as the SDK reads it: its addresses, and how to close
/// it.
fn connection_metadata(captured: &CaptureConnection) -> Option<ConnectionMetadata> {
    let connected = captured.connection_metadata();
    let connected = connected.as_ref()?;
    let mut extras = hyper::http::Extensions::new();
    connected.get_extras(&mut extras);
    let info = extras.get::<HttpInfo>();
    let poisoned = captured.clone();
    let mut builder = ConnectionMetadata::builder()
        .proxied(false)
        .poison_fn(move || {
            if let Some(connection) = poisoned.connection_metadata().as_ref() {
                connection.poison();
            }
        });
    builder
        .set_local_addr(info.map(HttpInfo::local_addr))
        .set_remote_addr(info.map(HttpInfo::remote_addr));
    Some(builder.build())
}

/// Sorts a failed call the way the SDK's own hyper connector does, because its retry rules
/// read the kind: whatever failed before a request went out (name, TCP, TLS) and lost
/// connections are I/O (retried), timeouts are timeouts, hyper's refusals of the request itself
/// are the caller's.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let connect = error.is_connect();
    let io = find::<std::io::Error>(&error).map(std::io::Error::kind);
    let hyper = find::<hyper::Error>(&error);
    let timeout = hyper.is_some_and(hyper::Error::is_timeout);
    let user = hyper.is_some_and(hyper::Error::is_user);
    let lost = hyper.is_some_and(|e| e.is_closed() || e.is_canceled());
    let incomplete = hyper.is_some_and(hyper::Error::is_incomplete_message);
    let error: BoxError = Box::new(error);
    if connect {
        // The connect timeout (hyper-util's, per address) reads as the timeout it is.
        return match io {
            Some(std::io::ErrorKind::TimedOut) => ConnectorError::timeout(error),
            _ => ConnectorError::io(error),
        };
    }
    if timeout {
        ConnectorError::timeout(error)
    } else if user {
        ConnectorError::user(error)
    } else if lost || io.is_some() {
        ConnectorError::io(error)
    } else if incomplete {
        // The connection closed mid-response: transient, as the SDK's connector judges it.
        ConnectorError::other(error, Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(error, None)
    }
}

fn find<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(cause) = next {
        if let Some(found) = cause.downcast_ref::<E>() {
            return Some(found);
        }
        next = cause.source();
    }
    None
}

/// rustls on ring, trusting the system's root certificates ([`system_roots`]), read and parsed
/// once per process: reading them is a large part of a function's init (a few ms), and the
/// dispatcher builds two connectors (the SDK's and the webhooks'). Clones share the parsed
/// store.
fn tls_config() -> rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(system_roots_config).clone()
}

/// The system's root certificates: its bundle file alone when it has one, else what
/// `rustls_native_certs` finds (the bundle and the certificate directories, or what
/// `SSL_CERT_FILE` and `SSL_CERT_DIR` name, which it honours first, and so does this).
///
/// The directory beside a bundle holds the same roots again: Debian's 146, one file each, read
/// and decoded a second time; on Amazon Linux, the Lambda image, the bundle's trust-flagged twin.
/// Reading it too was about 2 ms of a Lambda function's init (docs/performance.md, 2026-12-07),
/// for nothing the bundle does not have: the tools that add a root (`update-ca-certificates`,
/// `update-ca-trust`) write it to the bundle.
fn system_roots() -> rustls_native_certs::CertificateResult {
    if openssl_probe::has_ssl_cert_env_vars() {
        return rustls_native_certs::load_native_certs();
    }
    if let Some(bundle) = openssl_probe::probe().cert_file {
        let found = rustls_native_certs::load_certs_from_paths(Some(&bundle), None);
        if !found.certs.is_empty() {
            return found;
        }
    }
    rustls_native_certs::load_native_certs()
}

/// A certificate that does not parse is skipped, as the SDK's connector skips it.
fn system_roots_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let found = system_roots();
    for error in &found.errors {
        tracing::warn!(%error, "a system root certificate could not be read");
    }
    let (added, skipped) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            skipped,
            "no system root certificates: every https:// call will fail"
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // ring supports every version rustls does, so the defaults cannot be refused.
        .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"))
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A [`SharedDnsResolver`] as the resolver hyper-util's connector calls. Its errors stay in the
/// failed call's source chain, so a caller can find its own (the webhook client's refusal of a
/// private address).
#[derive(Debug, Clone)]
struct Resolve(SharedDnsResolver);

impl tower_service::Service<Name> for Resolve {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveDnsError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.0.clone();
        Box::pin(async move {
            let ips = resolver.resolve_dns(name.as_str()).await?;
            // Port 0: the connector puts the URL's port on every address.
            let addresses: Vec<SocketAddr> =
                ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(addresses.into_iter())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_smithy_runtime_api::client::dns::DnsFuture;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Where the system has a bundle (Debian's `ca-certificates` package, which every machine
    /// this runs on has) and no `SSL_CERT_*` variable names another, the roots are exactly the
    /// bundle's certificates (what skipping the directory saves is the bench's to show). Run
    /// by [`the_roots_are_the_system_bundles`] in a child process without those variables,
    /// which a test cannot remove from its own.
    #[test]
    #[ignore = "run by the_roots_are_the_system_bundles without SSL_CERT_FILE and SSL_CERT_DIR"]
    fn roots_without_ssl_cert_variables() {
        assert!(
            !openssl_probe::has_ssl_cert_env_vars(),
            "SSL_CERT_FILE or SSL_CERT_DIR is set: run the_roots_are_the_system_bundles instead"
        );
        let bundle = openssl_probe::probe()
            .cert_file
            .expect("a system CA bundle (apt install ca-certificates)");
        let from_bundle = rustls_native_certs::load_certs_from_paths(Some(&bundle), None);
        let roots = system_roots();
        assert!(roots.certs.len() > 100, "{} roots", roots.certs.len());
        assert_eq!(roots.certs, from_bundle.certs);
        assert!(roots.errors.is_empty(), "{:?}", roots.errors);
    }

    #[test]
    fn the_roots_are_the_system_bundles() {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "tests::roots_without_ssl_cert_variables",
            ])
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&child.stdout);
        assert!(
            child.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&child.stderr)
        );
        assert!(out.contains("1 passed"), "{out}");
    }

    /// A keep-alive HTTP/1.1 server on 127.0.0.1 that answers every request with `answer` and
    /// counts the connections it accepted.
    async fn server(answer: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = vec![0; 64 * 1024];
                    // One read holds a whole small request; answer each.
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 || stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (address, connections)
    }

    fn post(url: &str) -> HttpRequest {
        let request = hyper::Request::post(url).body(SdkBody::from("{}")).unwrap();
        HttpRequest::try_from(request).unwrap()
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";

    #[tokio::test]
    async fn posts_and_reads_the_answer_over_one_kept_alive_connection() {
        let (address, connections) = server(OK).await;
        let connector = connector(tokio_resolver(), Some(8));
        for _ in 0..3 {
            let response = connector
                .call(post(&format!("http://{address}/hook")))
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"{}");
        }
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "the connection is reused"
        );
    }

    #[tokio::test]
    async fn the_sdk_can_poison_the_connection_a_request_went_out_on() {
        let (address, connections) = server(OK).await;
        let connector = connector(tokio_resolver(), Some(8));
        let capture = CaptureSmithyConnection::new();
        let mut request = post(&format!("http://{address}/hook"));
        request.add_extension(capture.clone());
        let response = connector.call(request).await.unwrap();
        response.into_body().collect().await.unwrap();

        let connection = capture
            .get()
            .expect("the request's connection was captured");
        assert_eq!(connection.remote_addr(), Some(address));
        connection.poison();
        connector
            .call(post(&format!("http://{address}/hook")))
            .await
            .unwrap();
        assert_eq!(
            connections.load(Ordering::SeqCst),
            2,
            "a poisoned connection is not reused"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_io_which_the_sdk_retries() {
        let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = unused.local_addr().unwrap();
        drop(unused);
        let error = connector(tokio_resolver(), None)
            .call(post(&format!("http://{address}/")))
            .await
            .unwrap_err();
        assert!(error.is_io(), "{error:?}");
    }

    #[tokio::test]
    async fn an_https_url_speaks_tls() {
        // A plain-HTTP server cannot complete a TLS handshake: the call fails before any
        // request is sent, as a connection error.
        let (address, _) = server(OK).await;
        let error = connector(tokio_resolver(), None)
            .call(post(&format!("https://{address}/hook")))
            .await
            .unwrap_err();
        assert!(error.is_io(), "{error:?}");
        // rustls's refusal of the answer, inside the I/O error tokio-rustls wraps it in.
        assert!(format!("{error:?}").contains("InvalidMessage"), "{error:?}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // Accepts and holds the connection without a word.
        let held = tokio::spawn(async move { listener.accept().await.unwrap() });
        let settings = HttpConnectorSettings::builder()
            .read_timeout(Duration::from_millis(50))
            .build();
        let error = AwsHttpClient::default()
            .connector(&settings)
            .call(post(&format!("http://{address}/")))
            .await
            .unwrap_err();
        assert!(error.is_timeout(), "{error:?}");
        drop(held);
    }

    #[tokio::test]
    async fn a_connection_not_accepted_in_time_is_a_timeout() {
        // A listener whose accept queue is full and never drained: Linux drops further SYNs,
        // so a connect hangs until the connect timeout. Filled until a connect of our own hangs.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let address = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        let full = loop {
            let connect = tokio::net::TcpStream::connect(address);
            match tokio::time::timeout(Duration::from_millis(200), connect).await {
                Ok(Ok(stream)) if queued.len() < 64 => queued.push(stream),
                Ok(_) => break false,
                Err(_) => break true,
            }
        };
        assert!(full, "the accept queue never filled");
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(Duration::from_millis(100))
            .build();
        let call = AwsHttpClient::default()
            .connector(&settings)
            .call(post(&format!("http://{address}/")));
        let error = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("the connect timeout ended the call")
            .unwrap_err();
        assert!(error.is_timeout(), "{error:?}");
        let failed = find::<hyper_util::client::legacy::Error>(&error);
        assert!(failed.is_some_and(|e| e.is_connect()), "{error:?}");
        drop((listener, queued));
    }

    /// The resolver's own error, as the webhook client's private-address guard raises it.
    #[derive(Debug)]
    struct Refused;
    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("refused by the resolver")
        }
    }
    impl StdError for Refused {}

    #[derive(Debug)]
    struct Refusing;
    impl ResolveDns for Refusing {
        fn resolve_dns<'a>(&'a self, _name: &'a str) -> DnsFuture<'a> {
            DnsFuture::ready(Err(ResolveDnsError::new(Refused)))
        }
    }

    #[tokio::test]
    async fn a_resolver_refusal_stays_in_the_error_chain() {
        let error = connector(SharedDnsResolver::new(Refusing), None)
            .call(post("http://receiver.example/hook"))
            .await
            .unwrap_err();
        assert!(error.is_io(), "{error:?}");
        assert!(find::<Refused>(&error).is_some(), "{error:?}");
    }

    #[tokio::test]
    async fn the_sdk_clients_share_one_connector_per_set_of_timeouts() {
        let client = AwsHttpClient::default();
        let short = HttpConnectorSettings::builder()
            .connect_timeout(Duration::from_secs(1))
            .build();
        let long = HttpConnectorSettings::builder()
            .connect_timeout(Duration::from_secs(9))
            .build();
        for settings in [&short, &short, &long, &long] {
            client.connector(settings);
        }
        assert_eq!(client.connectors.lock().unwrap().len(), 2);
    }
}
