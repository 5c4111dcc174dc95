//! `start`, `test` and `retry`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Span;
use serde_json::json;
use triggerline::Error;
use triggerline::health::Circuit;
use triggerline::limits::{
    MAX_BATCH_INVOCATIONS, MAX_BATCH_STARTS, MAX_BATCH_WRITE_BYTES, MAX_INPUT_BYTES,
    MAX_KEPT_ATTEMPTS,
};
use triggerline::memory::RecordingEvents;
use triggerline::model::{InvocationState, InvocationType};
use triggerline::ports::{InvocationScans, SubscriptionStore};
use triggerline::query::InvocationQuery;
use triggerline::secrets::{hash_secret, secret_matches};
use triggerline::usecases::intake::{Intake, Started, SyncRecord};
use triggerline::wire::{StartBatch, StartInvocation, TestInvocation};

use crate::support::{FIRE, RESPOND, Stack, answered, example_input, example_output, t0};

fn start(trigger_id: &str, extra: serde_json::Value) -> StartInvocation {
    let mut body = json!({"triggerId": trigger_id, "input": example_input(trigger_id)});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(body).unwrap()
}

async fn stored(stack: &Stack) -> usize {
    let query = InvocationQuery::parse(&Default::default()).unwrap();
    stack.invocations.list(&query).await.unwrap().items.len()
}

/// A subscription of FIRE whose filter matches no example input.
fn filtered_to_nobody() -> serde_json::Value {
    json!({
        "name": "Only bots", "triggerId": FIRE, "type": "HTTP",
        "httpConfig": {"url": "https://hooks.example.com/bots", "httpDispatchMode": "SYNC"},
        "filter": "$[?($.identity.name == \"nobody-has-this-name\")]",
    })
}

#[tokio::test]
async fn a_start_raises_one_invocation_per_enabled_matching_subscription() {
    let stack = Stack::new();
    let matching = stack.webhook(FIRE, "SYNC").await;
    let filtered = stack.subscribe(filtered_to_nobody()).await;
    let disabled = stack
        .subscribe(json!({
            "name": "Off", "triggerId": FIRE, "type": "HTTP", "enabled": false,
            "httpConfig": {"url": "https://hooks.example.com/off", "httpDispatchMode": "SYNC"},
        }))
        .await;

    let Started::Queued(raised) = stack.intake().start(start(FIRE, json!({}))).await.unwrap()
    else {
        panic!("an asynchronous start is queued");
    };

    assert_eq!(raised.len(), 1);
    let invocation = &raised[0];
    assert_eq!(invocation.subscription_id, matching.id);
    assert_ne!(invocation.subscription_id, filtered.id);
    assert_ne!(invocation.subscription_id, disabled.id);
    assert_eq!(invocation.state, InvocationState::Pending);
    assert_eq!(invocation.invocation_type, InvocationType::RealTime);
    assert_eq!(invocation.deadline, None, "FIRE_AND_FORGET has no deadline");
    // Durable, due now, leased to the in-process worker, and handed to it.
    assert_eq!(stack.invocation(&invocation.id).await.id, invocation.id);
    let queued = stack.queue.queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].item.not_before, t0());
    assert_eq!(queued[0].leased_until, Some(t0() + Span::seconds(60)));
    let handed = stack.signal.handoffs();
    assert_eq!(handed.len(), 1);
    assert_eq!(handed[0].invocation.id, invocation.id);
    assert_eq!(
        handed[0].subscription.as_ref().map(|s| s.id.clone()),
        Some(matching.id)
    );
    assert!(
        stack.webhooks.requests().is_empty(),
        "the worker sends, not the request"
    );
}

#[tokio::test]
async fn a_delayed_start_is_queued_for_later_and_not_handed_off() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;

    stack
        .intake()
        .start(start(FIRE, json!({"delay": "PT10M"})))
        .await
        .unwrap();

    let queued = stack.queue.queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].item.not_before, t0() + Span::minutes(10));
    assert_eq!(queued[0].leased_until, None);
    assert!(stack.signal.handoffs().is_empty());
}

