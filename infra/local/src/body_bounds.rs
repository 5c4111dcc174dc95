//! Bounds on each request body: a deadline, and a share of a memory budget for the bodies being
//! read at once, so that clients cannot hold a connection open by never finishing what they
//! send, nor the process's memory by sending many large bodies slowly.
//!
//! hyper's header read timeout covers a request's head (and an idle keep-alive connection), but
//! nothing bounded its body: a `POST` whose `Content-Length` is never met, or that arrives a byte
//! every few seconds, held its connection (a file descriptor and a task) for as long as the
//! client liked. The callback URL takes such requests from anyone who can reach it, no token
//! needed, so a few hundred of them used up the process's open files: accepting then failed,
//! and so did every delivery's connect. [`BoundedBodies`] gives each body a deadline counted
//! from the moment its request reached the router, not from each byte (a trickle still ends),
//! and answers a request whose body missed it 408, closing the connection.
//!
//! Each body may be up to 1 MiB, and every connection may be sending one: at the connection
//! limit that is gigabytes buffered before any handler runs. The bytes of the bodies being read
//! are therefore counted against one budget (`--max-body-memory`); a body that would take it
//! over is refused with 503 and `Retry-After`, its bytes let go, and its connection closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service that puts a [`BoundedBody`] around each request's body, and answers 408 when
/// the deadline passed, or 503 when the budget ran out, while the inner service read it.
#[derive(Debug, Clone)]
pub struct BoundedBodies<S> {
    inner: S,
    timeout: Duration,
    /// Bytes of request bodies that may be held at once, shared by every connection (counted
    /// exactly: a trickle of one-byte frames takes no more than it sends).
    budget: Arc<Semaphore>,
}

impl<S> BoundedBodies<S> {
    /// `inner`, with `timeout` for each body and `memory` bytes for all bodies being read.
    pub fn new(inner: S, timeout: Duration, memory: usize) -> Self {
        let permits = memory.clamp(1, Semaphore::MAX_PERMITS);
        BoundedBodies {
            inner,
            timeout,
            budget: Arc::new(Semaphore::new(permits)),
        }
    }
}

/// What stopped a body, as the body tells the service (one per request): 0 while nothing has.
#[derive(Debug, Default)]
struct Stopped(AtomicU8);

const PAST_DEADLINE: u8 = 1;
const OVER_BUDGET: u8 = 2;

impl<S, B> tower::Service<Request<B>> for BoundedBodies<S>
where
    S: tower::Service<Request<BoundedBody<B>>, Response = Response<axum::body::Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response<axum::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let stopped = Arc::new(Stopped::default());
        let deadline = Instant::now() + self.timeout;
        let timeout = self.timeout;
        let request = request.map(|body| BoundedBody {
            inner: body,
            deadline,
            sleep: None,
            budget: self.budget.clone(),
            held: 0,
            stopped: stopped.clone(),
        });
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            // Whatever the handler made of the failed read (axum's "failed to buffer"), the
            // client is told what happened, and the connection is not reused: the rest of the
            // body may still be on its way.
            let stopped = stopped.0.load(Ordering::Relaxed);
            let reason = match stopped {
                PAST_DEADLINE => "body_late",
                OVER_BUDGET => "body_memory",
                _ => return Ok(response),
            };
            metrics::counter!(crate::metrics::CUT, "reason" => reason).increment(1);
            let mut response = if stopped == PAST_DEADLINE {
                triggerline_http::ApiError::Http(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} s of the request",
                        timeout.as_secs_f64()
                    ),
                )
                .into_response()
            } else {
                let mut busy = triggerline_http::ApiError::Http(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many request bodies are being received at once; retry later".to_owned(),
                )
                .into_response();
                busy.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                busy
            };
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Ok(response)
        })
    }
}

/// A request body that fails once its deadline has passed or its bytes would take the shared
/// budget over. The timer is made only when the body is not ready at once; the bytes it holds
/// of the budget go back when it is dropped (the handler has them by then, or never will).
#[derive(Debug)]
pub struct BoundedBody<B> {
    inner: B,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    budget: Arc<Semaphore>,
    /// Bytes of the budget this body holds.
    held: usize,
    stopped: Arc<Stopped>,
}

/// The error a body gives when its deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyDeadlinePassed;

/// The error a body gives when its bytes would take the budget over.
#[derive(Debug, thiserror::Error)]
#[error("too many request bodies are being received at once")]
pub struct BodyBudgetSpent;

impl<B> BoundedBody<B> {
    /// Takes `bytes` of the budget, or says it is spent.
    fn take(&mut self, bytes: usize) -> bool {
        let Ok(permits) = u32::try_from(bytes) else {
            return false;
        };
        match self.budget.try_acquire_many(permits) {
            Ok(permits) => {
                permits.forget();
                self.held += bytes;
                true
            }
            Err(_) => false,
        }
    }
}

