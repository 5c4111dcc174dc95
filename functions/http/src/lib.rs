//! The HTTP edge every function crate shares: extractors that parse and validate once
//! ([`JsonBody`], [`Collection`]), bearer auth for the management API, the one mapping of errors
//! to SailPoint's `ErrorResponseDto` ([`ApiError`]), and the mounting of every route under its
//! `/…/v1` path and the `/beta`, `/v2024`, `/v2025`, `/v2026` prefixes ([`Versioned`]).
#![forbid(unsafe_code)]

mod auth;
mod collection;
mod error;
mod json;
mod mount;

pub use auth::{ApiAuth, require_bearer};
pub use collection::{Collection, listed};
pub use error::{ApiError, ErrorMessageDto, ErrorResponseDto, json_errors};
pub use json::JsonBody;
pub use mount::{MAX_BODY_BYTES, PREFIXES, Versioned, edge, not_found};
