//! Bearer-token auth for the management API.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::ApiError;

/// Who checks the caller's token.
#[derive(Clone)]
pub enum ApiAuth {
    /// This process checks `Authorization: Bearer <token>` against one shared token (the local
    /// stack).
    Token(Arc<str>),
    /// An authorizer in front of the function already did (API Gateway's JWT authorizer on AWS).
    Upstream,
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiAuth::Token(_) => f.write_str("ApiAuth::Token(<redacted>)"),
            ApiAuth::Upstream => f.write_str("ApiAuth::Upstream"),
        }
    }
}

/// Middleware (use with `axum::middleware::from_fn_with_state`): 401 `{"error": …}` unless the
/// request carries the expected bearer token. The comparison takes constant time.
pub async fn require_bearer(State(auth): State<ApiAuth>, request: Request, next: Next) -> Response {
    let ApiAuth::Token(expected) = &auth else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    match presented {
        None => ApiError::Unauthorized("missing bearer token").into_response(),
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) => {
            next.run(request).await
        }
        Some(_) => ApiError::Unauthorized("invalid bearer token").into_response(),
    }
}
