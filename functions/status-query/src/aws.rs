//! The Lambda wiring (`src/main.rs`): the status query's [`Context`] over the AWS adapters.
//! Tests build the same context over an emulator.

use triggerline_aws::AwsBackend;
use triggerline_http::ApiAuth;

use crate::Context;

/// The context on AWS. Auth is [`ApiAuth::Upstream`]: API Gateway's JWT authorizer checked the
/// caller before the request reached the function.
pub fn context(backend: &AwsBackend) -> Context {
    Context {
        invocations: backend.invocations.clone(),
        auth: ApiAuth::Upstream,
    }
}
