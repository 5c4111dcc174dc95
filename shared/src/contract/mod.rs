//! The port contract suites (feature `test-support`): what every store adapter must do, written
//! once and run by each adapter's tests (SQLite on a temp file, DynamoDB on an emulator, and the
//! in-memory adapters of [`crate::memory`] the use-case tests run on), so that all prove the
//! same behaviour.
//!
//! Each suite takes a fresh, empty store and runs many small checks; a failed check panics with a
//! message naming the broken promise. Checks build on realistic model values for real catalog
//! triggers and build their queries with [`ListQuery::parse`], so they exercise the real
//! collection-parameter parser. Every check removes the subscriptions it created, so later
//! checks start from an empty subscription store. Invocations are only deleted by retention,
//! so the list checks run first, later checks use ids of their own, and the retention check
//! works on times long before every other check's.
//!
//! The delivery queue suite takes a queue and the invocation store over the same storage (the
//! queue writes invocations, the store reads them back). Every queue check settles or discards
//! the work it created, so each starts from an empty queue: `claim_due` hands out every due item,
//! whoever wrote it.
//!
//! Call them inside a tokio runtime: the concurrency checks race writes from spawned tasks. A
//! multi-threaded runtime makes those races real.
//!
//! One file per port ([`subscription_store`], [`invocation_store`], [`delivery_queue`]); the
//! values they build on are in `fixtures`.
#![allow(clippy::unwrap_used)]

mod fixtures;
mod idempotency;
mod invocations;
mod queue;
mod subscriptions;

pub use idempotency::idempotency_store;
pub use invocations::invocation_store;
pub use queue::delivery_queue;
pub use subscriptions::subscription_store;
