//! The DynamoDB stores against the port contract suites on moto, plus what only DynamoDB has to
//! prove: the SQS queue's record_attempt / reopen, TTL and the filtering of expired items, a
//! purge that really deletes, the per-trigger counter under a create race, item size, and that
//! an unreachable endpoint is `Unavailable`, not a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::json;
use tokio::task::JoinSet;
use triggerline::Error;
use triggerline::catalog::Catalog;
use triggerline::contract;
use triggerline::error::ResourceKind;
use triggerline::model::{
    Attempt, AttemptOutcome, DispatchMode, Invocation, InvocationState, InvocationType,
    Subscription,
};
use triggerline::ports::{
    InvocationScans, InvocationStore, SubscriptionAdmin, SubscriptionStore, Transition,
};
use triggerline::query::{InvocationQuery, RawCollection};
use triggerline_aws::dynamo::{self, DynamoInvocationStore, DynamoSubscriptionStore, tables};
use triggerline_aws::testing::{clients_at, dynamo_tables};
use triggerline_aws::{AwsSettings, Clients};

fn invocations(clients: &Clients, settings: &AwsSettings) -> DynamoInvocationStore {
    DynamoInvocationStore::new(clients.dynamodb().clone(), &settings.invocations_table)
}

fn subscriptions(clients: &Clients, settings: &AwsSettings) -> DynamoSubscriptionStore {
    DynamoSubscriptionStore::new(
        clients.dynamodb().clone(),
        &settings.subscriptions_table,
        triggerline_aws::testing::test_credentials(),
    )
}

/// Now, to the millisecond (what the stored text keeps).
fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::milliseconds(1))
        .unwrap()
}

const APPROVAL: &str = "idn:access-request-pre-approval";
const IDENTITY_CREATED: &str = "idn:identity-created";

/// A PENDING invocation of the pre-approval trigger with the catalog's example input.
fn pending(id: &str, created: DateTime<Utc>) -> Invocation {
    let trigger = &Catalog::builtin().get(APPROVAL).unwrap().trigger;
    Invocation {
        heartbeat: None,
        id: id.to_owned(),
        trigger_id: APPROVAL.to_owned(),
        trigger_type: trigger.trigger_type,
        subscription_id: "4f6e3c52-6a8e-4f7e-9d0c-2b8e1f0a9c31".to_owned(),
        subscription_name: "Approvals".to_owned(),
        invocation_type: InvocationType::RealTime,
        response_mode: Some(DispatchMode::Async),
        state: InvocationState::Pending,
        created,
        completed: None,
        deadline: Some(created + Duration::minutes(10)),
        input: trigger.example_input.clone().into(),
        content_json: json!({}).into(),
        output: None,
        error: None,
        ordering_key: None,
        secret_hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            .to_owned(),
        attempts: Vec::new(),
        trace: None,
    }
}

fn attempt(at: DateTime<Utc>, status: Option<u16>, outcome: AttemptOutcome) -> Attempt {
    Attempt {
        started_at: at,
        target: "approvals.example.com".to_owned(),
        status_code: status,
        duration_ms: 87,
        outcome,
        error: None,
    }
}

fn finish(state: InvocationState, completed: DateTime<Utc>) -> Transition {
    let succeeded = state == InvocationState::Completed;
    Transition {
        to: state,
        completed: Some(completed),
        output: succeeded.then(|| json!({"approved": true})),
        error: (!succeeded).then(|| "the subscriber answered 500".to_owned()),
    }
}

const OPEN: [InvocationState; 2] = [InvocationState::Pending, InvocationState::Acknowledged];

