//! The deadline sweep (`dispatcher-sweep`), run by an EventBridge schedule: every open
//! invocation past its response deadline becomes TIMED_OUT, and the work of invocations
//! accepted but never sent (the intake died between its DynamoDB write and SQS) is sent.

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use triggerline::Result;
use triggerline::usecases::delivery::Delivery;
use triggerline::usecases::sweep::{recover_unsent, time_out_overdue};
use triggerline_aws::Clients;
use triggerline_aws::lambda::{self, BootError, FunctionEnv};
use triggerline_aws::sqs::{SqsDeliveryQueue, resolve_queue_url};

/// The sweep's delivery: the settling functions' (no subscriptions, no webhooks), with the work
/// queue, which the recovery of unsent work sends to (no `GetQueueUrl` when the environment
/// gives the queue's URL, as the template does).
pub async fn sweep_delivery(clients: &Clients, env: &FunctionEnv) -> Result<Delivery, BootError> {
    let mut delivery = lambda::settling_delivery(clients, env);
    let url = resolve_queue_url(clients.sqs(), &env.aws.work_queue).await?;
    let invocations = Arc::new(triggerline_aws::invocation_store(clients, &env.aws));
    delivery.queue = Arc::new(SqsDeliveryQueue::new(
        clients.sqs().clone(),
        url,
        invocations,
    ));
    Ok(delivery)
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub timed_out: usize,
    /// Invocations whose lost work was sent again.
    pub recovered: usize,
}

/// Times out every overdue invocation. The event only says "now" (a `Scheduled Event` from
/// `aws.events`); the sweep reads the clock itself, so a late or repeated event does no harm,
/// and whatever invokes the function, the effect is the same idempotent sweep. An error fails
/// the invocation, and the next schedule sweeps again.
pub async fn handle(delivery: &Delivery, event: EventBridgeEvent) -> Result<Swept> {
    let timed_out = time_out_overdue(delivery).await?;
    let recovered = recover_unsent(delivery).await?;
    tracing::info!(
        event_id = event.id.as_deref().unwrap_or_default(),
        detail_type = %event.detail_type,
        timed_out,
        recovered,
        "deadline sweep done"
    );
    Ok(Swept {
        timed_out,
        recovered,
    })
}
