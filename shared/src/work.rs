//! When queued delivery work is still worth doing. A queue may hand out more than one copy of an
//! invocation's work: the safety net of an inline delivery, a message whose deletion failed, a
//! retry queued by whoever made the last attempt. Only the copy that is current may lead to an
//! attempt; the others would deliver twice and start a second chain of retries.
//!
//! Work with an ordering key follows a stricter rule ([`ordered_step`]): its one queued copy
//! holds the key until the invocation is finished, so that the next of the key cannot overtake
//! it.

use chrono::{DateTime, Utc};

use crate::model::{Invocation, InvocationState};
use crate::ports::{NextStep, WorkItem};

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

/// What becomes of the queued work of an invocation with an ordering key ([`ordered_step`]).
#[derive(Debug, Clone, PartialEq)]
pub enum OrderedStep {
    /// Its turn: deliver this work.
    Deliver(WorkItem),
    /// Its invocation is finished (or gone): let the work go, so the next of its key goes.
    Release,
    /// Its invocation is not finished and not due (acknowledged and waiting for its callback,
    /// a retry or a delayed start): keep holding its key, this long.
    Keep(chrono::Duration),
}

/// The ordering rule: what becomes of `item`, ordered work queued when its invocation had
/// `recorded` attempts, judged against the invocation as it reads `now` (`None`: gone).
/// Finished or gone: [`OrderedStep::Release`]. PENDING and due: [`OrderedStep::Deliver`], with
/// the attempts made since the work was queued (the queue keeps one copy for the whole turn,
/// so its own count does not move). PENDING and not due (a delayed start): kept until due.
/// ACKNOWLEDGED: kept for `recheck`, or until just past its deadline when that is sooner
/// ([`recheck_after`]).
pub fn ordered_step(
    mut item: WorkItem,
    recorded: Option<usize>,
    invocation: Option<&Invocation>,
    now: DateTime<Utc>,
    recheck: chrono::Duration,
) -> OrderedStep {
    let Some(invocation) = invocation.filter(|i| i.state.is_open()) else {
        return OrderedStep::Release;
    };
    if invocation.state == InvocationState::Acknowledged {
        return OrderedStep::Keep(recheck_after(invocation, now, recheck));
    }
    if item.not_before > now {
        return OrderedStep::Keep(item.not_before - now);
    }
    let made = invocation
        .attempts
        .len()
        .saturating_sub(recorded.unwrap_or_default());
    item.attempts = u32::try_from(made).unwrap_or(u32::MAX);
    OrderedStep::Deliver(item)
}

/// The ordering rule after an attempt was recorded, leaving the invocation `settled` (`None`:
/// gone) with `next` to come: open, its work keeps the key until the retry is due or, with
/// no retry (acknowledged), for [`recheck_after`]; finished or gone, it is released.
pub fn ordered_step_after_attempt(
    settled: Option<&Invocation>,
    next: &NextStep,
    now: DateTime<Utc>,
    recheck: chrono::Duration,
) -> OrderedStep {
    match (settled, next) {
        (Some(invocation), NextStep::RetryAt(at)) if invocation.state.is_open() => {
            OrderedStep::Keep(*at - now)
        }
        (Some(invocation), _) if invocation.state.is_open() => {
            OrderedStep::Keep(recheck_after(invocation, now, recheck))
        }
        _ => OrderedStep::Release,
    }
}

