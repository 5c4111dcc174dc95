//! The Lambda wiring (`src/main.rs`): the subscription API's [`Context`] over the AWS adapters.
//! Tests build the same context over an emulator, so what they serve is what the function
//! serves.

use std::sync::Arc;

use triggerline::time::{RandomIds, SystemClock};
use triggerline_aws::AwsBackend;
use triggerline_http::ApiAuth;

use crate::Context;

/// The context on AWS. Auth is [`ApiAuth::Upstream`]: API Gateway's JWT authorizer checked the
/// caller before the request reached the function.
pub fn context(backend: &AwsBackend) -> Context {
    Context {
        subscriptions: backend.subscriptions.clone(),
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        auth: ApiAuth::Upstream,
    }
}
