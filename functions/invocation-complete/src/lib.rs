//! The invocation callback, `POST /trigger-invocations/v1/{id}/complete`: a subscriber finishes
//! an ASYNC (or DYNAMIC-acknowledged) invocation with the secret it was sent. No bearer token is
//! required (receivers written from SailPoint's docs send none; the SDK's is ignored): the
//! invocation's secret is the credential.
#![forbid(unsafe_code)]

pub mod aws;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use triggerline::usecases::complete::complete;
use triggerline::usecases::delivery::Delivery;
use triggerline_http::{ApiError, Callback, Versioned, edge};

/// What the callback needs: the delivery context (stores, catalog, clock, events, watchers).
#[derive(Debug, Clone)]
pub struct Context {
    pub delivery: Delivery,
}

/// The callback route, without bearer auth.
pub fn router(ctx: Context) -> Router {
    let routes = Versioned::new()
        .route(
            "trigger-invocations",
            "/{id}/complete",
            post(complete_invocation),
        )
        .into_router()
        .with_state(ctx.delivery);
    edge(routes)
}

/// An id or secret of the wrong shape is refused by [`Callback`] before the store is read.
async fn complete_invocation(
    State(delivery): State<Delivery>,
    Callback { id, request }: Callback,
) -> Result<StatusCode, ApiError> {
    complete(&delivery, &id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}