#[tokio::test]
async fn a_start_out_of_bounds_names_its_field_and_writes_nothing() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let micros = t0().timestamp_millis() * 1000;
    let seconds_ahead = (t0() + Span::hours(1)).timestamp();
    for (extra, field) in [
        (json!({"timestamp": micros}), "timestamp"),
        (json!({"timestamp": seconds_ahead}), "timestamp"),
        (json!({"delay": "P400D"}), "delay"),
        (json!({"delay": "soon"}), "delay"),
        (json!({"delay": "PT1M", "timestamp": 0}), "delay"),
    ] {
        match stack.intake().start(start(FIRE, extra.clone())).await {
            Err(Error::Invalid { field: named, .. }) => assert_eq!(named, field, "{extra}"),
            other => panic!("{extra} gave {other:?}"),
        }
    }
    let unknown: StartInvocation =
        serde_json::from_value(json!({"triggerId": "idn:nope", "input": {}})).unwrap();
    assert!(stack.intake().start(unknown).await.is_err());
    assert_eq!(stored(&stack).await, 0);
    assert!(stack.queue.queued().is_empty());
}

#[tokio::test]
async fn a_timestamp_in_the_past_means_now() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let an_hour_ago = (t0() - Span::hours(1)).timestamp_millis();

    stack
        .intake()
        .start(start(FIRE, json!({"timestamp": an_hour_ago})))
        .await
        .unwrap();

    assert_eq!(stack.queue.queued()[0].item.not_before, t0());
}

#[tokio::test]
async fn a_timestamp_of_zero_or_in_past_seconds_means_now() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    // Only a seconds value that is in the future is refused (it was meant for later).
    for past in [0, -1, (t0() - Span::hours(1)).timestamp(), i64::MIN] {
        stack
            .intake()
            .start(start(FIRE, json!({"timestamp": past})))
            .await
            .unwrap();
    }
    assert!(
        stack
            .queue
            .queued()
            .iter()
            .all(|q| q.item.not_before == t0())
    );
}

#[tokio::test]
async fn a_zero_delay_means_now_and_is_handed_off() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;

    stack
        .intake()
        .start(start(FIRE, json!({"delay": "PT0S"})))
        .await
        .unwrap();

    assert_eq!(stack.queue.queued()[0].item.not_before, t0());
    assert_eq!(stack.signal.handoffs().len(), 1, "due now: handed off");
}

#[tokio::test]
async fn a_synchronous_start_with_room_to_deliver_answers_with_the_output() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "SYNC").await;
    stack.webhooks.reply(answered(200, example_output(RESPOND)));

    let started = stack
        .intake()
        .start(start(RESPOND, json!({"isSynchronous": true})))
        .await
        .unwrap();

    let Started::Finished(finished) = started else {
        panic!("answered within the wait limit: {started:?}");
    };
    assert_eq!(finished[0].state, InvocationState::Completed);
    assert_eq!(finished[0].output, Some(example_output(RESPOND)));
    assert_eq!(
        stack.webhooks.requests().len(),
        1,
        "delivered from the request"
    );
    assert!(
        stack.signal.handoffs().is_empty(),
        "not also handed to the worker"
    );
    let stored = stack.invocation(&finished[0].id).await;
    assert_eq!(stored.state, InvocationState::Completed);
    assert_eq!(stored.attempts.len(), 1);
    assert!(stack.queue.queued().is_empty(), "its work is done");
}

#[tokio::test]
async fn with_outcome_a_synchronous_start_writes_once_after_delivering() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "SYNC").await;
    stack.webhooks.reply(answered(200, example_output(RESPOND)));
    let intake = Intake {
        sync_record: SyncRecord::WithOutcome,
        signal: None,
        ..stack.intake()
    };

    let Started::Finished(finished) = intake
        .start(start(RESPOND, json!({"isSynchronous": true})))
        .await
        .unwrap()
    else {
        panic!("answered in time");
    };

    let stored = stack.invocation(&finished[0].id).await;
    assert_eq!(stored.state, InvocationState::Completed);
    assert_eq!(stored.attempts.len(), 1);
    assert!(stack.queue.queued().is_empty(), "no work was ever queued");
    assert!(
        stack.events.published().is_empty(),
        "the producer holds the answer; no completion event unless configured"
    );
}

