//! The invocation callback Lambda (API Gateway HTTP API, payload format 2.0):
//! `POST /trigger-invocations/v1/{id}/complete`. The route is public (no authorizer): the
//! invocation's secret is the credential.
//!
//! Environment: the table and bus names of `triggerline_aws::settings::env`,
//! `TRIGGERLINE_EVENT_SOURCE`, and the standard AWS variables; `RUST_LOG` (default `info`).

use triggerline_lambda as lambda;

/// The context is [`lambda::completion`]: completing an invocation checks the presented secret
/// against the stored hash, writes the outcome and publishes the completion event. It never
/// posts to a subscriber, so the callback's role, environment and binary carry no HTTP client,
/// no SQS queue, no secret key and no public URL.
#[tokio::main]
async fn main() -> Result<(), lambda::BootError> {
    lambda::init_logging();
    let (env, clients) = lambda::boot()?;
    lambda::create_missing_tables(&clients, &env).await?;
    lambda::create_missing_bus(&clients, &env).await?;
    let router = invocation_complete::router(lambda::completion(&clients, &env));
    // The request's metrics go out (EMF lines on stdout) as its handler answers.
    let router = router.layer(axum::middleware::map_response(
        lambda::emf::flushed::<axum::response::Response>,
    ));
    lambda::http::run(router).await
}
