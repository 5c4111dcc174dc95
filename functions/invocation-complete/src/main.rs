//! The invocation callback Lambda (API Gateway HTTP API, payload format 2.0):
//! `POST /trigger-invocations/v1/{id}/complete`. The route is public (no authorizer): the
//! invocation's secret is the credential.
//!
//! Environment: the table and bus names of `triggerline_aws::settings::env`,
//! `TRIGGERLINE_EVENT_SOURCE`, and the standard AWS variables; `RUST_LOG` (default `info`).

use triggerline_aws::lambda;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_logging();
    let (env, backend) = lambda::boot().await?;
    lambda_http::run(invocation_complete::router(
        invocation_complete::aws::context(&backend, &env),
    ))
    .await
}

/// One JSON object per line on stdout, which Lambda ships to CloudWatch as is; no colours
/// (CloudWatch shows escape codes verbatim); level from `RUST_LOG`, `info` by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_current_span(false)
        .init();
}
