//! The dispatcher: invocation intake (`POST /trigger-invocations/v1/start` and `/test`) and
//! delivery to webhooks (`triggerline_webhook::HttpWebhookClient`) and event buses, with
//! retries and deadlines. [`router`] serves the intake; the delivery loop itself is
//! [`triggerline::usecases::delivery::Delivery`], driven locally by `infra/local`'s worker and on
//! AWS by the SQS consumer.
//!
//! # On AWS: one binary per entry point
//!
//! | binary | event | does | library entry |
//! |---|---|---|---|
//! | `dispatcher` | API Gateway HTTP API (v2) | start, test, retry | [`router`] over [`Context::behind_api_gateway`] |
//! | `dispatcher-queue` | SQS batch (work queue) | one delivery attempt per record | [`queue_consumer::handle`] |
//! | `dispatcher-sweep` | EventBridge `Scheduled Event` | deadline sweep | [`sweep::handle`] |
//!
//! Three functions rather than one that routes by event shape: each role gets only the
//! permissions of its own entry (the sweep never posts a webhook, so it has no secret key and
//! no HTTP client; only the consumer receives from the queue), each is scaled and timed out for
//! its own event (an API request answers within API Gateway's 30 s, a batch may take
//! several 10 s attempts, a sweep is a short scan), and each handler deserializes exactly one
//! event type, so a misrouted event is a deserialization error instead of a guess. The cost is
//! three deployment packages of one crate, built by one `cargo lambda build`.
#![forbid(unsafe_code)]

mod intake;
pub mod queue_consumer;
pub mod requested;
pub mod sweep;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use triggerline::ports::{DeliveryQueue, IdempotencyStore};
use triggerline::time::RandomIds;
use triggerline::usecases::delivery::Delivery;
use triggerline::usecases::intake::{Intake, SyncRecord};
use triggerline_http::{ApiAuth, Versioned, edge, require_bearer};

/// What the intake routes need.
#[derive(Debug, Clone)]
pub struct Context {
    pub intake: Intake,
    pub auth: ApiAuth,
}

impl Context {
    /// The intake of the `dispatcher` Lambda. No in-process worker (`signal: None`): the SQS
    /// work queue hands fresh work to the queue consumer. A synchronous start writes once, with
    /// its outcome ([`SyncRecord::WithOutcome`]), because every DynamoDB write is billed. Auth
    /// is [`ApiAuth::Upstream`]: API Gateway's JWT authorizer checked the caller.
    ///
    /// `queue` replaces `delivery`'s: the work queue as the intake uses it, configured by the
    /// main (`triggerline_lambda::intake_queue`). The intake delivers what it leases itself (an
    /// inline synchronous start, and a start whose subscriptions are all EVENTBRIDGE:
    /// `events_inline`, one `PutEvents` from the request), so that queue leaves leased work
    /// unsent for the sweep to recover after a crash; and with a `sync_wait` under
    /// [`triggerline::usecases::intake::INLINE_WAIT_FLOOR`], where a synchronous start waits
    /// for the consumer by reading its invocations, it writes every accept before sending its
    /// work.
    ///
    /// `keys` remembers the `Idempotency-Key`s (on AWS: `triggerline_aws::AwsBackend::keys`).
    pub fn behind_api_gateway(
        delivery: Delivery,
        queue: Arc<dyn DeliveryQueue>,
        sync_wait: Duration,
        keys: Arc<dyn IdempotencyStore>,
    ) -> Context {
        let delivery = Delivery { queue, ..delivery };
        Context {
            intake: Intake {
                delivery,
                signal: None,
                sync_record: SyncRecord::WithOutcome,
                ids: Arc::new(RandomIds),
                sync_wait,
                keys: Some(keys),
                events_inline: true,
            },
            auth: ApiAuth::Upstream,
        }
    }
}

/// These routes' OpenAPI description, in their v1 form (`triggerline-openapi` adds the prefixed
/// forms and the shared error answers).
#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(intake::start, intake::start_batch, intake::test, intake::retry))]
pub struct ApiDoc;

/// `start`, `start-batch`, `test` and `retry`, behind bearer auth.
pub fn router(ctx: Context) -> Router {
    let routes = Versioned::new()
        .route("trigger-invocations", "/start", post(intake::start))
        .route(
            "trigger-invocations",
            "/start-batch",
            post(intake::start_batch),
        )
        .route("trigger-invocations", "/test", post(intake::test))
        .route("trigger-invocations", "/{id}/retry", post(intake::retry))
        .into_router()
        // Shared, not cloned per request (the intake holds a dozen handles and strings).
        .with_state(Arc::new(ctx.intake))
        .route_layer(from_fn_with_state(ctx.auth, require_bearer));
    edge(routes)
}
