//! The callback.

use chrono::Duration as Span;
use serde_json::json;
use triggerline::Error;
use triggerline::model::{Invocation, InvocationState};
use triggerline::secrets::hash_secret;
use triggerline::time::format_time;
use triggerline::usecases::complete::complete;
use triggerline::usecases::intake::Started;
use triggerline::usecases::notify::COMPLETED_EVENT;
use triggerline::wire::{CompleteInvocation, StartInvocation, TestInvocation};

use crate::support::{FIRE, RESPOND, Stack, example_input, example_output, t0};

/// A REQUEST_RESPONSE invocation delivered to an ASYNC subscriber, acknowledged, with the
/// secret it was sent.
pub async fn acknowledged(stack: &Stack) -> (Invocation, String) {
    stack.webhook(RESPOND, "ASYNC").await;
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

pub fn answer(secret: &str, body: serde_json::Value) -> CompleteInvocation {
    let mut body = body;
    body["secret"] = json!(secret);
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
async fn the_right_secret_completes_once_and_announces_it() {
    let stack = Stack::new();
    let (invocation, secret) = acknowledged(&stack).await;
    stack.advance(Span::minutes(5));

    complete(
        &stack.completion(),
        &invocation.id,
        answer(&secret, json!({"output": example_output(RESPOND)})),
    )
    .await
    .unwrap();

    let stored = stack.invocation(&invocation.id).await;
    assert_eq!(stored.state, InvocationState::Completed);
    assert_eq!(stored.output, Some(example_output(RESPOND)));
    assert_eq!(stored.completed, Some(t0() + Span::minutes(5)));
    let events = stack.events.published();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detail_type, COMPLETED_EVENT);
    // The detail as the local bus writes it and PutEvents sends it: every field, keys in
    // alphabetical order (the order they had when the detail was built as a serde_json map).
    let detail = json!({
        "completed": format_time(&(t0() + Span::minutes(5))),
        "error": null,
        "invocationId": invocation.id,
        "output": example_output(RESPOND),
        "status": "COMPLETED",
        "subscriptionId": invocation.subscription_id,
        "triggerId": invocation.trigger_id,
    });
    assert_eq!(events[0].detail.get(), detail.to_string());
    assert!(stack.watch.changed_ids().contains(&invocation.id));

    match complete(
        &stack.completion(),
        &invocation.id,
        answer(&secret, json!({"output": example_output(RESPOND)})),
    )
    .await
    {
        Err(Error::NotOpen { status, .. }) => assert_eq!(status, InvocationState::Completed),
        other => panic!("a second completion: {other:?}"),
    }
    assert_eq!(stack.events.published().len(), 1);
}

#[tokio::test]
async fn an_error_fails_the_invocation() {
    let stack = Stack::new();
    let (invocation, secret) = acknowledged(&stack).await;

    complete(
        &stack.completion(),
        &invocation.id,
        answer(&secret, json!({"error": "approver directory down"})),
    )
    .await
    .unwrap();

    let stored = stack.invocation(&invocation.id).await;
    assert_eq!(stored.state, InvocationState::Failed);
    assert_eq!(stored.error.as_deref(), Some("approver directory down"));
    let detail = stack.events.published()[0].detail_value();
    assert_eq!(detail["status"], "FAILED");
    assert_eq!(detail["error"], "approver directory down");
    assert_eq!(detail["output"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_wrong_secret_or_unknown_id_is_unauthenticated_and_changes_nothing() {
    let stack = Stack::new();
    let (invocation, _) = acknowledged(&stack).await;
    let output = json!({"output": example_output(RESPOND)});

    for (id, secret) in [
        (invocation.id.as_str(), "not-the-secret".to_owned()),
        (invocation.id.as_str(), stack.key.callback_secret("another")),
        (
            "0a1b2c3d-0000-4000-8000-000000000000",
            stack.key.callback_secret(&invocation.id),
        ),
    ] {
        match complete(&stack.completion(), id, answer(&secret, output.clone())).await {
            Err(Error::Unauthenticated) => {}
            other => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(
        stack.invocation(&invocation.id).await.state,
        InvocationState::Acknowledged
    );
    assert!(stack.events.published().is_empty());
}

#[tokio::test]
async fn an_output_that_breaks_the_schema_names_the_field_and_changes_nothing() {
    let stack = Stack::new();
    let (invocation, secret) = acknowledged(&stack).await;

    match complete(
        &stack.completion(),
        &invocation.id,
        answer(&secret, json!({"output": {"approved": "maybe"}})),
    )
    .await
    {
        Err(Error::Invalid { field, .. }) => assert!(field.starts_with("output"), "{field}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        stack.invocation(&invocation.id).await.state,
        InvocationState::Acknowledged
    );
}

#[tokio::test]
async fn a_completion_after_the_deadline_is_refused() {
    let stack = Stack::new();
    let (invocation, secret) = acknowledged(&stack).await;
    stack.advance(Span::hours(1));

    match complete(
        &stack.completion(),
        &invocation.id,
        answer(&secret, json!({"output": example_output(RESPOND)})),
    )
    .await
    {
        Err(Error::DeadlinePassed { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        stack.invocation(&invocation.id).await.state,
        InvocationState::Acknowledged,
        "the sweep times it out, not the callback"
    );
}

#[tokio::test]
async fn a_fire_and_forget_invocation_is_not_completed() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    // A test is answered with its secret, so its caller can present the right one.
    let request: TestInvocation = serde_json::from_value(json!({"triggerId": FIRE})).unwrap();
    let tested = stack.intake().test(request).await.unwrap();
    let (invocation, secret) = &tested[0];

    match complete(
        &stack.completion(),
        &invocation.id,
        answer(secret, json!({})),
    )
    .await
    {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "id"),
        other => panic!("{other:?}"),
    }
}

/// FIRE_AND_FORGET and SYNC subscribers are never sent a secret, so their invocations keep no
/// hash of one, and no secret (not even the one the key would derive) completes them.
#[tokio::test]
async fn an_invocation_never_sent_a_secret_refuses_every_secret() {
    for (trigger, mode, sent_a_secret) in [
        (FIRE, "SYNC", false),
        (RESPOND, "SYNC", false),
        (RESPOND, "ASYNC", true),
        (RESPOND, "DYNAMIC", true),
    ] {
        let stack = Stack::new();
        stack.webhook(trigger, mode).await;
        let request: StartInvocation =
            serde_json::from_value(json!({"triggerId": trigger, "input": example_input(trigger)}))
                .unwrap();
        let Started::Queued(raised) = stack.intake().start(request).await.unwrap() else {
            panic!("queued");
        };
        let stored = stack.invocation(&raised[0].id).await;
        let derived = stack.key.callback_secret(&stored.id);
        let result = complete(
            &stack.completion(),
            &stored.id,
            answer(&derived, json!({"output": example_output(RESPOND)})),
        )
        .await;
        if sent_a_secret {
            assert_eq!(stored.secret_hash, hash_secret(&derived), "{mode}");
            assert!(result.is_ok(), "{mode}: {result:?}");
        } else {
            assert_eq!(stored.secret_hash, "", "{trigger} {mode}");
            assert!(
                matches!(result, Err(Error::Unauthenticated)),
                "{mode}: {result:?}"
            );
            let empty = complete(&stack.completion(), &stored.id, answer("", json!({}))).await;
            assert!(matches!(empty, Err(Error::Unauthenticated)), "{empty:?}");
        }
    }
}
