//! Serving one route under every published path form.

use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::routing::MethodRouter;
use axum::{Router, middleware};

use crate::ApiError;

pub use triggerline::limits::MAX_BODY_BYTES;

/// The prefixed forms SailPoint publishes next to `/…/v1`: `/beta/triggers`,
/// `/v2025/trigger-subscriptions/{id}`, ….
pub const PREFIXES: &[&str] = &["beta", "v2024", "v2025", "v2026"];

/// A router whose routes are each served as `/{resource}/v1{rest}` (the v1 API, as the SDK
/// calls it) and as `/{prefix}/{resource}{rest}` for every prefix.
#[derive(Debug)]
pub struct Versioned<S = ()> {
    router: Router<S>,
}

impl<S: Clone + Send + Sync + 'static> Default for Versioned<S> {
    fn default() -> Self {
        Versioned {
            router: Router::new(),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> Versioned<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `handler` at `/{resource}/v1{rest}` and `/{prefix}/{resource}{rest}`.
    pub fn route(mut self, resource: &str, rest: &str, handler: MethodRouter<S>) -> Self {
        for path in path_forms(resource, rest) {
            #[cfg(feature = "openapi")]
            mounted::record(&path);
            self.router = self.router.route(&path, handler.clone());
        }
        self
    }

    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

/// Every path a route of `resource` at `rest` is served at: the v1 form first
/// (`/{resource}/v1{rest}`), then `/{prefix}/{resource}{rest}` for each of [`PREFIXES`]. The
/// OpenAPI document is expanded with the same forms.
pub fn path_forms(resource: &str, rest: &str) -> Vec<String> {
    std::iter::once(format!("/{resource}/v1{rest}"))
        .chain(
            PREFIXES
                .iter()
                .map(|prefix| format!("/{prefix}/{resource}{rest}")),
        )
        .collect()
}

/// The record of every path [`Versioned`] mounted in this process, so that a test can hold the
/// OpenAPI document against the routes actually served (axum's `Router` lists none). Only with
/// the `openapi` feature, which the Lambda packages are built without.
#[cfg(feature = "openapi")]
pub mod mounted {
    use std::collections::BTreeSet;
    use std::sync::{Mutex, PoisonError};

    static PATHS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

    pub(super) fn record(path: &str) {
        PATHS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned());
    }

    /// Every path template (`/trigger-subscriptions/v1/{id}`) mounted so far, sorted.
    pub fn paths() -> BTreeSet<String> {
        PATHS.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// The layers every function's router carries: the body limit and JSON error bodies.
///
/// One `layer` call with both: each `Router::layer` wraps every route in another boxed
/// service, and axum clones a route's whole box chain on every request, once per level, so
/// each level saved is a few allocations per request.
pub fn edge(router: Router) -> Router {
    router.layer(
        tower::ServiceBuilder::new()
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(middleware::from_fn(crate::json_errors)),
    )
}

/// Fallback for paths no function serves.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::Http(
        StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}