impl<B> Drop for BoundedBody<B> {
    fn drop(&mut self) {
        if self.held > 0 {
            self.budget.add_permits(self.held);
        }
    }
}

impl<B> Body for BoundedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            let frame = match frame {
                Some(Ok(frame)) => frame,
                other => return Poll::Ready(other.map(|frame| frame.map_err(Into::into))),
            };
            let bytes = frame.data_ref().map_or(0, Bytes::len);
            if bytes > 0 && !this.take(bytes) {
                this.stopped.0.store(OVER_BUDGET, Ordering::Relaxed);
                return Poll::Ready(Some(Err(BodyBudgetSpent.into())));
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.stopped.0.store(PAST_DEADLINE, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyDeadlinePassed.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::Router;
    use axum::routing::post;
    use futures::StreamExt;
    use http_body_util::{BodyExt, StreamBody};
    use tower::ServiceExt;

    use super::*;

    /// A body that sends `first` and then nothing more, as a stalled client does.
    fn stalled(first: impl Into<Bytes>) -> impl Body<Data = Bytes, Error = BoxError> + Unpin {
        let frames = futures::stream::iter([Ok::<_, BoxError>(Frame::data(first.into()))])
            .chain(futures::stream::pending());
        StreamBody::new(Box::pin(frames))
    }

    const MIB: usize = 1024 * 1024;

    fn echo() -> Router {
        Router::new().route("/", post(|body: Bytes| async move { body }))
    }

    /// The service's answer; under paused time a body that is never cut would end the test
    /// at this bound instead of hanging it.
    async fn answer<B>(
        service: BoundedBodies<Router>,
        request: Request<B>,
    ) -> Response<axum::body::Body>
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<BoxError>,
    {
        tokio::time::timeout(Duration::from_secs(3600), service.oneshot(request))
            .await
            .expect("the body was never cut off")
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_is_answered_408_with_the_connection_closed() {
        let service = BoundedBodies::new(echo(), Duration::from_secs(30), MIB);
        let request = Request::post("/").body(stalled(&b"{"[..])).unwrap();

        let response = answer(service, request).await;

        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["detailCode"], "408 Request Timeout", "{error}");
        assert!(
            error["messages"][0]["text"]
                .as_str()
                .unwrap()
                .contains("within 30 s"),
            "{error}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_arrives_in_time_passes_unchanged() {
        let service = BoundedBodies::new(echo(), Duration::from_secs(30), MIB);
        let request = Request::post("/")
            .body(axum::body::Body::from("{\"a\":1}"))
            .unwrap();

        let response = answer(service, request).await;

        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"{\"a\":1}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_the_request_not_from_each_frame() {
        // One byte every 20 s: each frame comes well within 30 s of the one before, but the
        // whole body would take minutes.
        let frames = Box::pin(futures::stream::unfold(0u8, |sent| async move {
            if sent > 0 {
                tokio::time::sleep(Duration::from_secs(20)).await;
            }
            Some((
                Ok::<_, BoxError>(Frame::data(Bytes::from_static(b" "))),
                sent + 1,
            ))
        }));
        let service = BoundedBodies::new(echo(), Duration::from_secs(30), MIB);
        let request = Request::post("/").body(StreamBody::new(frames)).unwrap();

        let response = answer(service, request).await;

        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn bodies_past_the_budget_are_refused_503_and_their_share_given_back() {
        let service = BoundedBodies::new(echo(), Duration::from_secs(30), MIB);
        let half = || {
            Request::post("/")
                .body(stalled(vec![b' '; 600 * 1024]))
                .unwrap()
        };

        // The first body holds 600 KiB while it waits for the rest; the second would take the
        // budget past 1 MiB.
        let first = tokio::spawn(answer(service.clone(), half()));
        tokio::task::yield_now().await;
        let second = answer(service.clone(), half()).await;

        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.headers()[header::RETRY_AFTER], "1");
        assert_eq!(second.headers()[header::CONNECTION], "close");
        let body = second.into_body().collect().await.unwrap().to_bytes();
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            error["messages"][0]["text"]
                .as_str()
                .unwrap()
                .contains("retry later"),
            "{error}"
        );
        // The first ends at its deadline, and what it held goes back: a body as large fits.
        assert_eq!(first.await.unwrap().status(), StatusCode::REQUEST_TIMEOUT);
        let request = Request::post("/")
            .body(axum::body::Body::from(vec![b' '; 1000 * 1024]))
            .unwrap();
        assert_eq!(answer(service, request).await.status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_counts_bytes_not_frames() {
        // 100 one-byte frames against a budget of 100 bytes: all of them fit.
        let frames = futures::stream::iter(
            (0..100).map(|_| Ok::<_, BoxError>(Frame::data(Bytes::from_static(b" ")))),
        );
        let service = BoundedBodies::new(echo(), Duration::from_secs(30), 100);
        let request = Request::post("/").body(StreamBody::new(frames)).unwrap();

        let response = answer(service, request).await;

        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 100);
    }
}
