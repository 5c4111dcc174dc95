//! `dispatcher`: the intake Lambda (API Gateway HTTP API, payload format 2.0):
//! `POST /trigger-invocations/v1/start`, `/test` and `/{id}/retry`, behind the gateway's JWT
//! authorizer. Fresh work goes to the SQS work queue; a synchronous start delivers its SYNC
//! webhooks itself. See the crate docs for the other two binaries.

use std::sync::Arc;

use dispatcher::Context;
use triggerline_lambda as lambda;

#[tokio::main]
async fn main() -> Result<(), lambda::BootError> {
    lambda::init_logging();
    let (mut env, clients) = lambda::boot()?;
    let (backend, delivery) = lambda::delivering(&mut env, &clients).await?;
    let context = Context::behind_api_gateway(
        delivery,
        Arc::new(lambda::intake_queue(&backend, env.sync_wait)),
        env.sync_wait,
        backend.keys.clone(),
    );
    // The request's metrics go out (EMF lines on stdout) as its handler answers.
    let router = dispatcher::router(context).layer(axum::middleware::map_response(
        lambda::emf::flushed::<axum::response::Response>,
    ));
    lambda::http::run(router).await
}