/// Gives every invocation the same id, so that a second accept clashes with the first.
#[derive(Debug)]
struct SameId(String);

impl triggerline::time::IdGenerator for SameId {
    fn id(&self) -> String {
        self.0.clone()
    }

    fn secret(&self, bytes: usize) -> String {
        "s".repeat(bytes)
    }
}

/// The local stack's intake: the accept commits while the subscriber answers.
fn during_delivery(stack: &Stack) -> Intake {
    Intake {
        sync_record: SyncRecord::DuringDelivery,
        ..stack.intake()
    }
}

#[tokio::test]
async fn during_delivery_a_synchronous_start_answers_the_outcome_and_stores_it() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "SYNC").await;
    stack.webhooks.reply(answered(200, example_output(RESPOND)));

    let Started::Finished(finished) = during_delivery(&stack)
        .start(start(RESPOND, json!({"isSynchronous": true})))
        .await
        .unwrap()
    else {
        panic!("answered in time");
    };

    assert_eq!(finished[0].state, InvocationState::Completed);
    assert_eq!(finished[0].output, Some(example_output(RESPOND)));
    assert_eq!(stack.webhooks.requests().len(), 1, "delivered once");
    assert!(stack.signal.handoffs().is_empty(), "not by the worker");
    let stored = stack.invocation(&finished[0].id).await;
    assert_eq!(stored, finished[0], "stored as answered");
    assert_eq!(stored.attempts.len(), 1);
    assert!(stack.queue.queued().is_empty(), "its work is done");
    assert!(
        stack.events.published().is_empty(),
        "the producer holds the answer; no completion event unless configured"
    );
}

/// A webhook client that notes, as each request goes out, what work the queue holds.
#[derive(Debug)]
struct QueueAtPost {
    queue: triggerline::memory::MemoryQueue,
    seen: std::sync::Mutex<Vec<Vec<triggerline::memory::Queued>>>,
}

#[async_trait::async_trait]
impl triggerline::ports::WebhookClient for QueueAtPost {
    async fn post(&self, _: triggerline::ports::WebhookRequest) -> triggerline::delivery::Reply {
        self.seen.lock().unwrap().push(self.queue.queued());
        answered(200, example_output(RESPOND))
    }
}

#[tokio::test]
async fn during_delivery_the_accept_is_written_leased_before_the_answer_arrives() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "SYNC").await;
    let client = Arc::new(QueueAtPost {
        queue: stack.queue.clone(),
        seen: Default::default(),
    });
    let intake = Intake {
        delivery: triggerline::usecases::delivery::Delivery {
            client: client.clone(),
            ..stack.delivery()
        },
        ..during_delivery(&stack)
    };

    intake
        .start(start(RESPOND, json!({"isSynchronous": true})))
        .await
        .unwrap();

    let seen = client.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].len(),
        1,
        "accepted while the request was out: {seen:?}"
    );
    assert!(
        seen[0][0].leased_until.is_some(),
        "leased to the request, so no worker takes it: {seen:?}"
    );
}

#[tokio::test]
async fn during_delivery_a_refusal_is_answered_and_stored_as_failed_without_a_retry() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "SYNC").await;
    stack.webhooks.reply(answered(503, json!({})));

    let Started::Finished(finished) = during_delivery(&stack)
        .start(start(RESPOND, json!({"isSynchronous": true})))
        .await
        .unwrap()
    else {
        panic!("a SYNC subscriber's refusal is final");
    };

    assert_eq!(finished[0].state, InvocationState::Failed);
    assert_eq!(stack.invocation(&finished[0].id).await, finished[0]);
    assert!(stack.queue.queued().is_empty(), "no retry is queued");
    assert_eq!(stack.webhooks.requests().len(), 1);
}

