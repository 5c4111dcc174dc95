//! The `Idempotency-Key` header of `start` and `test`, with the caller it belongs to.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use triggerline::idempotency::{self, IdempotencyKey};

use crate::ApiError;

/// The request's `Idempotency-Key` (`None` without the header) and whose it is. A value that
/// is not 1 to 255 printable ASCII characters (or appears twice) is a 400 naming the header.
#[derive(Debug, Clone)]
pub struct IdempotencyHeader(pub Option<(String, IdempotencyKey)>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(idempotency::HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(IdempotencyHeader(None));
        };
        if values.next().is_some() {
            return Err(triggerline::Error::invalid(idempotency::HEADER, "give it once").into());
        }
        let key = IdempotencyKey::parse(value.as_bytes())?;
        Ok(IdempotencyHeader(Some((caller_scope(parts), key))))
    }
}

/// Whose keys these are: behind API Gateway, the JWT's subject (its `client_id` for a client
/// credentials token without one), so that every API client has keys of its own; otherwise a
/// digest of the bearer token the edge accepted (the local stack has one token).
fn caller_scope(parts: &Parts) -> String {
    let context = parts.extensions.request_context_ref();
    if let Some(RequestContext::ApiGatewayV2(context)) = context {
        let claims = context
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| &jwt.claims);
        if let Some(claims) = claims {
            let issuer = claims.get("iss").map_or("", String::as_str);
            if let Some(subject) = claims.get("sub").or_else(|| claims.get("client_id")) {
                return format!("jwt:{issuer}:{subject}");
            }
        }
    }
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .unwrap_or_default();
    idempotency::token_scope(token)
}
