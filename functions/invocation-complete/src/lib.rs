//! The invocation callback, `POST /trigger-invocations/v1/{id}/complete`: a subscriber finishes
//! an ASYNC (or DYNAMIC-acknowledged) invocation with the secret it was sent; and
//! `POST /trigger-invocations/v1/{id}/heartbeat`, with the same secret, keeps one alive whose
//! subscription sets `heartbeatTimeout`. No bearer token is
//! required (receivers written from SailPoint's docs send none; the SDK's is ignored): the
//! invocation's secret is the credential.
#![forbid(unsafe_code)]

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use triggerline::usecases::complete::{Completion, complete};
use triggerline::usecases::heartbeat::heartbeat;
use triggerline::wire::{HeartbeatRequest, HeartbeatResponse};
use triggerline_http::{ApiError, Callback, Versioned, edge};

/// What the callback needs: the invocations, the catalog (to check an output), the clock and
/// the notifier.
pub type Context = Completion;

/// These routes' OpenAPI description, in their v1 form (`triggerline-openapi` adds the prefixed
/// forms and the shared error answers).
#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(complete_invocation, heartbeat_invocation))]
pub struct ApiDoc;

/// The callback routes, without bearer auth.
pub fn router(ctx: Context) -> Router {
    let routes = Versioned::new()
        .route(
            "trigger-invocations",
            "/{id}/complete",
            post(complete_invocation),
        )
        .route(
            "trigger-invocations",
            "/{id}/heartbeat",
            post(heartbeat_invocation),
        )
        .into_router()
        .with_state(Arc::new(ctx));
    edge(routes)
}

#[cfg_attr(feature = "openapi", utoipa::path(post,
    path = "/trigger-invocations/v1/{id}/complete", tag = "Invocations",
    operation_id = "completeTriggerInvocation", summary = "Complete an invocation (callback)",
    description = "Authenticated by the invocation's `secret`, not a bearer token (one sent is \
        ignored). An unknown id and a wrong secret get the same 401. Already completed or past \
        the deadline: 400. `error` set: a failed completion (`output` is then not checked).",
    security(()),
    params(("id" = String, Path, description = "Invocation id"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context of the \
            subscriber's span that completes: logged with the invocation's trace, not stored")),
    request_body = triggerline::wire::CompleteInvocation,
    responses((status = 204, description = "Completed"))))]
/// An id or secret of the wrong shape is refused by [`Callback`] before the store is read.
async fn complete_invocation(
    State(ctx): State<Arc<Completion>>,
    Callback { id, request }: Callback,
) -> Result<StatusCode, ApiError> {
    complete(&ctx, &id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg_attr(feature = "openapi", utoipa::path(post,
    path = "/trigger-invocations/v1/{id}/heartbeat", tag = "Invocations",
    operation_id = "heartbeatTriggerInvocation", summary = "Keep an invocation alive (extension)",
    description = "For invocations of a subscription with `heartbeatTimeout`: moves the time by \
        which the next heartbeat (or the completion) must come to now plus the timeout, never \
        past the response deadline; missing it times the invocation out. Authenticated as the \
        completion is, by the invocation's `secret`: an unknown id and a wrong secret get the \
        same 401. Finished, past its deadline or heartbeat due time, or without a heartbeat \
        timeout: 400.",
    security(()),
    params(("id" = String, Path, description = "Invocation id")),
    request_body = triggerline::wire::HeartbeatRequest,
    responses((status = 200, description = "Alive until `heartbeatDue`",
        body = triggerline::wire::HeartbeatResponse))))]
/// As [`complete_invocation`], the id and secret are checked for shape first.
async fn heartbeat_invocation(
    State(ctx): State<Arc<Completion>>,
    Callback { id, request }: Callback<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    Ok(Json(heartbeat(&ctx, &id, request).await?))
}
