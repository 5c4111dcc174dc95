//! `start` and `test` with an `Idempotency-Key`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Span;
use serde_json::json;
use triggerline::Error;
use triggerline::idempotency::{HEADER, IdempotencyKey, IdempotencyRecord, Keyed};
use triggerline::model::InvocationState;
use triggerline::ports::{IdempotencyStore, InvocationScans};
use triggerline::query::InvocationQuery;
use triggerline::time::Clock;
use triggerline::usecases::intake::{Intake, Started};
use triggerline::wire::{StartInvocation, TestInvocation};

use crate::support::{FIRE, RESPOND, Stack, answered, example_input, example_output};

fn start(trigger_id: &str, extra: serde_json::Value) -> StartInvocation {
    let mut body = json!({"triggerId": trigger_id, "input": example_input(trigger_id)});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(body).unwrap()
}

fn keyed(scope: &str, key: &str, route: &str, request: &impl serde::Serialize) -> Keyed {
    Keyed::new(
        scope,
        IdempotencyKey::parse(key.as_bytes()).unwrap(),
        route,
        request,
    )
    .unwrap()
}

fn keyed_start(key: &str, request: &StartInvocation) -> Keyed {
    keyed("token", key, "start", request)
}

async fn stored(stack: &Stack) -> usize {
    let query = InvocationQuery::parse(&Default::default()).unwrap();
    stack.invocations.list(&query).await.unwrap().items.len()
}

fn ids(started: &Started) -> Vec<String> {
    match started {
        Started::Queued(i) | Started::Finished(i) => i.iter().map(|i| i.id.clone()).collect(),
        Started::StillRunning { invocations, .. } => {
            invocations.iter().map(|i| i.id.clone()).collect()
        }
    }
}

#[tokio::test]
async fn a_repeat_answers_the_same_invocations_and_raises_nothing() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    stack.webhook(FIRE, "ASYNC").await;
    let intake = stack.intake();
    let request = start(FIRE, json!({}));

    let first = intake
        .start_keyed(&keyed_start("order-1", &request), request.clone())
        .await
        .unwrap();
    let handed = stack.signal.handoffs().len();
    stack.advance(Span::hours(23));
    let again = intake
        .start_keyed(&keyed_start("order-1", &request), request.clone())
        .await
        .unwrap();

    let (Started::Queued(first), Started::Queued(again)) = (&first, &again) else {
        panic!("both queued: {first:?} {again:?}");
    };
    assert_eq!(first.len(), 2);
    assert_eq!(
        first
            .iter()
            .map(|i| (&i.id, &i.subscription_id, &i.subscription_name, i.state))
            .collect::<Vec<_>>(),
        again
            .iter()
            .map(|i| (&i.id, &i.subscription_id, &i.subscription_name, i.state))
            .collect::<Vec<_>>(),
        "the same invocations, as first answered"
    );
    assert_eq!(again[0].created, first[0].created);
    assert_eq!(stored(&stack).await, 2, "nothing new stored");
    assert_eq!(
        stack.signal.handoffs().len(),
        handed,
        "nothing new handed to the worker"
    );
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_naming_the_key() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let intake = stack.intake();
    let request = start(FIRE, json!({}));
    intake
        .start_keyed(&keyed_start("order-2", &request), request.clone())
        .await
        .unwrap();

    let other = start(FIRE, json!({"contentJson": {"n": 2}}));
    let err = intake
        .start_keyed(&keyed_start("order-2", &other), other.clone())
        .await
        .unwrap_err();

    assert!(
        matches!(&err, Error::IdempotencyKeyReused { key, in_progress: false } if key == "order-2"),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("Idempotency-Key: `order-2`"),
        "{err}"
    );
    assert_eq!(stored(&stack).await, 1);
}

#[tokio::test]
async fn field_order_and_spacing_do_not_make_a_different_body() {
    let a: StartInvocation =
        serde_json::from_str(r#"{"triggerId":"t","input":{"a":1,"b":2}}"#).unwrap();
    let b: StartInvocation =
        serde_json::from_str(r#"{ "input": {"b": 2, "a": 1}, "triggerId": "t" }"#).unwrap();
    assert_eq!(
        keyed_start("k", &a).request_hash,
        keyed_start("k", &b).request_hash
    );
    assert_ne!(
        keyed("token", "k", "start", &a).request_hash,
        keyed("token", "k", "test", &a).request_hash,
        "the operation is part of what the key is bound to"
    );
}

#[tokio::test]
async fn keys_are_per_caller() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let intake = stack.intake();
    let request = start(FIRE, json!({}));
    let one = intake
        .start_keyed(&keyed("tenant-a", "k", "start", &request), request.clone())
        .await
        .unwrap();
    let two = intake
        .start_keyed(&keyed("tenant-b", "k", "start", &request), request.clone())
        .await
        .unwrap();
    assert_ne!(ids(&one), ids(&two));
    assert_eq!(stored(&stack).await, 2);
}

#[tokio::test]
async fn after_24_hours_the_key_is_new_again() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let intake = stack.intake();
    let request = start(FIRE, json!({}));
    let first = intake
        .start_keyed(&keyed_start("k", &request), request.clone())
        .await
        .unwrap();
    stack.advance(Span::hours(24));
    let second = intake
        .start_keyed(&keyed_start("k", &request), request.clone())
        .await
        .unwrap();
    assert_ne!(ids(&first), ids(&second));
    assert_eq!(stored(&stack).await, 2);
}

