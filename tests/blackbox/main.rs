//! Black-box tests of the local stack: the whole `triggerline` app on 127.0.0.1 over a fresh
//! SQLite file, driven over HTTP. One test binary; each file is a module.
#![allow(clippy::unwrap_used)]

/// This binary runs the suite on the SQLite store (`aws.rs` runs it on the AWS adapters).
const BACKEND: helpers::Backend = helpers::Backend::Sqlite;

mod bad_input;
mod callback;
mod crash;
mod credentials;
mod delivery;
mod edge;
mod health;
mod heartbeat;
mod helpers;
mod idempotency;
mod logs;
mod metrics;
mod operations;
mod ordering;
mod receiver;
mod restart;
mod rotate;
mod sizes;
mod status;
mod subscriptions;
mod time_bounds;
mod timing;
mod trace;
mod triggers;
