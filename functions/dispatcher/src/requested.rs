//! `Trigger Invocation Requested` events: a producer puts one on Triggerline's bus (its `detail`
//! is the body of a `start`), the intake rule sends it to the work queue, and the queue consumer
//! raises the invocations as a queued `start` would.
//!
//! SQS delivers at least once, so the same event may arrive twice. The invocation ids are
//! derived from the event's id, so a second arrival finds them written instead of raising a
//! second round of deliveries. It then makes sure their work exists: the event comes back when
//! the first arrival failed, which may have been after the invocations were written and before
//! their work was sent (the Lambda died, or SQS refused), and the queue sends the work of those
//! still unsent again ([`DeliveryQueue::resend_unsent`]; a message sent twice is stale the
//! second time, or at worst a duplicate delivery, which at-least-once allows).
//!
//! [`DeliveryQueue::resend_unsent`]: triggerline::ports::DeliveryQueue::resend_unsent

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use triggerline::Error;
use triggerline::time::{IdGenerator, RandomIds};
use triggerline::trace::TraceContext;
use triggerline::usecases::delivery::Delivery;
use triggerline::usecases::intake::{Intake, SyncRecord};
use triggerline::wire::StartInvocation;
use triggerline::wire::strict::Strict;
use triggerline_aws::sqs::SqsDeliveryQueue;

/// The `detail-type` of an intake event.
pub const DETAIL_TYPE: &str = "Trigger Invocation Requested";

/// An EventBridge event as it reaches an SQS target.
#[derive(Debug, Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: serde_json::Value,
}

/// A parsed intake event: its EventBridge id and the start request it carries.
#[derive(Debug)]
pub struct Requested {
    pub event_id: String,
    pub request: StartInvocation,
}

/// `Some` when `body` is an intake event (`Err` when its detail is not a start request), `None`
/// when it is something else (a work message).
pub fn parse(body: &str) -> Option<Result<Requested, Error>> {
    let envelope: Envelope = serde_json::from_str(body).ok()?;
    if envelope.detail_type != DETAIL_TYPE {
        return None;
    }
    let trace = trace_of(&envelope.detail);
    Some(
        StartInvocation::deserialize(Strict(envelope.detail))
            .map(|request| Requested {
                event_id: envelope.id,
                request: StartInvocation { trace, ..request },
            })
            .map_err(|e| Error::invalid("detail", e.to_string())),
    )
}

/// The trace context of an intake event: its detail's `traceparent` and `tracestate` (strings,
/// as the HTTP headers of a `start` would be). Invalid or of another type: ignored, as the W3C
/// spec has it; the invocations then join a trace started for the event.
fn trace_of(detail: &serde_json::Value) -> Option<TraceContext> {
    let parent = detail
        .get("traceparent")
        .and_then(serde_json::Value::as_str);
    let states: Vec<&str> = match detail.get("tracestate") {
        None | Some(serde_json::Value::Null) => vec![],
        Some(serde_json::Value::String(state)) => vec![state],
        // Not text: invalid, so dropped; the parent stands.
        Some(_) => vec!["\u{0}"],
    };
    TraceContext::parse(parent, &states)
}

