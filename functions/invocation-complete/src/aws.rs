//! The Lambda wiring (`src/main.rs`): the callback's [`Context`] over the AWS adapters.
//! Tests build the same context over an emulator.

use triggerline_aws::Clients;
use triggerline_aws::lambda::{self, FunctionEnv};

use crate::Context;

/// The context on AWS. Its delivery never sends a webhook: completing an invocation checks the
/// presented secret against the stored hash, writes the outcome and publishes the completion
/// event, and never posts to a subscriber. So it gets [`lambda::NotDelivering`] (every post would
/// be refused with "this function does not deliver") instead of an HTTP client, no SQS queue,
/// and needs neither the secret key nor the public URL: the callback's role, environment and
/// binary carry no more than the callback uses.
pub fn context(clients: &Clients, env: &FunctionEnv) -> Context {
    Context {
        delivery: lambda::settling_delivery(clients, env),
    }
}
