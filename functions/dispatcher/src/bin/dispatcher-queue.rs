//! `dispatcher-queue`: the SQS consumer Lambda of the work queue (event source mapping with
//! `ReportBatchItemFailures`). Each record is one delivery attempt; see
//! [`dispatcher::queue_consumer::handle`].

use std::convert::Infallible;

use aws_lambda_events::event::sqs::SqsEvent;
use dispatcher::{aws, queue_consumer};
use lambda_runtime::{LambdaEvent, service_fn};
use triggerline_aws::lambda;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    triggerline_aws::lambda::init_logging();
    let (mut env, clients) = lambda::boot()?;
    lambda::load_secret_key(&clients, &mut env).await?;
    let backend = lambda::connect(&clients, &env).await?;
    let delivery = aws::webhook_delivery(&backend, &env)?;
    let queue = backend.queue.clone();
    let (delivery, queue) = (&delivery, &*queue);
    // Failures are reported per record in the response, never as a function error: a function
    // error would send the whole batch back, the delivered records included.
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Infallible>(queue_consumer::handle(delivery, queue, event.payload).await)
    }))
    .await
}
