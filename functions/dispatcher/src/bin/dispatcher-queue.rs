//! `dispatcher-queue`: the SQS consumer Lambda of the work queue (event source mapping with
//! `ReportBatchItemFailures`). Each record is one delivery attempt; see
//! [`dispatcher::queue_consumer::handle`]. A record failing on its last receive
//! (`TRIGGERLINE_MAX_RECEIVE_COUNT`) goes to the dead-letter queue
//! (`TRIGGERLINE_DEAD_LETTER_QUEUE`) as a new message.

use std::convert::Infallible;

use aws_lambda_events::event::sqs::SqsEvent;
use dispatcher::queue_consumer;
use lambda_runtime::{LambdaEvent, service_fn};
use triggerline_aws::sqs::{self, SqsDeliveryQueue};
use triggerline_lambda as lambda;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let (mut env, clients) = lambda::boot()?;
    let (backend, delivery) = lambda::delivering(&mut env, &clients).await?;
    // The template passes the DLQ's URL, so this makes no call.
    let dead_letters = sqs::resolve_queue_url(clients.sqs(), &env.aws.dead_letter_queue)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot find the dead-letter queue"))?;
    let queue = SqsDeliveryQueue::clone(&backend.queue)
        .with_dead_letters(dead_letters, env.max_receive_count);
    let (delivery, queue) = (&delivery, &queue);
    // Failures are reported per record in the response, never as a function error: a function
    // error would send the whole batch back, the delivered records included.
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        // The batch's metrics go out (EMF lines on stdout) as it ends.
        let handled = lambda::emf::metered(queue_consumer::handle(delivery, queue, event.payload));
        Ok::<_, Infallible>(handled.await)
    }))
    .await
}