#[tokio::test]
async fn a_synchronous_repeat_answers_the_same_outcome_without_delivering_again() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "SYNC").await;
    stack.webhooks.reply(answered(200, example_output(RESPOND)));
    let intake = stack.intake();
    let request = start(RESPOND, json!({"isSynchronous": true}));

    let first = intake
        .start_keyed(&keyed_start("sync", &request), request.clone())
        .await
        .unwrap();
    let again = intake
        .start_keyed(&keyed_start("sync", &request), request.clone())
        .await
        .unwrap();

    let (Started::Finished(first), Started::Finished(again)) = (&first, &again) else {
        panic!("both finished: {first:?} {again:?}");
    };
    assert_eq!(first[0].id, again[0].id);
    assert_eq!(again[0].state, InvocationState::Completed);
    assert_eq!(again[0].output, first[0].output);
    assert_eq!(stack.webhooks.requests().len(), 1, "delivered once");
}

#[tokio::test]
async fn a_synchronous_repeat_still_running_waits_again_and_answers_542_with_the_same_ids() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    let intake = Intake {
        sync_wait: Duration::ZERO,
        ..stack.intake()
    };
    let request = start(RESPOND, json!({"isSynchronous": true}));

    let first = intake
        .start_keyed(&keyed_start("slow", &request), request.clone())
        .await
        .unwrap();
    let again = intake
        .start_keyed(&keyed_start("slow", &request), request.clone())
        .await
        .unwrap();

    let (
        Started::StillRunning {
            submitted: s1,
            invocations: first,
        },
        Started::StillRunning {
            submitted: s2,
            invocations: again,
        },
    ) = (&first, &again)
    else {
        panic!("both still running: {first:?} {again:?}");
    };
    assert_eq!(s1, s2, "submitted when the first was");
    assert_eq!(first[0].id, again[0].id);
    assert_eq!(stored(&stack).await, 1);
}

/// The first request claimed `k` and has not accepted anything yet; returns when it claimed.
async fn held_by_a_first_request(stack: &Stack, k: &Keyed) -> chrono::DateTime<chrono::Utc> {
    let now = stack.clock.now();
    let claimed = stack
        .keys
        .claim(
            &IdempotencyRecord {
                key: k.record_key(),
                request_hash: k.request_hash.clone(),
                created: now,
                expires: now + Span::hours(24),
                raised: None,
            },
            now,
        )
        .await
        .unwrap();
    assert!(claimed.is_none());
    now
}

#[tokio::test(start_paused = true)]
async fn a_repeat_while_the_first_is_being_accepted_waits_for_its_answer() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let request = start(FIRE, json!({}));
    let k = keyed_start("busy", &request);
    let created = held_by_a_first_request(&stack, &k).await;
    let intake = stack.intake();
    let repeat = {
        let (intake, k, request) = (intake.clone(), k.clone(), request.clone());
        tokio::spawn(async move { intake.start_keyed(&k, request).await })
    };
    // The first request accepts its invocation and records it, a second later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first = triggerline::idempotency::Raised {
        id: "0190f7b5-7c2f-7d2e-8a4b-2c1d3e4f5a6b".to_owned(),
        subscription_id: "s".to_owned(),
        subscription_name: "n".to_owned(),
    };
    stack
        .keys
        .record_raised(&k.record_key(), created, std::slice::from_ref(&first))
        .await
        .unwrap();

    let answered = repeat.await.unwrap().unwrap();

    assert_eq!(ids(&answered), vec![first.id]);
    assert_eq!(stored(&stack).await, 0, "the repeat raised nothing");
}

