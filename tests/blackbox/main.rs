//! Black-box tests of the local stack: the whole `triggerline` app on 127.0.0.1 over a fresh
//! SQLite file, driven over HTTP. One test binary; each file is a module.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod callback;
mod crash;
mod delivery;
mod edge;
mod helpers;
mod operations;
mod receiver;
mod restart;
mod status;
mod subscriptions;
mod timing;
mod triggers;
