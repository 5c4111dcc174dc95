//! `dispatcher`: the intake Lambda (API Gateway HTTP API, payload format 2.0):
//! `POST /trigger-invocations/v1/start`, `/test` and `/{id}/retry`, behind the gateway's JWT
//! authorizer. Fresh work goes to the SQS work queue; a synchronous start delivers its SYNC
//! webhooks itself. See the crate docs for the other two binaries.

use dispatcher::aws;
use triggerline_aws::lambda;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    triggerline_aws::lambda::init_logging();
    let (mut env, clients) = lambda::boot()?;
    lambda::load_secret_key(&clients, &mut env).await?;
    let backend = lambda::connect(&clients, &env).await?;
    let delivery = aws::webhook_delivery(&backend, &env)?;
    triggerline_http::lambda::run(dispatcher::router(aws::http_context(delivery, &env))).await
}
