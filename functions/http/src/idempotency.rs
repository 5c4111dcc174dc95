//! The `Idempotency-Key` header of `start` and `test`, with the caller it belongs to.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
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

/// The caller API Gateway's JWT authorizer let in: its issuer and subject (`client_id` for a
/// client-credentials token without one). The Lambda entry point (`triggerline_lambda::http`)
/// puts it in the request's extensions from the request context; the local server has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtCaller {
    pub issuer: String,
    pub subject: String,
}

/// Whose keys these are: behind API Gateway, the JWT's issuer and subject, so that every API
/// client has keys of its own; otherwise a digest of the bearer token the edge accepted (the
/// local stack has one token).
fn caller_scope(parts: &Parts) -> String {
    if let Some(caller) = parts.extensions.get::<JwtCaller>() {
        return format!("jwt:{}:{}", caller.issuer, caller.subject);
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
