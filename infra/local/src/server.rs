//! The local HTTP server: HTTP/1.1 with header names in canonical case, a trace layer that
//! knows 542 is an answer, bounds on what a client may hold, and graceful shutdown.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Layer;
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, NeverClassifyEos, ServerErrorsAsFailures,
    ServerErrorsFailureClass, SharedClassifier,
};
use tower_http::trace::TraceLayer;

use crate::Config;
use crate::body_bounds::BoundedBodies;
use crate::write_stall::WriteStall;

/// What one client may hold of the server, so that stalled or abandoned connections cannot
/// take what other callers and the deliveries need (each connection is an open file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// For a request's head (hyper's header read timeout, which also closes an idle keep-alive
    /// connection), then for its whole body ([`BoundedBodies`]), and for each part of an answer
    /// to be taken ([`WriteStall`]).
    pub timeout: Duration,
    /// Bytes of request bodies held at once while they are read, over all connections.
    pub body_memory: usize,
    /// Connections served at once; the next waits in the listen backlog until one closes.
    pub max_connections: usize,
}

/// The most connections served at once unless configured: far more than producers with
/// keep-alive need, and few enough that stalled ones cannot use up memory (each holds its
/// buffers and a task) when the open-file limit is high.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// What a connection buffers of what it reads or writes: a head still incomplete once it fills
/// this is refused (431; hyper reads in growing parts, so a head may reach about twice this),
/// a body is read through it in parts.
const MAX_BUFFER: usize = 64 * 1024;

/// Open files kept for everything but connections and deliveries: the database, its WAL and
/// shared memory on each pooled connection, the events file, the listener, the runtime's own.
const RESERVED_FILES: u64 = 128;

impl ClientLimits {
    /// The configured limits, with the connection limit worked out from the process's
    /// open-file limit when it is not set ([`default_max_connections`]).
    pub fn from_config(config: &Config) -> ClientLimits {
        let max_connections = match config.max_connections {
            Some(max) => max as usize,
            None => {
                let (open_files, _) = rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .unwrap_or((rlimit::INFINITY, rlimit::INFINITY));
                default_max_connections(open_files, config.delivery_concurrency)
            }
        };
        ClientLimits {
            timeout: Duration::from_millis(config.client_timeout.as_millis()),
            body_memory: config.max_body_memory as usize * 1024 * 1024,
            max_connections,
        }
    }
}

/// The fewest connections served at once by default, whatever the open-file limit.
const MIN_CONNECTIONS: usize = 16;

/// Open files the process needs besides connections: a connection per delivery in flight and
/// as many idle in the client's pool, and [`RESERVED_FILES`].
fn files_besides_connections(delivery_concurrency: usize) -> u64 {
    u64::try_from(delivery_concurrency)
        .unwrap_or(u64::MAX)
        .saturating_mul(2)
        .saturating_add(RESERVED_FILES)
}

/// The open-file limit less [`files_besides_connections`]; at most
/// [`DEFAULT_MAX_CONNECTIONS`], at least [`MIN_CONNECTIONS`].
pub fn default_max_connections(open_files: u64, delivery_concurrency: usize) -> usize {
    let left = open_files.saturating_sub(files_besides_connections(delivery_concurrency));
    usize::try_from(left)
        .unwrap_or(usize::MAX)
        .clamp(MIN_CONNECTIONS, DEFAULT_MAX_CONNECTIONS)
}

/// The open-file limit the process needs for `delivery_concurrency` and the fewest
/// connections; below it deliveries can fail to connect under load.
pub fn open_files_needed(delivery_concurrency: usize) -> u64 {
    files_besides_connections(delivery_concurrency).saturating_add(MIN_CONNECTIONS as u64)
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets the
/// requests in flight finish and closes idle connections.
///
/// Not `axum::serve`: hyper writes header names as the `HeaderMap` holds them, lowercase, and
/// the official SailPoint SDKs hand response headers to users as a plain case-sensitive dict,
/// where `headers.get("X-Total-Count")` must find the count as it does against SailPoint. Only
/// hyper's own connection builder can write them in title case (`X-Total-Count`,
/// `Content-Type`), which is how the Lambda functions send them too
/// (`triggerline_lambda::http`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ClientLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.title_case_headers(true)
        // With a timer, a client that never finishes its headers (or sends no next request on
        // a kept-alive connection) is dropped after this instead of holding it forever.
        .timer(TokioTimer::new())
        .header_read_timeout(limits.timeout)
        // hyper's default is about 400 KB per connection, of which only pipelined requests
        // and outsized heads use more than a few: at the connection limit that was 1.6 GB a
        // client could make the process hold outside the bodies' budget.
        .max_buf_size(MAX_BUFFER);
    // Around the whole router rather than through `Router::layer`, which would wrap each route
    // in one more boxed service that axum clones on every request.
    let service = trace_layer().layer(BoundedBodies::new(
        router,
        limits.timeout,
        limits.body_memory,
    ));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    metrics::gauge!(crate::metrics::CONNECTIONS_MAX).set(limits.max_connections as f64);
    let open = metrics::gauge!(crate::metrics::CONNECTIONS_OPEN);
    let mut warned: Option<tokio::time::Instant> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A slot before the accept: over the limit, connections wait in the listen backlog
        // rather than take the open files that deliveries and the store need.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        // Once a minute at most: under a flood the limit is met again with every connection.
        if slots.available_permits() == 0 && warned.is_none_or(|at| at.elapsed() >= FULL_WARNING) {
            warned = Some(tokio::time::Instant::now());
            tracing::warn!(
                max_connections = limits.max_connections,
                "serving as many connections as allowed; new ones wait until one closes"
            );
        }
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers go out at once instead of waiting on the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(
            TokioIo::new(WriteStall::new(stream, limits.timeout)),
            TowerToHyperService::new(service.clone()),
        );
        let connection = graceful.watch(connection);
        let open = open.clone();
        open.increment(1.0);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            open.decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// How often reaching the connection limit is logged at most.
const FULL_WARNING: Duration = Duration::from_secs(60);

/// A failed accept: the client's own trouble (it reset or gave up) is nothing to report; any
/// other failure (out of file descriptors) is logged and accepting resumes after a pause, so
/// the loop does not spin while the condition lasts.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept connections; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// SailPoint's status for a synchronous `start` that has not finished within the wait.
const STILL_RUNNING: u16 = 542;

/// The request trace: a server error is a failure, which the layer logs at ERROR, except 542,
/// which is an expected answer (the invocation goes on), and an error the mapping has already
/// logged with its tracking id ([`triggerline_http::Logged`]): each failure is one ERROR line.
/// Each request's span carries a `trace_id` ([`RequestSpan`]).
pub fn trace_layer() -> TraceLayer<SharedClassifier<ServerErrorsExceptStillRunning>, RequestSpan> {
    TraceLayer::new(SharedClassifier::new(ServerErrorsExceptStillRunning))
        .make_span_with(RequestSpan)
}

/// The span of one request, as tower-http's default makes it (`request`, at DEBUG, with the
/// method, URI and version), plus `trace_id`: the W3C trace id of the request's valid
/// `traceparent` header; without one, the trace a `start` or `test` started, or a callback's
/// invocation's (the use cases record it, [`triggerline::telemetry::traced`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> tower_http::trace::MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> tracing::Span {
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            uri = %request.uri(),
            version = ?request.version(),
            trace_id = tracing::field::Empty,
        );
        if let Some(trace) = triggerline_http::trace_of(request.headers()) {
            span.record(triggerline::telemetry::TRACE_ID_FIELD, trace.trace_id());
        }
        span
    }
}

