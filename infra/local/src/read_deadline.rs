//! A deadline on reading each request's body, so that a client cannot hold a connection open
//! by never finishing what it sends.
//!
//! hyper's header read timeout covers a request's head (and an idle keep-alive connection), but
//! nothing bounds its body: a `POST` whose `Content-Length` is never met, or that arrives a byte
//! every few seconds, held its connection (a file descriptor and a task) for as long as the
//! client liked. The callback URL takes such requests from anyone who can reach it, no token
//! needed, so a few hundred of them used up the process's open files: accepting then failed,
//! and so did every delivery's connect. [`ReadDeadline`] gives each body a deadline counted from
//! the moment its request reached the router, not from each byte (a trickle still ends), and
//! answers a request whose body missed it 408, closing the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service that puts a [`DeadlineBody`] around each request's body and answers 408 when
/// the deadline passed while the inner service read it.
#[derive(Debug, Clone)]
pub struct ReadDeadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S> ReadDeadline<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        ReadDeadline { inner, timeout }
    }
}

impl<S, B> tower::Service<Request<B>> for ReadDeadline<S>
where
    S: tower::Service<Request<DeadlineBody<B>>, Response = Response<axum::body::Body>>,
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
        let expired = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + self.timeout;
        let timeout = self.timeout;
        let request = request.map(|body| DeadlineBody {
            inner: body,
            deadline,
            sleep: None,
            expired: expired.clone(),
        });
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            if expired.load(Ordering::Relaxed) {
                // Whatever the handler made of the failed read (axum's "failed to buffer"),
                // the client is told what happened, and the connection is not reused: the rest
                // of the body may still be on its way.
                let mut response = triggerline_http::ApiError::Http(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} s of the request",
                        timeout.as_secs_f64()
                    ),
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return Ok(response);
            }
            Ok(response)
        })
    }
}

/// A request body that fails once its deadline has passed. The timer is made only when the
/// body is not ready at once, so a request whose body came with its head costs no timer.
#[derive(Debug)]
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

/// The error a body gives when its deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyDeadlinePassed;

impl<B> Body for DeadlineBody<B>
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
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
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
    fn stalled(first: &'static [u8]) -> impl Body<Data = Bytes, Error = BoxError> + Unpin {
        let frames =
            futures::stream::iter([Ok::<_, BoxError>(Frame::data(Bytes::from_static(first)))])
                .chain(futures::stream::pending());
        StreamBody::new(Box::pin(frames))
    }

    fn echo() -> Router {
        Router::new().route("/", post(|body: Bytes| async move { body }))
    }

    /// The service's answer; under paused time a body that is never cut would end the test
    /// at this bound instead of hanging it.
    async fn answer<B>(
        service: ReadDeadline<Router>,
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
        let service = ReadDeadline::new(echo(), Duration::from_secs(30));
        let request = Request::post("/").body(stalled(b"{")).unwrap();

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
        let service = ReadDeadline::new(echo(), Duration::from_secs(30));
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
        let service = ReadDeadline::new(echo(), Duration::from_secs(30));
        let request = Request::post("/").body(StreamBody::new(frames)).unwrap();

        let response = answer(service, request).await;

        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    }
}
