//! Unit tests of the use cases (intake, delivery, the callback, the sweep) on the in-memory
//! ports (`triggerline::memory`, held to the same contract suites as SQLite and DynamoDB), a
//! manual clock, fixed jitter and a scripted webhook client: every behaviour here runs in
//! microseconds and without I/O. The black-box suite (tests/blackbox) checks the same flows
//! through the real servers on both backends.
#![allow(clippy::unwrap_used)]

mod complete;
mod delivery;
mod health;
mod heartbeat;
mod idempotency;
mod intake;
mod lists;
mod ordering;
mod rotate;
mod status;
mod subscriptions;
mod support;
mod sweep;
mod trace;
