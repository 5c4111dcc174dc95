//! DynamoDB stores. (Key design, indexes and scan costs: to be written with the stores.)

mod invocations;
mod subscriptions;
pub mod tables;

pub use invocations::DynamoInvocationStore;
pub use subscriptions::DynamoSubscriptionStore;
