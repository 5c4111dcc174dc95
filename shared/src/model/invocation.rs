use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{DispatchMode, LazyJson, TriggerType};

/// Whether an invocation came from the test API or from a real event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = InvocationStatusType))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvocationType {
    Test,
    RealTime,
}

/// Where an invocation is in its lifecycle. Only the store's conditional write moves it out of
/// an open state (`PENDING`, `ACKNOWLEDGED`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvocationState {
    Pending,
    Acknowledged,
    Completed,
    Failed,
    TimedOut,
}

impl InvocationState {
    /// The states an invocation may still be completed from (by a callback or the sweep).
    pub const OPEN: &[InvocationState] = &[InvocationState::Pending, InvocationState::Acknowledged];

    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InvocationState::Pending => "PENDING",
            InvocationState::Acknowledged => "ACKNOWLEDGED",
            InvocationState::Completed => "COMPLETED",
            InvocationState::Failed => "FAILED",
            InvocationState::TimedOut => "TIMED_OUT",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            InvocationState::Pending,
            InvocationState::Acknowledged,
            InvocationState::Completed,
            InvocationState::Failed,
            InvocationState::TimedOut,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

impl std::fmt::Display for InvocationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One delivery of one event to one subscription, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    pub id: String,
    pub trigger_id: String,
    pub trigger_type: TriggerType,
    pub subscription_id: String,
    pub subscription_name: String,
    pub invocation_type: InvocationType,
    /// The subscription's HTTP mode at creation; `None` for EventBridge and FIRE_AND_FORGET.
    pub response_mode: Option<DispatchMode>,
    pub state: InvocationState,
    #[serde(with = "crate::time::rfc3339")]
    pub created: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339::option")]
    pub completed: Option<DateTime<Utc>>,
    /// When an open REQUEST_RESPONSE invocation times out.
    #[serde(with = "crate::time::rfc3339::option")]
    pub deadline: Option<DateTime<Utc>>,
    /// Shared: a fan-out's invocations, the hand-off to the worker and the answer all hold the
    /// one input the start carried.
    pub input: LazyJson,
    pub content_json: LazyJson,
    pub output: Option<Value>,
    pub error: Option<String>,
    /// Hash of the callback secret; the secret itself is never stored.
    pub secret_hash: String,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// The W3C trace context it was raised with (or started for it): passed to every delivery,
    /// shown in its status. `None` on invocations stored before traces were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::TraceContext>,
    /// Extension: the start's `orderingKey`. Invocations of one subscription with the same key
    /// are delivered one at a time, in the order they were accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    /// Heartbeats the subscriber owes while the invocation is acknowledged; `None` when its
    /// subscription asked for none. Rows written before heartbeats existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Heartbeat>,
}

/// An invocation's heartbeat timer. The timeout is copied from the subscription at creation, so
/// later edits of the subscription leave open invocations as they were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    pub timeout: crate::duration::IsoDuration,
    /// The last heartbeat received (none yet: `None`).
    #[serde(default, with = "crate::time::rfc3339::option")]
    pub last: Option<DateTime<Utc>>,
    /// When the invocation times out for want of a heartbeat: set at the first
    /// acknowledgement, moved by each heartbeat, never after the response deadline; `None`
    /// until the timer starts.
    #[serde(default, with = "crate::time::rfc3339::option")]
    pub due: Option<DateTime<Utc>>,
}

impl Heartbeat {
    /// The heartbeat due time of a timer (re)started at `at`: `at` plus the timeout, never after
    /// `deadline`.
    pub fn due_after(&self, at: DateTime<Utc>, deadline: Option<DateTime<Utc>>) -> DateTime<Utc> {
        let due = crate::time::later(at, self.timeout.as_chrono());
        deadline.map_or(due, |d| due.min(d))
    }
}

impl Invocation {
    /// When the sweep times the open invocation out: the earlier of its deadline and its
    /// heartbeat due time.
    pub fn due(&self) -> Option<DateTime<Utc>> {
        let heartbeat = self.heartbeat.as_ref().and_then(|h| h.due);
        match (self.deadline, heartbeat) {
            (Some(d), Some(h)) => Some(d.min(h)),
            (d, h) => d.or(h),
        }
    }
}

/// One try at delivering an invocation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    #[serde(with = "crate::time::rfc3339")]
    pub started_at: DateTime<Utc>,
    /// The URL's host (never its credentials) or the event bus.
    pub target: String,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
}

/// What one attempt came to. Stored and shown (the status extension's `attempts`) as the
/// lower-case name, as it was when this was a string, so rows written before still read.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    /// The subscriber answered with the output (or the target took the event).
    Completed,
    /// An asynchronous subscriber accepted the event and will call back.
    Acknowledged,
    /// No usable answer; the invocation is retried or failed.
    Failed,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Completed => "completed",
            AttemptOutcome::Acknowledged => "acknowledged",
            AttemptOutcome::Failed => "failed",
        }
    }
}

impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::AttemptOutcome;

    #[test]
    fn attempt_outcomes_keep_the_names_they_were_stored_under() {
        for (outcome, name) in [
            (AttemptOutcome::Completed, "\"completed\""),
            (AttemptOutcome::Acknowledged, "\"acknowledged\""),
            (AttemptOutcome::Failed, "\"failed\""),
        ] {
            assert_eq!(serde_json::to_string(&outcome).ok().as_deref(), Some(name));
            assert_eq!(
                serde_json::from_str::<AttemptOutcome>(name).ok(),
                Some(outcome)
            );
        }
    }
}
