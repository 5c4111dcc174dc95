//! Ordering keys: invocations of one subscription with the same `orderingKey` are delivered one
//! at a time, in the order they were accepted; other keys and unordered starts are not held.

use chrono::Duration as Span;
use serde_json::json;
use triggerline::Error;
use triggerline::model::{Invocation, InvocationState};
use triggerline::ports::WorkSource;
use triggerline::usecases::complete::complete;
use triggerline::usecases::intake::Started;
use triggerline::wire::StartInvocation;

use crate::support::{RESPOND, Stack, example_input, example_output, t0};

fn start(key: Option<&str>) -> StartInvocation {
    let mut body = json!({"triggerId": RESPOND, "input": example_input(RESPOND)});
    if let Some(key) = key {
        body["orderingKey"] = json!(key);
    }
    serde_json::from_value(body).unwrap()
}

async fn raise(stack: &Stack, key: Option<&str>) -> Invocation {
    let Started::Queued(mut raised) = stack.intake().start(start(key)).await.unwrap() else {
        panic!("queued");
    };
    raised.remove(0)
}

/// Claims what is due now and delivers it; returns the ids delivered, in claim order.
async fn deliver_due(stack: &Stack) -> Vec<String> {
    let now = t0() + Span::seconds(1);
    let items = stack
        .queue
        .claim_due(now, now + Span::minutes(1), 100)
        .await
        .unwrap();
    let mut delivered = Vec::new();
    for item in items {
        stack.delivery().deliver(&item).await.unwrap();
        delivered.push(item.invocation_id);
    }
    delivered.sort();
    delivered
}

/// Completes `id` as its subscriber would, through the callback with its secret.
async fn complete_through_callback(stack: &Stack, id: &str) {
    complete(
        &stack.completion(),
        id,
        crate::complete::answer(
            &stack.key.callback_secret(id),
            json!({"output": example_output(RESPOND)}),
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn one_key_is_delivered_one_at_a_time_in_order_and_other_keys_are_not_held() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    let first = raise(&stack, Some("order-4711")).await;
    let second = raise(&stack, Some("order-4711")).await;
    let other = raise(&stack, Some("order-4712")).await;
    let free = raise(&stack, None).await;
    assert_eq!(first.ordering_key.as_deref(), Some("order-4711"));
    // Ordered work is not handed to the worker: it is claimed in its turn.
    assert_eq!(stack.signal.handoffs().len(), 1, "only the unordered one");

    let mut expected = vec![first.id.clone(), other.id.clone()];
    expected.sort();
    assert_eq!(deliver_due(&stack).await, expected);
    assert_eq!(
        stack.invocation(&first.id).await.state,
        InvocationState::Acknowledged
    );
    assert_eq!(deliver_due(&stack).await, Vec::<String>::new(), "{free:?}");

    // The first completes through the callback: the second's turn.
    complete_through_callback(&stack, &first.id).await;
    assert_eq!(deliver_due(&stack).await, vec![second.id.clone()]);
    assert_eq!(stack.webhooks.requests().len(), 3);
    // Raised now, a third waits for the second (acknowledged, so still open).
    raise(&stack, Some("order-4711")).await;
    assert_eq!(deliver_due(&stack).await, Vec::<String>::new());
}

#[tokio::test]
async fn an_ordering_key_is_1_to_255_characters_without_control_characters() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    let longest = "k".repeat(255);
    assert_eq!(
        raise(&stack, Some(&longest)).await.ordering_key.as_deref(),
        Some(longest.as_str())
    );
    for bad in [
        String::new(),
        "k".repeat(256),
        "a\nb".to_owned(),
        "\u{0}".to_owned(),
    ] {
        let err = stack.intake().start(start(Some(&bad))).await.unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "orderingKey"),
            "{bad:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_batch_of_one_key_is_delivered_in_the_batchs_order() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    let raised = stack
        .intake()
        .start_batch(triggerline::wire::StartBatch {
            starts: vec![start(Some("k")), start(Some("k")), start(None)],
        })
        .await
        .unwrap();
    let [first, second, free] = [&raised[0][0], &raised[1][0], &raised[2][0]];
    assert_eq!(stack.signal.handoffs().len(), 1, "only the unordered one");
    assert_eq!(stack.signal.handoffs()[0].invocation.id, free.id);

    assert_eq!(deliver_due(&stack).await, vec![first.id.clone()]);
    complete_through_callback(&stack, &first.id).await;
    assert_eq!(deliver_due(&stack).await, vec![second.id.clone()]);
}
