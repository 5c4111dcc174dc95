//! Invocation status: `GET /trigger-invocations/v1/status` (SailPoint's list) and
//! `GET /trigger-invocations/v1/{id}/status` (extension: one invocation with its attempts).
//! [`router`] serves both over its [`Context`].
#![forbid(unsafe_code)]

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use triggerline::ports::InvocationScans;
use triggerline::query::InvocationQuery;
use triggerline::usecases::InvocationStatuses;
use triggerline::wire::InvocationStatus;
use triggerline_http::{ApiAuth, ApiError, Collection, Versioned, edge, listed, require_bearer};

/// What the status query needs from the outside world.
#[derive(Debug, Clone)]
pub struct Context {
    pub invocations: Arc<dyn InvocationScans>,
    pub auth: ApiAuth,
}

/// These routes' OpenAPI description, in their v1 form (`triggerline-openapi` adds the prefixed
/// forms and the shared error answers).
#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(list_statuses, invocation_status))]
pub struct ApiDoc;

/// Both status routes, behind bearer auth.
pub fn router(ctx: Context) -> Router {
    let routes = Versioned::new()
        .route("trigger-invocations", "/status", get(list_statuses))
        .route(
            "trigger-invocations",
            "/{id}/status",
            get(invocation_status),
        )
        .into_router()
        .with_state(InvocationStatuses::new(ctx.invocations))
        .route_layer(from_fn_with_state(ctx.auth, require_bearer));
    edge(routes)
}

#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/trigger-invocations/v1/status",
    tag = "Invocations", operation_id = "listTriggerInvocationStatus",
    summary = "List the latest invocations and what became of them", params(InvocationQuery),
    responses((status = 200, description = "The invocations (without attempts)",
        body = [InvocationStatus],
        headers(("X-Total-Count" = u32, description = "Matching items, when `count=true`"))))))]
async fn list_statuses(
    State(statuses): State<InvocationStatuses>,
    Collection(params): Collection,
) -> Result<Response, ApiError> {
    let query = InvocationQuery::parse(&params)?;
    let page = statuses.list(&query).await?;
    let items: Vec<_> = page.items.iter().map(InvocationStatus::summary).collect();
    Ok(listed(items, page.total))
}

#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/trigger-invocations/v1/{id}/status",
    tag = "Invocations", operation_id = "getTriggerInvocationStatus",
    summary = "One invocation with every delivery attempt (extension)",
    params(("id" = String, Path, description = "Invocation id (1 to 128 bytes)")),
    responses((status = 200, description = "The invocation, with `attempts`",
        body = InvocationStatus))))]
async fn invocation_status(
    State(statuses): State<InvocationStatuses>,
    Path(id): Path<String>,
) -> Result<Json<InvocationStatus>, ApiError> {
    let invocation = statuses.get(&id).await?;
    Ok(Json(InvocationStatus::detail(&invocation)))
}
