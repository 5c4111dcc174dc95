//! Endpoint health: a 410 disables, consecutive failures open the circuit (held deliveries
//! spend no attempt), a probe closes or reopens it, failing for the whole period disables, and
//! each transition is published.

use chrono::Duration as Span;
use serde_json::json;
use triggerline::health::{Circuit, HEALTH_CHANGED_EVENT};
use triggerline::model::{Invocation, InvocationState, Subscription};
use triggerline::ports::{SubscriptionStore, WorkItem, WorkSource};
use triggerline::usecases::intake::Started;
use triggerline::wire::{StartInvocation, SubscriptionPatchRequest, TestInvocation};

use crate::support::{FIRE, Stack, answered, example_input, t0};

/// Starts FIRE once (queued) and returns its invocation.
async fn raise(stack: &Stack) -> Invocation {
    let request: StartInvocation =
        serde_json::from_value(json!({"triggerId": FIRE, "input": example_input(FIRE)})).unwrap();
    let Started::Queued(mut raised) = stack.intake().start(request).await.unwrap() else {
        panic!("queued");
    };
    raised.remove(0)
}

/// The work item of `id` as queued now.
fn work(stack: &Stack, id: &str) -> WorkItem {
    stack
        .queue
        .queued()
        .into_iter()
        .find(|q| q.item.invocation_id == id)
        .unwrap_or_else(|| panic!("no work for {id}"))
        .item
}

async fn stored(stack: &Stack, id: &str) -> Subscription {
    stack.subscriptions.get(id).await.unwrap().unwrap()
}

/// The transitions published so far, in order.
fn transitions(stack: &Stack) -> Vec<String> {
    stack
        .events
        .published()
        .iter()
        .filter(|e| e.detail_type == HEALTH_CHANGED_EVENT)
        .map(|e| e.detail_value()["transition"].as_str().unwrap().to_owned())
        .collect()
}

async fn enable(stack: &Stack, id: &str) -> Subscription {
    let patch: SubscriptionPatchRequest =
        serde_json::from_value(json!([{"op": "replace", "path": "/enabled", "value": true}]))
            .unwrap();
    stack.subscription_uses().patch(id, patch).await.unwrap()
}

