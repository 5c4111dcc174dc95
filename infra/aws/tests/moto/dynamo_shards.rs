//! What the write sharding of the invocation indexes must keep: items spread over the shards,
//! and status lists across shards still sorted, paged, filtered and counted as one index would
//! give them, with what changes after the create (completed time, expiry) read from the items,
//! since the list indexes do not carry it; and an item that does not read back is skipped by
//! lists and the sweep, never stopping them (items written here with the SDK, as a hand edit
//! or a schema drift would).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::json;
use triggerline::catalog::Catalog;
use triggerline::model::{DispatchMode, Invocation, InvocationState, InvocationType};
use triggerline::ports::{InvocationScans, InvocationStore};
use triggerline::query::{InvocationQuery, RawCollection};
use triggerline::time::format_time;
use triggerline_aws::dynamo::{self, DynamoInvocationStore};
use triggerline_aws::testing::{Moto, dynamo_tables};
use triggerline_aws::{AwsSettings, Clients};

async fn setup() -> (Moto, Clients, AwsSettings, DynamoInvocationStore) {
    let (moto, clients, settings) = dynamo_tables().await;
    let store = DynamoInvocationStore::new(clients.dynamodb().clone(), &settings.invocations_table);
    (moto, clients, settings, store)
}

fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::milliseconds(1))
        .unwrap()
}

const APPROVAL: &str = "idn:access-request-pre-approval";
const SUBSCRIPTIONS: [&str; 2] = [
    "4f6e3c52-6a8e-4f7e-9d0c-2b8e1f0a9c31",
    "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9",
];

fn pending(id: &str, subscription: usize, created: DateTime<Utc>) -> Invocation {
    let trigger = &Catalog::builtin().get(APPROVAL).unwrap().trigger;
    Invocation {
        heartbeat: None,
        id: id.to_owned(),
        trigger_id: APPROVAL.to_owned(),
        trigger_type: trigger.trigger_type,
        subscription_id: SUBSCRIPTIONS[subscription].to_owned(),
        subscription_name: format!("Approvals {subscription}"),
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
        secret_hash: "sha256:00".to_owned(),
        attempts: Vec::new(),
        trace: None,
    }
}

fn q(params: &[(&str, &str)]) -> InvocationQuery {
    let mut raw = RawCollection::default();
    for (name, value) in params {
        let slot = match *name {
            "limit" => &mut raw.limit,
            "offset" => &mut raw.offset,
            "count" => &mut raw.count,
            "filters" => &mut raw.filters,
            "sorters" => &mut raw.sorters,
            other => panic!("no parameter {other}"),
        };
        *slot = Some((*value).to_owned());
    }
    InvocationQuery::parse(&raw).unwrap()
}

async fn all_pages(
    store: &DynamoInvocationStore,
    params: &[(&str, &str)],
    size: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for offset in (0..).step_by(size) {
        let (limit, offset) = (size.to_string(), offset.to_string());
        let mut query = params.to_vec();
        query.extend([("limit", limit.as_str()), ("offset", offset.as_str())]);
        let page = store.list(&q(&query)).await.unwrap();
        assert!(page.items.len() <= size);
        let done = page.items.len() < size;
        ids.extend(page.items.into_iter().map(|i| i.id));
        if done {
            return ids;
        }
    }
    unreachable!()
}

