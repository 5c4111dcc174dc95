//! The black-box suite again, on the AWS adapters: the same `triggerline` app over DynamoDB,
//! SQS and EventBridge on a real moto server (`TRIGGERLINE_MOTO_ENDPOINT`, started by
//! `scripts/test`), each test with resources of its own. Plus what only the AWS backend has to
//! prove (`aws_only.rs`).
//!
//! Left out, because they test what only the embedded store has: `crash.rs` and `restart.rs`
//! (SIGKILL of a process that owns its SQLite file; on AWS the state is not in the process, and
//! a killed consumer's SQS messages come back after their visibility timeout) and `timing.rs`
//! (retries on a manual clock: SQS delays run on real time).
#![allow(clippy::unwrap_used)]
// Some helpers serve only the modules left out here.
#![allow(dead_code)]

const BACKEND: helpers::Backend = helpers::Backend::Aws;

mod aws_only;
mod bad_input;
mod callback;
mod credentials;
mod delivery;
mod edge;
mod health;
mod heartbeat;
mod helpers;
mod idempotency;
mod operations;
mod ordering;
mod receiver;
mod rotate;
mod sizes;
mod status;
mod subscriptions;
mod time_bounds;
mod trace;
mod triggers;
