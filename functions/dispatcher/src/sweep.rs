//! The deadline sweep (`dispatcher-sweep`), run by an EventBridge schedule: every open
//! invocation past its response deadline becomes TIMED_OUT, and the work of invocations
//! accepted but never sent (the intake died between its DynamoDB write and SQS) is sent.

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use triggerline::Result;
use triggerline::ports::DeliveryQueue;
use triggerline::usecases::intake::DEFAULT_LEASE;
use triggerline::usecases::sweep::{Sweep, recover_unsent};

/// What the sweep function needs: the deadline sweep, and the work queue that lost work is sent
/// to again (on AWS `triggerline_lambda::recovery_queue`).
#[derive(Debug)]
pub struct Sweeper {
    pub sweep: Sweep,
    pub queue: Arc<dyn DeliveryQueue>,
    pub lease: std::time::Duration,
}

impl Sweeper {
    /// `sweep` (`triggerline_lambda::sweep` in `main`) and `queue`. Work counts as lost two
    /// leases after it was accepted; the lease is the one the functions' delivery policy sets.
    pub fn new(sweep: Sweep, queue: Arc<dyn DeliveryQueue>) -> Sweeper {
        Sweeper {
            sweep,
            queue,
            lease: DEFAULT_LEASE,
        }
    }
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
pub async fn handle(sweeper: &Sweeper, event: EventBridgeEvent) -> Result<Swept> {
    let timed_out = sweeper.sweep.time_out_overdue().await?;
    let recovered = recover_unsent(&*sweeper.queue, &*sweeper.sweep.clock, sweeper.lease).await?;
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
