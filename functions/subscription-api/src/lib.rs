//! The subscription API: the trigger catalog (`GET /triggers/v1`), subscription CRUD
//! (`/trigger-subscriptions/v1`), signing secret rotation (`…/{id}/rotate-secret`) and
//! `validate-filter`. [`router`] serves it over its
//! [`Context`]; the same router runs under `lambda_http` on AWS and `axum::serve` locally.
#![forbid(unsafe_code)]

mod handlers;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use triggerline::catalog::Catalog;
use triggerline::ports::SubscriptionAdmin;
use triggerline::time::{Clock, IdGenerator};
use triggerline::usecases::Subscriptions;
use triggerline_http::{ApiAuth, Versioned, edge, require_bearer};

/// What the subscription API needs from the outside world.
#[derive(Debug, Clone)]
pub struct Context {
    pub subscriptions: Arc<dyn SubscriptionAdmin>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub auth: ApiAuth,
}

#[derive(Debug, Clone)]
struct AppState {
    catalog: &'static Catalog,
    subscriptions: Subscriptions,
}

/// These routes' OpenAPI description, in their v1 form (`triggerline-openapi` adds the prefixed
/// forms and the shared error answers).
#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(
    handlers::list_triggers,
    handlers::create_subscription,
    handlers::list_subscriptions,
    handlers::replace_subscription,
    handlers::patch_subscription,
    handlers::delete_subscription,
    handlers::rotate_signing_secret,
    handlers::validate_filter
))]
pub struct ApiDoc;

/// Every route of the subscription API, behind bearer auth.
pub fn router(ctx: Context) -> Router {
    let catalog = Catalog::builtin();
    let state = AppState {
        catalog,
        subscriptions: Subscriptions::new(ctx.subscriptions, catalog, ctx.clock, ctx.ids),
    };
    let routes = Versioned::new()
        .route("triggers", "", get(handlers::list_triggers))
        .route(
            "trigger-subscriptions",
            "",
            post(handlers::create_subscription).get(handlers::list_subscriptions),
        )
        .route(
            "trigger-subscriptions",
            "/validate-filter",
            post(handlers::validate_filter),
        )
        .route(
            "trigger-subscriptions",
            "/{id}",
            put(handlers::replace_subscription)
                .patch(handlers::patch_subscription)
                .delete(handlers::delete_subscription),
        )
        .route(
            "trigger-subscriptions",
            "/{id}/rotate-secret",
            post(handlers::rotate_signing_secret),
        )
        .into_router()
        .with_state(state)
        .route_layer(from_fn_with_state(ctx.auth, require_bearer));
    edge(routes)
}
