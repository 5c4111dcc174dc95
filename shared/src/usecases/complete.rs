//! The callback: a subscriber completes an acknowledged invocation with its secret.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::model::{InvocationState, TriggerType};
use crate::ports::{InvocationStore, Transition};
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
/// callback, the deadline sweep): the store's conditional transition decides.
pub async fn complete(ctx: &Completion, id: &str, request: CompleteInvocation) -> Result<()> {
    let Some(invocation) = ctx.invocations.get(id).await? else {
        return Err(Error::Unauthenticated);
    };
    if !secret_matches(&request.secret, &invocation.secret_hash) {
        return Err(Error::Unauthenticated);
    }
    crate::telemetry::called_back(&invocation, request.trace.as_ref());
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
            id: id.to_owned(),
            status: invocation.state,
        });
    }
    let now = ctx.clock.now();
    // Past a missed heartbeat as past the deadline: the invocation is the sweep's.
    if let Some(deadline) = invocation.due().filter(|d| *d <= now) {
        return Err(Error::DeadlinePassed {
            id: id.to_owned(),
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
    let transition = match request.error {
        Some(error) => Transition {
            to: InvocationState::Failed,
            completed: Some(now),
            output: None,
            error: Some(error),
        },
        None => {
            let output = request.output.unwrap_or(serde_json::Value::Null);
            ctx.catalog
                .require("triggerId", &invocation.trigger_id)?
                .check_output("output", &output)?;
            Transition {
                to: InvocationState::Completed,
                completed: Some(now),
                output: Some(output),
                error: None,
            }
        }
    };
    let writing = std::time::Instant::now();
    let was = invocation.state;
    let finished = ctx
        .invocations
        .transition_held(invocation, InvocationState::OPEN, &transition)
        .await?;
    crate::telemetry::store_write("transition", writing.elapsed());
    crate::telemetry::transitioned(&finished, was);
    ctx.notifier.finished(&finished).await;
    Ok(())
}
