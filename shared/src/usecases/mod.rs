//! The use cases, one module per resource. Each method is what one endpoint does: handlers parse,
//! call one of these, and map the result.

pub mod complete;
pub mod delivery;
pub mod heartbeat;
pub mod intake;
pub mod invocations;
pub mod notify;
pub mod subscriptions;
pub mod sweep;
pub mod triggers;
mod validate;

pub use invocations::InvocationStatuses;
pub use subscriptions::Subscriptions;
