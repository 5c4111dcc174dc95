//! The status detail's `wait`: how a producer that got a 542 waits for the outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use triggerline::Error;
use triggerline::model::InvocationState;
use triggerline::usecases::InvocationStatuses;
use triggerline::usecases::complete::complete;

use crate::complete::{acknowledged, answer};
use crate::support::{RESPOND, Stack, example_output};

fn statuses(stack: &Stack, max_wait: Duration) -> InvocationStatuses {
    InvocationStatuses::new(
        Arc::new(stack.invocations.clone()),
        Arc::new(stack.watch.clone()),
        max_wait,
    )
}

// A current-thread runtime: the spawned reader runs until it waits on the watch before the
// callback below runs, so a reader that did not wait would see ACKNOWLEDGED.
#[tokio::test(flavor = "current_thread")]
async fn a_waiting_read_answers_as_soon_as_the_invocation_finishes() {
    let stack = Stack::new();
    let (invocation, secret) = acknowledged(&stack).await;
    let reads = statuses(&stack, Duration::from_secs(30));
    let id = invocation.id.clone();
    let started = Instant::now();
    let reader = tokio::spawn(async move { reads.get_waiting(&id, "PT30S").await });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!reader.is_finished(), "the reader waits while it is open");

    complete(
        &stack.completion(),
        &invocation.id,
        answer(&secret, json!({"output": example_output(RESPOND)})),
    )
    .await
    .unwrap();

    let read = reader.await.unwrap().unwrap();
    assert_eq!(read.state, InvocationState::Completed);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_waiting_read_answers_the_current_state_when_the_wait_ends() {
    let stack = Stack::new();
    let (invocation, _) = acknowledged(&stack).await;

    let read = statuses(&stack, Duration::from_secs(1))
        .get_waiting(&invocation.id, "PT0.05S")
        .await
        .unwrap();

    assert_eq!(read.state, InvocationState::Acknowledged);
}

#[tokio::test]
async fn a_finished_invocation_is_answered_without_waiting() {
    let stack = Stack::new();
    let (invocation, secret) = acknowledged(&stack).await;
    complete(
        &stack.completion(),
        &invocation.id,
        answer(&secret, json!({"output": example_output(RESPOND)})),
    )
    .await
    .unwrap();

    // A wait the test would notice: the read must not take it.
    let started = Instant::now();
    let read = statuses(&stack, Duration::from_secs(600))
        .get_waiting(&invocation.id, "PT600S")
        .await
        .unwrap();

    assert_eq!(read.state, InvocationState::Completed);
    assert!(started.elapsed() < Duration::from_secs(600));
}

#[tokio::test]
async fn an_unknown_id_is_a_404_when_the_wait_ends() {
    let stack = Stack::new();

    let read = statuses(&stack, Duration::from_secs(1))
        .get_waiting("no-such-invocation", "PT0.01S")
        .await;

    assert!(matches!(read, Err(Error::NotFound { .. })), "{read:?}");
}

#[tokio::test]
async fn a_wait_longer_than_the_limit_or_not_a_duration_is_refused_naming_wait() {
    let stack = Stack::new();
    let reads = statuses(&stack, Duration::from_secs(25));

    for wait in [
        "PT26S",
        "P1D",
        "P99999999D",
        "PT0S",
        "25",
        "PT-1S",
        "soon",
        "",
    ] {
        let read = reads.get_waiting("any", wait).await;
        match read {
            Err(Error::Invalid { ref field, .. }) if field == "wait" => {}
            other => panic!("{wait:?}: {other:?}"),
        }
    }
    // The limit itself is allowed.
    let at_limit = statuses(&stack, Duration::from_millis(10))
        .get_waiting("any", "PT0.01S")
        .await;
    assert!(
        matches!(at_limit, Err(Error::NotFound { .. })),
        "{at_limit:?}"
    );
}
