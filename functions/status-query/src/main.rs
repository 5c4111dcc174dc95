//! The status query Lambda (API Gateway HTTP API, payload format 2.0): invocation status list
//! and detail, behind the gateway's JWT authorizer.
//!
//! Environment: the table names of `triggerline_aws::settings::env` (only the invocations
//! table is used) and the standard AWS variables; `RUST_LOG` (default `info`).

use std::sync::Arc;

use triggerline_aws::dynamo::DynamoInvocationStore;
use triggerline_http::ApiAuth;
use triggerline_lambda as lambda;

/// The invocations table only (so the binary links no other service). Auth is
/// [`ApiAuth::Upstream`]: API Gateway's JWT authorizer checked the caller before the request
/// reached the function.
#[tokio::main]
async fn main() -> Result<(), lambda::BootError> {
    lambda::init_logging();
    let (env, clients) = lambda::boot()?;
    lambda::create_missing_tables(&clients, &env).await?;
    let invocations =
        DynamoInvocationStore::new(clients.dynamodb().clone(), &env.aws.invocations_table);
    lambda::http::run(status_query::router(status_query::Context {
        invocations: Arc::new(invocations),
        watch: Arc::new(lambda::PollingWatch),
        max_wait: env.sync_wait,
        auth: ApiAuth::Upstream,
    }))
    .await
}
