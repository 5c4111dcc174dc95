//! Heartbeats: an acknowledged invocation of a subscription with `heartbeatTimeout` lives on
//! only while its subscriber says so.

use chrono::Duration as Span;
use serde_json::json;
use triggerline::Error;
use triggerline::model::{Invocation, InvocationState};
use triggerline::usecases::complete::complete;
use triggerline::usecases::heartbeat::heartbeat;
use triggerline::usecases::intake::Started;
use triggerline::wire::{CompleteInvocation, HeartbeatRequest, StartInvocation};

use crate::support::{RESPOND, Stack, example_input, example_output, t0};

/// An ASYNC subscription of the REQUEST_RESPONSE trigger with `heartbeatTimeout` PT30S and a
/// deadline of an hour; its invocation delivered and acknowledged at t0, with its secret.
async fn acknowledged(stack: &Stack) -> (Invocation, String) {
    stack
        .subscribe(json!({
            "name": "async with heartbeats",
            "triggerId": RESPOND,
            "type": "HTTP",
            "httpConfig": {"url": "https://hooks.example.com/triggerline",
                           "httpDispatchMode": "ASYNC", "httpAuthenticationType": "NO_AUTH"},
            "responseDeadline": "PT1H",
            "heartbeatTimeout": "PT30S",
        }))
        .await;
    let request: StartInvocation =
        serde_json::from_value(json!({"triggerId": RESPOND, "input": example_input(RESPOND)}))
            .unwrap();
    let Started::Queued(raised) = stack.intake().start(request).await.unwrap() else {
        panic!("queued");
    };
    let item = stack.queue.queued()[0].item.clone();
    stack.delivery().deliver(&item).await.unwrap();
    let invocation = stack.invocation(&raised[0].id).await;
    assert_eq!(invocation.state, InvocationState::Acknowledged);
    let secret = stack.key.callback_secret(&invocation.id);
    (invocation, secret)
}

fn beat(secret: &str) -> HeartbeatRequest {
    serde_json::from_value(json!({"secret": secret})).unwrap()
}

#[tokio::test]
async fn the_acknowledgement_starts_the_timer_with_the_timeout_copied_from_the_subscription() {
    let stack = Stack::new();

    let (invocation, _) = acknowledged(&stack).await;

    let timer = invocation.heartbeat.unwrap();
    assert_eq!(timer.timeout.as_str(), "PT30S");
    assert_eq!(timer.last, None);
    assert_eq!(timer.due, Some(t0() + Span::seconds(30)));
}

#[tokio::test]
async fn a_heartbeat_moves_the_due_time_and_keeps_the_invocation_alive() {
    let stack = Stack::new();
    let (invocation, secret) = acknowledged(&stack).await;
    stack.advance(Span::seconds(20));

    let answer = heartbeat(&stack.completion(), &invocation.id, beat(&secret))
        .await
        .unwrap();

    assert_eq!(answer.heartbeat_due, t0() + Span::seconds(50));
    assert_eq!(answer.deadline, invocation.deadline);
    let stored = stack.invocation(&invocation.id).await;
    let timer = stored.heartbeat.clone().unwrap();
    assert_eq!(timer.last, Some(t0() + Span::seconds(20)));
    assert_eq!(timer.due, Some(t0() + Span::seconds(50)));

    stack.advance(Span::seconds(20));
    assert_eq!(stack.sweep().time_out_overdue().await.unwrap(), 0);
    assert_eq!(
        stack.invocation(&invocation.id).await.state,
        InvocationState::Acknowledged
    );
}

#[tokio::test]
async fn a_missed_heartbeat_times_the_invocation_out_long_before_its_deadline() {
    let stack = Stack::new();
    let (invocation, secret) = acknowledged(&stack).await;
    stack.advance(Span::seconds(31));

    assert_eq!(stack.sweep().time_out_overdue().await.unwrap(), 1);

    let stored = stack.invocation(&invocation.id).await;
    assert_eq!(stored.state, InvocationState::TimedOut);
    assert_eq!(stored.error.as_deref(), Some("no heartbeat for PT30S"));
    assert!(stored.completed.unwrap() < invocation.deadline.unwrap());
    match heartbeat(&stack.completion(), &invocation.id, beat(&secret)).await {
        Err(Error::NotOpen { status, .. }) => assert_eq!(status, InvocationState::TimedOut),
        other => panic!("a heartbeat after the end: {other:?}"),
    }
}