#[tokio::test]
async fn during_delivery_a_start_that_cannot_be_accepted_fails_though_delivered() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "SYNC").await;
    let intake = during_delivery(&stack);
    let first = intake
        .start(start(RESPOND, json!({"isSynchronous": true})))
        .await
        .unwrap();
    let Started::Finished(first) = first else {
        panic!("answered");
    };
    // The same id again: the accept fails, the attempt still went out.
    let intake = Intake {
        ids: Arc::new(SameId(first[0].id.clone())),
        ..intake
    };

    let again = intake
        .start(start(RESPOND, json!({"isSynchronous": true})))
        .await;

    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(stack.webhooks.requests().len(), 2);
    assert_eq!(stack.invocation(&first[0].id).await, first[0], "unchanged");
}

async fn bus_subscription(stack: &Stack, trigger_id: &str) {
    stack
        .subscribe(json!({
            "name": "To the bus", "triggerId": trigger_id, "type": "EVENTBRIDGE",
            "eventBridgeConfig": {"awsAccount": "123456789012", "awsRegion": "us-east-1"},
        }))
        .await;
}

/// The Lambda intake: no in-process worker, events put from the request.
fn lambda_intake(stack: &Stack) -> Intake {
    Intake {
        signal: None,
        sync_record: SyncRecord::WithOutcome,
        events_inline: true,
        ..stack.intake()
    }
}

#[tokio::test]
async fn with_events_inline_a_start_to_a_bus_puts_its_event_before_answering() {
    let stack = Stack::new();
    bus_subscription(&stack, RESPOND).await;

    let Started::Queued(raised) = lambda_intake(&stack)
        .start(start(RESPOND, json!({})))
        .await
        .unwrap()
    else {
        panic!("answered as queued");
    };

    assert_eq!(
        raised[0].state,
        InvocationState::Pending,
        "the answer shows the accept"
    );
    assert_eq!(
        stack.events.published().len(),
        1,
        "put by the request itself"
    );
    let stored = stack.invocation(&raised[0].id).await;
    assert_eq!(stored.state, InvocationState::Acknowledged);
    assert_eq!(stored.attempts.len(), 1);
    assert!(
        stack.queue.queued().is_empty(),
        "no work left for a consumer"
    );
    assert!(stack.signal.handoffs().is_empty());
}

#[tokio::test]
async fn with_events_inline_a_failed_put_is_recorded_and_queued_for_its_retry() {
    let stack = Stack {
        events: RecordingEvents::failing(),
        ..Stack::new()
    };
    bus_subscription(&stack, FIRE).await;

    let Started::Queued(raised) = lambda_intake(&stack)
        .start(start(FIRE, json!({})))
        .await
        .unwrap()
    else {
        panic!("answered as queued");
    };

    let stored = stack.invocation(&raised[0].id).await;
    assert_eq!(stored.state, InvocationState::Pending);
    assert_eq!(stored.attempts.len(), 1, "the failed put is an attempt");
    let queued = stack.queue.queued();
    assert_eq!(queued.len(), 1, "its retry waits in the queue");
    assert!(queued[0].item.not_before > t0(), "{queued:?}");
    assert_eq!(queued[0].leased_until, None);
}

#[tokio::test]
async fn events_inline_leave_webhooks_mixed_fan_outs_and_later_starts_to_the_queue() {
    let stack = Stack::new();
    bus_subscription(&stack, FIRE).await;
    stack.webhook(FIRE, "SYNC").await;
    bus_subscription(&stack, RESPOND).await;
    let intake = lambda_intake(&stack);

    intake.start(start(FIRE, json!({}))).await.unwrap();
    intake
        .start(start(RESPOND, json!({"delay": "PT10M"})))
        .await
        .unwrap();

    assert!(stack.events.published().is_empty(), "nothing put from here");
    assert!(stack.webhooks.requests().is_empty());
    assert_eq!(stack.queue.queued().len(), 3, "each waits for the consumer");
}