#[tokio::test]
async fn a_410_disables_the_subscription_at_once_and_holds_its_other_work_until_re_enabled() {
    let stack = Stack::new();
    let subscription = stack.webhook(FIRE, "SYNC").await;
    let gone = raise(&stack).await;
    let waiting = raise(&stack).await;
    stack.webhooks.reply(answered(410, json!({})));

    let failed = stack
        .delivery()
        .deliver(&work(&stack, &gone.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failed.state,
        InvocationState::Failed,
        "a 410 is not retried"
    );
    let disabled = stored(&stack, &subscription.id).await;
    assert!(!disabled.enabled);
    let why = disabled.health.disabled.as_ref().unwrap();
    assert_eq!(why.reason, "the receiver answered 410 Gone");
    assert_eq!(why.at, t0());
    assert_eq!(transitions(&stack), ["DISABLED"]);
    let event = &stack.events.published()[0];
    assert_eq!(event.bus, None, "on Triggerline's own bus");
    let detail = event.detail_value();
    assert_eq!(detail["subscriptionId"], subscription.id.as_str());
    assert_eq!(detail["reason"], "the receiver answered 410 Gone");

    // Nothing more is sent: the other invocation's work waits, with no attempt spent.
    let held = stack
        .delivery()
        .deliver(&work(&stack, &waiting.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.state, InvocationState::Pending);
    assert_eq!(stack.webhooks.requests().len(), 1);
    let item = work(&stack, &waiting.id);
    assert_eq!(item.attempts, 0);
    assert_eq!(item.not_before, t0() + Span::minutes(5));
    assert!(stack.invocation(&waiting.id).await.attempts.is_empty());
    // And a new start raises nothing for it.
    let request: StartInvocation =
        serde_json::from_value(json!({"triggerId": FIRE, "input": example_input(FIRE)})).unwrap();
    assert!(matches!(
        stack.intake().start(request).await.unwrap(),
        Started::Queued(none) if none.is_empty()
    ));

    // Enabled again: the reason goes, and the held work is delivered at its next look.
    let enabled = enable(&stack, &subscription.id).await;
    assert!(enabled.enabled);
    assert_eq!(enabled.health.disabled, None);
    assert_eq!(enabled.health.consecutive_failures, 0);
    stack.advance(Span::minutes(5));
    let due = stack
        .queue
        .claim_due(t0() + Span::minutes(5), t0() + Span::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    let delivered = stack.delivery().deliver(&due[0]).await.unwrap().unwrap();
    assert_eq!(delivered.state, InvocationState::Completed);
    assert_eq!(stack.webhooks.requests().len(), 2);
}

#[tokio::test]
async fn consecutive_failures_open_the_circuit_and_held_deliveries_spend_no_attempt() {
    let stack = Stack::new();
    let subscription = stack.webhook(FIRE, "SYNC").await;
    let mut raised = Vec::new();
    for _ in 0..6 {
        raised.push(raise(&stack).await);
    }
    for invocation in &raised[..5] {
        stack.webhooks.reply(answered(503, json!({})));
        let settled = stack
            .delivery()
            .deliver(&work(&stack, &invocation.id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(settled.state, InvocationState::Pending, "retried later");
    }
    let open = stored(&stack, &subscription.id).await;
    assert_eq!(open.health.circuit, Circuit::Open);
    assert_eq!(open.health.consecutive_failures, 5);
    assert_eq!(open.health.open_until, Some(t0() + Span::seconds(30)));
    assert_eq!(transitions(&stack), ["OPENED"]);

    // The sixth is held until the cool-down ends: nothing sent, its attempt count unchanged.
    let sixth = &raised[5].id;
    stack
        .delivery()
        .deliver(&work(&stack, sixth))
        .await
        .unwrap();
    assert_eq!(stack.webhooks.requests().len(), 5);
    let item = work(&stack, sixth);
    assert_eq!(
        (item.attempts, item.not_before),
        (0, t0() + Span::seconds(30))
    );

    // After it, the first delivery is the probe; its success closes the circuit.
    stack.advance(Span::seconds(30));
    let probe = stack
        .delivery()
        .deliver(&work(&stack, sixth))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(probe.state, InvocationState::Completed);
    let closed = stored(&stack, &subscription.id).await;
    assert_eq!(closed.health.circuit, Circuit::Closed);
    assert_eq!(closed.health.consecutive_failures, 0);
    assert_eq!(closed.health.changed, Some(t0() + Span::seconds(30)));
    assert_eq!(transitions(&stack), ["OPENED", "CLOSED"]);
}

#[tokio::test]
async fn a_failed_probe_reopens_the_circuit_for_twice_as_long() {
    let stack = Stack::new();
    let subscription = stack.webhook(FIRE, "SYNC").await;
    let mut raised = Vec::new();
    for _ in 0..6 {
        raised.push(raise(&stack).await);
    }
    for invocation in &raised[..5] {
        stack.webhooks.reply(answered(500, json!({})));
        stack
            .delivery()
            .deliver(&work(&stack, &invocation.id))
            .await
            .unwrap();
    }
    stack.advance(Span::seconds(30));
    stack.webhooks.reply(answered(500, json!({})));
    stack
        .delivery()
        .deliver(&work(&stack, &raised[5].id))
        .await
        .unwrap();
    let reopened = stored(&stack, &subscription.id).await;
    assert_eq!(reopened.health.circuit, Circuit::Open);
    assert_eq!(
        reopened.health.open_until,
        Some(t0() + Span::seconds(30) + Span::seconds(60))
    );
    assert_eq!(transitions(&stack), ["OPENED", "OPENED"]);
    assert_eq!(stack.webhooks.requests().len(), 6, "one probe, no more");
}

#[tokio::test]
async fn test_invocations_are_not_held_back_and_a_subscription_failing_for_five_days_is_disabled() {
    let stack = Stack::new();
    let subscription = stack.webhook(FIRE, "SYNC").await;
    let first = raise(&stack).await;
    stack.webhooks.reply(answered(500, json!({})));
    stack
        .delivery()
        .deliver(&work(&stack, &first.id))
        .await
        .unwrap();
    stack.advance(Span::days(5));
    let second = raise(&stack).await;
    stack.webhooks.reply(answered(500, json!({})));
    stack
        .delivery()
        .deliver(&work(&stack, &second.id))
        .await
        .unwrap();
    let disabled = stored(&stack, &subscription.id).await;
    assert!(!disabled.enabled);
    assert!(
        disabled
            .health
            .disabled
            .as_ref()
            .unwrap()
            .reason
            .contains("every attempt failed since 2026-12-03T12:00:00.000Z (for 5 days 0 h)"),
        "{:?}",
        disabled.health
    );
    assert_eq!(transitions(&stack), ["DISABLED"]);

    // A test invocation still goes to a disabled subscription.
    let request: TestInvocation =
        serde_json::from_value(json!({"triggerId": FIRE, "subscriptionIds": [subscription.id]}))
            .unwrap();
    let tested = stack.intake().test(request).await.unwrap();
    let sent = stack.webhooks.requests().len();
    stack
        .delivery()
        .deliver(&work(&stack, &tested[0].0.id))
        .await
        .unwrap();
    assert_eq!(stack.webhooks.requests().len(), sent + 1);

    // FIRE_AND_FORGET work (no deadline) held that long fails with a note, not an attempt.
    let held = stack
        .delivery()
        .deliver(&work(&stack, &first.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.state, InvocationState::Failed);
    assert!(
        held.error
            .as_deref()
            .unwrap()
            .starts_with("not delivered: the subscription is disabled (every attempt failed"),
        "{:?}",
        held.error
    );
    assert_eq!(stack.webhooks.requests().len(), sent + 1, "nothing sent");
}

#[tokio::test]
async fn a_healthy_subscription_costs_no_subscription_write() {
    let stack = Stack::new();
    let subscription = stack.webhook(FIRE, "SYNC").await;
    for _ in 0..3 {
        let invocation = raise(&stack).await;
        stack
            .delivery()
            .deliver(&work(&stack, &invocation.id))
            .await
            .unwrap();
    }
    assert_eq!(stored(&stack, &subscription.id).await.version, 1);
    assert!(transitions(&stack).is_empty());
}
