//! When queued delivery work is still worth doing. A queue may hand out more than one copy of an
//! invocation's work: the safety net of an inline delivery, a message whose deletion failed, a
//! retry queued by whoever made the last attempt. Only the copy that is current may lead to an
//! attempt; the others would deliver twice and start a second chain of retries.

use crate::model::{Invocation, InvocationState};

/// Whether work queued when its invocation had `recorded` attempts is stale, judged against the
/// invocation as it reads now (`None`: gone). Stale when the invocation is gone, is no longer
/// PENDING (an acknowledged one waits for its callback, a finished one is done), or records more
/// attempts than when the work was queued: someone delivered it since and queued its own
/// follow-up. Work of unknown origin (`recorded` is `None`) is judged by the state alone.
pub fn is_stale(recorded: Option<usize>, invocation: Option<&Invocation>) -> bool {
    match invocation {
        None => true,
        Some(invocation) => {
            invocation.state != InvocationState::Pending
                || recorded.is_some_and(|r| invocation.attempts.len() > r)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::model::{Attempt, InvocationType, TriggerType};

    fn invocation(state: InvocationState, attempts: usize) -> Invocation {
        // Only the number of attempts matters here.
        let attempt: Attempt = serde_json::from_value(json!({
            "startedAt": "2026-01-01T00:00:00Z",
            "target": "hr.example.com",
            "statusCode": 503,
            "durationMs": 5,
            "outcome": "failed",
            "error": "503",
        }))
        .unwrap();
        Invocation {
            heartbeat: None,
            id: "inv".into(),
            trigger_id: "idn:identity-created".into(),
            trigger_type: TriggerType::FireAndForget,
            subscription_id: "s".into(),
            subscription_name: "n".into(),
            invocation_type: InvocationType::RealTime,
            response_mode: None,
            state,
            created: Utc::now(),
            completed: None,
            deadline: None,
            input: json!({}).into(),
            content_json: json!({}).into(),
            output: None,
            error: None,
            ordering_key: None,
            secret_hash: String::new(),
            attempts: vec![attempt; attempts],
            trace: None,
        }
    }

    #[test]
    fn work_of_an_invocation_that_is_gone_or_not_pending_is_stale() {
        assert!(is_stale(Some(0), None));
        assert!(is_stale(None, None));
        for state in [
            InvocationState::Acknowledged,
            InvocationState::Completed,
            InvocationState::Failed,
            InvocationState::TimedOut,
        ] {
            assert!(is_stale(Some(0), Some(&invocation(state, 0))), "{state:?}");
            assert!(is_stale(None, Some(&invocation(state, 0))), "{state:?}");
        }
    }

    #[test]
    fn work_is_stale_once_the_invocation_was_attempted_after_it_was_queued() {
        let pending = |attempts| invocation(InvocationState::Pending, attempts);
        assert!(!is_stale(Some(0), Some(&pending(0))));
        assert!(!is_stale(Some(2), Some(&pending(2))));
        assert!(is_stale(Some(0), Some(&pending(1))));
        assert!(is_stale(Some(2), Some(&pending(3))));
        // Queued after attempts this read does not show yet (a read that lags the write):
        // nobody else went first, so the work is current.
        assert!(!is_stale(Some(3), Some(&pending(2))));
    }

    #[test]
    fn work_of_unknown_origin_is_judged_by_the_state_alone() {
        let pending = invocation(InvocationState::Pending, 4);
        assert!(!is_stale(None, Some(&pending)));
    }
}
