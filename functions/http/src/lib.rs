//! The HTTP edge every function crate shares: extractors that parse and validate once
//! ([`JsonBody`], [`Collection`], [`QueryParams`], [`Callback`], [`Traced`]), bearer auth for
//! the management API, the one mapping of errors to SailPoint's `ErrorResponseDto` ([`ApiError`]), the mounting of every
//! route under its `/…/v1` path and the `/beta`, `/v2024`, `/v2025`, `/v2026` prefixes
//! ([`Versioned`]). The routers' Lambda entry point is start-up code, in `triggerline-lambda`.
#![forbid(unsafe_code)]

mod auth;
mod callback;
mod collection;
mod error;
mod idempotency;
mod json;
mod mount;
mod trace;

pub use auth::{ApiAuth, require_bearer};
pub use callback::{Callback, CallbackBody, MAX_CALLBACK_SECRET_BYTES, is_invocation_id};
pub use collection::{Collection, QueryParams, listed};
pub use error::{ApiError, ErrorMessageDto, ErrorResponseDto, Logged, json_errors};
pub use idempotency::{IdempotencyHeader, JwtCaller};
pub use json::{JsonBody, JsonBodyOrDefault};
#[cfg(feature = "openapi")]
pub use mount::mounted;
pub use mount::{MAX_BODY_BYTES, PREFIXES, Versioned, edge, not_found, path_forms};
pub use trace::{Traced, trace_of};
