//! Background upkeep: the deadline sweep, the recovery of lost work, and retention.

use std::sync::Arc;

use chrono::Duration;

use crate::model::{Invocation, InvocationState};
use crate::ports::{DeliveryQueue, InvocationScans, InvocationStore, Transition};
use crate::telemetry;
use crate::time::{Clock, earlier};
use crate::usecases::notify::Notifier;
use crate::{Error, Result};

/// How many invocations one sweep or purge step handles.
pub const BATCH: usize = 500;

/// What the deadline sweep needs. Like the callback it settles without the queue: the work a
/// timed-out invocation may still have queued is dropped by whoever claims it.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub invocations: Arc<dyn InvocationStore>,
    pub clock: Arc<dyn Clock>,
    pub notifier: Notifier,
}

impl Sweep {
    /// Marks every open invocation past its deadline TIMED_OUT. Returns how many it timed out.
    ///
    /// One invocation that cannot be timed out (its write fails) is logged and left for the
    /// next sweep; the others still are. The stores skip (and quarantine) rows they cannot
    /// read, so `overdue` itself fails only when the store does.
    pub async fn time_out_overdue(&self) -> Result<usize> {
        let swept = self.time_out_all().await;
        telemetry::swept(&swept);
        swept
    }

    async fn time_out_all(&self) -> Result<usize> {
        let mut timed_out = 0;
        loop {
            let now = self.clock.now();
            let overdue = self.invocations.overdue(now, BATCH).await?;
            let found = overdue.len();
            let mut failed = 0;
            for invocation in overdue {
                match self.time_out(&invocation, now).await {
                    Ok(true) => timed_out += 1,
                    Ok(false) => {}
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(invocation = %invocation.id, error = %e,
                            "could not time out an overdue invocation; the next sweep tries again");
                    }
                }
            }
            // A full batch in which nothing could be written would be read again at once:
            // leave it to the next sweep instead of spinning on it.
            if found < BATCH || failed == found {
                return Ok(timed_out);
            }
        }
    }

    /// Times out one overdue invocation; `false` when a callback won the race.
    async fn time_out(
        &self,
        invocation: &Invocation,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let transition = Transition {
            to: InvocationState::TimedOut,
            completed: Some(now),
            output: None,
            error: Some(timeout_reason(invocation, now)),
        };
        let writing = std::time::Instant::now();
        match self
            .invocations
            .transition(&invocation.id, InvocationState::OPEN, &transition)
            .await
        {
            Ok(finished) => {
                telemetry::store_write("transition", writing.elapsed());
                telemetry::transitioned(&finished, invocation.state);
                self.notifier.finished(&finished).await;
                Ok(true)
            }
            // A callback won the race: that is its invocation now.
            Err(Error::NotOpen { .. } | Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Why the sweep times `invocation` out at `now`: its response deadline passed, or else a
/// heartbeat it owed did not come.
fn timeout_reason(invocation: &Invocation, now: chrono::DateTime<chrono::Utc>) -> String {
    let missed_heartbeat = invocation
        .heartbeat
        .as_ref()
        .filter(|timer| timer.due.is_some_and(|due| due < now))
        .filter(|_| invocation.deadline.is_none_or(|deadline| deadline >= now));
    match missed_heartbeat {
        Some(timer) => format!("no heartbeat for {}", timer.timeout),
        None => format!(
            "no answer before the response deadline ({})",
            invocation
                .deadline
                .map(|d| crate::time::format_time(&d))
                .unwrap_or_default()
        ),
    }
}

/// Queues again the work of invocations accepted but never attempted whose work was due more
/// than two leases ago: a queue whose invocation write and work are two steps (SQS) loses the
/// work if the process dies in between. Two leases, because before that an attempt may still
/// be under way (a leased item's safety-net message shows only when the lease ends). At most
/// [`BATCH`] per sweep: the queue moves what it sent out of the way, but its index may show
/// them a moment longer, and the next sweep takes the rest. Returns how many it queued again.
pub async fn recover_unsent(
    queue: &dyn DeliveryQueue,
    clock: &dyn Clock,
    lease: std::time::Duration,
) -> Result<usize> {
    let grace = Duration::from_std(lease.saturating_mul(2)).unwrap_or(Duration::MAX);
    let now = clock.now();
    let recovered = queue
        .recover_unsent(now, earlier(now, grace), BATCH)
        .await?;
    telemetry::recovered(recovered);
    Ok(recovered)
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
pub async fn purge(
    store: &dyn InvocationScans,
    clock: &dyn Clock,
    retention: Retention,
) -> Result<usize> {
    let mut purged = 0;
    loop {
        let now = clock.now();
        let n = store
            .purge(
                earlier(now, retention.succeeded),
                earlier(now, retention.failed),
                BATCH,
            )
            .await?;
        purged += n;
        telemetry::purged(n);
        if n < BATCH {
            return Ok(purged);
        }
    }
}