/// The raw item of an invocation, expired or not.
async fn raw(
    clients: &Clients,
    settings: &AwsSettings,
    id: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    clients
        .dynamodb()
        .get_item()
        .table_name(&settings.invocations_table)
        .key(dynamo::INV_ID, AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name).map(|v| v.as_n().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscription_store_passes_the_contract() {
    let (_moto, clients, settings) = dynamo_tables().await;
    contract::subscription_store(Arc::new(subscriptions(&clients, &settings))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_store_passes_the_contract() {
    let (_moto, clients, settings) = dynamo_tables().await;
    let keys = dynamo::DynamoIdempotencyStore::new(
        clients.dynamodb().clone(),
        &settings.invocations_table,
    );
    contract::idempotency_store(Arc::new(keys)).await;
    // The key items share the invocations table and stay out of every list of invocations.
    let listed = invocations(&clients, &settings)
        .list(&InvocationQuery::parse(&RawCollection::default()).unwrap())
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "{:?}", listed.items);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invocation_store_passes_the_contract() {
    let (_moto, clients, settings) = dynamo_tables().await;
    contract::invocation_store(Arc::new(invocations(&clients, &settings))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creating_the_tables_again_is_harmless() {
    let (_moto, clients, settings) = dynamo_tables().await;
    tables::create_missing(
        clients.dynamodb(),
        &settings.subscriptions_table,
        &settings.invocations_table,
    )
    .await
    .expect("a second create_missing finds both tables and changes nothing");
    let ttl = clients
        .dynamodb()
        .describe_time_to_live()
        .table_name(&settings.invocations_table)
        .send()
        .await
        .unwrap();
    let description = ttl.time_to_live_description().unwrap();
    assert_eq!(description.attribute_name(), Some(dynamo::INV_EXPIRES));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn record_attempt_appends_and_transitions_only_from_the_given_states() {
    let (_moto, clients, settings) = dynamo_tables().await;
    let store = invocations(&clients, &settings);
    let t0 = now();

    let first = attempt(t0, Some(503), AttemptOutcome::Failed);
    assert_eq!(
        store
            .record_attempt("never", &first, &OPEN, None)
            .await
            .unwrap(),
        None,
        "an attempt on a missing invocation is None"
    );
    assert_eq!(
        store.get("never").await.unwrap(),
        None,
        "and creates nothing"
    );

    let open = pending("attempted", t0);
    store.create_all(std::slice::from_ref(&open)).await.unwrap();
    let written = store
        .record_attempt("attempted", &first, &OPEN, None)
        .await
        .unwrap();
    let after_first = Invocation {
        attempts: vec![first.clone()],
        ..open.clone()
    };
    assert_eq!(
        written.as_ref(),
        Some(&after_first),
        "no transition: state kept"
    );

    let second = attempt(
        t0 + Duration::seconds(5),
        Some(200),
        AttemptOutcome::Completed,
    );
    let done = finish(InvocationState::Completed, t0 + Duration::seconds(6));
    let written = store
        .record_attempt("attempted", &second, &OPEN, Some(&done))
        .await
        .unwrap();
    let completed = Invocation {
        state: InvocationState::Completed,
        completed: done.completed,
        output: done.output.clone(),
        attempts: vec![first.clone(), second.clone()],
        ..open.clone()
    };
    assert_eq!(
        written.as_ref(),
        Some(&completed),
        "attempt appended, transition applied"
    );
    assert_eq!(
        store.get("attempted").await.unwrap().as_ref(),
        Some(&completed)
    );

    let late = attempt(t0 + Duration::seconds(7), Some(500), AttemptOutcome::Failed);
    let give_up = finish(InvocationState::Failed, t0 + Duration::seconds(8));
    let written = store
        .record_attempt("attempted", &late, &OPEN, Some(&give_up))
        .await
        .unwrap();
    let expected = Invocation {
        attempts: vec![first, second, late],
        ..completed
    };
    assert_eq!(
        written.as_ref(),
        Some(&expected),
        "a state not in `from` is kept, and the attempt is still recorded"
    );
    assert_eq!(store.get("attempted").await.unwrap(), Some(expected));
    assert!(
        store
            .overdue(t0 + Duration::hours(1), 10)
            .await
            .unwrap()
            .is_empty(),
        "a completed invocation leaves the open-by-deadline index"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reopen_takes_a_failed_invocation_back_to_pending() {
    let (_moto, clients, settings) = dynamo_tables().await;
    let store = invocations(&clients, &settings);
    let t0 = now();
    let deadline = Some(t0 + Duration::minutes(30));

    let result = store.reopen("never", deadline).await;
    assert!(
        matches!(&result, Err(Error::NotFound { kind: ResourceKind::Invocation, id }) if id == "never"),
        "{result:?}"
    );

    let open = pending("replayed", t0);
    store.create_all(std::slice::from_ref(&open)).await.unwrap();
    let result = store.reopen("replayed", deadline).await;
    assert!(
        matches!(
            &result,
            Err(Error::NotOpen {
                status: InvocationState::Pending,
                ..
            })
        ),
        "only FAILED reopens: {result:?}"
    );

    let failed_attempt = attempt(t0, Some(500), AttemptOutcome::Failed);
    store
        .record_attempt(
            "replayed",
            &failed_attempt,
            &OPEN,
            Some(&finish(InvocationState::Failed, t0 + Duration::seconds(1))),
        )
        .await
        .unwrap();
    let reopened = store.reopen("replayed", deadline).await.unwrap();
    let expected = Invocation {
        deadline,
        attempts: vec![failed_attempt],
        ..open
    };
    assert_eq!(
        reopened, expected,
        "PENDING again: no completed, output or error; the new deadline; the attempts kept"
    );
    assert_eq!(
        store.get("replayed").await.unwrap().as_ref(),
        Some(&expected)
    );
    assert_eq!(
        store.overdue(t0 + Duration::minutes(31), 10).await.unwrap(),
        std::slice::from_ref(&expected),
        "a reopened invocation is back in the open-by-deadline index under its new deadline"
    );
    assert_eq!(
        store
            .purge(t0 + Duration::days(1), t0 + Duration::days(1), 10)
            .await
            .unwrap(),
        0,
        "a reopened invocation left the finished index"
    );

    store
        .transition("replayed", &OPEN, &finish(InvocationState::Completed, t0))
        .await
        .unwrap();
    let result = store.reopen("replayed", deadline).await;
    assert!(
        matches!(
            &result,
            Err(Error::NotOpen {
                status: InvocationState::Completed,
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_sets_the_ttl_and_expired_items_are_not_read() {
    let (_moto, clients, settings) = dynamo_tables().await;
    let store =
        invocations(&clients, &settings).with_retention(Duration::hours(1), Duration::hours(2));
    let t0 = now();

    // Created long ago: its retention ran out before this test started.
    let old = pending("expired", t0 - Duration::hours(5));
    let recent = pending("recent", t0);
    let failed = pending("failed", t0);
    store
        .create_all(&[old.clone(), recent.clone(), failed.clone()])
        .await
        .unwrap();
    let backstop = dynamo::OPEN_BACKSTOP + Duration::hours(2);
    assert_eq!(
        number(
            &raw(&clients, &settings, "recent").await.unwrap(),
            dynamo::INV_EXPIRES
        ),
        Some((t0 + backstop).timestamp()),
        "an open invocation expires only long after anything could still finish it"
    );

    let long_ago = t0 - Duration::hours(4);
    store
        .transition(
            "expired",
            &OPEN,
            &finish(InvocationState::Completed, long_ago),
        )
        .await
        .unwrap();
    store
        .transition("recent", &OPEN, &finish(InvocationState::Completed, t0))
        .await
        .unwrap();
    store
        .transition("failed", &OPEN, &finish(InvocationState::Failed, t0))
        .await
        .unwrap();
    let ttl = |id: &'static str| {
        let (clients, settings) = (&clients, &settings);
        async move {
            number(
                &raw(clients, settings, id).await.unwrap(),
                dynamo::INV_EXPIRES,
            )
        }
    };
    assert_eq!(
        ttl("expired").await,
        Some((long_ago + Duration::hours(1)).timestamp())
    );
    assert_eq!(
        ttl("recent").await,
        Some((t0 + Duration::hours(1)).timestamp())
    );
    assert_eq!(
        ttl("failed").await,
        Some((t0 + Duration::hours(2)).timestamp()),
        "failures keep the failed retention"
    );

    assert!(
        raw(&clients, &settings, "expired").await.is_some(),
        "moto keeps expired items"
    );
    assert_eq!(
        store.get("expired").await.unwrap(),
        None,
        "get skips an expired item"
    );
    assert!(store.get("recent").await.unwrap().is_some());
    let all = store
        .list(
            &InvocationQuery::parse(&RawCollection {
                count: Some("true".into()),
                ..Default::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = all.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        (ids, all.total),
        (vec!["failed", "recent"], Some(2)),
        "list skips expired items, in the items and the total"
    );
    let by_trigger = store
        .list(
            &InvocationQuery::parse(&RawCollection {
                filters: Some(format!(r#"triggerId eq "{APPROVAL}""#)),
                sorters: Some("completed".into()),
                ..Default::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(by_trigger.items.len(), 2, "an index query skips them too");

    let result = store
        .transition(
            "expired",
            &[InvocationState::Completed],
            &finish(InvocationState::Failed, t0),
        )
        .await;
    assert!(
        matches!(&result, Err(Error::NotFound { .. })),
        "an expired invocation is gone for writes too: {result:?}"
    );

    store
        .record_attempt(
            "failed",
            &attempt(t0, Some(500), AttemptOutcome::Failed),
            &[InvocationState::Failed],
            None,
        )
        .await
        .unwrap();
    // Open past the backstop (its work dead-lettered and never redriven): gone like the rest.
    let stranded = pending("stranded", t0 - backstop - Duration::minutes(1));
    store.create_all(&[stranded]).await.unwrap();
    assert_eq!(store.get("stranded").await.unwrap(), None);

    let before = now();
    store.reopen("failed", None).await.unwrap();
    let reopened = ttl("failed").await.unwrap();
    assert!(
        (before + backstop).timestamp() <= reopened && reopened <= (now() + backstop).timestamp(),
        "a reopened invocation is kept the backstop from its reopening: {reopened}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_deletes_items_rather_than_trusting_ttl() {
    let (_moto, clients, settings) = dynamo_tables().await;
    let store =
        invocations(&clients, &settings).with_retention(Duration::hours(1), Duration::hours(1));
    let t0 = now();
    let ids: Vec<String> = (0..5).map(|i| format!("finished-{i}")).collect();
    let batch: Vec<Invocation> = ids
        .iter()
        .map(|id| pending(id, t0 - Duration::days(3)))
        .collect();
    store.create_all(&batch).await.unwrap();
    for id in &ids {
        store
            .transition(
                id,
                &OPEN,
                &finish(InvocationState::TimedOut, t0 - Duration::days(2)),
            )
            .await
            .unwrap();
    }
    store
        .create_all(&[pending("still-open", t0 - Duration::days(3))])
        .await
        .unwrap();

    let cutoff = t0 - Duration::days(1);
    assert_eq!(store.purge(cutoff, cutoff, 3).await.unwrap(), 3);
    assert_eq!(store.purge(cutoff, cutoff, 3).await.unwrap(), 2);
    assert_eq!(store.purge(cutoff, cutoff, 3).await.unwrap(), 0);
    for id in &ids {
        assert!(
            raw(&clients, &settings, id).await.is_none(),
            "purge deletes the item itself ({id}), expired or not"
        );
    }
    assert!(raw(&clients, &settings, "still-open").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_at_the_limit_admit_exactly_the_limit() {
    let (_moto, clients, settings) = dynamo_tables().await;
    let store: Arc<dyn SubscriptionAdmin> = Arc::new(subscriptions(&clients, &settings));
    const LIMIT: usize = 5;
    let mut creates = JoinSet::new();
    for i in 0..30 {
        let store = Arc::clone(&store);
        let s = subscription(&format!("racer-{i:02}"), IDENTITY_CREATED);
        creates.spawn(async move { (s.id.clone(), store.create(&s, LIMIT).await) });
    }
    let results = creates.join_all().await;
    let winners: Vec<String> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(
        winners.len(),
        LIMIT,
        "exactly {LIMIT} of 30 win: {results:?}"
    );
    for (id, result) in &results {
        if let Err(e) = result {
            assert!(
                matches!(e, Error::SubscriptionLimit { existing, limit: LIMIT, .. } if winners.contains(existing)),
                "{id} lost with {e:?}"
            );
        }
    }
    let mut stored: Vec<String> = store
        .list_for_trigger(IDENTITY_CREATED)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id.clone())
        .collect();
    stored.sort();
    let mut expected = winners.clone();
    expected.sort();
    assert_eq!(stored, expected, "only the winners are stored");

    store.delete(&winners[0]).await.unwrap();
    store
        .create(&subscription("after-delete", IDENTITY_CREATED), LIMIT)
        .await
        .expect("a delete gives the slot back");
    let result = store
        .create(&subscription("one-too-many", IDENTITY_CREATED), LIMIT)
        .await;
    assert!(
        matches!(result, Err(Error::SubscriptionLimit { .. })),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_typical_invocation_is_one_write_unit() {
    let (_moto, clients, settings) = dynamo_tables().await;
    let store = invocations(&clients, &settings);
    let mut invocation = pending("sized", now());
    invocation
        .attempts
        .push(attempt(now(), Some(200), AttemptOutcome::Completed));
    store
        .create_all(std::slice::from_ref(&invocation))
        .await
        .unwrap();
    let item = raw(&clients, &settings, "sized").await.unwrap();
    let size: usize = item
        .iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum();
    let json = serde_json::to_string(&invocation).unwrap().len();
    assert!(
        size <= 1024,
        "an invocation with the catalog's example input takes {size} bytes (JSON: {json})"
    );
}

/// The largest invocation the bounds allow (`triggerline::limits`) fits one item, written as
/// the store writes it: input at `MAX_INPUT_BYTES` of text that hardly compresses, then
/// `MAX_KEPT_ATTEMPTS` attempts with the longest host name and error (`MAX_ATTEMPT_ERROR_BYTES`),
/// each recorded with its own write, the last one completing it with a `MAX_OUTPUT_BYTES`
/// output. DynamoDB (and moto) refuse an item over 400 KB; the count below says by how much it
/// stays under.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_largest_invocation_the_bounds_allow_fits_one_item() {
    use triggerline::limits::{
        DYNAMODB_ITEM_BYTES, MAX_ATTEMPT_ERROR_BYTES, MAX_INPUT_BYTES, MAX_KEPT_ATTEMPTS,
        MAX_OUTPUT_BYTES, json_bytes,
    };
    let (_moto, clients, settings) = dynamo_tables().await;
    let store = invocations(&clients, &settings);
    let t0 = now();
    let mut invocation = pending("largest", t0);
    let input = json!({"noise": noise(MAX_INPUT_BYTES - 16, 1)});
    assert!(
        json_bytes(&input) + 2 <= MAX_INPUT_BYTES,
        "input and content fit the bound"
    );
    invocation.input = input.into();
    store
        .create_all(std::slice::from_ref(&invocation))
        .await
        .unwrap();

    let long = |outcome: AttemptOutcome, n: usize| Attempt {
        target: format!("{}.example.com", "h".repeat(240)),
        error: Some(noise(MAX_ATTEMPT_ERROR_BYTES, n as u64 + 2)),
        ..attempt(t0 + Duration::seconds(n as i64), Some(500), outcome)
    };
    for n in 1..MAX_KEPT_ATTEMPTS {
        let recorded = store
            .record_attempt("largest", &long(AttemptOutcome::Failed, n), &OPEN, None)
            .await
            .unwrap();
        assert!(recorded.is_some(), "attempt {n} recorded");
    }
    let output = json!({"noise": noise(MAX_OUTPUT_BYTES - 16, 99)});
    assert!(json_bytes(&output) <= MAX_OUTPUT_BYTES);
    let done = Transition {
        to: InvocationState::Completed,
        completed: Some(t0 + Duration::hours(1)),
        output: Some(output),
        error: None,
    };
    let last = long(AttemptOutcome::Completed, MAX_KEPT_ATTEMPTS);
    let finished = store
        .record_attempt("largest", &last, &OPEN, Some(&done))
        .await
        .unwrap()
        .expect("the last attempt recorded");
    assert_eq!(finished.state, InvocationState::Completed);
    assert_eq!(finished.attempts.len(), MAX_KEPT_ATTEMPTS);

    let item = raw(&clients, &settings, "largest").await.unwrap();
    let size: usize = item
        .iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum();
    assert!(
        size <= DYNAMODB_ITEM_BYTES,
        "the largest invocation takes {size} bytes of the {DYNAMODB_ITEM_BYTES}"
    );
    eprintln!("the largest invocation the bounds allow: {size} of {DYNAMODB_ITEM_BYTES} bytes");
}

/// `len` characters of printable ASCII that deflate can hardly shrink (a fixed sequence, so
/// that a failure repeats), seeded by `seed`.
fn noise(len: usize, seed: u64) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Letters and digits only: nothing JSON escapes, so the text is its own size.
            const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            char::from(SET[(state % SET.len() as u64) as usize])
        })
        .collect()
}

/// DynamoDB's item-size accounting, near enough for strings, numbers and lists of strings.
fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        other => panic!("unexpected attribute type {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_all_beyond_one_transaction_is_refused_whole() {
    let (_moto, clients, settings) = dynamo_tables().await;
    let store = invocations(&clients, &settings);
    let t0 = now();
    let hundred: Vec<Invocation> = (0..100)
        .map(|i| pending(&format!("h-{i:03}"), t0))
        .collect();
    store
        .create_all(&hundred)
        .await
        .expect("100 fit one transaction");
    let more: Vec<Invocation> = (0..101)
        .map(|i| pending(&format!("m-{i:03}"), t0))
        .collect();
    let result = store.create_all(&more).await;
    assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
    assert_eq!(
        store.get("m-000").await.unwrap(),
        None,
        "nothing of it is written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_endpoint_is_unavailable() {
    let clients = clients_at("http://127.0.0.1:1").await;
    let settings = AwsSettings::default();
    let subs = subscriptions(&clients, &settings);
    let invs = invocations(&clients, &settings);
    let unavailable = |what: &str, result: Result<(), Error>| {
        assert!(
            matches!(result, Err(Error::Unavailable(_))),
            "{what}: {result:?}"
        );
    };
    unavailable("get subscription", subs.get("x").await.map(drop));
    unavailable(
        "create subscription",
        subs.create(&subscription("x", IDENTITY_CREATED), 50).await,
    );
    unavailable("delete subscription", subs.delete("x").await);
    unavailable("get invocation", invs.get("x").await.map(drop));
    unavailable(
        "create invocation",
        invs.create_all(&[pending("x", now())]).await,
    );
    unavailable(
        "transition",
        invs.transition("x", &OPEN, &finish(InvocationState::Completed, now()))
            .await
            .map(drop),
    );
    unavailable(
        "list invocations",
        invs.list(&InvocationQuery::default()).await.map(drop),
    );
    unavailable("overdue", invs.overdue(now(), 10).await.map(drop));
    unavailable(
        "create tables",
        tables::create_missing(clients.dynamodb(), "a", "b").await,
    );
}

/// An enabled HTTP subscription, as the create use case would store it.
fn subscription(id: &str, trigger_id: &str) -> Subscription {
    serde_json::from_value(json!({
        "id": id,
        "name": format!("Listener {id}"),
        "description": null,
        "triggerId": trigger_id,
        "triggerName": Catalog::builtin().get(trigger_id).unwrap().trigger.name,
        "target": {"type": "HTTP", "url": "https://hooks.example.com/x", "mode": "SYNC",
                   "auth": {"kind": "none"}},
        "responseDeadline": "PT1H",
        "enabled": true,
        "filter": null,
        "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwQ3pXb7yV4gE=",
        "created": "2025-03-14T09:26:53.271Z",
        "modified": "2025-03-14T09:26:53.271Z",
        "version": 1
    }))
    .unwrap()
}
