//! What happens when an invocation settles: whoever waits on it is woken, and a finished
//! REQUEST_RESPONSE invocation is announced as `Trigger Invocation Completed`. Every path that
//! settles an invocation (a delivery, the callback, the deadline sweep) ends here.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::model::{Invocation, InvocationState, TriggerType};
use crate::ports::{Event, EventPublisher, InvocationWatch, WorkPoke};

/// The `detail-type` of the event published when a REQUEST_RESPONSE invocation finishes.
pub const COMPLETED_EVENT: &str = "Trigger Invocation Completed";

/// Tells waiters and the bus that an invocation settled.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// Where `Trigger Invocation Completed` goes; `None` when nobody asked for it (the
    /// functions' default: on AWS each event is billed).
    pub events: Option<Arc<dyn EventPublisher>>,
    pub watch: Arc<dyn InvocationWatch>,
    /// `source` of the events Triggerline publishes.
    pub event_source: String,
    /// Whether invocations answered inline to a waiting producer (see
    /// [`Notifier::finished_inline`]) also publish `Trigger Invocation Completed`. The producer
    /// already holds the answer, and on AWS each event is billed like the rest of the fast path
    /// together, so the functions leave it off unless configured.
    pub inline_completion_events: bool,
    /// The in-process worker, nudged when an invocation with an ordering key finishes (the
    /// next of its key may go) or is accepted; `None` where the queue needs no nudge (AWS).
    pub poke: Option<Arc<dyn WorkPoke>>,
}

impl Notifier {
    /// Tells waiters, and publishes `Trigger Invocation Completed` for a finished
    /// REQUEST_RESPONSE invocation. A publishing failure is logged and does not undo the
    /// outcome, which is already durable.
    pub async fn finished(&self, invocation: &Invocation) {
        self.watch.changed(&invocation.id);
        if invocation.ordering_key.is_some() && !invocation.state.is_open() {
            self.poke_worker();
        }
        if invocation.state.is_open() || invocation.trigger_type != TriggerType::RequestResponse {
            return;
        }
        let Some(events) = &self.events else {
            return;
        };
        let event = completion_event(&self.event_source, invocation);
        if let Err(e) = events.publish(&[event]).await {
            tracing::warn!(invocation = %invocation.id, error = %e, "completion event not published");
        }
    }

    /// Nudges the in-process worker, if there is one.
    pub fn poke_worker(&self) {
        if let Some(poke) = &self.poke {
            poke.poke();
        }
    }

    /// [`Notifier::finished`] for an invocation answered inline to its waiting producer: the
    /// completion event only when [`Notifier::inline_completion_events`] asks for it.
    pub async fn finished_inline(&self, invocation: &Invocation) {
        if self.inline_completion_events {
            self.finished(invocation).await;
        } else {
            self.watch.changed(&invocation.id);
        }
    }
}

/// The `Trigger Invocation Completed` event of a finished invocation.
pub fn completion_event(source: &str, invocation: &Invocation) -> Event {
    Event::new(
        None,
        source,
        COMPLETED_EVENT,
        &CompletedDetail {
            completed: invocation.completed.map(|t| crate::time::format_time(&t)),
            error: invocation.error.as_deref(),
            invocation_id: &invocation.id,
            output: invocation.output.as_ref(),
            status: invocation.state,
            subscription_id: &invocation.subscription_id,
            trigger_id: &invocation.trigger_id,
        },
    )
}

/// The detail of `Trigger Invocation Completed`, borrowed from the invocation. Its keys are in
/// alphabetical order, the order they had when the detail was a `serde_json` map.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CompletedDetail<'a> {
    completed: Option<String>,
    error: Option<&'a str>,
    invocation_id: &'a str,
    output: Option<&'a Value>,
    status: InvocationState,
    subscription_id: &'a str,
    trigger_id: &'a str,
}
