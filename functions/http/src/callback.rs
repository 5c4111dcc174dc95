//! The callback's credentials, `POST …/{id}/complete` (and `…/{id}/heartbeat`) with
//! `{secret, …}`: checked for shape before any store is read.
//!
//! The route is public, so anyone can send it anything. An id the service could never have
//! made, or a secret longer than any it hands out, cannot name an invocation: it gets the same
//! 401 as a wrong secret (so the answer tells nothing about which part was wrong), costs no
//! store read, and is not an error worth logging. Without this, every forged id cost a read,
//! and one over 2 kB reached DynamoDB, which refuses such keys: a 503 logged at ERROR.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use serde::de::DeserializeOwned;
use triggerline::Error;
use triggerline::wire::{CompleteInvocation, HeartbeatRequest};

use crate::{ApiError, JsonBody};

/// The longest `secret` looked at. Callback secrets are 43 characters (base64 of an HMAC-SHA256,
/// `triggerline::secrets`); the margin leaves room to change the derivation without a release
/// of the edge.
pub const MAX_CALLBACK_SECRET_BYTES: usize = 256;

/// A callback whose id and secret have the shape of real ones. Rejects with the wrong-secret
/// 401 otherwise; a well-shaped request with a malformed body is the usual 400 naming the field.
#[derive(Debug)]
pub struct Callback<T = CompleteInvocation> {
    pub id: String,
    pub request: T,
}

/// A callback body: it carries the invocation's secret (the completion, the heartbeat).
pub trait CallbackBody: DeserializeOwned {
    fn secret(&self) -> &str;
    /// Keeps the request's trace context, where the use case reads one.
    fn set_trace(&mut self, _trace: Option<triggerline::trace::TraceContext>) {}
}

impl CallbackBody for CompleteInvocation {
    fn secret(&self) -> &str {
        &self.secret
    }

    fn set_trace(&mut self, trace: Option<triggerline::trace::TraceContext>) {
        self.trace = trace;
    }
}

impl CallbackBody for HeartbeatRequest {
    fn secret(&self) -> &str {
        &self.secret
    }
}

impl<S: Send + Sync, T: CallbackBody> FromRequest<S> for Callback<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let trace = crate::trace_of(&parts.headers);
        // The id is checked before the body is read: a request with a forged id costs no more
        // than its headers.
        let id = match Path::<String>::from_request_parts(&mut parts, state).await {
            Ok(Path(id)) if is_invocation_id(&id) => id,
            _ => return Err(ApiError::Domain(Error::Unauthenticated)),
        };
        let JsonBody(mut request) =
            JsonBody::<T>::from_request(Request::from_parts(parts, body), state).await?;
        request.set_trace(trace);
        if request.secret().len() > MAX_CALLBACK_SECRET_BYTES {
            return Err(ApiError::Domain(Error::Unauthenticated));
        }
        Ok(Callback { id, request })
    }
}

pub use triggerline::time::is_invocation_id;

#[cfg(test)]
mod tests {
    use super::*;
    use triggerline::time::{IdGenerator, RandomIds};

    #[test]
    fn generated_ids_have_the_accepted_shape() {
        for _ in 0..100 {
            let id = RandomIds.id();
            assert!(is_invocation_id(&id), "{id}");
        }
    }

    #[test]
    fn anything_else_is_not_an_invocation_id() {
        let good = "0f8a6c1e-5b7d-4c2a-9e3f-1d2b3c4d5e6f";
        assert!(is_invocation_id(good));
        for bad in [
            "",
            "no-such-id",
            "0F8A6C1E-5B7D-4C2A-9E3F-1D2B3C4D5E6F",
            "0f8a6c1e5b7d4c2a9e3f1d2b3c4d5e6f",
            "{0f8a6c1e-5b7d-4c2a-9e3f-1d2b3c4d5e6f}",
            "0f8a6c1e-5b7d-4c2a-9e3f-1d2b3c4d5e6f0",
            "0f8a6c1e-5b7d-4c2a-9e3f_1d2b3c4d5e6f",
            "0f8a6c1e-5b7d-4c2a-9e3f-1d2b3c4d5e6g",
            "0f8a6c1é-5b7d-4c2a-9e3f-1d2b3c4d5e6",
        ] {
            assert!(!is_invocation_id(bad), "{bad}");
        }
        assert!(!is_invocation_id(&good.repeat(300)));
    }
}
