//! Triggerline's domain crate: everything the functions share and nothing that touches the
//! outside world. It holds the wire model of the SailPoint Event Trigger API, the validation that
//! turns wire requests into domain values, the built-in trigger catalog, the SailPoint collection
//! parameter language, JSONPath filters, the ports the adapters implement, and the use cases the
//! HTTP handlers call.
//!
//! Arrows point here: `functions/*` and `infra/*` depend on this crate; it depends on neither.
#![forbid(unsafe_code)]

pub mod cache;
pub mod catalog;
pub mod delivery;
pub mod duration;
pub mod error;
pub mod health;
pub mod idempotency;
pub mod jsonpath;
pub mod limits;
pub mod model;
pub mod numbers;
pub mod ports;
pub mod query;
pub mod secrets;
pub mod telemetry;
pub mod time;
pub mod trace;
pub mod usecases;
pub mod wire;
pub mod work;

#[cfg(feature = "test-support")]
pub mod contract;
#[cfg(feature = "test-support")]
pub mod memory;

pub use error::{Error, Result};