async fn raw_items(
    clients: &Clients,
    settings: &AwsSettings,
) -> Vec<HashMap<String, AttributeValue>> {
    clients
        .dynamodb()
        .scan()
        .table_name(&settings.invocations_table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

#[test]
fn the_shard_of_an_id_is_fixed_and_sharded_values_read_back() {
    let shard = dynamo::shard_of("4f6e3c52-6a8e-4f7e-9d0c-2b8e1f0a9c31");
    assert_eq!(
        shard,
        dynamo::shard_of("4f6e3c52-6a8e-4f7e-9d0c-2b8e1f0a9c31")
    );
    assert!(shard < dynamo::SHARDS);
    let spread: HashSet<u32> = (0..200)
        .map(|i| dynamo::shard_of(&format!("id-{i}")))
        .collect();
    assert_eq!(
        spread.len(),
        dynamo::SHARDS as usize,
        "200 ids reach every shard"
    );
    let value = dynamo::sharded("idn:identity-created", 7);
    assert_eq!(value, "idn:identity-created#7");
    assert_eq!(dynamo::unsharded(&value), "idn:identity-created");
    assert_eq!(
        dynamo::unsharded("idn:identity-created"),
        "idn:identity-created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invocations_spread_over_the_shards_and_lists_merge_them_in_order() {
    let (_moto, clients, settings, store) = setup().await;
    // 60 invocations over two subscriptions, in threes created at the same millisecond, so
    // that ties on `created` cross shards and pages.
    let start = now() - Duration::minutes(5);
    let all: Vec<Invocation> = (0..60)
        .map(|i| {
            pending(
                &format!("inv-{i:02}"),
                i % 2,
                start + Duration::milliseconds((i / 3) as i64),
            )
        })
        .collect();
    for batch in all.chunks(20) {
        store.create_all(batch).await.unwrap();
    }

    let items = raw_items(&clients, &settings).await;
    let mut shards = HashSet::new();
    for item in &items {
        let id = item[dynamo::INV_ID].as_s().unwrap();
        let shard = dynamo::shard_of(id);
        shards.insert(shard);
        for (attribute, base) in [
            (dynamo::INV_GROUP, dynamo::INV_GROUP_VALUE),
            (dynamo::INV_TRIGGER, APPROVAL),
            (dynamo::INV_OPEN_STATE, dynamo::INV_OPEN_VALUE),
        ] {
            assert_eq!(
                item[attribute].as_s().unwrap(),
                &dynamo::sharded(base, shard),
                "{attribute} of {id}"
            );
        }
    }
    assert!(shards.len() >= 12, "60 ids over 16 shards: {shards:?}");

    // Newest first, ties by id: what one unsharded index would give.
    let mut newest_first = all.clone();
    newest_first.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    let expected: Vec<String> = newest_first.iter().map(|i| i.id.clone()).collect();
    assert_eq!(
        all_pages(&store, &[], 7).await,
        expected,
        "pages of 7, newest first"
    );
    assert_eq!(
        all_pages(&store, &[("sorters", "-created")], 25).await,
        expected
    );

    let mut oldest_first = all.clone();
    oldest_first.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    let expected: Vec<String> = oldest_first.iter().map(|i| i.id.clone()).collect();
    assert_eq!(
        all_pages(&store, &[("sorters", "created")], 8).await,
        expected
    );

    // Filtered by subscription (bySubscription) and by trigger (byTrigger), with a sorter
    // after `created`.
    let filter = format!("subscriptionId eq \"{}\"", SUBSCRIPTIONS[1]);
    let expected: Vec<String> = newest_first
        .iter()
        .filter(|i| i.subscription_id == SUBSCRIPTIONS[1])
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(expected.len(), 30);
    assert_eq!(
        all_pages(&store, &[("filters", &filter)], 4).await,
        expected
    );
    let filter = format!(
        "triggerId eq \"{APPROVAL}\" and subscriptionId eq \"{}\"",
        SUBSCRIPTIONS[1]
    );
    assert_eq!(
        all_pages(&store, &[("filters", &filter)], 9).await,
        expected
    );
    let mut by_name = all.clone();
    by_name.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| b.subscription_name.cmp(&a.subscription_name))
            .then_with(|| a.id.cmp(&b.id))
    });
    let expected: Vec<String> = by_name.iter().map(|i| i.id.clone()).collect();
    let filter = format!("triggerId eq \"{APPROVAL}\"");
    assert_eq!(
        all_pages(
            &store,
            &[
                ("filters", &filter),
                ("sorters", "-created,-subscriptionName")
            ],
            5
        )
        .await,
        expected
    );

    // A sorter other than created, and the total.
    let page = store
        .list(&q(&[
            ("sorters", "subscriptionName"),
            ("limit", "3"),
            ("offset", "29"),
            ("count", "true"),
        ]))
        .await
        .unwrap();
    assert_eq!(page.total, Some(60));
    let names: Vec<&str> = page
        .items
        .iter()
        .map(|i| i.subscription_name.as_str())
        .collect();
    assert_eq!(names, ["Approvals 0", "Approvals 1", "Approvals 1"]);
    let filter = format!("subscriptionId eq \"{}\"", SUBSCRIPTIONS[0]);
    let page = store
        .list(&q(&[
            ("filters", &filter),
            ("limit", "0"),
            ("count", "true"),
        ]))
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.total), (0, Some(30)));
}

