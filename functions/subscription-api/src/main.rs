//! The subscription API Lambda (API Gateway HTTP API, payload format 2.0): the trigger catalog,
//! subscription CRUD and validate-filter, behind the gateway's JWT authorizer.
//!
//! Environment: the table names of `triggerline_aws::settings::env` (only the subscriptions
//! table is used) and the standard AWS variables; `RUST_LOG` (default `info`).

use std::sync::Arc;

use triggerline::time::{RandomIds, SystemClock};
use triggerline_aws::dynamo::DynamoSubscriptionStore;
use triggerline_http::ApiAuth;
use triggerline_lambda as lambda;

/// The subscriptions table only (so the binary links no other service). Auth is
/// [`ApiAuth::Upstream`]: API Gateway's JWT authorizer checked the caller before the request
/// reached the function.
#[tokio::main]
async fn main() -> Result<(), lambda::BootError> {
    lambda::init_logging();
    let (mut env, clients) = lambda::boot()?;
    // The key seals the subscriptions' credentials at rest (the dispatcher opens them).
    lambda::load_secret_key(&clients, &mut env).await?;
    let credentials = lambda::credential_key(&env)?;
    lambda::create_missing_tables(&clients, &env).await?;
    let subscriptions = DynamoSubscriptionStore::new(
        clients.dynamodb().clone(),
        &env.aws.subscriptions_table,
        credentials,
    );
    lambda::http::run(subscription_api::router(subscription_api::Context {
        subscriptions: Arc::new(subscriptions),
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        auth: ApiAuth::Upstream,
    }))
    .await
}
