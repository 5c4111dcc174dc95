//! The status query Lambda (API Gateway HTTP API, payload format 2.0): invocation status list
//! and detail, behind the gateway's JWT authorizer.
//!
//! Environment: the table names of `triggerline_aws::settings::env` (only the invocations
//! table is used) and the standard AWS variables; `RUST_LOG` (default `info`).

use triggerline_aws::lambda;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_logging();
    let (_env, backend) = lambda::boot().await?;
    lambda_http::run(status_query::router(status_query::aws::context(&backend))).await
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