/// [`ServerErrorsAsFailures`], with 542 a success and an error already logged not a failure.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrorsExceptStillRunning;

impl ClassifyResponse for ServerErrorsExceptStillRunning {
    type FailureClass = ServerErrorsFailureClass;
    type ClassifyEos = NeverClassifyEos<ServerErrorsFailureClass>;

    fn classify_response<B>(
        self,
        response: &Response<B>,
    ) -> ClassifiedResponse<Self::FailureClass, Self::ClassifyEos> {
        if response.status().as_u16() == STILL_RUNNING
            || response
                .extensions()
                .get::<triggerline_http::Logged>()
                .is_some()
        {
            return ClassifiedResponse::Ready(Ok(()));
        }
        ServerErrorsAsFailures::new().classify_response(response)
    }

    fn classify_error<E: Display + 'static>(self, error: &E) -> Self::FailureClass {
        ServerErrorsAsFailures::new().classify_error(error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// The status of every event logged at ERROR.
    #[derive(Clone, Default)]
    struct Errors(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Errors {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() == tracing::Level::ERROR {
                self.0.lock().unwrap().push(format!("{event:?}"));
            }
        }
    }

    async fn errors_logged_for(status: u16) -> Vec<String> {
        let status = StatusCode::from_u16(status).unwrap();
        errors_logged_by(
            Router::new().route("/", get(move || async move { status })),
            status,
        )
        .await
    }

    /// What `GET /` on `router`, under the trace layer, logs at ERROR; its answer is `status`.
    async fn errors_logged_by(router: Router, status: StatusCode) -> Vec<String> {
        let errors = Errors::default();
        let _logs =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(errors.clone()));

        let response = router
            .layer(trace_layer())
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();

        assert_eq!(response.status(), status);
        errors.0.lock().unwrap().clone()
    }

    // Current-thread runtimes: the log capture is set for the test's thread.
    /// The `trace_id` values recorded on spans.
    #[derive(Clone, Default)]
    struct TraceIds(Arc<Mutex<Vec<String>>>);

    impl tracing::field::Visit for TraceIds {
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            if field.name() == "trace_id" {
                self.0.lock().unwrap().push(value.to_owned());
            }
        }
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "trace_id" {
                self.0.lock().unwrap().push(format!("{value:?}"));
            }
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TraceIds {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            attrs.record(&mut self.clone());
        }
        fn on_record(
            &self,
            _: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            values.record(&mut self.clone());
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_request_span_carries_the_trace_id_of_a_valid_traceparent() {
        let router = Router::new()
            .route("/", get(|| async { StatusCode::OK }))
            .layer(trace_layer());
        let seen = TraceIds::default();
        let _logs =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(seen.clone()));

        for parent in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            let request = Request::get("/")
                .header("traceparent", parent)
                .body(Body::empty())
                .unwrap();
            router.clone().oneshot(request).await.unwrap();
        }

        assert_eq!(
            *seen.0.lock().unwrap(),
            ["4bf92f3577b34da6a3ce929d0e0e4736"],
            "an invalid one leaves the field to the use case"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_542_is_not_logged_as_an_error() {
        assert_eq!(errors_logged_for(542).await, Vec::<String>::new());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn other_server_errors_still_are() {
        assert_eq!(errors_logged_for(503).await.len(), 1);
        assert_eq!(errors_logged_for(200).await, Vec::<String>::new());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_store_outage_is_one_error_line_with_its_tracking_id() {
        let router = Router::new().route(
            "/",
            get(|| async {
                let down = std::io::Error::other("the store is down");
                triggerline_http::ApiError::from(triggerline::Error::unavailable(down))
            }),
        );

        let logged = errors_logged_by(router, StatusCode::SERVICE_UNAVAILABLE).await;

        assert_eq!(logged.len(), 1, "{logged:?}");
        assert!(logged[0].contains("tracking_id"), "{logged:?}");
    }
}
