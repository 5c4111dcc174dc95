//! `dispatcher-sweep`: the deadline sweep Lambda, invoked by an EventBridge schedule
//! (`Scheduled Event` from `aws.events`); see [`dispatcher::sweep::handle`]. It never posts a
//! webhook, so it runs without the HTTP client, the secret key and the public URL.

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use dispatcher::sweep;
use lambda_runtime::{LambdaEvent, service_fn};
use triggerline_lambda as lambda;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let (env, clients) = lambda::boot()?;
    lambda::create_missing_tables(&clients, &env).await?;
    lambda::create_missing_bus(&clients, &env).await?;
    let queue = lambda::recovery_queue(&clients, &env).await?;
    let sweeper = sweep::Sweeper::new(lambda::sweep(&clients, &env), Arc::new(queue));
    let sweeper = &sweeper;
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<EventBridgeEvent>| async move {
            // The sweep's metrics go out (EMF lines on stdout) as it ends, failed or not.
            let swept = lambda::emf::metered(sweep::handle(sweeper, event.payload)).await?;
            Ok::<_, lambda_runtime::Error>(
                serde_json::json!({ "timedOut": swept.timed_out, "recovered": swept.recovered }),
            )
        },
    ))
    .await
}
