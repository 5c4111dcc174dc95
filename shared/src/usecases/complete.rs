//! The callback: a subscriber completes an acknowledged invocation with its secret.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::catalog::Catalog;
use crate::model::{Invocation, InvocationState, TriggerType};
use crate::ports::{InvocationStore, Judge, Judged, Transition};
use crate::secrets::secret_matches;
use crate::time::Clock;
use crate::usecases::notify::Notifier;
use crate::wire::CompleteInvocation;
use crate::{Error, Result};

/// What completing an invocation needs. No subscriptions, queue or webhook client: a work item
/// an invocation may still have queued (a retry of an ASYNC request whose acknowledgement never
/// arrived) is dropped by whoever claims it, since only PENDING invocations are delivered.
#[derive(Debug, Clone)]
pub struct Completion {
    pub catalog: &'static Catalog,
    pub invocations: Arc<dyn InvocationStore>,
    pub clock: Arc<dyn Clock>,
    pub notifier: Notifier,
}

/// Completes invocation `id`. Exactly one completion wins, whoever else races it (another
/// callback, the deadline sweep): the store's conditional transition decides. The checks run on
/// the invocation as the store holds it at the write ([`InvocationStore::transition_judged`]).
pub async fn complete(ctx: &Completion, id: &str, request: CompleteInvocation) -> Result<()> {
    let trace = request.trace.clone();
    let catalog = ctx.catalog;
    let now = ctx.clock.now();
    let judge: Judge = Arc::new(move |invocation| judge(catalog, invocation, &request, now));
    let writing = std::time::Instant::now();
    match ctx
        .invocations
        .transition_judged(id, InvocationState::OPEN, judge)
        .await?
    {
        Judged::Missing => Err(Error::Unauthenticated),
        Judged::Refused(_, Error::Unauthenticated) => Err(Error::Unauthenticated),
        Judged::Refused(invocation, refusal) => {
            crate::telemetry::called_back(&invocation, trace.as_ref());
            Err(refusal)
        }
        Judged::Written { was, invocation } => {
            crate::telemetry::store_write("transition", writing.elapsed());
            crate::telemetry::called_back(&invocation, trace.as_ref());
            crate::telemetry::transitioned(&invocation, was);
            ctx.notifier.finished(&invocation).await;
            Ok(())
        }
    }
}

/// The transition a callback makes of `invocation` at `now`, or why it may not: the secret
/// first, so that a caller without it learns nothing else.
fn judge(
    catalog: &Catalog,
    invocation: &Invocation,
    request: &CompleteInvocation,
    now: DateTime<Utc>,
) -> Result<Transition> {
    if !secret_matches(&request.secret, &invocation.secret_hash) {
        return Err(Error::Unauthenticated);
    }
    let id = &invocation.id;
    if invocation.trigger_type != TriggerType::RequestResponse {
        return Err(Error::invalid(
            "id",
            format!(
                "invocation {id} is FIRE_AND_FORGET; only REQUEST_RESPONSE invocations are completed"
            ),
        ));
    }
    if !invocation.state.is_open() {
        return Err(Error::NotOpen {
            id: id.clone(),
            status: invocation.state,
        });
    }
    // Past a missed heartbeat as past the deadline: the invocation is the sweep's.
    if let Some(deadline) = invocation.due().filter(|d| *d <= now) {
        return Err(Error::DeadlinePassed {
            id: id.clone(),
            deadline: crate::time::format_time(&deadline),
        });
    }
    // An outcome that would not fit the invocation's record (or the completion event) is
    // refused here, naming the limit, rather than by the store.
    if let Some(error) = &request.error {
        crate::limits::check_output("error", &serde_json::Value::String(error.clone()))?;
    }
    if let Some(output) = &request.output {
        crate::limits::check_output("output", output)?;
    }
    match &request.error {
        Some(error) => Ok(Transition {
            to: InvocationState::Failed,
            completed: Some(now),
            output: None,
            error: Some(error.clone()),
        }),
        None => {
            let output = request.output.clone().unwrap_or(serde_json::Value::Null);
            catalog
                .require("triggerId", &invocation.trigger_id)?
                .check_output("output", &output)?;
            Ok(Transition {
                to: InvocationState::Completed,
                completed: Some(now),
                output: Some(output),
                error: None,
            })
        }
    }
}
