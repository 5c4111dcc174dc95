//! SQLite adapters for the store ports ([`triggerline::ports::SubscriptionStore`],
//! [`triggerline::ports::InvocationStore`]) and for the durable delivery queue
//! ([`triggerline::ports::DeliveryQueue`]): the embedded database of the local stack, one file
//! in WAL mode.
//!
//! # Design
//! Reads go through a small pool of read-only connections on `spawn_blocking`, so WAL lets them
//! run beside the writer and never block the async runtime.
//!
//! Every write goes to **one writer thread** that owns the only write connection. It commits in
//! groups: it blocks for the first job, drains whatever else is queued (up to
//! 256 jobs), runs them all in one `BEGIN IMMEDIATE` transaction, then commits once and only
//! then answers each job. If a job fails, the batch is rolled back and run again with each job
//! in its own savepoint, so one lost conditional write does not disturb its neighbours (a
//! savepoint copies every page a job touches, so the common batch without failures goes
//! without). With
//! `synchronous=FULL` a commit costs an fsync, and sharing that fsync among every write that
//! arrived meanwhile is what lets a busy pipeline make thousands of durable writes a second. A
//! write's future resolves only after its transaction is committed; if the commit fails, every
//! job of the batch gets [`triggerline::Error::Unavailable`].
//!
//! Because one thread performs every write, the conditional writes of the ports (count then
//! insert, compare version then update, check state then update) need no retry loops: nothing can
//! interleave between a job's read and its write.
#![forbid(unsafe_code)]

mod checkpoint;
mod db;
mod error;
mod gauges;
mod idempotency;
mod invocations;
mod quarantine;
mod query;
mod queue;
mod schema;
mod subscriptions;
mod writer;

pub use db::Sqlite;
pub use gauges::{GAUGE_CAP, StoreGauges};
pub use idempotency::SqliteIdempotencyStore;
pub use invocations::SqliteInvocationStore;
pub use queue::SqliteDeliveryQueue;
pub use subscriptions::SqliteSubscriptionStore;
