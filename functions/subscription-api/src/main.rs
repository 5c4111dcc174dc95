//! The subscription API Lambda (API Gateway HTTP API, payload format 2.0): the trigger catalog,
//! subscription CRUD and validate-filter, behind the gateway's JWT authorizer.
//!
//! Environment: the table names of `triggerline_aws::settings::env` (only the subscriptions
//! table is used) and the standard AWS variables; `RUST_LOG` (default `info`).

use triggerline_aws::lambda;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_logging();
    let (mut env, clients) = lambda::boot()?;
    // The key seals the subscriptions' credentials at rest (the dispatcher opens them).
    lambda::load_secret_key(&clients, &mut env).await?;
    let credentials = lambda::credential_key(&env)?;
    lambda::create_missing_tables(&clients, &env).await?;
    triggerline_http::lambda::run(subscription_api::router(subscription_api::aws::context(
        &clients,
        &env.aws,
        credentials,
    )))
    .await
}
