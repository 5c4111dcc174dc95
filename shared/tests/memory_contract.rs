//! The in-memory adapters (`triggerline::memory`) against the same port contract suites as the
//! SQLite and DynamoDB adapters, so that use-case tests written on them test what production
//! does; and the recording adapters do what their docs say.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use triggerline::contract;
use triggerline::memory::{
    MemoryIdempotency, MemoryInvocations, MemoryQueue, MemorySubscriptions, MemoryWatch,
    RecordingEvents,
};
use triggerline::ports::{Event, EventPublisher, InvocationWatch};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_subscriptions_keep_the_subscription_store_contract() {
    contract::subscription_store(Arc::new(MemorySubscriptions::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_invocations_keep_the_invocation_store_contract() {
    contract::invocation_store(Arc::new(MemoryInvocations::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_idempotency_keeps_the_idempotency_store_contract() {
    let keys = MemoryIdempotency::default();
    contract::idempotency_store(Arc::new(keys.clone())).await;
    assert_eq!(keys.len(), 1, "retention deleted the expired records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_queue_keeps_the_delivery_queue_contract() {
    let invocations = MemoryInvocations::default();
    let queue = MemoryQueue::over(&invocations);
    contract::delivery_queue(Arc::new(queue.clone()), Arc::new(invocations)).await;
    assert_eq!(queue.queued(), [], "every check cleans up its work");
}

#[tokio::test(flavor = "current_thread")]
async fn the_contracts_hold_on_one_shared_storage_and_a_single_thread() {
    let invocations = MemoryInvocations::default();
    contract::subscription_store(Arc::new(MemorySubscriptions::default())).await;
    contract::invocation_store(Arc::new(invocations.clone())).await;
    contract::delivery_queue(
        Arc::new(MemoryQueue::over(&invocations)),
        Arc::new(invocations),
    )
    .await;
}

fn event(n: u32) -> Event {
    Event::new(
        None,
        "triggerline",
        "Trigger Invocation Completed",
        &json!({"n": n}),
    )
}

#[tokio::test]
async fn recording_events_keeps_what_was_published_and_failing_keeps_nothing() {
    let events = RecordingEvents::default();
    let publisher: Arc<dyn EventPublisher> = Arc::new(events.clone());
    publisher.publish(&[event(1), event(2)]).await.unwrap();
    publisher.publish(&[event(3)]).await.unwrap();
    assert_eq!(events.published(), [event(1), event(2), event(3)]);

    let down = RecordingEvents::failing();
    assert!(matches!(
        down.publish(&[event(1)]).await,
        Err(triggerline::Error::Unavailable(_))
    ));
    assert_eq!(down.published(), []);
}

#[tokio::test]
async fn memory_watch_wakes_a_waiter_on_its_ids_and_records_changes() {
    let watch = MemoryWatch::default();
    let mut listener = watch.subscribe();
    let ids = ["inv-1".to_owned()];
    // A change subscribed to before it happened is not missed.
    watch.changed("inv-2");
    watch.changed("inv-1");
    tokio::time::timeout(
        Duration::from_secs(5),
        listener.wait(&ids, Duration::from_secs(60)),
    )
    .await
    .expect("the change to inv-1 wakes the waiter");
    assert_eq!(watch.changed_ids(), ["inv-2", "inv-1"]);
}
