//! What Triggerline measures, and the one log line per invocation state change.
//!
//! The use cases record through the [`metrics`] facade, which does nothing until a process
//! installs a recorder at its edge: the local server's Prometheus exporter
//! (`infra/local/src/metrics.rs`, `GET /metrics`) and the Lambda functions' CloudWatch embedded
//! metric format lines (`infra/lambda/src/emf.rs`). Recording does no I/O here; the tests of the
//! use cases run with no recorder. Every name, unit and label is in this file, so that the two
//! exporters and the dashboards read the same series.
//!
//! Labels are bounded sets: a trigger id from the catalog (never one a caller made up: it is
//! recorded only after the catalog knew it), a state, an attempt outcome or a store operation.
//! Invocation and subscription ids go to the state-change log line, never into a label.

use std::time::Duration;

use metrics::Unit;

use crate::model::{AttemptOutcome, Invocation, InvocationState};
use crate::trace::TraceContext;

/// Delivery attempts, by `trigger` and attempt `outcome` (`completed`, `acknowledged`,
/// `failed`): every webhook post or event put, retries included.
pub const ATTEMPTS: &str = "triggerline_delivery_attempts_total";
/// Deliveries that ended, by `trigger` and the `status` the invocation reached (`COMPLETED`,
/// `ACKNOWLEDGED`, `FAILED`): an invocation's first answer that settled it, or its last failed
/// attempt. Retried attempts are not deliveries (yet).
pub const DELIVERIES: &str = "triggerline_deliveries_total";
/// How long one attempt took, from sending to the judged answer (seconds), by `trigger`.
pub const ATTEMPT_DURATION: &str = "triggerline_delivery_duration_seconds";
/// How long a synchronous `start` took to answer (seconds), by `trigger` and `outcome`
/// (`finished`, or `waiting` for a 542 at the wait limit).
pub const SYNC_DURATION: &str = "triggerline_sync_start_duration_seconds";
/// Attempts under way in this process right now (a gauge).
pub const IN_FLIGHT: &str = "triggerline_deliveries_in_flight";
/// Invocations raised, by `trigger`.
pub const CREATED: &str = "triggerline_invocations_created_total";
/// State changes of existing invocations, by `trigger`, `from` and `to` state.
pub const TRANSITIONS: &str = "triggerline_invocation_transitions_total";
/// Deadline sweeps run, by `result` (`ok`, `error`).
pub const SWEEPS: &str = "triggerline_sweeps_total";
/// Open invocations the deadline sweep timed out.
pub const TIMED_OUT: &str = "triggerline_sweep_timed_out_total";
/// Accepted invocations whose lost work the sweep queued again.
pub const RECOVERED: &str = "triggerline_sweep_recovered_total";
/// Finished invocations retention deleted (the local stack; on AWS DynamoDB's TTL deletes).
pub const PURGED: &str = "triggerline_purged_total";
/// How long one durable write of the use cases took (seconds), by `operation` (`accept`,
/// `record`, `settle`, `transition`, `replay`).
pub const STORE_WRITE: &str = "triggerline_store_write_duration_seconds";

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric as the exporters describe it.
#[derive(Debug, Clone, Copy)]
pub struct Described {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub help: &'static str,
}