#[tokio::test]
async fn a_heartbeat_or_completion_after_the_missed_one_is_refused_before_the_sweep_runs() {
    let stack = Stack::new();
    let (invocation, secret) = acknowledged(&stack).await;
    stack.advance(Span::seconds(30));

    let late = heartbeat(&stack.completion(), &invocation.id, beat(&secret)).await;
    let completion: CompleteInvocation =
        serde_json::from_value(json!({"secret": secret, "output": example_output(RESPOND)}))
            .unwrap();
    let late_completion = complete(&stack.completion(), &invocation.id, completion).await;

    assert!(
        matches!(late, Err(Error::DeadlinePassed { .. })),
        "{late:?}"
    );
    assert!(
        matches!(late_completion, Err(Error::DeadlinePassed { .. })),
        "{late_completion:?}"
    );
}

#[tokio::test]
async fn heartbeats_never_move_the_due_time_past_the_response_deadline() {
    let stack = Stack::new();
    let (invocation, secret) = acknowledged(&stack).await;
    let deadline = invocation.deadline.unwrap();
    for _ in 0..200 {
        stack.advance(Span::seconds(29));
        if triggerline::time::Clock::now(&*stack.clock) >= deadline {
            break;
        }
        heartbeat(&stack.completion(), &invocation.id, beat(&secret))
            .await
            .unwrap();
    }

    let timer = stack.invocation(&invocation.id).await.heartbeat.unwrap();
    assert_eq!(timer.due, Some(deadline));
    assert_eq!(stack.sweep().time_out_overdue().await.unwrap(), 1);
    let stored = stack.invocation(&invocation.id).await;
    assert!(
        stored
            .error
            .unwrap()
            .starts_with("no answer before the response deadline"),
        "the deadline, not a heartbeat, ended it"
    );
}

#[tokio::test]
async fn a_heartbeat_after_the_completion_is_refused() {
    let stack = Stack::new();
    let (invocation, secret) = acknowledged(&stack).await;
    let completion: CompleteInvocation =
        serde_json::from_value(json!({"secret": secret, "output": example_output(RESPOND)}))
            .unwrap();
    complete(&stack.completion(), &invocation.id, completion)
        .await
        .unwrap();

    let after = heartbeat(&stack.completion(), &invocation.id, beat(&secret)).await;

    match after {
        Err(Error::NotOpen { status, .. }) => assert_eq!(status, InvocationState::Completed),
        other => panic!("a heartbeat after the completion: {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_secret_or_unknown_id_is_unauthenticated_and_changes_nothing() {
    let stack = Stack::new();
    let (invocation, _) = acknowledged(&stack).await;

    let wrong = heartbeat(&stack.completion(), &invocation.id, beat("not-the-secret")).await;
    let unknown = heartbeat(&stack.completion(), "no-such-id", beat("whatever")).await;

    assert!(matches!(wrong, Err(Error::Unauthenticated)), "{wrong:?}");
    assert!(
        matches!(unknown, Err(Error::Unauthenticated)),
        "{unknown:?}"
    );
    assert_eq!(stack.invocation(&invocation.id).await, invocation);
}

#[tokio::test]
async fn an_invocation_without_a_heartbeat_timeout_refuses_heartbeats_naming_the_id() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    let request: StartInvocation =
        serde_json::from_value(json!({"triggerId": RESPOND, "input": example_input(RESPOND)}))
            .unwrap();
    let Started::Queued(raised) = stack.intake().start(request).await.unwrap() else {
        panic!("queued");
    };
    let secret = stack.key.callback_secret(&raised[0].id);

    let refused = heartbeat(&stack.completion(), &raised[0].id, beat(&secret)).await;

    match refused {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "id"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn editing_the_subscription_leaves_open_invocations_with_their_timeout() {
    let stack = Stack::new();
    let (invocation, _) = acknowledged(&stack).await;
    let subscription = stack.subscriptions.all()[0].clone();
    let patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/heartbeatTimeout", "value": "PT10M"}
    ]))
    .unwrap();
    stack
        .subscription_uses()
        .patch(&subscription.id, patch)
        .await
        .unwrap();
    assert_eq!(
        stack.subscriptions.all()[0]
            .heartbeat_timeout
            .as_ref()
            .map(|t| t.as_str()),
        Some("PT10M")
    );

    let timer = stack.invocation(&invocation.id).await.heartbeat.unwrap();

    assert_eq!(timer.timeout.as_str(), "PT30S");
}
