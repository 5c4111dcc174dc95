//! Background upkeep: the deadline sweep and retention.

use chrono::Duration;

use crate::model::InvocationState;
use crate::ports::Transition;
use crate::usecases::delivery::{Delivery, open_states};
use crate::{Error, Result};

/// How many invocations one sweep or purge step handles.
pub const BATCH: usize = 500;

/// Marks every open invocation past its deadline TIMED_OUT. Returns how many it timed out.
pub async fn time_out_overdue(delivery: &Delivery) -> Result<usize> {
    let mut timed_out = 0;
    loop {
        let now = delivery.clock.now();
        let overdue = delivery.invocations.overdue(now, BATCH).await?;
        let found = overdue.len();
        for invocation in overdue {
            let transition = Transition {
                to: InvocationState::TimedOut,
                completed: Some(now),
                output: None,
                error: Some(format!(
                    "no answer before the response deadline ({})",
                    invocation
                        .deadline
                        .map(|d| crate::time::format_time(&d))
                        .unwrap_or_default()
                )),
            };
            match delivery
                .invocations
                .transition(&invocation.id, open_states(), &transition)
                .await
            {
                Ok(finished) => {
                    delivery.queue.discard(&finished.id).await?;
                    delivery.finished(&finished).await;
                    timed_out += 1;
                }
                // A callback won the race: that is its invocation now.
                Err(Error::NotOpen { .. } | Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if found < BATCH {
            return Ok(timed_out);
        }
    }
}

/// How long finished invocations stay listable.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub succeeded: Duration,
    pub failed: Duration,
}

impl Default for Retention {
    /// SailPoint's: a day for successes, two for failures.
    fn default() -> Self {
        Retention {
            succeeded: Duration::hours(24),
            failed: Duration::hours(48),
        }
    }
}

/// Deletes finished invocations older than `retention`, in batches. Returns how many.
pub async fn purge(delivery: &Delivery, retention: Retention) -> Result<usize> {
    let mut purged = 0;
    loop {
        let now = delivery.clock.now();
        let n = delivery
            .invocations
            .purge(now - retention.succeeded, now - retention.failed, BATCH)
            .await?;
        purged += n;
        if n < BATCH {
            return Ok(purged);
        }
    }
}