/// Every metric the use cases record.
pub const RECORDED: &[Described] = &[
    Described {
        name: ATTEMPTS,
        kind: Kind::Counter,
        unit: Unit::Count,
        help: "Delivery attempts, by trigger and attempt outcome.",
    },
    Described {
        name: DELIVERIES,
        kind: Kind::Counter,
        unit: Unit::Count,
        help: "Deliveries that ended, by trigger and the status the invocation reached.",
    },
    Described {
        name: ATTEMPT_DURATION,
        kind: Kind::Histogram,
        unit: Unit::Seconds,
        help: "Duration of one delivery attempt, from sending to the judged answer.",
    },
    Described {
        name: SYNC_DURATION,
        kind: Kind::Histogram,
        unit: Unit::Seconds,
        help: "Duration of a synchronous start, by trigger and outcome (finished or waiting).",
    },
    Described {
        name: IN_FLIGHT,
        kind: Kind::Gauge,
        unit: Unit::Count,
        help: "Delivery attempts under way in this process.",
    },
    Described {
        name: CREATED,
        kind: Kind::Counter,
        unit: Unit::Count,
        help: "Invocations raised, by trigger.",
    },
    Described {
        name: TRANSITIONS,
        kind: Kind::Counter,
        unit: Unit::Count,
        help: "Invocation state changes, by trigger, from and to state.",
    },
    Described {
        name: SWEEPS,
        kind: Kind::Counter,
        unit: Unit::Count,
        help: "Deadline sweeps run, by result.",
    },
    Described {
        name: TIMED_OUT,
        kind: Kind::Counter,
        unit: Unit::Count,
        help: "Open invocations the deadline sweep timed out.",
    },
    Described {
        name: RECOVERED,
        kind: Kind::Counter,
        unit: Unit::Count,
        help: "Accepted invocations whose lost work the sweep queued again.",
    },
    Described {
        name: PURGED,
        kind: Kind::Counter,
        unit: Unit::Count,
        help: "Finished invocations deleted by retention.",
    },
    Described {
        name: STORE_WRITE,
        kind: Kind::Histogram,
        unit: Unit::Seconds,
        help: "Duration of one durable write, by operation.",
    },
];

/// Tells the installed recorder every metric's unit and help text (once, after installing it).
pub fn describe() {
    for m in RECORDED {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.unit, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.unit, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.unit, m.help),
        }
    }
}

/// The `target` of the state-change log line, so that `RUST_LOG` can turn it down alone
/// (`RUST_LOG=info,triggerline::invocation=warn` locally).
pub const STATE_LOG_TARGET: &str = "triggerline::invocation";
/// The message of the state-change log line.
pub const STATE_LOG_MESSAGE: &str = "invocation state changed";

/// A trigger id as a metric label: the catalog's own string where it knows the trigger, so that
/// counting a delivery copies no string.
fn trigger(id: &str) -> metrics::SharedString {
    match crate::catalog::Catalog::builtin().get(id) {
        Some(entry) => metrics::SharedString::from(entry.trigger.id.as_str()),
        None => metrics::SharedString::from(id.to_owned()),
    }
}

/// An invocation was raised (it starts PENDING).
pub fn created(invocation: &Invocation) {
    metrics::counter!(CREATED, "trigger" => trigger(&invocation.trigger_id)).increment(1);
    state_line(invocation, None, InvocationState::Pending);
}

/// An existing invocation moved `from` one state to the one it now has.
pub fn transitioned(invocation: &Invocation, from: InvocationState) {
    metrics::counter!(
        TRANSITIONS,
        "trigger" => trigger(&invocation.trigger_id),
        "from" => from.as_str(),
        "to" => invocation.state.as_str(),
    )
    .increment(1);
    state_line(invocation, Some(from), invocation.state);
}

/// A delivery ended with the invocation in its current state (out of PENDING).
pub fn delivered(invocation: &Invocation) {
    metrics::counter!(
        DELIVERIES,
        "trigger" => trigger(&invocation.trigger_id),
        "status" => invocation.state.as_str(),
    )
    .increment(1);
}

