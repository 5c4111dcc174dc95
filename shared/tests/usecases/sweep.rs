//! The deadline sweep and retention.

use chrono::Duration as Span;
use serde_json::json;
use triggerline::model::InvocationState;
use triggerline::ports::InvocationScans;
use triggerline::query::InvocationQuery;
use triggerline::usecases::intake::Started;
use triggerline::usecases::notify::COMPLETED_EVENT;
use triggerline::usecases::sweep::{Retention, purge};
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
    assert_eq!(events[0].detail["status"], "TIMED_OUT");
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