/// Writes an item as the store would not: `fields` over a well-formed item of `id`.
async fn put_raw(
    clients: &Clients,
    settings: &AwsSettings,
    id: &str,
    fields: &[(&str, AttributeValue)],
) {
    let shard = dynamo::shard_of(id);
    let created = format_time(&(now() - Duration::minutes(1)));
    let s = |v: String| AttributeValue::S(v);
    let mut item = HashMap::from([
        (dynamo::INV_ID.to_owned(), s(id.to_owned())),
        (
            dynamo::INV_TRIGGER.to_owned(),
            s(dynamo::sharded(APPROVAL, shard)),
        ),
        (
            dynamo::INV_SUBSCRIPTION.to_owned(),
            s(dynamo::sharded(SUBSCRIPTIONS[0], shard)),
        ),
        (
            dynamo::INV_SUBSCRIPTION_NAME.to_owned(),
            s("Approvals 0".to_owned()),
        ),
        (dynamo::INV_STATE.to_owned(), s("PENDING".to_owned())),
        (dynamo::INV_CREATED.to_owned(), s(created.clone())),
        (dynamo::INV_DEADLINE.to_owned(), s(created)),
        (
            dynamo::INV_GROUP.to_owned(),
            s(dynamo::sharded(dynamo::INV_GROUP_VALUE, shard)),
        ),
        (
            dynamo::INV_OPEN_STATE.to_owned(),
            s(dynamo::sharded(dynamo::INV_OPEN_VALUE, shard)),
        ),
        (
            dynamo::INV_ATTEMPTS.to_owned(),
            AttributeValue::L(Vec::new()),
        ),
        (
            dynamo::INV_BODY.to_owned(),
            AttributeValue::B(Blob::new(b"not deflate".to_vec())),
        ),
    ]);
    for (name, value) in fields {
        item.insert((*name).to_owned(), value.clone());
    }
    clients
        .dynamodb()
        .put_item()
        .table_name(&settings.invocations_table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_and_the_sweep_skip_an_item_they_cannot_read_and_go_on() {
    let (_moto, clients, settings, store) = setup().await;
    let past = now() - Duration::minutes(30);
    let good: Vec<Invocation> = (0..3)
        .map(|i| {
            let mut inv = pending(&format!("good-{i}"), 0, past + Duration::milliseconds(i));
            inv.deadline = Some(past + Duration::seconds(i + 1));
            inv
        })
        .collect();
    store.create_all(&good).await.unwrap();
    // A body that does not inflate; a created time that is no time; a deadline that is no
    // time (it sorts before every real one, so the sweep meets it first).
    put_raw(&clients, &settings, "bad-body", &[]).await;
    put_raw(
        &clients,
        &settings,
        "bad-created",
        &[(
            dynamo::INV_CREATED,
            AttributeValue::S("yesterday".to_owned()),
        )],
    )
    .await;
    put_raw(
        &clients,
        &settings,
        "bad-deadline",
        &[(
            dynamo::INV_DEADLINE,
            AttributeValue::S("0000-soon".to_owned()),
        )],
    )
    .await;

    let page = store.list(&q(&[("count", "true")])).await.unwrap();
    let mut ids: Vec<String> = page.items.into_iter().map(|i| i.id).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["good-0", "good-1", "good-2"],
        "every readable invocation is listed"
    );

    let overdue = store.overdue(now(), 10).await.unwrap();
    let ids: Vec<&str> = overdue.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        ["good-0", "good-1", "good-2"],
        "the sweep goes on past bad items"
    );
    let overdue = store.overdue(now(), 2).await.unwrap();
    assert_eq!(
        overdue.len(),
        2,
        "skipped items do not count towards the limit"
    );
}

