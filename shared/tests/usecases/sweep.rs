//! The deadline sweep and retention.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration as Span, Utc};
use serde_json::json;
use triggerline::Error;
use triggerline::model::{Attempt, Invocation, InvocationState};
use triggerline::ports::{DeliveryQueue, InvocationScans, NextStep, Transition, WorkItem};
use triggerline::query::InvocationQuery;
use triggerline::usecases::intake::Started;
use triggerline::usecases::notify::COMPLETED_EVENT;
use triggerline::usecases::sweep::{BATCH, Retention, purge, recover_unsent};
use triggerline::wire::StartInvocation;

use crate::support::{RESPOND, Stack, example_input, t0};

async fn raise(stack: &Stack, delay: Option<&str>) -> String {
    let request: StartInvocation = serde_json::from_value(
        json!({"triggerId": RESPOND, "input": example_input(RESPOND), "delay": delay}),
    )
    .unwrap();
    let Started::Queued(raised) = stack.intake().start(request).await.unwrap() else {
        panic!("queued");
    };
    raised[0].id.clone()
}

#[tokio::test]
async fn the_sweep_times_out_only_what_is_past_its_deadline() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    // Deadlines an hour after they are due: now + 1 h, and now + 30 min + 1 h.
    let early = raise(&stack, None).await;
    let late = raise(&stack, Some("PT30M")).await;

    stack.advance(Span::minutes(59));
    assert_eq!(stack.sweep().time_out_overdue().await.unwrap(), 0);
    stack.advance(Span::minutes(1) + Span::seconds(1));
    assert_eq!(stack.sweep().time_out_overdue().await.unwrap(), 1);

    let timed_out = stack.invocation(&early).await;
    assert_eq!(timed_out.state, InvocationState::TimedOut);
    assert_eq!(timed_out.completed, Some(t0() + Span::seconds(3601)));
    assert!(
        timed_out
            .error
            .unwrap()
            .contains("no answer before the response deadline")
    );
    assert_eq!(
        stack.invocation(&late).await.state,
        InvocationState::Pending
    );
    let events = stack.events.published();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detail_type, COMPLETED_EVENT);
    assert_eq!(events[0].detail_value()["status"], "TIMED_OUT");
    assert_eq!(
        stack.sweep().time_out_overdue().await.unwrap(),
        0,
        "a timed-out invocation is not swept twice"
    );
}

#[tokio::test]
async fn retention_deletes_finished_invocations_past_their_time() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    let id = raise(&stack, None).await;
    stack.advance(Span::hours(1) + Span::seconds(1));
    stack.sweep().time_out_overdue().await.unwrap();
    let retention = Retention::default();

    stack.advance(Span::hours(47));
    assert_eq!(
        purge(&stack.invocations, &*stack.clock, retention)
            .await
            .unwrap(),
        0,
        "a failure is kept 48 h"
    );
    stack.advance(Span::hours(1) + Span::seconds(1));
    assert_eq!(
        purge(&stack.invocations, &*stack.clock, retention)
            .await
            .unwrap(),
        1
    );
    let query = InvocationQuery::parse(&Default::default()).unwrap();
    assert!(
        stack
            .invocations
            .list(&query)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(stack.invocations.all().iter().all(|i| i.id != id));
}

/// A queue that only counts what the sweep asks it to recover: the rule under test is the
/// window (work due more than two leases ago) and the batch, not the queue's own bookkeeping,
/// which the SQS adapter's moto tests cover.
#[derive(Debug, Default)]
struct Recovering {
    /// Each call's `now`, `due_before` and `limit`.
    asked: std::sync::Mutex<Vec<Asked>>,
    fails: bool,
}

type Asked = (DateTime<Utc>, DateTime<Utc>, usize);

#[async_trait::async_trait]
impl DeliveryQueue for Recovering {
    async fn accept(
        &self,
        _: &[Invocation],
        _: DateTime<Utc>,
        _: Option<DateTime<Utc>>,
    ) -> Result<Vec<WorkItem>, Error> {
        unreachable!("the recovery only recovers")
    }
    async fn settle(
        &self,
        _: &str,
        _: &Attempt,
        _: &[InvocationState],
        _: Option<&Transition>,
        _: &NextStep,
    ) -> Result<Option<Invocation>, Error> {
        unreachable!("the recovery only recovers")
    }
    async fn replay(
        &self,
        _: &str,
        _: Option<DateTime<Utc>>,
        _: DateTime<Utc>,
        _: Option<DateTime<Utc>>,
    ) -> Result<WorkItem, Error> {
        unreachable!("the recovery only recovers")
    }
    async fn discard(&self, _: &str) -> Result<(), Error> {
        unreachable!("the recovery only recovers")
    }
    async fn postpone(&self, _: &str, _: DateTime<Utc>) -> Result<(), Error> {
        unreachable!("the recovery only recovers")
    }
    async fn recover_unsent(
        &self,
        now: DateTime<Utc>,
        due_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, Error> {
        self.asked.lock().unwrap().push((now, due_before, limit));
        if self.fails {
            return Err(Error::unavailable(std::io::Error::other(
                "the queue is down",
            )));
        }
        Ok(3)
    }
}

#[tokio::test]
async fn unsent_work_is_recovered_once_it_is_two_leases_old_a_batch_at_a_time() {
    let stack = Stack::new();
    let queue = Recovering::default();

    let recovered = recover_unsent(&queue, stack.clock.as_ref(), StdDuration::from_secs(60))
        .await
        .unwrap();

    assert_eq!(recovered, 3, "what the queue sent again");
    assert_eq!(
        *queue.asked.lock().unwrap(),
        [(t0(), t0() - Span::seconds(120), BATCH)]
    );

    let down = Recovering {
        fails: true,
        ..Recovering::default()
    };
    assert!(matches!(
        recover_unsent(&down, stack.clock.as_ref(), StdDuration::from_secs(60)).await,
        Err(Error::Unavailable(_))
    ));
}