/// How long an open invocation's ordered work keeps its key before it is looked at again:
/// `recheck`, or until one second past its deadline (or heartbeat due time) when that comes
/// sooner, so that a timed-out invocation does not hold its key for a whole `recheck`; a
/// deadline already past waits for the sweep, so `recheck` again.
pub fn recheck_after(
    invocation: &Invocation,
    now: DateTime<Utc>,
    recheck: chrono::Duration,
) -> chrono::Duration {
    let heartbeat_due = invocation.heartbeat.as_ref().and_then(|h| h.due);
    match invocation.deadline.into_iter().chain(heartbeat_due).min() {
        Some(end) if end > now => recheck.min(end - now + chrono::Duration::seconds(1)),
        _ => recheck,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
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

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
    }

    /// An invocation with an ordering key, due to end an hour after the epoch.
    fn ordered(state: InvocationState, attempts: usize) -> Invocation {
        Invocation {
            deadline: Some(at(3_600_000)),
            ordering_key: Some("k".into()),
            ..invocation(state, attempts)
        }
    }

    #[test]
    fn the_ordered_rule_delivers_the_due_keeps_the_open_and_releases_the_finished() {
        let recheck = chrono::Duration::seconds(30);
        let item = WorkItem {
            invocation_id: "inv".into(),
            not_before: at(10_000),
            attempts: 0,
        };
        let step = |invocation: Option<&Invocation>, now: i64| {
            ordered_step(item.clone(), Some(1), invocation, at(now), recheck)
        };
        // Gone or finished: the key moves on.
        assert_eq!(step(None, 20_000), OrderedStep::Release);
        for state in [
            InvocationState::Completed,
            InvocationState::Failed,
            InvocationState::TimedOut,
        ] {
            assert_eq!(step(Some(&ordered(state, 1)), 20_000), OrderedStep::Release);
        }
        // A delayed start holds its key until due.
        assert_eq!(
            step(Some(&ordered(InvocationState::Pending, 1)), 4_000),
            OrderedStep::Keep(chrono::Duration::seconds(6))
        );
        // Due: attempts count from those recorded when the work was queued.
        let due = step(Some(&ordered(InvocationState::Pending, 3)), 20_000);
        assert!(
            matches!(&due, OrderedStep::Deliver(item) if item.attempts == 2),
            "{due:?}"
        );
        // Of unknown origin: every recorded attempt counts.
        let unknown = ordered_step(
            item.clone(),
            None,
            Some(&ordered(InvocationState::Pending, 3)),
            at(20_000),
            recheck,
        );
        assert!(
            matches!(&unknown, OrderedStep::Deliver(item) if item.attempts == 3),
            "{unknown:?}"
        );
        // Acknowledged: the recheck, or just past the deadline when that comes sooner.
        let acknowledged = ordered(InvocationState::Acknowledged, 1);
        assert_eq!(
            step(Some(&acknowledged), 20_000),
            OrderedStep::Keep(recheck)
        );
        assert_eq!(
            step(Some(&acknowledged), 3_590_000),
            OrderedStep::Keep(chrono::Duration::seconds(11))
        );
        // Past its deadline the sweep times it out; until then, the recheck.
        assert_eq!(
            step(Some(&acknowledged), 3_700_000),
            OrderedStep::Keep(recheck)
        );
    }

    #[test]
    fn a_heartbeat_due_before_the_deadline_shortens_the_recheck() {
        let recheck = chrono::Duration::seconds(30);
        let mut beating = ordered(InvocationState::Acknowledged, 1);
        beating.heartbeat = Some(crate::model::Heartbeat {
            timeout: crate::duration::IsoDuration::parse("timeout", "PT1M").unwrap(),
            last: None,
            due: Some(at(25_000)),
        });
        assert_eq!(
            recheck_after(&beating, at(20_000), recheck),
            chrono::Duration::seconds(6)
        );
        // An overdue heartbeat is the sweep's to time out: the recheck again.
        assert_eq!(recheck_after(&beating, at(30_000), recheck), recheck);
    }

    #[test]
    fn after_an_attempt_open_work_keeps_its_key_and_finished_work_lets_it_go() {
        let recheck = chrono::Duration::seconds(30);
        let now = at(20_000);
        let retry = NextStep::RetryAt(at(25_000));
        let pending = ordered(InvocationState::Pending, 1);
        assert_eq!(
            ordered_step_after_attempt(Some(&pending), &retry, now, recheck),
            OrderedStep::Keep(chrono::Duration::seconds(5))
        );
        let acknowledged = ordered(InvocationState::Acknowledged, 1);
        assert_eq!(
            ordered_step_after_attempt(Some(&acknowledged), &NextStep::Done, now, recheck),
            OrderedStep::Keep(recheck)
        );
        let completed = ordered(InvocationState::Completed, 1);
        for next in [&retry, &NextStep::Done] {
            assert_eq!(
                ordered_step_after_attempt(Some(&completed), next, now, recheck),
                OrderedStep::Release
            );
            assert_eq!(
                ordered_step_after_attempt(None, next, now, recheck),
                OrderedStep::Release
            );
        }
    }
}