/// Sets `x` (the TTL) of `id` to a time passed: the item has expired but is still there, as
/// DynamoDB keeps it until its TTL process gets to it.
async fn expire(clients: &Clients, settings: &AwsSettings, id: &str) {
    let passed = (Utc::now() - Duration::minutes(1)).timestamp();
    clients
        .dynamodb()
        .update_item()
        .table_name(&settings.invocations_table)
        .key(dynamo::INV_ID, AttributeValue::S(id.to_owned()))
        .update_expression("SET #x = :x")
        .expression_attribute_names("#x", dynamo::INV_EXPIRES)
        .expression_attribute_values(":x", AttributeValue::N(passed.to_string()))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_read_what_changes_from_the_items_past_expired_ones_across_chunks() {
    let (_moto, clients, settings, store) = setup().await;
    // 240 invocations, one a millisecond: more than one chunk of item reads (100) per page.
    let start = now() - Duration::minutes(5);
    let all: Vec<Invocation> = (0..240)
        .map(|i| {
            pending(
                &format!("inv-{i:03}"),
                i % 2,
                start + Duration::milliseconds(i as i64),
            )
        })
        .collect();
    for batch in all.chunks(60) {
        store.create_all(batch).await.unwrap();
    }
    // Two in three expired (still in the table and its indexes); every tenth live one
    // completed, later for lower ids: the list indexes carry neither, so both come from the
    // items.
    let live: Vec<&Invocation> = all
        .iter()
        .filter(|i| i.id[4..].parse::<u32>().unwrap() % 3 == 0)
        .collect();
    for invocation in &all {
        if !live.iter().any(|l| l.id == invocation.id) {
            expire(&clients, &settings, &invocation.id).await;
        }
    }
    let completed: Vec<&Invocation> = live.iter().copied().step_by(10).collect();
    for (k, invocation) in completed.iter().enumerate() {
        store
            .transition(
                &invocation.id,
                &[InvocationState::Pending],
                &triggerline::ports::Transition {
                    to: InvocationState::Completed,
                    completed: Some(start + Duration::seconds(60 - k as i64)),
                    output: Some(json!({"approved": true})),
                    error: None,
                },
            )
            .await
            .unwrap();
    }

    let mut newest_first: Vec<String> = live.iter().map(|i| i.id.clone()).collect();
    newest_first.reverse();
    assert_eq!(
        all_pages(&store, &[], 30).await,
        newest_first,
        "pages of the live invocations only, newest first, with the expired ones between them"
    );
    let page = store
        .list(&q(&[("limit", "50"), ("count", "true")]))
        .await
        .unwrap();
    assert_eq!(page.total, Some(live.len()), "count: the live ones");
    assert_eq!(page.items.len(), 50);

    let filter = format!("subscriptionId eq \"{}\"", SUBSCRIPTIONS[1]);
    let expected: Vec<String> = newest_first
        .iter()
        .filter(|id| id[4..].parse::<u32>().unwrap() % 2 == 1)
        .cloned()
        .collect();
    assert_eq!(
        all_pages(&store, &[("filters", &filter)], 9).await,
        expected
    );

    // Sorted by completed, latest first: the completed ones first, by their completed time
    // (read from the items), then those not completed.
    let by_completed = store
        .list(&q(&[("sorters", "-completed"), ("limit", "250")]))
        .await
        .unwrap();
    let ids: Vec<&str> = by_completed.items.iter().map(|i| i.id.as_str()).collect();
    let expected_completed: Vec<&str> = completed.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids.len(), live.len());
    assert_eq!(&ids[..completed.len()], expected_completed.as_slice());
    assert!(
        by_completed.items[..completed.len()]
            .iter()
            .all(|i| i.state == InvocationState::Completed && i.completed.is_some())
    );
}