/// A delivery the subscription's health holds back is not made from the request: the start
/// queues it (here: hands it to the worker) and waits on its outcome, so the queue holds it
/// until the cool-down ends rather than a lease on this request.
#[tokio::test]
async fn a_synchronous_start_to_a_subscription_held_by_its_health_queues_its_work() {
    let stack = Stack::new();
    let subscription = stack.webhook(RESPOND, "SYNC").await;
    let mut open = subscription.clone();
    open.health.circuit = Circuit::Open;
    open.health.open_until = Some(t0() + Span::seconds(30));
    stack
        .subscriptions
        .replace(&open, subscription.version)
        .await
        .unwrap();
    let intake = stack.intake();

    let waiting = tokio::spawn(async move {
        intake
            .start(start(RESPOND, json!({"isSynchronous": true})))
            .await
    });
    while stack.signal.handoffs().is_empty() {
        assert!(!waiting.is_finished(), "{:?}", waiting.await);
        tokio::task::yield_now().await;
    }

    assert!(stack.webhooks.requests().is_empty(), "nothing sent");
    assert_eq!(stack.signal.handoffs().len(), 1, "the worker has it");
    waiting.abort();
}

#[tokio::test]
async fn a_synchronous_start_with_a_short_wait_limit_leaves_delivery_to_the_worker() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "SYNC").await;
    // Below one attempt plus room: the request only waits, so that its 542 comes at the limit.
    let intake = Intake {
        sync_wait: Duration::ZERO,
        ..stack.intake()
    };

    let started = intake
        .start(start(RESPOND, json!({"isSynchronous": true})))
        .await
        .unwrap();

    let Started::StillRunning { invocations, .. } = started else {
        panic!("nobody answered within a zero wait: {started:?}");
    };
    assert_eq!(invocations[0].state, InvocationState::Pending);
    assert!(stack.webhooks.requests().is_empty());
    assert_eq!(stack.signal.handoffs().len(), 1);
}

#[tokio::test]
async fn a_test_reaches_every_subscription_and_returns_each_callback_secret() {
    let stack = Stack::new();
    let on = stack.webhook(RESPOND, "ASYNC").await;
    let request: TestInvocation = serde_json::from_value(json!({"triggerId": RESPOND})).unwrap();

    let tested = stack.intake().test(request).await.unwrap();

    assert_eq!(tested.len(), 1);
    let (invocation, secret) = &tested[0];
    assert_eq!(invocation.subscription_id, on.id);
    assert_eq!(invocation.invocation_type, InvocationType::Test);
    assert_eq!(
        *invocation.input,
        example_input(RESPOND),
        "the trigger's example"
    );
    assert!(secret_matches(secret, &invocation.secret_hash));
    assert_eq!(invocation.secret_hash, hash_secret(secret));
    assert_eq!(invocation.deadline, Some(t0() + Span::hours(1)));
}

#[tokio::test]
async fn a_test_of_an_unknown_subscription_names_it_and_writes_nothing() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let request: TestInvocation = serde_json::from_value(
        json!({"triggerId": FIRE, "subscriptionIds": ["0a1b2c3d-0000-4000-8000-000000000000"]}),
    )
    .unwrap();

    match stack.intake().test(request).await {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "subscriptionIds"),
        other => panic!("{other:?}"),
    }
    assert_eq!(stored(&stack).await, 0);
}

