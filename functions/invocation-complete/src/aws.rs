//! The Lambda wiring (`src/main.rs`): the callback's [`Context`] over the AWS adapters.
//! Tests build the same context over an emulator.

use triggerline_aws::Clients;
use triggerline_aws::lambda::{self, FunctionEnv};

use crate::Context;

/// The context on AWS: [`lambda::completion`]. Completing an invocation checks the presented
/// secret against the stored hash, writes the outcome and publishes the completion event; it
/// never posts to a subscriber, so the callback's role, environment and binary carry no HTTP
/// client, no SQS queue, no secret key and no public URL.
pub fn context(clients: &Clients, env: &FunctionEnv) -> Context {
    lambda::completion(clients, env)
}