/// One attempt was made and judged.
pub fn attempted(trigger_id: &str, outcome: AttemptOutcome, took: Duration) {
    let outcome = match outcome {
        AttemptOutcome::Completed => "completed",
        AttemptOutcome::Acknowledged => "acknowledged",
        AttemptOutcome::Failed => "failed",
    };
    metrics::counter!(ATTEMPTS, "trigger" => trigger(trigger_id), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(ATTEMPT_DURATION, "trigger" => trigger(trigger_id))
        .record(took.as_secs_f64());
}

/// A synchronous `start` answered: `finished` with every outcome, or still waiting (542).
pub fn sync_answered(trigger_id: &str, finished: bool, took: Duration) {
    let outcome = if finished { "finished" } else { "waiting" };
    metrics::histogram!(SYNC_DURATION, "trigger" => trigger(trigger_id), "outcome" => outcome)
        .record(took.as_secs_f64());
}

/// A durable write of `operation` took `took` (`settle_soon`: the time to queue an outcome
/// written after its answer, see [`crate::ports::DeliveryQueue::settle_held_soon`]).
pub fn store_write(operation: &'static str, took: Duration) {
    metrics::histogram!(STORE_WRITE, "operation" => operation).record(took.as_secs_f64());
}

/// A deadline sweep ended: how many it timed out, or that it failed.
pub fn swept<E>(result: &Result<usize, E>) {
    match result {
        Ok(timed_out) => {
            metrics::counter!(SWEEPS, "result" => "ok").increment(1);
            metrics::counter!(TIMED_OUT).increment(count(*timed_out));
        }
        Err(_) => metrics::counter!(SWEEPS, "result" => "error").increment(1),
    }
}

/// The sweep queued the lost work of `n` invocations again.
pub fn recovered(n: usize) {
    metrics::counter!(RECOVERED).increment(count(n));
}

/// Retention deleted `n` finished invocations.
pub fn purged(n: usize) {
    metrics::counter!(PURGED).increment(count(n));
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Counts one attempt in [`IN_FLIGHT`] while it lives.
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        metrics::gauge!(IN_FLIGHT).increment(1.0);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(IN_FLIGHT).decrement(1.0);
    }
}

/// The state-change line: one per change, at INFO, with the ids a person follows an invocation
/// by. `error` is there when the invocation failed or timed out.
fn state_line(invocation: &Invocation, from: Option<InvocationState>, to: InvocationState) {
    tracing::info!(
        target: STATE_LOG_TARGET,
        invocation = %invocation.id,
        trigger = %invocation.trigger_id,
        subscription = %invocation.subscription_id,
        from = from.map(InvocationState::as_str),
        to = to.as_str(),
        error = invocation.error.as_deref().filter(|_| !to.is_open()),
        trace_id = invocation.trace.as_ref().map(TraceContext::trace_id),
        "{STATE_LOG_MESSAGE}"
    );
}

/// The field of a request's log span that carries its trace id (declared by the edge that
/// makes the span: the local server's request trace).
pub const TRACE_ID_FIELD: &str = "trace_id";

/// The message of the line that records a callback's own trace context.
pub const CALLBACK_TRACE_MESSAGE: &str = "callback carried a trace context";

/// An authenticated callback arrived, with its request's trace context if it sent one. That
/// context is logged, at INFO, as the completion's span: its `trace_id` and `parent_id` (the
/// subscriber's span that completed) beside the invocation's own `invocation_trace_id`; nothing
/// of it is stored. Without one, the request's span carries the invocation's trace id.
pub fn called_back(invocation: &Invocation, callback: Option<&TraceContext>) {
    match (callback, &invocation.trace) {
        (Some(callback), stored) => tracing::info!(
            target: STATE_LOG_TARGET,
            invocation = %invocation.id,
            trace_id = callback.trace_id(),
            parent_id = callback.parent_id(),
            invocation_trace_id = stored.as_ref().map(TraceContext::trace_id),
            "{CALLBACK_TRACE_MESSAGE}"
        ),
        (None, Some(stored)) => traced(stored),
        (None, None) => {}
    }
}

