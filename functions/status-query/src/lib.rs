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
use triggerline::ports::{InvocationScans, InvocationWatch};
use triggerline::query::InvocationQuery;
use triggerline::usecases::InvocationStatuses;
use triggerline::wire::InvocationStatus;
use triggerline_http::{
    ApiAuth, ApiError, Collection, QueryParams, Versioned, edge, listed, require_bearer,
};

/// What the status query needs from the outside world.
#[derive(Debug, Clone)]
pub struct Context {
    pub invocations: Arc<dyn InvocationScans>,
    /// Wakes a detail read that waits (`?wait=`) when its invocation changes.
    pub watch: Arc<dyn InvocationWatch>,
    /// The longest `wait`: the synchronous start's wait limit.
    pub max_wait: std::time::Duration,
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
        .with_state(InvocationStatuses::new(
            ctx.invocations,
            ctx.watch,
            ctx.max_wait,
        ))
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

/// The detail's query: only `wait`.
#[derive(Debug, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
struct DetailQuery {
    /// Extension: hold the answer until the invocation is finished, at most this long (an
    /// ISO-8601 duration, e.g. `PT20S`, up to the synchronous wait limit); then answer with the
    /// state it is in. How a producer that got a 542 waits for the outcome without polling.
    wait: Option<String>,
}

#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/trigger-invocations/v1/{id}/status",
    tag = "Invocations", operation_id = "getTriggerInvocationStatus",
    summary = "One invocation with every delivery attempt (extension)",
    params(("id" = String, Path, description = "Invocation id (1 to 128 bytes)"), DetailQuery),
    responses((status = 200, description = "The invocation, with `attempts`",
        body = InvocationStatus))))]
async fn invocation_status(
    State(statuses): State<InvocationStatuses>,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<DetailQuery>,
) -> Result<Json<InvocationStatus>, ApiError> {
    let invocation = match &query.wait {
        Some(wait) => statuses.get_waiting(&id, wait).await?,
        None => statuses.get(&id).await?,
    };
    Ok(Json(InvocationStatus::detail(&invocation)))
}
