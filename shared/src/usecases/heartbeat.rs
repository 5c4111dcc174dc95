//! Heartbeats: the subscriber of an acknowledged invocation whose subscription sets
//! `heartbeatTimeout` keeps it alive, with the callback's secret.

use crate::model::TriggerType;
use crate::secrets::secret_matches;
use crate::usecases::complete::Completion;
use crate::wire::{HeartbeatRequest, HeartbeatResponse};
use crate::{Error, Result};

/// Records a heartbeat of invocation `id` and moves its heartbeat due time to now plus its
/// timeout (never past its response deadline). Authenticated and refused exactly as a
/// completion would be: an unknown id or a wrong secret is [`Error::Unauthenticated`], a
/// finished invocation [`Error::NotOpen`], one past its deadline or heartbeat due time
/// [`Error::DeadlinePassed`]. An invocation without a heartbeat timer is [`Error::Invalid`]
/// (`id`). A heartbeat may come before the acknowledgement is recorded: it starts the timer.
pub async fn heartbeat(
    ctx: &Completion,
    id: &str,
    request: HeartbeatRequest,
) -> Result<HeartbeatResponse> {
    let Some(invocation) = ctx.invocations.get(id).await? else {
        return Err(Error::Unauthenticated);
    };
    if !secret_matches(&request.secret, &invocation.secret_hash) {
        return Err(Error::Unauthenticated);
    }
    if invocation.trigger_type != TriggerType::RequestResponse {
        return Err(Error::invalid(
            "id",
            format!("invocation {id} is FIRE_AND_FORGET; it takes no heartbeats"),
        ));
    }
    if !invocation.state.is_open() {
        return Err(Error::NotOpen {
            id: id.to_owned(),
            status: invocation.state,
        });
    }
    let Some(timer) = invocation.heartbeat.as_ref() else {
        return Err(Error::invalid(
            "id",
            format!(
                "invocation {id} takes no heartbeats: its subscription set no heartbeatTimeout"
            ),
        ));
    };
    let now = ctx.clock.now();
    if let Some(due) = invocation.due().filter(|d| *d <= now) {
        return Err(Error::DeadlinePassed {
            id: id.to_owned(),
            deadline: crate::time::format_time(&due),
        });
    }
    let due = timer.due_after(now, invocation.deadline);
    let writing = std::time::Instant::now();
    let written = ctx.invocations.keep_alive(id, due, Some(now)).await?;
    crate::telemetry::store_write("keep_alive", writing.elapsed());
    Ok(HeartbeatResponse {
        id: written.id,
        heartbeat_due: due,
        deadline: written.deadline,
    })
}