/// Puts the trace a request joined on its log span, where the span declared [`TRACE_ID_FIELD`]
/// (a span without it is left as it is).
pub fn traced(trace: &TraceContext) {
    tracing::Span::current().record(TRACE_ID_FIELD, trace.trace_id());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn invocation(state: InvocationState, error: Option<&str>) -> Invocation {
        serde_json::from_value(json!({
            "id": "0190a5c4-inv", "triggerId": "idn:access-request-pre-approval",
            "triggerType": "REQUEST_RESPONSE", "subscriptionId": "sub-7",
            "subscriptionName": "Approver", "invocationType": "REAL_TIME",
            "responseMode": "ASYNC", "state": state, "created": "2025-03-14T09:26:53.271Z",
            "completed": null, "deadline": null, "input": {}, "contentJson": {},
            "output": null, "error": error, "secretHash": "sha256:00", "attempts": []
        }))
        .unwrap()
    }

    /// The JSON lines `record` logs, as the local server's `--log-format json` and the
    /// functions' logging (both `tracing_subscriber`'s JSON format) write them.
    fn logged(record: impl FnOnce()) -> Vec<Value> {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, record);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn each_state_change_is_one_json_line_with_the_ids_to_follow() {
        let lines = logged(|| {
            created(&invocation(InvocationState::Pending, None));
            transitioned(
                &invocation(InvocationState::Acknowledged, None),
                InvocationState::Pending,
            );
            transitioned(
                &invocation(
                    InvocationState::TimedOut,
                    Some("no answer before the deadline"),
                ),
                InvocationState::Acknowledged,
            );
        });

        assert_eq!(lines.len(), 3, "{lines:?}");
        for line in &lines {
            assert_eq!(line["level"], "INFO");
            assert_eq!(line["target"], STATE_LOG_TARGET);
            let fields = &line["fields"];
            assert_eq!(fields["message"], STATE_LOG_MESSAGE);
            assert_eq!(fields["invocation"], "0190a5c4-inv");
            assert_eq!(fields["trigger"], "idn:access-request-pre-approval");
            assert_eq!(fields["subscription"], "sub-7");
        }
        let moves: Vec<(Value, Value)> = lines
            .iter()
            .map(|l| (l["fields"]["from"].clone(), l["fields"]["to"].clone()))
            .collect();
        assert_eq!(
            moves,
            [
                (Value::Null, json!("PENDING")),
                (json!("PENDING"), json!("ACKNOWLEDGED")),
                (json!("ACKNOWLEDGED"), json!("TIMED_OUT")),
            ]
        );
        assert!(lines[0]["fields"].get("error").is_none(), "{}", lines[0]);
        assert_eq!(lines[2]["fields"]["error"], "no answer before the deadline");
    }

    #[test]
    fn the_state_line_and_the_callback_line_carry_the_trace_id() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut traced = invocation(InvocationState::Pending, None);
        traced.trace = TraceContext::parse(Some(parent), &[]);
        let callback = TraceContext::parse(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"),
            &[],
        );
        let lines = logged(|| {
            created(&traced);
            created(&invocation(InvocationState::Pending, None));
            called_back(&traced, callback.as_ref());
        });

        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(
            lines[0]["fields"]["trace_id"],
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(lines[1]["fields"].get("trace_id").is_none(), "{}", lines[1]);
        let fields = &lines[2]["fields"];
        assert_eq!(fields["message"], CALLBACK_TRACE_MESSAGE);
        assert_eq!(fields["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(fields["parent_id"], "b7ad6b7169203331");
        assert_eq!(
            fields["invocation_trace_id"],
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn every_recorded_metric_is_described_once_with_a_unit() {
        let mut names: Vec<&str> = RECORDED.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RECORDED.len());
        for m in RECORDED {
            assert!(m.name.starts_with("triggerline_"), "{}", m.name);
            match m.kind {
                Kind::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
                Kind::Histogram => {
                    assert!(m.name.ends_with("_seconds"), "{}", m.name);
                    assert_eq!(m.unit, Unit::Seconds);
                }
                Kind::Gauge => {}
            }
        }
    }
}