/// Raises the event's invocations: queued (an event has nobody waiting for an answer), with
/// ids derived from the event, on `queue` (the work queue), written before their work is sent
/// ([`SqsDeliveryQueue::recording_first`]) so that a redelivered event finds them. Already
/// raised (a redelivered event) is success once their work is sure to exist.
pub async fn start(
    delivery: &Delivery,
    queue: &SqsDeliveryQueue,
    requested: Requested,
) -> Result<(), Error> {
    let event_id = requested.event_id.clone();
    let trigger_id = requested.request.trigger_id.clone();
    let delivery = Delivery {
        queue: Arc::new(queue.clone().recording_first()),
        ..delivery.clone()
    };
    let intake = Intake {
        delivery: delivery.clone(),
        signal: None,
        sync_record: SyncRecord::BeforeDelivery,
        ids: Arc::new(EventIds::new(&requested.event_id)),
        sync_wait: Duration::ZERO,
        // Its queue sends every accept's work (`recording_first`, no `unsent_while_leased`).
        keys: None,
        events_inline: false,
    };
    let request = StartInvocation {
        is_synchronous: Some(false),
        ..requested.request
    };
    match intake.start(request).await {
        Ok(_) => Ok(()),
        Err(Error::AlreadyExists { .. }) => {
            // The ids the first arrival gave, as many as the trigger can have subscriptions.
            let most = delivery
                .catalog
                .get(&trigger_id)
                .map_or(0, |entry| entry.trigger.trigger_type.max_subscriptions());
            let ids = EventIds::new(&event_id);
            let ids: Vec<String> = (0..most).map(|_| ids.id()).collect();
            let resent = delivery.queue.resend_unsent(&ids).await?;
            tracing::info!(event_id = %event_id, resent, "intake event seen before");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Ids `H(event id, n)` for n = 0, 1, …, shaped as UUIDs; secrets stay random.
#[derive(Debug)]
struct EventIds {
    event_id: String,
    next: AtomicU64,
}

impl EventIds {
    fn new(event_id: &str) -> Self {
        EventIds {
            event_id: event_id.to_owned(),
            next: AtomicU64::new(0),
        }
    }
}

impl IdGenerator for EventIds {
    fn id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let digest = Sha256::new()
            .chain_update(self.event_id.as_bytes())
            .chain_update(n.to_be_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    fn secret(&self, bytes: usize) -> String {
        RandomIds.secret(bytes)
    }

    /// Derived from the event like the ids, so that a redelivered event without a trace context
    /// starts the same trace.
    fn trace_bytes(&self, out: &mut [u8]) {
        let digest = Sha256::new()
            .chain_update(b"traceparent")
            .chain_update(self.event_id.as_bytes())
            .chain_update(out.len().to_be_bytes())
            .finalize();
        for (byte, derived) in out.iter_mut().zip(digest.iter().cycle()) {
            *byte = *derived;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_intake_event_is_recognised_and_anything_else_is_not() {
        let event = serde_json::json!({
            "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": DETAIL_TYPE, "source": "com.example.idn", "account": "111122223333",
            "time": "2026-11-23T12:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"triggerId": "idn:identity-created", "input": {"identity": {}}}
        });
        let requested = parse(&event.to_string()).unwrap().unwrap();
        assert_eq!(requested.event_id, "6a7e8feb-b491-4cf7-a9f1-bf3703467718");
        assert_eq!(requested.request.trigger_id, "idn:identity-created");

        let mut wrong = event.clone();
        wrong["detail"] = serde_json::json!({"input": {}});
        assert!(matches!(
            parse(&wrong.to_string()),
            Some(Err(Error::Invalid { .. }))
        ));
        assert!(parse(r#"{"invocationId": "x", "notBefore": 0, "attempts": 0}"#).is_none());
        let mut other = event;
        other["detail-type"] = serde_json::json!("Something Else");
        assert!(parse(&other.to_string()).is_none());
    }

    #[test]
    fn an_intake_event_carries_its_detail_trace_context_and_junk_is_ignored() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let event = |extra: serde_json::Value| {
            let mut detail = serde_json::json!({"triggerId": "idn:identity-created", "input": {}});
            detail
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::json!({"id": "e-1", "detail-type": DETAIL_TYPE, "detail": detail})
                .to_string()
        };
        let traced = |extra| parse(&event(extra)).unwrap().unwrap().request.trace;

        let trace =
            traced(serde_json::json!({"traceparent": parent, "tracestate": "a=1"})).unwrap();
        assert_eq!(trace.traceparent, parent);
        assert_eq!(trace.tracestate.as_deref(), Some("a=1"));
        let no_state = traced(serde_json::json!({"traceparent": parent, "tracestate": 7})).unwrap();
        assert_eq!(no_state.tracestate, None);
        assert!(traced(serde_json::json!({})).is_none());
        assert!(traced(serde_json::json!({"traceparent": "00-zz"})).is_none());
        assert!(traced(serde_json::json!({"traceparent": ["x"]})).is_none());
    }

    #[test]
    fn a_trace_started_for_an_event_is_fixed_by_the_event() {
        let (a, b) = (EventIds::new("event-1"), EventIds::new("event-1"));
        let first = TraceContext::start(&a);
        assert_eq!(first, TraceContext::start(&b));
        assert_ne!(first, TraceContext::start(&EventIds::new("event-2")));
        assert!(TraceContext::parse(Some(&first.traceparent), &[]).is_some());
    }

    #[test]
    fn ids_are_uuids_fixed_by_the_event_and_distinct_within_it() {
        let (a, b) = (EventIds::new("event-1"), EventIds::new("event-1"));
        let first = a.id();
        assert_eq!(first, b.id(), "the same event gives the same ids");
        assert_ne!(
            first,
            a.id(),
            "the next invocation of an event gets another id"
        );
        assert_ne!(first, EventIds::new("event-2").id());
        assert!(uuid::Uuid::parse_str(&first).is_ok());
    }
}
