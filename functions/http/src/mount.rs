//! Serving one route under every published path form.

use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::routing::MethodRouter;
use axum::{Router, middleware};

use crate::ApiError;

/// The largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

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
        self.router = self
            .router
            .route(&format!("/{resource}/v1{rest}"), handler.clone());
        for prefix in PREFIXES {
            self.router = self
                .router
                .route(&format!("/{prefix}/{resource}{rest}"), handler.clone());
        }
        self
    }

    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

/// The layers every function's router carries: the body limit and JSON error bodies.
pub fn edge(router: Router) -> Router {
    router
        .layer(middleware::from_fn(crate::json_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Fallback for paths no function serves.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::Http(
        StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}
