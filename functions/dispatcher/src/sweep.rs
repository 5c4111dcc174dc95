//! The deadline sweep (`dispatcher-sweep`), run by an EventBridge schedule: every open
//! invocation past its response deadline becomes TIMED_OUT, and the work of invocations
//! accepted but never sent (the intake died between its DynamoDB write and SQS) is sent.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use triggerline::Result;
use triggerline::usecases::delivery::Delivery;
use triggerline::usecases::sweep::{recover_unsent, time_out_overdue};

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