#[tokio::test(start_paused = true)]
async fn a_repeat_whose_first_fails_meanwhile_is_the_first() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let request = start(FIRE, json!({}));
    let k = keyed_start("retried", &request);
    let created = held_by_a_first_request(&stack, &k).await;
    let repeat = {
        let (intake, k, request) = (stack.intake(), k.clone(), request.clone());
        tokio::spawn(async move { intake.start_keyed(&k, request).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.keys.release(&k.record_key(), created).await.unwrap();

    let answered = repeat.await.unwrap().unwrap();

    assert_eq!(ids(&answered).len(), 1);
    assert_eq!(stored(&stack).await, 1, "raised by the repeat");
}

#[tokio::test(start_paused = true)]
async fn a_key_held_past_the_wait_limit_is_refused_as_in_progress() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let request = start(FIRE, json!({}));
    let k = keyed_start("busy", &request);
    held_by_a_first_request(&stack, &k).await;
    let intake = stack.intake();
    let began = tokio::time::Instant::now();

    let err = intake.start_keyed(&k, request.clone()).await.unwrap_err();

    assert!(began.elapsed() >= intake.sync_wait, "{:?}", began.elapsed());

    assert!(
        matches!(
            err,
            Error::IdempotencyKeyReused {
                in_progress: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(stored(&stack).await, 0, "no second set");
}

#[tokio::test]
async fn concurrent_requests_with_one_key_raise_one_set() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let intake = stack.intake();
    let request = start(FIRE, json!({}));
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (intake, request) = (intake.clone(), request.clone());
        racers.spawn(async move {
            intake
                .start_keyed(&keyed_start("race", &request), request)
                .await
        });
    }
    let results = racers.join_all().await;
    // The ones that found the key held waited for the first's answer.
    let answered: Vec<Vec<String>> = results.iter().map(|r| ids(r.as_ref().unwrap())).collect();
    assert!(answered.iter().all(|a| a == &answered[0]), "{answered:?}");
    assert_eq!(stored(&stack).await, 1, "one set");
}

#[tokio::test]
async fn a_failed_request_gives_its_key_back() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let intake = stack.intake();
    let bad = start(FIRE, json!({"delay": "P999D"}));
    let err = intake
        .start_keyed(&keyed_start("retry-me", &bad), bad.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");

    let good = start(FIRE, json!({}));
    let started = intake
        .start_keyed(&keyed_start("retry-me", &good), good.clone())
        .await
        .unwrap();
    assert_eq!(
        ids(&started).len(),
        1,
        "the corrected request is not a conflict"
    );
}

#[tokio::test]
async fn a_start_that_matched_nothing_is_repeated_as_nothing() {
    let stack = Stack::new();
    let intake = stack.intake();
    let request = start(FIRE, json!({}));
    let first = intake
        .start_keyed(&keyed_start("none", &request), request.clone())
        .await
        .unwrap();
    stack.webhook(FIRE, "SYNC").await;
    let again = intake
        .start_keyed(&keyed_start("none", &request), request.clone())
        .await
        .unwrap();
    assert!(matches!(&first, Started::Queued(i) if i.is_empty()));
    assert!(
        matches!(&again, Started::Queued(i) if i.is_empty()),
        "{again:?}"
    );
    assert_eq!(stored(&stack).await, 0);
}

#[tokio::test]
async fn a_repeated_test_answers_the_same_invocations_and_secrets() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    let intake = stack.intake();
    let request: TestInvocation = serde_json::from_value(json!({"triggerId": RESPOND})).unwrap();
    let k = keyed("token", "test-1", "test", &request);

    let first = intake.test_keyed(&k, request.clone()).await.unwrap();
    let again = intake.test_keyed(&k, request.clone()).await.unwrap();

    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0.id, again[0].0.id);
    assert_eq!(first[0].1, again[0].1, "the same callback secret");
    assert_eq!(again[0].0.content_json, first[0].0.content_json);
    assert_eq!(stored(&stack).await, 1);
}

#[test]
fn keys_are_1_to_255_printable_ascii_characters() {
    for bad in [
        Vec::new(),
        vec![b'a'; 256],
        b"tab\there".to_vec(),
        b"nul\0".to_vec(),
        "caf\u{e9}".as_bytes().to_vec(),
        vec![0x7f],
    ] {
        let err = IdempotencyKey::parse(&bad).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == HEADER),
            "{bad:?}: {err:?}"
        );
    }
    for good in [vec![b'a'; 255], b"a".to_vec(), b"order 42/~!".to_vec()] {
        assert!(IdempotencyKey::parse(&good).is_ok());
    }
}

#[tokio::test]
async fn an_intake_without_a_key_store_refuses_the_header() {
    let stack = Stack::new();
    let intake = Intake {
        keys: None,
        ..stack.intake()
    };
    let request = start(FIRE, json!({}));
    let err = intake
        .start_keyed(&keyed_start("k", &request), request.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == HEADER),
        "{err:?}"
    );
    let _: Arc<dyn IdempotencyStore> = Arc::new(stack.keys.clone());
}
