//! The dispatcher: invocation intake (`POST /trigger-invocations/v1/start` and `/test`) and
//! delivery to webhooks ([`webhook::HttpWebhookClient`]) and event buses, with retries and
//! deadlines. [`router`] serves the intake; the delivery loop itself is
//! [`triggerline::usecases::delivery::Delivery`], driven locally by `infra/local`'s worker and on
//! AWS by the SQS consumer.
#![forbid(unsafe_code)]

mod intake;
pub mod webhook;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use triggerline::usecases::intake::Intake;
use triggerline_http::{ApiAuth, Versioned, edge, require_bearer};

/// What the intake routes need.
#[derive(Debug, Clone)]
pub struct Context {
    pub intake: Intake,
    pub auth: ApiAuth,
}

/// `start`, `test` and `retry`, behind bearer auth.
pub fn router(ctx: Context) -> Router {
    let routes = Versioned::new()
        .route("trigger-invocations", "/start", post(intake::start))
        .route("trigger-invocations", "/test", post(intake::test))
        .route("trigger-invocations", "/{id}/retry", post(intake::retry))
        .into_router()
        .with_state(ctx.intake)
        .route_layer(from_fn_with_state(ctx.auth, require_bearer));
    edge(routes)
}