#[tokio::test]
async fn only_a_failed_invocation_is_retried_with_a_deadline_as_long_as_before() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    let id = queued_id(&stack, RESPOND).await;
    match stack.intake().retry(&id).await {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "id"),
        other => panic!("a PENDING invocation is not retried: {other:?}"),
    }

    // Refused for good (404 is not retried), an hour later.
    stack.advance(Span::hours(2));
    stack.webhooks.reply(answered(404, json!({})));
    let item = stack.queue.queued()[0].item.clone();
    stack.delivery().deliver(&item).await.unwrap();
    assert_eq!(stack.invocation(&id).await.state, InvocationState::Failed);

    let replayed = Arc::new(stack.intake()).retry(&id).await.unwrap();

    assert_eq!(replayed.state, InvocationState::Pending);
    assert_eq!(
        replayed.deadline,
        Some(t0() + Span::hours(3)),
        "an hour from now"
    );
    assert_eq!(stack.invocation(&id).await.state, InvocationState::Pending);
    assert_eq!(stack.signal.handoffs().last().unwrap().invocation.id, id);
    match stack
        .intake()
        .retry("not an id at all but very long".repeat(10).as_str())
        .await
    {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "id"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_retry_that_could_pass_the_attempts_an_invocation_keeps_is_refused() {
    let mut stack = Stack::new();
    stack.max_attempts = 10;
    // Every round fails; the subscriber's circuit must not hold the next one back.
    stack.health.failures_to_open = u32::MAX;
    // A SYNC subscriber of a REQUEST_RESPONSE trigger is never retried within a round.
    stack.webhook(RESPOND, "SYNC").await;
    let id = queued_id(&stack, RESPOND).await;
    let intake = Arc::new(stack.intake());
    // Each round is one attempt: the subscriber refuses, then the invocation is retried. With
    // 10 attempts a round, a retry is taken while 10 more keep it within 50.
    for round in 1..=MAX_KEPT_ATTEMPTS - 9 {
        stack.webhooks.reply(answered(404, json!({})));
        stack
            .delivery()
            .deliver(&queued(&stack, &id).item)
            .await
            .unwrap();
        let failed = stack.invocation(&id).await;
        assert_eq!(failed.state, InvocationState::Failed, "round {round}");
        assert_eq!(failed.attempts.len(), round);
        let handed_off = stack.signal.handoffs().len();
        match intake.retry(&id).await {
            Ok(replayed) => {
                assert!(round + 10 <= MAX_KEPT_ATTEMPTS, "round {round} was retried");
                assert_eq!(replayed.state, InvocationState::Pending);
            }
            Err(Error::Invalid { field, reason }) => {
                assert_eq!(round, MAX_KEPT_ATTEMPTS - 9, "round {round} was refused");
                assert_eq!(field, "id");
                assert!(reason.contains("41 delivery attempts"), "{reason}");
                assert_eq!(stack.invocation(&id).await, failed, "nothing changed");
                assert_eq!(
                    stack.signal.handoffs().len(),
                    handed_off,
                    "nothing handed off"
                );
            }
            Err(other) => panic!("{other:?}"),
        }
    }
}

/// The id of the one invocation a start of `trigger_id` queues.
async fn queued_id(stack: &Stack, trigger_id: &str) -> String {
    match stack.intake().start(start(trigger_id, json!({}))).await {
        Ok(Started::Queued(raised)) if raised.len() == 1 => raised[0].id.clone(),
        other => panic!("one invocation queued: {other:?}"),
    }
}

/// The work queued for invocation `id`.
fn queued(stack: &Stack, id: &str) -> triggerline::memory::Queued {
    stack
        .queue
        .queued()
        .into_iter()
        .find(|q| q.item.invocation_id == id)
        .unwrap()
}

fn batch(starts: Vec<StartInvocation>) -> StartBatch {
    StartBatch { starts }
}

#[tokio::test]
async fn a_batch_raises_each_starts_invocations_in_order_and_hands_them_to_the_worker() {
    let stack = Stack::new();
    let fire = stack.webhook(FIRE, "SYNC").await;
    let respond = stack.webhook(RESPOND, "ASYNC").await;
    let nobody = stack.subscribe(filtered_to_nobody()).await;

    let raised = stack
        .intake()
        .start_batch(batch(vec![
            start(FIRE, json!({})),
            start(RESPOND, json!({})),
            start(FIRE, json!({"delay": "PT10M"})),
        ]))
        .await
        .unwrap();

    let subscriptions: Vec<Vec<&str>> = raised
        .iter()
        .map(|invocations| {
            invocations
                .iter()
                .map(|i| i.subscription_id.as_str())
                .collect()
        })
        .collect();
    assert_eq!(
        subscriptions,
        vec![
            vec![fire.id.as_str()],
            vec![respond.id.as_str()],
            vec![fire.id.as_str()]
        ]
    );
    assert!(
        raised
            .iter()
            .flatten()
            .all(|i| i.subscription_id != nobody.id)
    );
    assert_eq!(
        stored(&stack).await,
        3,
        "every start's invocations are durable"
    );
    // The two due now go to the worker; the delayed one waits in the queue, unleased.
    let handed: Vec<String> = stack
        .signal
        .handoffs()
        .iter()
        .map(|h| h.invocation.id.clone())
        .collect();
    assert_eq!(handed.len(), 2);
    assert!(handed.contains(&raised[0][0].id) && handed.contains(&raised[1][0].id));
    let delayed = queued(&stack, &raised[2][0].id);
    assert_eq!(delayed.item.not_before, t0() + Span::minutes(10));
    assert_eq!(delayed.leased_until, None);
    assert!(
        raised[1][0].deadline.is_some(),
        "a REQUEST_RESPONSE start keeps its deadline in a batch"
    );
}

#[tokio::test]
async fn a_batch_with_one_bad_start_names_it_and_writes_nothing() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let good = || start(FIRE, json!({}));
    let unknown: StartInvocation =
        serde_json::from_value(json!({"triggerId": "idn:nope", "input": {}})).unwrap();
    let huge = start(FIRE, json!({"contentJson": {"x": "y".repeat(200 * 1024)}}));
    let cases = [
        (
            vec![good(), start(FIRE, json!({"delay": "soon"}))],
            "starts[1].delay",
        ),
        (vec![unknown, good()], "starts[0].triggerId"),
        (
            vec![good(), good(), start(FIRE, json!({"isSynchronous": true}))],
            "starts[2].isSynchronous",
        ),
        (
            vec![good(), start(FIRE, json!({"orderingKey": ""}))],
            "starts[1].orderingKey",
        ),
        (vec![], "starts"),
        ((0..=100).map(|_| good()).collect(), "starts"),
    ];
    for (starts, field) in cases {
        match stack.intake().start_batch(batch(starts)).await {
            Err(Error::Invalid { field: named, .. }) => assert_eq!(named, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    match stack.intake().start_batch(batch(vec![good(), huge])).await {
        // Input and content share one limit, named by `input` as for one start.
        Err(Error::TooLarge { field, .. }) => assert_eq!(field, "starts[1].input"),
        other => panic!("an input over the limit gave {other:?}"),
    }
    let wrong_input: StartInvocation =
        serde_json::from_value(json!({"triggerId": FIRE, "input": {"identity": 7}})).unwrap();
    match stack
        .intake()
        .start_batch(batch(vec![good(), wrong_input]))
        .await
    {
        Err(Error::Invalid { field, .. }) => {
            assert!(field.starts_with("starts[1].input"), "{field}")
        }
        other => panic!("an input against the schema gave {other:?}"),
    }
    assert_eq!(stored(&stack).await, 0);
    assert!(stack.queue.queued().is_empty());
    assert!(stack.signal.handoffs().is_empty());
}

#[tokio::test]
async fn a_batch_of_the_most_starts_is_accepted_and_one_that_matches_nothing_raises_nothing() {
    let stack = Stack::new();
    let none = stack
        .intake()
        .start_batch(batch(vec![start(FIRE, json!({}))]))
        .await
        .unwrap();
    assert_eq!(none, vec![Vec::new()]);

    stack.webhook(FIRE, "SYNC").await;
    let starts = (0..MAX_BATCH_STARTS)
        .map(|_| start(FIRE, json!({})))
        .collect();
    let raised = stack.intake().start_batch(batch(starts)).await.unwrap();
    assert_eq!(raised.len(), MAX_BATCH_STARTS);
    assert!(raised.iter().all(|one| one.len() == 1));
    assert_eq!(stack.signal.handoffs().len(), MAX_BATCH_STARTS);
}

#[tokio::test]
async fn a_batch_raises_at_most_its_invocations_and_bytes_and_over_either_nothing() {
    let stack = Stack::new();
    for _ in 0..11 {
        stack.webhook(FIRE, "SYNC").await;
    }
    // 100 starts to 11 subscriptions: 1,100 invocations, over the 1,000 a batch raises.
    let starts = (0..MAX_BATCH_STARTS)
        .map(|_| start(FIRE, json!({})))
        .collect();
    match stack.intake().start_batch(batch(starts)).await {
        Err(Error::Invalid { field, reason }) => {
            assert_eq!(field, "starts");
            assert!(
                reason.contains("1100") && reason.contains("1000"),
                "{reason}"
            );
        }
        other => panic!("1,100 invocations gave {other:?}"),
    }
    assert_eq!(stored(&stack).await, 0);
    assert!(stack.signal.handoffs().is_empty());

    // 90 starts are 990: all raised.
    let starts = (0..90).map(|_| start(FIRE, json!({}))).collect();
    let raised = stack.intake().start_batch(batch(starts)).await.unwrap();
    assert_eq!(raised.iter().map(Vec::len).sum::<usize>(), 990);
    const { assert!(990 <= MAX_BATCH_INVOCATIONS) };

    // Bytes: a start of 100 KiB of content to 11 subscriptions writes 1.1 MB; six of them
    // write 6.6 MB, more than the largest single start (128 KiB to 50 subscriptions) may.
    let stack = Stack::new();
    for _ in 0..11 {
        stack.webhook(FIRE, "SYNC").await;
    }
    let big = || start(FIRE, json!({"contentJson": {"x": "y".repeat(100 * 1024)}}));
    match stack
        .intake()
        .start_batch(batch((0..6).map(|_| big()).collect()))
        .await
    {
        Err(Error::TooLarge {
            field, size, limit, ..
        }) => {
            assert_eq!(field, "starts");
            assert_eq!(limit, MAX_BATCH_WRITE_BYTES);
            assert!(size > 6 * 11 * 100 * 1024, "{size}");
        }
        other => panic!("6.6 MB of fan-out gave {other:?}"),
    }
    assert_eq!(stored(&stack).await, 0);
    // Five are 5.5 MB: raised.
    let raised = stack
        .intake()
        .start_batch(batch((0..5).map(|_| big()).collect()))
        .await
        .unwrap();
    assert_eq!(raised.iter().map(Vec::len).sum::<usize>(), 55);
    const { assert!(55 * 100 * 1024 < MAX_BATCH_WRITE_BYTES && 100 * 1024 < MAX_INPUT_BYTES) };
}

#[tokio::test]
async fn a_batch_writes_consecutive_starts_due_together_up_to_one_starts_largest_fan_out() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    // 60 starts due now: two writes, of 50 (a FIRE_AND_FORGET trigger's most subscriptions,
    // what one start may raise) and of 10, each handed to the worker in one wake.
    let starts = (0..60).map(|_| start(FIRE, json!({}))).collect();
    let raised = stack.intake().start_batch(batch(starts)).await.unwrap();
    assert_eq!(raised.iter().map(Vec::len).sum::<usize>(), 60);
    assert_eq!(stack.signal.wakes(), vec![50, 10]);

    // A delayed start in the middle ends a write and is written on its own, handed to no one.
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let mut starts: Vec<StartInvocation> = (0..6).map(|_| start(FIRE, json!({}))).collect();
    starts[2] = start(FIRE, json!({"delay": "PT1M"}));
    let raised = stack.intake().start_batch(batch(starts)).await.unwrap();
    assert_eq!(stack.signal.wakes(), vec![2, 3]);
    // Every start gets its own invocation back, in the batch's order.
    let handed: Vec<String> = stack
        .signal
        .handoffs()
        .iter()
        .map(|h| h.invocation.id.clone())
        .collect();
    let due_now: Vec<String> = [0, 1, 3, 4, 5]
        .iter()
        .map(|&i| raised[i][0].id.clone())
        .collect();
    assert_eq!(handed, due_now);
    let delayed = queued(&stack, &raised[2][0].id);
    assert_eq!(delayed.item.not_before, t0() + Span::minutes(1));
}
