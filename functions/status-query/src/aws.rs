//! The Lambda wiring (`src/main.rs`): the status query's [`Context`] over the AWS adapters.
//! Tests build the same context over an emulator.

use std::sync::Arc;

use triggerline_aws::dynamo::DynamoInvocationStore;
use triggerline_aws::{AwsSettings, Clients};
use triggerline_http::ApiAuth;

use crate::Context;

/// The context on AWS: the invocations table only (so the binary links no other service).
/// Auth is [`ApiAuth::Upstream`]: API Gateway's JWT authorizer checked the caller before the
/// request reached the function.
pub fn context(clients: &Clients, settings: &AwsSettings) -> Context {
    Context {
        invocations: Arc::new(DynamoInvocationStore::new(
            clients.dynamodb().clone(),
            &settings.invocations_table,
        )),
        auth: ApiAuth::Upstream,
    }
}
