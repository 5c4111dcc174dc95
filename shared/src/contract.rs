//! The port contract suites (feature `test-support`): what every store adapter must do, written
//! once and run by each adapter's tests (SQLite on a temp file, DynamoDB on an emulator), so that
//! both prove the same behaviour.
//!
//! Each suite takes a fresh, empty store and runs many small checks; a failed check panics with a
//! message naming the broken promise. Checks build on realistic model values for real catalog
//! triggers and build their queries with [`ListQuery::parse`], so they exercise the real
//! collection-parameter parser. Every check removes the subscriptions it created, so later
//! checks start from an empty subscription store. Invocations are only deleted by retention,
//! so the list checks run first, later checks use ids of their own, and the retention check
//! works on times long before every other check's.
//!
//! The delivery queue suite takes a queue and the invocation store over the same storage (the
//! queue writes invocations, the store reads them back). Every queue check settles or discards
//! the work it created, so each starts from an empty queue: `claim_due` hands out every due item,
//! whoever wrote it.
//!
//! Call them inside a tokio runtime: the concurrency checks race writes from spawned tasks. A
//! multi-threaded runtime makes those races real.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::Error;
use crate::catalog::Catalog;
use crate::duration::IsoDuration;
use crate::error::ResourceKind;
use crate::jsonpath::JsonPathFilter;
use crate::model::{
    Attempt, AttemptOutcome, DispatchMode, EventBridgeTarget, HttpAuth, HttpTarget, Invocation,
    InvocationState, InvocationType, Subscription, Target, TriggerType,
};
use crate::ports::{
    DeliveryQueue, InvocationScans, NextStep, SubscriptionStore, Transition, WorkItem,
};
use crate::query::{ListQuery, Page, QueryField, RawCollection};

/// FIRE_AND_FORGET, 50 subscriptions at most.
const IDENTITY_CREATED: &str = "idn:identity-created";
/// REQUEST_RESPONSE, one subscription at most.
const PRE_APPROVAL: &str = "idn:access-request-pre-approval";
/// REQUEST_RESPONSE, one subscription at most.
const DYNAMIC_APPROVER: &str = "idn:access-request-dynamic-approver";
/// FIRE_AND_FORGET.
const POST_APPROVAL: &str = "idn:access-request-post-approval";
/// FIRE_AND_FORGET.
const IDENTITY_DELETED: &str = "idn:identity-deleted";

/// Runs every [`SubscriptionStore`] check against `store`, which must be fresh and empty.
pub async fn subscription_store(store: Arc<dyn SubscriptionStore>) {
    subscriptions_start_empty(&store).await;
    subscription_lists(&store).await;
    subscription_create_then_get_round_trips(&store).await;
    subscription_get_of_an_unknown_id_is_none(&store).await;
    subscription_create_refuses_a_taken_id(&store).await;
    subscription_create_refuses_a_second_request_response_subscription(&store).await;
    subscription_create_refuses_the_51st_fire_and_forget_subscription(&store).await;
    subscription_limit_holds_under_concurrent_creates(&store).await;
    subscription_replace_is_conditional_on_the_version(&store).await;
    subscription_delete_removes_once(&store).await;
}

/// Runs every [`InvocationStore`] check against `store`, which must be fresh and empty.
pub async fn invocation_store(store: Arc<dyn InvocationScans>) {
    invocations_start_empty(&store).await;
    invocation_lists(&store).await;
    invocation_create_all_is_all_or_nothing(&store).await;
    invocation_transition_completes_an_open_invocation_once(&store).await;
    invocation_transition_moves_through_acknowledged(&store).await;
    invocation_transition_of_an_unknown_id_is_not_found(&store).await;
    invocation_transition_has_one_winner_under_concurrency(&store).await;
    invocation_overdue_lists_open_invocations_past_their_deadline(&store).await;
    invocation_purge_deletes_finished_invocations_past_their_retention(&store).await;
}

/// Runs every [`DeliveryQueue`] check against `queue`, which must hold no work, with
/// `invocations` reading the same storage. Invocations already in that storage are left alone.
pub async fn delivery_queue(queue: Arc<dyn DeliveryQueue>, invocations: Arc<dyn InvocationScans>) {
    assert_no_work(
        &queue,
        "the delivery queue contract suite needs a queue without work",
    )
    .await;
    queue_accept_writes_invocations_and_due_work(&queue, &invocations).await;
    queue_accept_is_all_or_nothing(&queue, &invocations).await;
    queue_claims_oldest_first_up_to_the_limit(&queue, &invocations).await;
    queue_leased_items_come_back_when_the_lease_ends(&queue, &invocations).await;
    queue_settle_done_records_the_attempt_and_the_outcome(&queue, &invocations).await;
    queue_settle_keeps_a_state_not_in_from(&queue, &invocations).await;
    queue_settle_retry_reschedules_and_counts_attempts(&queue, &invocations).await;
    queue_settle_of_a_missing_invocation_is_none(&queue, &invocations).await;
    queue_replay_reopens_only_a_failed_invocation(&queue, &invocations).await;
    queue_discard_removes_only_the_work(&queue, &invocations).await;
    queue_release_all_ends_every_lease(&queue, &invocations).await;
    queue_purge_takes_the_work_with_the_invocation(&queue, &invocations).await;
    queue_concurrent_accepts_and_settles_all_land(&queue, &invocations).await;
}

// ---------------------------------------------------------------------------------------------
// Test values

/// A fixed instant with millisecond precision (what the wire keeps), plus `minutes`.
fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 9, 26, 53).unwrap()
        + Duration::milliseconds(271)
        + Duration::minutes(minutes)
}

fn trigger(id: &str) -> &'static crate::model::Trigger {
    &Catalog::builtin()
        .get(id)
        .unwrap_or_else(|| panic!("{id} is not in the built-in catalog"))
        .trigger
}

/// The catalog's limit for the trigger, as the create use case passes it.
fn limit_of(trigger_id: &str) -> usize {
    trigger(trigger_id).trigger_type.max_subscriptions()
}

/// An enabled HTTP subscription with basic auth and a filter.
fn http_subscription(id: &str, trigger_id: &str) -> Subscription {
    let request_response = trigger(trigger_id).trigger_type == TriggerType::RequestResponse;
    Subscription {
        id: id.to_owned(),
        name: format!("HR audit webhook ({id})"),
        description: Some("Forwards identity events to the HR audit service".to_owned()),
        trigger_id: trigger_id.to_owned(),
        trigger_name: trigger(trigger_id).name.clone(),
        target: Target::Http(HttpTarget {
            url: "https://hooks.example.com/sailpoint/events?tenant=acme".to_owned(),
            mode: if request_response {
                DispatchMode::Async
            } else {
                DispatchMode::Sync
            },
            auth: HttpAuth::Basic {
                user_name: "triggerline".to_owned(),
                password: "c0rrect-h0rse-battery".into(),
            },
        }),
        response_deadline: IsoDuration::parse("responseDeadline", "PT1H").unwrap(),
        enabled: true,
        filter: Some(
            JsonPathFilter::parse("filter", r#"$[?($.identity.type == "IDENTITY")]"#).unwrap(),
        ),
        signing_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwQ3pXb7yV4gE=".into(),
        created: at(0),
        modified: at(0),
        version: 1,
    }
}

/// A disabled EventBridge subscription without filter or description.
fn eventbridge_subscription(id: &str, trigger_id: &str) -> Subscription {
    Subscription {
        name: format!("Partner event bus ({id})"),
        description: None,
        target: Target::EventBridge(EventBridgeTarget {
            aws_account: "123456789012".to_owned(),
            aws_region: "eu-west-1".to_owned(),
        }),
        response_deadline: IsoDuration::parse("responseDeadline", "PT30M").unwrap(),
        enabled: false,
        filter: None,
        ..http_subscription(id, trigger_id)
    }
}

/// An invocation of `trigger_id` for a subscription, created `created` minutes after [`at`]`(0)`
/// and completed `completed` minutes after it (open while `None`).
fn invocation(
    id: &str,
    trigger_id: &str,
    subscription: (&str, &str),
    created: i64,
    completed: Option<i64>,
) -> Invocation {
    let t = trigger(trigger_id);
    let request_response = t.trigger_type == TriggerType::RequestResponse;
    Invocation {
        id: id.to_owned(),
        trigger_id: trigger_id.to_owned(),
        trigger_type: t.trigger_type,
        subscription_id: subscription.0.to_owned(),
        subscription_name: subscription.1.to_owned(),
        invocation_type: InvocationType::RealTime,
        response_mode: request_response.then_some(DispatchMode::Sync),
        state: if completed.is_some() {
            InvocationState::Completed
        } else {
            InvocationState::Pending
        },
        created: at(created),
        completed: completed.map(at),
        deadline: request_response.then(|| at(created + 60)),
        input: t.example_input.clone(),
        content_json: json!({"workflowId": 1234, "tenant": "acme"}),
        output: completed.and(t.example_output.clone()),
        error: None,
        secret_hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            .to_owned(),
        attempts: vec![Attempt {
            started_at: at(created),
            target: "hooks.example.com".to_owned(),
            status_code: Some(200),
            duration_ms: 42,
            outcome: AttemptOutcome::Completed,
            error: None,
        }],
    }
}

/// A list query from collection parameters as they would arrive in a query string, e.g.
/// `q(&[("filters", r#"id eq "x""#), ("sorters", "-created")])`.
fn q<F: QueryField>(params: &[(&str, &str)]) -> ListQuery<F> {
    let mut raw = RawCollection::default();
    for (name, value) in params {
        let slot = match *name {
            "limit" => &mut raw.limit,
            "offset" => &mut raw.offset,
            "count" => &mut raw.count,
            "filters" => &mut raw.filters,
            "sorters" => &mut raw.sorters,
            other => panic!("`{other}` is not a collection parameter"),
        };
        *slot = Some((*value).to_owned());
    }
    ListQuery::parse(&raw).unwrap_or_else(|e| panic!("query {params:?} does not parse: {e}"))
}

/// Collection parameters, and the ids a list must return for them, in order.
type ListCase<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

fn subscription_ids(page: &Page<Subscription>) -> Vec<&str> {
    page.items.iter().map(|s| s.id.as_str()).collect()
}

fn invocation_ids(page: &Page<Invocation>) -> Vec<&str> {
    page.items.iter().map(|i| i.id.as_str()).collect()
}

fn sorted_ids(subscriptions: &[Subscription]) -> Vec<&str> {
    let mut ids: Vec<&str> = subscriptions.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    ids
}

async fn delete_all(store: &Arc<dyn SubscriptionStore>, ids: impl IntoIterator<Item = String>) {
    for id in ids {
        store
            .delete(&id)
            .await
            .unwrap_or_else(|e| panic!("cleanup: delete {id}: {e:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// SubscriptionStore

async fn subscriptions_start_empty(store: &Arc<dyn SubscriptionStore>) {
    let page = store
        .list(&q(&[("count", "true")]))
        .await
        .expect("list on an empty store");
    assert_eq!(
        (page.items.len(), page.total),
        (0, Some(0)),
        "the subscription contract suite needs a fresh, empty store"
    );
}

/// Six subscriptions over four triggers whose id order and name order differ:
/// dynamic-approver < post-approval < pre-approval < identity-created by id, but
/// "Access Request Decision" (post) < "Access Request Dynamic Approval" < "Access Request
/// Submitted" (pre) < "Identity Created" by name.
fn subscription_list_seed() -> Vec<Subscription> {
    vec![
        http_subscription("list-1", IDENTITY_CREATED),
        eventbridge_subscription("list-2", PRE_APPROVAL),
        Subscription {
            enabled: false,
            ..http_subscription("list-3", IDENTITY_CREATED)
        },
        eventbridge_subscription("list-4", DYNAMIC_APPROVER),
        http_subscription("list-5", POST_APPROVAL),
        eventbridge_subscription("list-6", IDENTITY_CREATED),
    ]
}

async fn subscription_lists(store: &Arc<dyn SubscriptionStore>) {
    let seed = subscription_list_seed();
    for s in &seed {
        store
            .create(s, limit_of(&s.trigger_id))
            .await
            .unwrap_or_else(|e| panic!("create {} for the list checks: {e:?}", s.id));
    }

    let all = ["list-1", "list-2", "list-3", "list-4", "list-5", "list-6"];
    let cases: &[ListCase] = &[
        (&[], &all),
        (&[("filters", r#"id eq "list-3""#)], &["list-3"]),
        (&[("filters", r#"id eq "no-such-id""#)], &[]),
        (
            &[("filters", &format!(r#"triggerId eq "{IDENTITY_CREATED}""#))],
            &["list-1", "list-3", "list-6"],
        ),
        (
            &[("filters", r#"type eq "EVENTBRIDGE""#)],
            &["list-2", "list-4", "list-6"],
        ),
        (
            &[("filters", r#"type eq "HTTP""#)],
            &["list-1", "list-3", "list-5"],
        ),
        (
            &[("filters", r#"type le "EVENTBRIDGE""#)],
            &["list-2", "list-4", "list-6"],
        ),
        (&[("filters", r#"type le "HTTP""#)], &all),
        (
            &[(
                "filters",
                &format!(r#"triggerId eq "{IDENTITY_CREATED}" and type eq "HTTP""#),
            )],
            &["list-1", "list-3"],
        ),
        (
            &[("sorters", "triggerId")],
            &["list-4", "list-5", "list-2", "list-1", "list-3", "list-6"],
        ),
        (
            &[("sorters", "-triggerId")],
            &["list-1", "list-3", "list-6", "list-2", "list-5", "list-4"],
        ),
        (
            &[("sorters", "triggerName")],
            &["list-5", "list-4", "list-2", "list-1", "list-3", "list-6"],
        ),
        (
            &[("sorters", "-triggerName")],
            &["list-1", "list-3", "list-6", "list-2", "list-4", "list-5"],
        ),
        (
            &[
                ("filters", r#"type eq "EVENTBRIDGE""#),
                ("sorters", "-triggerName"),
            ],
            &["list-6", "list-2", "list-4"],
        ),
    ];
    for (params, expected) in cases {
        let page = store
            .list(&q(params))
            .await
            .unwrap_or_else(|e| panic!("list {params:?}: {e:?}"));
        assert_eq!(
            subscription_ids(&page),
            *expected,
            "list {params:?}: wrong items or order (ties and the default order go by id)"
        );
        assert_eq!(
            page.total, None,
            "list {params:?}: no total unless count=true"
        );
    }

    let page = store
        .list(&q(&[("filters", r#"id eq "list-3""#)]))
        .await
        .unwrap();
    assert_eq!(
        page.items,
        [seed[2].clone()],
        "a listed subscription must be the whole stored model"
    );

    let mut seen = Vec::new();
    for offset in ["0", "2", "4", "6"] {
        let page = store
            .list(&q(&[
                ("sorters", "triggerId"),
                ("limit", "2"),
                ("offset", offset),
                ("count", "true"),
            ]))
            .await
            .unwrap();
        assert_eq!(
            page.total,
            Some(6),
            "count=true must give the unpaged total (offset {offset})"
        );
        assert!(
            page.items.len() <= 2,
            "limit=2 gave {} items",
            page.items.len()
        );
        seen.extend(subscription_ids(&page).into_iter().map(str::to_owned));
    }
    assert_eq!(
        seen,
        ["list-4", "list-5", "list-2", "list-1", "list-3", "list-6"],
        "pages of 2 must cover the sorted list once, without overlap or gap"
    );

    let page = store
        .list(&q(&[
            ("filters", r#"type eq "HTTP""#),
            ("limit", "0"),
            ("count", "true"),
        ]))
        .await
        .unwrap();
    assert_eq!(
        (page.items.len(), page.total),
        (0, Some(3)),
        "limit=0 with count=true: no items, the filtered total"
    );

    let fan_out = store.list_for_trigger(IDENTITY_CREATED).await.unwrap();
    assert_eq!(
        sorted_ids(&fan_out),
        ["list-1", "list-3", "list-6"],
        "list_for_trigger must return every subscription of the trigger, disabled ones too"
    );
    let by_id = |id: &str| seed.iter().find(|s| s.id == id).unwrap().clone();
    for s in &fan_out {
        assert_eq!(
            *s,
            by_id(&s.id),
            "list_for_trigger must return whole models"
        );
    }
    assert!(
        store
            .list_for_trigger("idn:source-deleted")
            .await
            .unwrap()
            .is_empty(),
        "list_for_trigger of a trigger without subscriptions must be empty"
    );

    delete_all(store, seed.into_iter().map(|s| s.id)).await;
}

async fn subscription_create_then_get_round_trips(store: &Arc<dyn SubscriptionStore>) {
    let bearer = Subscription {
        target: Target::Http(HttpTarget {
            url: "https://approvals.example.com/hooks/pre-approval".to_owned(),
            mode: DispatchMode::Dynamic,
            auth: HttpAuth::Bearer {
                token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0cmlnZ2VybGluZSJ9.c2lnbmF0dXJl".into(),
            },
        }),
        response_deadline: IsoDuration::parse("responseDeadline", "P1DT2H").unwrap(),
        created: at(3),
        modified: at(7),
        version: 4,
        ..http_subscription("round-trip-bearer", PRE_APPROVAL)
    };
    let unauthenticated = Subscription {
        target: Target::Http(HttpTarget {
            url: "http://127.0.0.1:8080/events".to_owned(),
            mode: DispatchMode::Sync,
            auth: HttpAuth::None,
        }),
        description: Some("Ünïcödé – “quotes”, 'apostrophes' and emoji 🚀".to_owned()),
        ..http_subscription("round-trip-none", IDENTITY_CREATED)
    };
    let all = [
        http_subscription("round-trip-basic", IDENTITY_CREATED),
        bearer,
        unauthenticated,
        eventbridge_subscription("round-trip-eventbridge", IDENTITY_DELETED),
    ];
    for s in &all {
        store
            .create(s, limit_of(&s.trigger_id))
            .await
            .unwrap_or_else(|e| panic!("create {}: {e:?}", s.id));
        let got = store.get(&s.id).await.unwrap();
        assert_eq!(
            got.as_ref(),
            Some(s),
            "get must return the subscription exactly as created"
        );
    }
    delete_all(store, all.into_iter().map(|s| s.id)).await;
}

async fn subscription_get_of_an_unknown_id_is_none(store: &Arc<dyn SubscriptionStore>) {
    assert_eq!(
        store
            .get("00000000-0000-4000-8000-000000000000")
            .await
            .unwrap(),
        None,
        "get of an unknown id must be Ok(None)"
    );
}

async fn subscription_create_refuses_a_taken_id(store: &Arc<dyn SubscriptionStore>) {
    let original = http_subscription("taken", IDENTITY_CREATED);
    store.create(&original, 50).await.unwrap();
    let clash = eventbridge_subscription("taken", IDENTITY_DELETED);
    let result = store.create(&clash, 50).await;
    assert!(
        matches!(
            &result,
            Err(Error::AlreadyExists { kind: ResourceKind::Subscription, id }) if id == "taken"
        ),
        "create with a taken id must be AlreadyExists(subscription, taken), got {result:?}"
    );
    assert_eq!(
        store.get("taken").await.unwrap(),
        Some(original),
        "a refused create must leave the stored subscription untouched"
    );
    assert!(
        store
            .list_for_trigger(IDENTITY_DELETED)
            .await
            .unwrap()
            .is_empty(),
        "a refused create must not appear under its trigger"
    );
    delete_all(store, ["taken".to_owned()]).await;
}

async fn subscription_create_refuses_a_second_request_response_subscription(
    store: &Arc<dyn SubscriptionStore>,
) {
    let limit = limit_of(PRE_APPROVAL);
    assert_eq!(limit, 1, "the catalog's REQUEST_RESPONSE limit");
    let first = http_subscription("approver-first", PRE_APPROVAL);
    store.create(&first, limit).await.unwrap();

    let second = eventbridge_subscription("approver-second", PRE_APPROVAL);
    let result = store.create(&second, limit).await;
    match &result {
        Err(Error::SubscriptionLimit {
            trigger_id,
            trigger_type,
            limit: reported,
            existing,
        }) => {
            assert_eq!(trigger_id, PRE_APPROVAL, "SubscriptionLimit.trigger_id");
            assert_eq!(
                *trigger_type,
                TriggerType::RequestResponse,
                "SubscriptionLimit.trigger_type"
            );
            assert_eq!(*reported, 1, "SubscriptionLimit.limit");
            assert_eq!(
                existing, "approver-first",
                "SubscriptionLimit.existing must name the subscription in the way"
            );
        }
        other => panic!("a second REQUEST_RESPONSE subscription must be refused, got {other:?}"),
    }
    assert_eq!(
        store.get("approver-second").await.unwrap(),
        None,
        "a refused subscription must not be stored"
    );

    let other_trigger = http_subscription("approver-other-trigger", DYNAMIC_APPROVER);
    store
        .create(&other_trigger, limit_of(DYNAMIC_APPROVER))
        .await
        .expect("the limit is per trigger: another RR trigger still takes one");

    store.delete("approver-first").await.unwrap();
    store
        .create(&second, limit)
        .await
        .expect("deleting the only subscription frees the trigger's slot");
    delete_all(
        store,
        [
            "approver-second".to_owned(),
            "approver-other-trigger".to_owned(),
        ],
    )
    .await;
}

async fn subscription_create_refuses_the_51st_fire_and_forget_subscription(
    store: &Arc<dyn SubscriptionStore>,
) {
    let limit = limit_of(IDENTITY_CREATED);
    assert_eq!(limit, 50, "the catalog's FIRE_AND_FORGET limit");
    let ids: Vec<String> = (0..limit).map(|i| format!("listener-{i:02}")).collect();
    let mut creates = JoinSet::new();
    for id in &ids {
        let store = Arc::clone(store);
        let s = http_subscription(id, IDENTITY_CREATED);
        creates.spawn(async move { store.create(&s, limit).await });
    }
    for result in creates.join_all().await {
        result.expect("50 subscriptions fit a FIRE_AND_FORGET trigger");
    }

    let result = store
        .create(&http_subscription("listener-50", IDENTITY_CREATED), limit)
        .await;
    match &result {
        Err(Error::SubscriptionLimit {
            trigger_id,
            trigger_type,
            limit: reported,
            existing,
        }) => {
            assert_eq!(trigger_id, IDENTITY_CREATED, "SubscriptionLimit.trigger_id");
            assert_eq!(
                *trigger_type,
                TriggerType::FireAndForget,
                "SubscriptionLimit.trigger_type"
            );
            assert_eq!(*reported, 50, "SubscriptionLimit.limit");
            assert!(
                ids.contains(existing),
                "SubscriptionLimit.existing must name a subscription of the trigger, got {existing}"
            );
        }
        other => panic!("the 51st FIRE_AND_FORGET subscription must be refused, got {other:?}"),
    }
    let stored = store.list_for_trigger(IDENTITY_CREATED).await.unwrap();
    assert_eq!(stored.len(), 50, "exactly the 50 accepted subscriptions");
    delete_all(store, ids).await;
}

async fn subscription_limit_holds_under_concurrent_creates(store: &Arc<dyn SubscriptionStore>) {
    let limit = limit_of(DYNAMIC_APPROVER);
    let mut creates = JoinSet::new();
    for i in 0..20 {
        let store = Arc::clone(store);
        let s = http_subscription(&format!("racer-{i:02}"), DYNAMIC_APPROVER);
        creates.spawn(async move { (s.id.clone(), store.create(&s, limit).await) });
    }
    let results = creates.join_all().await;
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 20 concurrent creates for a REQUEST_RESPONSE trigger may win: {results:?}"
    );
    let winner = winners[0].clone();
    for (id, result) in &results {
        if *id == winner {
            continue;
        }
        assert!(
            matches!(
                result,
                Err(Error::SubscriptionLimit { existing, limit: 1, .. }) if *existing == winner
            ),
            "a losing concurrent create ({id}) must be SubscriptionLimit naming the winner \
             {winner}, got {result:?}"
        );
    }
    let stored = store.list_for_trigger(DYNAMIC_APPROVER).await.unwrap();
    assert_eq!(
        sorted_ids(&stored),
        [winner.as_str()],
        "only the winner is stored"
    );
    delete_all(store, [winner]).await;
}

async fn subscription_replace_is_conditional_on_the_version(store: &Arc<dyn SubscriptionStore>) {
    let original = http_subscription("replace-me", IDENTITY_CREATED);
    store.create(&original, 50).await.unwrap();

    let updated = Subscription {
        name: "HR audit bus".to_owned(),
        description: None,
        target: Target::EventBridge(EventBridgeTarget {
            aws_account: "210987654321".to_owned(),
            aws_region: "us-east-2".to_owned(),
        }),
        enabled: false,
        filter: None,
        modified: at(15),
        version: 2,
        ..original.clone()
    };
    store
        .replace(&updated, 1)
        .await
        .expect("replace with the stored version must succeed");
    assert_eq!(
        store.get("replace-me").await.unwrap(),
        Some(updated.clone()),
        "get after replace must return the replacement"
    );
    let page = store
        .list(&q(&[(
            "filters",
            r#"id eq "replace-me" and type eq "EVENTBRIDGE""#,
        )]))
        .await
        .unwrap();
    assert_eq!(
        page.items,
        std::slice::from_ref(&updated),
        "list filters must see the replaced type (indexed columns follow the body)"
    );

    let stale = Subscription {
        name: "A write that lost the race".to_owned(),
        version: 2,
        ..original.clone()
    };
    let result = store.replace(&stale, 1).await;
    assert!(
        matches!(
            &result,
            Err(Error::Conflict { kind: ResourceKind::Subscription, id }) if id == "replace-me"
        ),
        "replace with a stale version must be Conflict(subscription, replace-me), got {result:?}"
    );
    assert_eq!(
        store.get("replace-me").await.unwrap(),
        Some(updated.clone()),
        "a conflicting replace must change nothing"
    );

    let third = Subscription {
        name: "HR audit bus v3".to_owned(),
        version: 3,
        modified: at(20),
        ..updated
    };
    store
        .replace(&third, 2)
        .await
        .expect("replace with the new stored version must succeed");
    assert_eq!(store.get("replace-me").await.unwrap(), Some(third));

    let missing = Subscription {
        version: 2,
        ..http_subscription("never-created", IDENTITY_CREATED)
    };
    let result = store.replace(&missing, 1).await;
    assert!(
        matches!(
            &result,
            Err(Error::NotFound { kind: ResourceKind::Subscription, id }) if id == "never-created"
        ),
        "replace of a missing subscription must be NotFound(subscription, never-created), got \
         {result:?}"
    );
    assert_eq!(
        store.get("never-created").await.unwrap(),
        None,
        "replace must never create"
    );
    delete_all(store, ["replace-me".to_owned()]).await;
}

async fn subscription_delete_removes_once(store: &Arc<dyn SubscriptionStore>) {
    let doomed = http_subscription("delete-me", IDENTITY_CREATED);
    let kept = http_subscription("keep-me", IDENTITY_CREATED);
    store.create(&doomed, 50).await.unwrap();
    store.create(&kept, 50).await.unwrap();

    store
        .delete("delete-me")
        .await
        .expect("delete of a stored subscription");
    assert_eq!(
        store.get("delete-me").await.unwrap(),
        None,
        "get after delete"
    );
    assert_eq!(
        sorted_ids(&store.list_for_trigger(IDENTITY_CREATED).await.unwrap()),
        ["keep-me"],
        "delete must remove only its subscription"
    );
    let result = store.delete("delete-me").await;
    assert!(
        matches!(
            &result,
            Err(Error::NotFound { kind: ResourceKind::Subscription, id }) if id == "delete-me"
        ),
        "a second delete must be NotFound(subscription, delete-me), got {result:?}"
    );
    delete_all(store, ["keep-me".to_owned()]).await;
}

// ---------------------------------------------------------------------------------------------
// InvocationStore

async fn invocations_start_empty(store: &Arc<dyn InvocationScans>) {
    let page = store
        .list(&q(&[("count", "true")]))
        .await
        .expect("list on an empty store");
    assert_eq!(
        (page.items.len(), page.total),
        (0, Some(0)),
        "the invocation contract suite needs a fresh, empty store"
    );
}

const AUDIT: (&str, &str) = ("sub-audit", "Audit log");
const APPROVER: (&str, &str) = ("sub-approver", "Approver");
const CRM: (&str, &str) = ("sub-crm", "CRM sync");

/// Six invocations with ties on `created` (inv-3, inv-4) and open ones without `completed`.
fn invocation_list_seed() -> Vec<Invocation> {
    vec![
        invocation("inv-1", IDENTITY_CREATED, AUDIT, 0, Some(1)),
        invocation("inv-2", PRE_APPROVAL, APPROVER, 1, None),
        invocation("inv-3", IDENTITY_CREATED, CRM, 2, Some(5)),
        invocation("inv-4", IDENTITY_CREATED, AUDIT, 2, Some(3)),
        invocation("inv-5", PRE_APPROVAL, APPROVER, 4, Some(4)),
        invocation("inv-6", IDENTITY_CREATED, CRM, 5, None),
    ]
}

async fn invocation_lists(store: &Arc<dyn InvocationScans>) {
    let seed = invocation_list_seed();
    store
        .create_all(&seed)
        .await
        .expect("create_all of the list seed");
    for i in &seed {
        assert_eq!(
            store.get(&i.id).await.unwrap().as_ref(),
            Some(i),
            "get must return the invocation exactly as created"
        );
    }
    assert_eq!(
        store.get("no-such-invocation").await.unwrap(),
        None,
        "get of an unknown id must be Ok(None)"
    );

    let newest_first: &[&str] = &["inv-6", "inv-5", "inv-3", "inv-4", "inv-2", "inv-1"];
    let cases: &[ListCase] = &[
        (&[], newest_first),
        (&[("sorters", "-created")], newest_first),
        (
            &[("sorters", "created")],
            &["inv-1", "inv-2", "inv-3", "inv-4", "inv-5", "inv-6"],
        ),
        (
            &[("sorters", "completed")],
            &["inv-2", "inv-6", "inv-1", "inv-4", "inv-5", "inv-3"],
        ),
        (
            &[("sorters", "-completed")],
            &["inv-3", "inv-5", "inv-4", "inv-1", "inv-2", "inv-6"],
        ),
        (
            &[("sorters", "triggerId")],
            &["inv-2", "inv-5", "inv-1", "inv-3", "inv-4", "inv-6"],
        ),
        (
            &[("sorters", "-triggerId")],
            &["inv-1", "inv-3", "inv-4", "inv-6", "inv-2", "inv-5"],
        ),
        (
            &[("sorters", "subscriptionName")],
            &["inv-2", "inv-5", "inv-1", "inv-4", "inv-3", "inv-6"],
        ),
        (
            &[("sorters", "-subscriptionName")],
            &["inv-3", "inv-6", "inv-1", "inv-4", "inv-2", "inv-5"],
        ),
        (
            &[("sorters", "triggerId,-created")],
            &["inv-5", "inv-2", "inv-6", "inv-3", "inv-4", "inv-1"],
        ),
        (
            &[("filters", &format!(r#"triggerId eq "{IDENTITY_CREATED}""#))],
            &["inv-6", "inv-3", "inv-4", "inv-1"],
        ),
        (
            &[("filters", r#"subscriptionId eq "sub-audit""#)],
            &["inv-4", "inv-1"],
        ),
        (
            &[(
                "filters",
                &format!(r#"triggerId eq "{IDENTITY_CREATED}" and subscriptionId eq "sub-crm""#),
            )],
            &["inv-6", "inv-3"],
        ),
        (
            &[
                ("filters", r#"subscriptionId eq "sub-audit""#),
                ("sorters", "completed"),
            ],
            &["inv-1", "inv-4"],
        ),
        (&[("filters", r#"triggerId eq "idn:source-deleted""#)], &[]),
    ];
    for (params, expected) in cases {
        let page = store
            .list(&q(params))
            .await
            .unwrap_or_else(|e| panic!("list {params:?}: {e:?}"));
        assert_eq!(
            invocation_ids(&page),
            *expected,
            "list {params:?}: wrong items or order (default newest first; ties by id \
             ascending; open invocations have no completed time, which sorts first ascending)"
        );
        assert_eq!(
            page.total, None,
            "list {params:?}: no total unless count=true"
        );
    }

    let page = store
        .list(&q(&[("filters", r#"subscriptionId eq "sub-approver""#)]))
        .await
        .unwrap();
    assert_eq!(
        page.items,
        [seed[4].clone(), seed[1].clone()],
        "listed invocations must be the whole stored models"
    );

    let mut seen = Vec::new();
    for offset in ["0", "2", "4", "6"] {
        let page = store
            .list(&q(&[("limit", "2"), ("offset", offset), ("count", "true")]))
            .await
            .unwrap();
        assert_eq!(
            page.total,
            Some(6),
            "count=true must give the unpaged total (offset {offset})"
        );
        seen.extend(invocation_ids(&page).into_iter().map(str::to_owned));
    }
    assert_eq!(
        seen, newest_first,
        "pages of 2 must cover the list once, without overlap or gap"
    );
    let page = store
        .list(&q(&[
            ("filters", &format!(r#"triggerId eq "{PRE_APPROVAL}""#)),
            ("count", "true"),
            ("limit", "1"),
        ]))
        .await
        .unwrap();
    assert_eq!(
        (invocation_ids(&page), page.total),
        (vec!["inv-5"], Some(2)),
        "count=true gives the filtered, unpaged total"
    );
}

async fn invocation_create_all_is_all_or_nothing(store: &Arc<dyn InvocationScans>) {
    store
        .create_all(&[])
        .await
        .expect("create_all of nothing is Ok");

    let existing = invocation("batch-existing", IDENTITY_CREATED, AUDIT, 10, None);
    store
        .create_all(std::slice::from_ref(&existing))
        .await
        .unwrap();

    let batch = [
        invocation("batch-a", IDENTITY_CREATED, AUDIT, 11, None),
        invocation("batch-b", IDENTITY_CREATED, CRM, 11, None),
        Invocation {
            subscription_name: "A clashing copy".to_owned(),
            ..existing.clone()
        },
        invocation("batch-c", PRE_APPROVAL, APPROVER, 11, None),
    ];
    let result = store.create_all(&batch).await;
    assert!(
        matches!(
            &result,
            Err(Error::AlreadyExists { kind: ResourceKind::Invocation, id }) if id == "batch-existing"
        ),
        "create_all with a taken id must be AlreadyExists(invocation, batch-existing), got \
         {result:?}"
    );
    for id in ["batch-a", "batch-b", "batch-c"] {
        assert_eq!(
            store.get(id).await.unwrap(),
            None,
            "create_all is all or nothing: {id} must not be written when another id clashes"
        );
    }
    assert_eq!(
        store.get("batch-existing").await.unwrap(),
        Some(existing),
        "a refused create_all must leave the stored invocation untouched"
    );

    let twins = [
        invocation("batch-twin", IDENTITY_CREATED, AUDIT, 12, None),
        invocation("batch-twin", IDENTITY_CREATED, CRM, 12, None),
    ];
    let result = store.create_all(&twins).await;
    assert!(
        matches!(
            &result,
            Err(Error::AlreadyExists { kind: ResourceKind::Invocation, id }) if id == "batch-twin"
        ),
        "create_all with the same id twice must be AlreadyExists(invocation, batch-twin), got \
         {result:?}"
    );
    assert_eq!(
        store.get("batch-twin").await.unwrap(),
        None,
        "create_all with a duplicate id must write nothing"
    );

    let fan_out: Vec<Invocation> = (0..30)
        .map(|i| {
            invocation(
                &format!("batch-fan-{i:02}"),
                IDENTITY_CREATED,
                (&format!("sub-fan-{i:02}"), "Fan-out listener"),
                13,
                None,
            )
        })
        .collect();
    store
        .create_all(&fan_out)
        .await
        .expect("create_all of a 30-subscription fan-out");
    for i in &fan_out {
        assert_eq!(store.get(&i.id).await.unwrap().as_ref(), Some(i));
    }
}

fn approval() -> Value {
    json!({"approved": true, "comment": "Within policy", "approver": "AcmeCorpExternalIntegration"})
}

async fn invocation_transition_completes_an_open_invocation_once(store: &Arc<dyn InvocationScans>) {
    let sub = ("sub-transition", "Transition approver");
    let open = invocation("transition-1", PRE_APPROVAL, sub, 20, None);
    let neighbour = invocation("transition-2", PRE_APPROVAL, sub, 21, None);
    store
        .create_all(&[open.clone(), neighbour.clone()])
        .await
        .unwrap();

    let completion = Transition {
        to: InvocationState::Completed,
        completed: Some(at(22)),
        output: Some(approval()),
        error: None,
    };
    let open_states = [InvocationState::Pending, InvocationState::Acknowledged];
    let written = store
        .transition("transition-1", &open_states, &completion)
        .await
        .expect("Pending -> Completed");
    let expected = Invocation {
        state: InvocationState::Completed,
        completed: Some(at(22)),
        output: Some(approval()),
        error: None,
        ..open.clone()
    };
    assert_eq!(
        written, expected,
        "transition must return the invocation as written: state, completed, output and error \
         from the transition, everything else kept"
    );
    assert_eq!(
        store.get("transition-1").await.unwrap(),
        Some(expected.clone()),
        "get after transition"
    );
    assert_eq!(
        store.get("transition-2").await.unwrap(),
        Some(neighbour),
        "a transition must touch only its invocation"
    );
    let page = store
        .list(&q(&[
            ("filters", r#"subscriptionId eq "sub-transition""#),
            ("sorters", "completed"),
        ]))
        .await
        .unwrap();
    assert_eq!(
        invocation_ids(&page),
        ["transition-2", "transition-1"],
        "sorting by completed must see the transition's completion time"
    );

    let late = Transition {
        to: InvocationState::TimedOut,
        completed: Some(at(80)),
        output: None,
        error: Some("the response deadline passed".to_owned()),
    };
    let result = store.transition("transition-1", &open_states, &late).await;
    assert!(
        matches!(
            &result,
            Err(Error::NotOpen { id, status: InvocationState::Completed }) if id == "transition-1"
        ),
        "a second transition from the open states must be NotOpen(transition-1, COMPLETED), got \
         {result:?}"
    );
    assert_eq!(
        store.get("transition-1").await.unwrap(),
        Some(expected),
        "a refused transition must change nothing"
    );
}

async fn invocation_transition_moves_through_acknowledged(store: &Arc<dyn InvocationScans>) {
    let open = invocation(
        "ack-1",
        PRE_APPROVAL,
        ("sub-ack", "Async approver"),
        30,
        None,
    );
    store.create_all(std::slice::from_ref(&open)).await.unwrap();

    let fail = Transition {
        to: InvocationState::Failed,
        completed: Some(at(31)),
        output: None,
        error: Some("subscriber answered 500 five times".to_owned()),
    };
    let result = store
        .transition("ack-1", &[InvocationState::Acknowledged], &fail)
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::NotOpen { id, status: InvocationState::Pending }) if id == "ack-1"
        ),
        "a transition whose `from` lacks the current state must be NotOpen(ack-1, PENDING), got \
         {result:?}"
    );

    let acknowledge = Transition {
        to: InvocationState::Acknowledged,
        completed: None,
        output: None,
        error: None,
    };
    let acknowledged = store
        .transition("ack-1", &[InvocationState::Pending], &acknowledge)
        .await
        .expect("Pending -> Acknowledged");
    assert_eq!(acknowledged.state, InvocationState::Acknowledged);
    assert_eq!(
        acknowledged.completed, None,
        "a non-final state has no completed time"
    );

    let failed = store
        .transition("ack-1", &[InvocationState::Acknowledged], &fail)
        .await
        .expect("Acknowledged -> Failed");
    assert_eq!(
        failed,
        Invocation {
            state: InvocationState::Failed,
            completed: Some(at(31)),
            error: Some("subscriber answered 500 five times".to_owned()),
            ..open
        }
    );
    assert_eq!(store.get("ack-1").await.unwrap(), Some(failed));
}

async fn invocation_transition_of_an_unknown_id_is_not_found(store: &Arc<dyn InvocationScans>) {
    let result = store
        .transition(
            "never-invoked",
            &[InvocationState::Pending],
            &Transition {
                to: InvocationState::Completed,
                completed: Some(at(40)),
                output: None,
                error: None,
            },
        )
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::NotFound { kind: ResourceKind::Invocation, id }) if id == "never-invoked"
        ),
        "transition of an unknown id must be NotFound(invocation, never-invoked), got {result:?}"
    );
    assert_eq!(
        store.get("never-invoked").await.unwrap(),
        None,
        "transition must never create"
    );
}

async fn invocation_transition_has_one_winner_under_concurrency(store: &Arc<dyn InvocationScans>) {
    let open = invocation("race-1", PRE_APPROVAL, ("sub-race", "Racer"), 50, None);
    store.create_all(&[open]).await.unwrap();

    let mut racers = JoinSet::new();
    for n in 0..30 {
        let store = Arc::clone(store);
        racers.spawn(async move {
            let transition = Transition {
                to: InvocationState::Completed,
                completed: Some(at(51)),
                output: Some(json!({"racer": n})),
                error: None,
            };
            let result = store
                .transition(
                    "race-1",
                    &[InvocationState::Pending, InvocationState::Acknowledged],
                    &transition,
                )
                .await;
            (n, result)
        });
    }
    let results = racers.join_all().await;
    let winners: Vec<i32> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 30 concurrent transitions may win: {results:?}"
    );
    for (n, result) in &results {
        if *n == winners[0] {
            continue;
        }
        assert!(
            matches!(
                result,
                Err(Error::NotOpen {
                    status: InvocationState::Completed,
                    ..
                })
            ),
            "a losing transition ({n}) must be NotOpen(COMPLETED), got {result:?}"
        );
    }
    let stored = store.get("race-1").await.unwrap().unwrap();
    assert_eq!(
        stored.output,
        Some(json!({"racer": winners[0]})),
        "the stored outcome must be the winner's"
    );
    let distinct: BTreeSet<_> = results.iter().map(|(n, _)| *n).collect();
    assert_eq!(distinct.len(), 30, "every racer reported");
}

/// Minutes (from [`at`]) around which the sweep check's deadlines lie: long before every other
/// check's, so their invocations never count.
const SWEEP: i64 = -10_000;

/// An open invocation of a REQUEST_RESPONSE trigger with this deadline (minutes from [`at`]).
fn waiting(id: &str, state: InvocationState, deadline: Option<i64>) -> Invocation {
    Invocation {
        state,
        deadline: deadline.map(at),
        ..invocation(
            id,
            PRE_APPROVAL,
            ("sub-sweep", "Sweep approver"),
            SWEEP - 60,
            None,
        )
    }
}

/// A finished invocation: `COMPLETED` with an output, or `FAILED`/`TIMED_OUT` with an error.
fn finished(id: &str, state: InvocationState, completed: i64) -> Invocation {
    let succeeded = state == InvocationState::Completed;
    Invocation {
        state,
        output: if succeeded { Some(approval()) } else { None },
        error: (!succeeded).then(|| "no answer before the deadline".to_owned()),
        ..invocation(
            id,
            PRE_APPROVAL,
            ("sub-retention", "Retention approver"),
            completed - 5,
            Some(completed),
        )
    }
}

async fn invocation_overdue_lists_open_invocations_past_their_deadline(
    store: &Arc<dyn InvocationScans>,
) {
    let seed = [
        waiting("overdue-late", InvocationState::Pending, Some(SWEEP + 5)),
        waiting(
            "overdue-acked",
            InvocationState::Acknowledged,
            Some(SWEEP + 1),
        ),
        waiting("overdue-mid", InvocationState::Pending, Some(SWEEP + 3)),
        waiting("overdue-edge", InvocationState::Pending, Some(SWEEP + 10)),
        waiting("overdue-future", InvocationState::Pending, Some(SWEEP + 20)),
        waiting("overdue-no-deadline", InvocationState::Pending, None),
        Invocation {
            deadline: Some(at(SWEEP + 2)),
            ..finished("overdue-completed", InvocationState::Completed, SWEEP + 1)
        },
        Invocation {
            deadline: Some(at(SWEEP + 2)),
            ..finished("overdue-timed-out", InvocationState::TimedOut, SWEEP + 4)
        },
    ];
    store.create_all(&seed).await.unwrap();
    let by_id = |id: &str| seed.iter().find(|i| i.id == id).unwrap().clone();

    let overdue = store.overdue(at(SWEEP + 10), 10).await.unwrap();
    assert_eq!(
        overdue,
        [
            by_id("overdue-acked"),
            by_id("overdue-mid"),
            by_id("overdue-late")
        ],
        "overdue must list the open invocations (PENDING, ACKNOWLEDGED) whose deadline is \
         before now, earliest deadline first, as whole models: not finished ones, not those \
         without a deadline, not those whose deadline is now or later"
    );
    let first_two = store.overdue(at(SWEEP + 10), 2).await.unwrap();
    assert_eq!(
        invocation_ids(&Page {
            items: first_two,
            total: None
        }),
        ["overdue-acked", "overdue-mid"],
        "overdue must return at most `limit`, the earliest deadlines"
    );
    assert_eq!(
        store.overdue(at(SWEEP + 1), 10).await.unwrap(),
        [],
        "a deadline equal to now is not past"
    );

    store
        .transition(
            "overdue-acked",
            &[InvocationState::Acknowledged],
            &Transition {
                to: InvocationState::TimedOut,
                completed: Some(at(SWEEP + 10)),
                output: None,
                error: Some("the response deadline passed".to_owned()),
            },
        )
        .await
        .unwrap();
    let after = store.overdue(at(SWEEP + 10), 10).await.unwrap();
    assert_eq!(
        invocation_ids(&Page {
            items: after,
            total: None
        }),
        ["overdue-mid", "overdue-late"],
        "an invocation that timed out is no longer overdue"
    );
}

async fn invocation_purge_deletes_finished_invocations_past_their_retention(
    store: &Arc<dyn InvocationScans>,
) {
    const P: i64 = 2 * SWEEP;
    let seed = [
        finished("purge-completed-old", InvocationState::Completed, P),
        finished("purge-completed-edge", InvocationState::Completed, P + 5),
        finished("purge-completed-new", InvocationState::Completed, P + 10),
        finished("purge-failed-old", InvocationState::Failed, P + 1),
        finished("purge-timed-out-old", InvocationState::TimedOut, P + 2),
        finished("purge-failed-new", InvocationState::Failed, P + 20),
        Invocation {
            created: at(P - 100),
            ..waiting("purge-pending", InvocationState::Pending, Some(P - 40))
        },
        Invocation {
            created: at(P - 100),
            ..waiting("purge-acked", InvocationState::Acknowledged, Some(P - 40))
        },
    ];
    store.create_all(&seed).await.unwrap();
    async fn present(store: &Arc<dyn InvocationScans>, ids: &[&str]) -> Vec<String> {
        let mut kept = Vec::new();
        for id in ids {
            if store.get(id).await.unwrap().is_some() {
                kept.push((*id).to_owned());
            }
        }
        kept
    }
    let all: Vec<&str> = seed.iter().map(|i| i.id.as_str()).collect();

    // COMPLETED before P+5; FAILED and TIMED_OUT before P+15.
    let (succeeded_before, failed_before) = (at(P + 5), at(P + 15));
    let mut counts = Vec::new();
    for _ in 0..3 {
        counts.push(
            store
                .purge(succeeded_before, failed_before, 2)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        counts,
        [2, 1, 0],
        "purge must delete at most `limit` per call and say how many it deleted"
    );
    assert_eq!(
        present(store, &all).await,
        [
            "purge-completed-edge",
            "purge-completed-new",
            "purge-failed-new",
            "purge-pending",
            "purge-acked"
        ],
        "purge must delete COMPLETED invocations completed before `succeeded_before` and \
         FAILED/TIMED_OUT ones completed before `failed_before` (strictly), nothing open, and \
         must not use one state's cutoff for the other"
    );

    assert_eq!(
        store.purge(at(P + 30), at(P), 10).await.unwrap(),
        2,
        "a late `succeeded_before` takes the remaining COMPLETED ones and no FAILED one"
    );
    assert_eq!(
        store.purge(at(P), at(P + 21), 10).await.unwrap(),
        1,
        "a late `failed_before` takes the remaining FAILED one"
    );
    assert_eq!(
        present(store, &all).await,
        ["purge-pending", "purge-acked"],
        "open invocations are never purged"
    );
    assert_eq!(
        store.get("purge-acked").await.unwrap().as_ref(),
        Some(&seed[7]),
        "purge leaves what it keeps untouched"
    );
}

// ---------------------------------------------------------------------------------------------
// DeliveryQueue

const QUEUE_SUB: (&str, &str) = ("sub-queue", "Queue listener");

/// A fresh invocation as the intake writes it: open, not yet attempted.
fn fresh(id: &str, trigger_id: &str) -> Invocation {
    Invocation {
        attempts: Vec::new(),
        ..invocation(id, trigger_id, QUEUE_SUB, 0, None)
    }
}

fn attempt(started: i64, status_code: Option<u16>, outcome: AttemptOutcome) -> Attempt {
    Attempt {
        started_at: at(started),
        target: "hooks.example.com".to_owned(),
        status_code,
        duration_ms: 120,
        outcome,
        error: status_code
            .filter(|code| *code >= 500)
            .map(|code| format!("the subscriber answered {code}")),
    }
}

fn item(id: &str, not_before: i64, attempts: u32) -> WorkItem {
    WorkItem {
        invocation_id: id.to_owned(),
        not_before: at(not_before),
        attempts,
    }
}

/// Items in invocation id order, for comparing sets of items.
fn by_invocation(mut items: Vec<WorkItem>) -> Vec<WorkItem> {
    items.sort_by(|a, b| a.invocation_id.cmp(&b.invocation_id));
    items
}

fn work_ids(items: &[WorkItem]) -> Vec<&str> {
    items.iter().map(|i| i.invocation_id.as_str()).collect()
}

const OPEN: [InvocationState; 2] = [InvocationState::Pending, InvocationState::Acknowledged];

fn completion(minutes: i64) -> Transition {
    Transition {
        to: InvocationState::Completed,
        completed: Some(at(minutes)),
        output: Some(approval()),
        error: None,
    }
}

async fn assert_no_work(queue: &Arc<dyn DeliveryQueue>, why: &str) {
    assert_eq!(
        queue.next_due().await.unwrap(),
        None,
        "{why}: next_due must be None when the queue holds no work"
    );
}

async fn discard_all(queue: &Arc<dyn DeliveryQueue>, ids: &[&str]) {
    for id in ids {
        queue
            .discard(id)
            .await
            .unwrap_or_else(|e| panic!("cleanup: discard {id}: {e:?}"));
    }
}

async fn queue_accept_writes_invocations_and_due_work(
    queue: &Arc<dyn DeliveryQueue>,
    invocations: &Arc<dyn InvocationScans>,
) {
    assert_eq!(
        queue.accept(&[], at(100), None).await.unwrap(),
        [],
        "accept of nothing is Ok and makes no work"
    );
    let batch = [
        fresh("queue-accept-1", IDENTITY_CREATED),
        fresh("queue-accept-2", PRE_APPROVAL),
    ];
    let items = queue.accept(&batch, at(100), None).await.unwrap();
    assert_eq!(
        by_invocation(items),
        [
            item("queue-accept-1", 100, 0),
            item("queue-accept-2", 100, 0)
        ],
        "accept returns one item per invocation, due at not_before, with no attempts"
    );
    for i in &batch {
        assert_eq!(
            invocations.get(&i.id).await.unwrap().as_ref(),
            Some(i),
            "an accepted invocation is readable through the invocation store, as given"
        );
    }
    assert_eq!(queue.next_due().await.unwrap(), Some(at(100)));

    assert_eq!(
        queue.claim_due(at(99), at(110), 10).await.unwrap(),
        [],
        "an item is not claimable before its not_before"
    );
    let claimed = queue.claim_due(at(100), at(110), 10).await.unwrap();
    assert_eq!(
        by_invocation(claimed),
        [
            item("queue-accept-1", 100, 0),
            item("queue-accept-2", 100, 0)
        ],
        "an unleased item is claimable from its not_before on (inclusive)"
    );
    assert_eq!(
        queue.claim_due(at(100), at(110), 10).await.unwrap(),
        [],
        "a claimed item is leased: a second claim at the same time gets nothing"
    );
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(110)),
        "with only leased items, next_due is the earliest lease end"
    );

    discard_all(queue, &["queue-accept-1", "queue-accept-2"]).await;
    assert_no_work(queue, "after discarding the accept check's items").await;
}

async fn queue_accept_is_all_or_nothing(
    queue: &Arc<dyn DeliveryQueue>,
    invocations: &Arc<dyn InvocationScans>,
) {
    let existing = fresh("queue-existing", IDENTITY_CREATED);
    queue
        .accept(std::slice::from_ref(&existing), at(200), None)
        .await
        .unwrap();
    let stored_only = fresh("queue-stored-only", IDENTITY_CREATED);
    invocations
        .create_all(std::slice::from_ref(&stored_only))
        .await
        .unwrap();

    let clash = [
        fresh("queue-clash-a", IDENTITY_CREATED),
        Invocation {
            subscription_name: "A clashing copy".to_owned(),
            ..existing.clone()
        },
        fresh("queue-clash-b", IDENTITY_CREATED),
    ];
    let result = queue.accept(&clash, at(150), None).await;
    assert!(
        matches!(
            &result,
            Err(Error::AlreadyExists { kind: ResourceKind::Invocation, id }) if id == "queue-existing"
        ),
        "accept with a taken id must be AlreadyExists(invocation, queue-existing), got {result:?}"
    );
    let result = queue
        .accept(
            &[
                fresh("queue-clash-c", IDENTITY_CREATED),
                stored_only.clone(),
            ],
            at(150),
            Some(at(400)),
        )
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::AlreadyExists { kind: ResourceKind::Invocation, id }) if id == "queue-stored-only"
        ),
        "accept of an id written by create_all must be AlreadyExists(invocation, \
         queue-stored-only), got {result:?}"
    );
    let twins = [
        fresh("queue-twin", IDENTITY_CREATED),
        fresh("queue-twin", PRE_APPROVAL),
    ];
    let result = queue.accept(&twins, at(150), None).await;
    assert!(
        matches!(
            &result,
            Err(Error::AlreadyExists { kind: ResourceKind::Invocation, id }) if id == "queue-twin"
        ),
        "accept with the same id twice must be AlreadyExists(invocation, queue-twin), got \
         {result:?}"
    );

    for id in [
        "queue-clash-a",
        "queue-clash-b",
        "queue-clash-c",
        "queue-twin",
    ] {
        assert_eq!(
            invocations.get(id).await.unwrap(),
            None,
            "a refused accept writes no invocation: {id}"
        );
    }
    assert_eq!(
        invocations.get("queue-existing").await.unwrap(),
        Some(existing),
        "a refused accept leaves the stored invocation untouched"
    );
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(200)),
        "a refused accept writes no work item (its items would be due at 150)"
    );
    assert_eq!(
        queue.claim_due(at(500), at(510), 10).await.unwrap(),
        [item("queue-existing", 200, 0)],
        "only the first accept's item exists, unchanged by the refused ones; create_all and a \
         refused accept give queue-stored-only no work"
    );

    discard_all(queue, &["queue-existing"]).await;
    assert_no_work(queue, "after the all-or-nothing check").await;
}

async fn queue_claims_oldest_first_up_to_the_limit(
    queue: &Arc<dyn DeliveryQueue>,
    _invocations: &Arc<dyn InvocationScans>,
) {
    for n in [3, 1, 5, 2, 4] {
        queue
            .accept(
                &[fresh(&format!("queue-order-{n}"), IDENTITY_CREATED)],
                at(300 + n),
                None,
            )
            .await
            .unwrap();
    }
    queue
        .accept(
            &[fresh("queue-order-later", IDENTITY_CREATED)],
            at(400),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(301)),
        "next_due is the earliest not_before of the unleased items"
    );

    let mut rounds = Vec::new();
    for _ in 0..4 {
        let claimed = queue.claim_due(at(310), at(320), 2).await.unwrap();
        rounds.push(
            work_ids(&claimed)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        rounds,
        [
            vec!["queue-order-1", "queue-order-2"],
            vec!["queue-order-3", "queue-order-4"],
            vec!["queue-order-5"],
            vec![],
        ],
        "claim_due leases at most `limit` due items, oldest not_before first, never one that \
         is not yet due"
    );
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(320)),
        "next_due is the earlier of the first lease end (320) and the first unleased due time \
         (400)"
    );

    discard_all(
        queue,
        &[
            "queue-order-1",
            "queue-order-2",
            "queue-order-3",
            "queue-order-4",
            "queue-order-5",
            "queue-order-later",
        ],
    )
    .await;
    assert_no_work(queue, "after the order check").await;
}

async fn queue_leased_items_come_back_when_the_lease_ends(
    queue: &Arc<dyn DeliveryQueue>,
    _invocations: &Arc<dyn InvocationScans>,
) {
    let items = queue
        .accept(
            &[fresh("queue-handoff", IDENTITY_CREATED)],
            at(400),
            Some(at(402)),
        )
        .await
        .unwrap();
    assert_eq!(items, [item("queue-handoff", 400, 0)]);
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(402)),
        "an item accepted with a lease is next due when the lease ends"
    );
    assert_eq!(
        queue.claim_due(at(401), at(410), 10).await.unwrap(),
        [],
        "an item accepted with a lease is not claimable while the lease runs"
    );
    assert_eq!(
        queue.claim_due(at(403), at(410), 10).await.unwrap(),
        [item("queue-handoff", 400, 0)],
        "once its lease has ended the item is claimable (a crashed worker's items come back)"
    );
    assert_eq!(
        queue.claim_due(at(405), at(410), 10).await.unwrap(),
        [],
        "claiming leases the item anew, until lease_until"
    );
    assert_eq!(
        queue.claim_due(at(411), at(420), 10).await.unwrap(),
        [item("queue-handoff", 400, 0)],
        "a lease that ran out again gives the item back again; claims are not attempts"
    );

    discard_all(queue, &["queue-handoff"]).await;
    assert_no_work(queue, "after the lease check").await;
}

async fn queue_settle_done_records_the_attempt_and_the_outcome(
    queue: &Arc<dyn DeliveryQueue>,
    invocations: &Arc<dyn InvocationScans>,
) {
    let open = fresh("queue-done", PRE_APPROVAL);
    queue
        .accept(std::slice::from_ref(&open), at(500), None)
        .await
        .unwrap();
    queue.claim_due(at(500), at(501), 10).await.unwrap();

    let delivered = attempt(500, Some(200), AttemptOutcome::Completed);
    let written = queue
        .settle(
            "queue-done",
            &delivered,
            &OPEN,
            Some(&completion(500)),
            &NextStep::Done,
        )
        .await
        .unwrap();
    let expected = Invocation {
        state: InvocationState::Completed,
        completed: Some(at(500)),
        output: Some(approval()),
        error: None,
        attempts: vec![delivered],
        ..open
    };
    assert_eq!(
        written.as_ref(),
        Some(&expected),
        "settle returns the invocation as written: the attempt appended, the transition applied"
    );
    assert_eq!(
        invocations.get("queue-done").await.unwrap(),
        Some(expected),
        "the attempt and the outcome are stored"
    );
    assert_no_work(queue, "settle with Done removes the item").await;
    assert_eq!(queue.claim_due(at(600), at(610), 10).await.unwrap(), []);
}

async fn queue_settle_keeps_a_state_not_in_from(
    queue: &Arc<dyn DeliveryQueue>,
    invocations: &Arc<dyn InvocationScans>,
) {
    let open = fresh("queue-late", PRE_APPROVAL);
    queue
        .accept(std::slice::from_ref(&open), at(600), None)
        .await
        .unwrap();
    queue.claim_due(at(600), at(610), 10).await.unwrap();
    // The callback answers before the delivery reports.
    let answered = invocations
        .transition("queue-late", &OPEN, &completion(601))
        .await
        .unwrap();

    let failed = attempt(600, Some(502), AttemptOutcome::Failed);
    let give_up = Transition {
        to: InvocationState::Failed,
        completed: Some(at(602)),
        output: None,
        error: Some("the subscriber answered 502".to_owned()),
    };
    let written = queue
        .settle(
            "queue-late",
            &failed,
            &OPEN,
            Some(&give_up),
            &NextStep::Done,
        )
        .await
        .unwrap();
    let expected = Invocation {
        attempts: vec![failed],
        ..answered
    };
    assert_eq!(
        written.as_ref(),
        Some(&expected),
        "settle with a transition whose `from` lacks the current state keeps the state and \
         outcome, and still records the attempt"
    );
    assert_eq!(invocations.get("queue-late").await.unwrap(), Some(expected));
    assert_no_work(
        queue,
        "settle with Done removes the item even without a transition",
    )
    .await;
}

async fn queue_settle_retry_reschedules_and_counts_attempts(
    queue: &Arc<dyn DeliveryQueue>,
    invocations: &Arc<dyn InvocationScans>,
) {
    let open = fresh("queue-retry", IDENTITY_CREATED);
    queue
        .accept(std::slice::from_ref(&open), at(700), None)
        .await
        .unwrap();
    queue.claim_due(at(700), at(760), 10).await.unwrap();

    let first = attempt(700, Some(503), AttemptOutcome::Failed);
    let written = queue
        .settle(
            "queue-retry",
            &first,
            &OPEN,
            None,
            &NextStep::RetryAt(at(710)),
        )
        .await
        .unwrap();
    assert_eq!(
        written,
        Some(Invocation {
            attempts: vec![first.clone()],
            ..open.clone()
        }),
        "settle without a transition records the attempt and keeps the state"
    );
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(710)),
        "RetryAt releases the lease (which ran to 760): the item is next due at the retry time"
    );
    assert_eq!(
        queue.claim_due(at(709), at(715), 10).await.unwrap(),
        [],
        "a rescheduled item is not claimable before its retry time"
    );
    assert_eq!(
        queue.claim_due(at(710), at(715), 10).await.unwrap(),
        [item("queue-retry", 710, 1)],
        "a rescheduled item is claimable at its retry time, with its attempts counted"
    );

    let second = attempt(710, None, AttemptOutcome::Failed);
    queue
        .settle(
            "queue-retry",
            &second,
            &OPEN,
            None,
            &NextStep::RetryAt(at(720)),
        )
        .await
        .unwrap();
    assert_eq!(
        queue.claim_due(at(720), at(725), 10).await.unwrap(),
        [item("queue-retry", 720, 2)]
    );

    let third = attempt(720, Some(500), AttemptOutcome::Failed);
    let give_up = Transition {
        to: InvocationState::Failed,
        completed: Some(at(721)),
        output: None,
        error: Some("gave up after 3 attempts".to_owned()),
    };
    let written = queue
        .settle(
            "queue-retry",
            &third,
            &OPEN,
            Some(&give_up),
            &NextStep::Done,
        )
        .await
        .unwrap();
    let expected = Invocation {
        state: InvocationState::Failed,
        completed: Some(at(721)),
        error: Some("gave up after 3 attempts".to_owned()),
        attempts: vec![first, second, third],
        ..open
    };
    assert_eq!(
        written.as_ref(),
        Some(&expected),
        "attempts accumulate in order"
    );
    assert_eq!(
        invocations.get("queue-retry").await.unwrap(),
        Some(expected)
    );
    assert_no_work(queue, "after the retry check").await;
}

async fn queue_settle_of_a_missing_invocation_is_none(
    queue: &Arc<dyn DeliveryQueue>,
    invocations: &Arc<dyn InvocationScans>,
) {
    for next in [NextStep::Done, NextStep::RetryAt(at(800))] {
        let result = queue
            .settle(
                "queue-never",
                &attempt(800, Some(200), AttemptOutcome::Completed),
                &OPEN,
                Some(&completion(800)),
                &next,
            )
            .await;
        assert!(
            matches!(result, Ok(None)),
            "settle of an unknown invocation ({next:?}) must be Ok(None), got {result:?}"
        );
    }
    assert_eq!(
        invocations.get("queue-never").await.unwrap(),
        None,
        "settle never creates an invocation"
    );
    assert_no_work(queue, "settle never creates work").await;
}

async fn queue_replay_reopens_only_a_failed_invocation(
    queue: &Arc<dyn DeliveryQueue>,
    invocations: &Arc<dyn InvocationScans>,
) {
    // The new deadline lies before every other open invocation's, so that `overdue` can show
    // that the replay moved it.
    const NEW_DEADLINE: i64 = 4 * SWEEP;
    let result = queue
        .replay("queue-never", Some(at(NEW_DEADLINE)), at(850), None)
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::NotFound { kind: ResourceKind::Invocation, id }) if id == "queue-never"
        ),
        "replay of an unknown invocation must be NotFound(invocation, queue-never), got \
         {result:?}"
    );

    let open = fresh("queue-replay", PRE_APPROVAL);
    queue
        .accept(std::slice::from_ref(&open), at(850), None)
        .await
        .unwrap();
    let result = queue
        .replay("queue-replay", Some(at(NEW_DEADLINE)), at(851), None)
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::NotOpen { id, status: InvocationState::Pending }) if id == "queue-replay"
        ),
        "replay of an open invocation must be NotOpen(queue-replay, PENDING), got {result:?}"
    );
    assert_eq!(
        queue.claim_due(at(850), at(855), 10).await.unwrap(),
        [item("queue-replay", 850, 0)],
        "a refused replay leaves the work item as it was"
    );
    let failed = attempt(850, Some(500), AttemptOutcome::Failed);
    let give_up = Transition {
        to: InvocationState::Failed,
        completed: Some(at(851)),
        output: None,
        error: Some("the subscriber answered 500".to_owned()),
    };
    queue
        .settle(
            "queue-replay",
            &failed,
            &OPEN,
            Some(&give_up),
            &NextStep::Done,
        )
        .await
        .unwrap();

    let replayed = queue
        .replay(
            "queue-replay",
            Some(at(NEW_DEADLINE)),
            at(860),
            Some(at(862)),
        )
        .await
        .unwrap();
    assert_eq!(
        replayed,
        item("queue-replay", 860, 0),
        "replay returns the new work item, due at not_before, with no attempts in this round"
    );
    let expected = Invocation {
        deadline: Some(at(NEW_DEADLINE)),
        attempts: vec![failed],
        ..open
    };
    assert_eq!(
        invocations.get("queue-replay").await.unwrap().as_ref(),
        Some(&expected),
        "replay makes the invocation PENDING again: no completed, output or error, the new \
         deadline, the attempts kept"
    );
    assert_eq!(
        invocations.overdue(at(NEW_DEADLINE + 1), 10).await.unwrap(),
        std::slice::from_ref(&expected),
        "a replayed invocation is open again, under its new deadline"
    );
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(862)),
        "the replayed item is leased until leased_until"
    );
    assert_eq!(queue.claim_due(at(861), at(870), 10).await.unwrap(), []);
    assert_eq!(
        queue.claim_due(at(863), at(870), 10).await.unwrap(),
        [item("queue-replay", 860, 0)]
    );

    let completed = queue
        .settle(
            "queue-replay",
            &attempt(863, Some(200), AttemptOutcome::Completed),
            &OPEN,
            Some(&completion(863)),
            &NextStep::Done,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(completed.attempts.len(), 2);
    let result = queue
        .replay("queue-replay", Some(at(NEW_DEADLINE)), at(870), None)
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::NotOpen { id, status: InvocationState::Completed }) if id == "queue-replay"
        ),
        "only a FAILED invocation can be replayed: NotOpen(queue-replay, COMPLETED), got \
         {result:?}"
    );
    assert_eq!(
        invocations.get("queue-replay").await.unwrap(),
        Some(completed),
        "a refused replay changes nothing"
    );
    assert_no_work(queue, "a refused replay queues nothing").await;
}

async fn queue_discard_removes_only_the_work(
    queue: &Arc<dyn DeliveryQueue>,
    invocations: &Arc<dyn InvocationScans>,
) {
    let open = fresh("queue-discard", IDENTITY_CREATED);
    queue
        .accept(std::slice::from_ref(&open), at(900), Some(at(905)))
        .await
        .unwrap();
    queue.discard("queue-discard").await.unwrap();
    assert_no_work(queue, "discard removes the item, leased or not").await;
    assert_eq!(queue.claim_due(at(1000), at(1010), 10).await.unwrap(), []);
    assert_eq!(
        invocations.get("queue-discard").await.unwrap(),
        Some(open),
        "discard leaves the invocation as it was"
    );
    queue
        .discard("queue-discard")
        .await
        .expect("discarding again is Ok");
    queue
        .discard("queue-never")
        .await
        .expect("discarding an unknown item is Ok");
}

async fn queue_release_all_ends_every_lease(
    queue: &Arc<dyn DeliveryQueue>,
    _invocations: &Arc<dyn InvocationScans>,
) {
    queue
        .accept(
            &[fresh("queue-release-handoff", IDENTITY_CREATED)],
            at(1000),
            Some(at(1100)),
        )
        .await
        .unwrap();
    queue
        .accept(
            &[fresh("queue-release-claimed", IDENTITY_CREATED)],
            at(1000),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        queue.claim_due(at(1000), at(1100), 10).await.unwrap(),
        [item("queue-release-claimed", 1000, 0)]
    );
    queue
        .accept(
            &[fresh("queue-release-later", IDENTITY_CREATED)],
            at(1200),
            None,
        )
        .await
        .unwrap();
    assert_eq!(queue.claim_due(at(1001), at(1100), 10).await.unwrap(), []);

    queue.release_all().await.unwrap();
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(1000)),
        "after release_all the leased items are next due at their not_before"
    );
    let claimed = queue.claim_due(at(1001), at(1010), 10).await.unwrap();
    assert_eq!(
        by_invocation(claimed),
        [
            item("queue-release-claimed", 1000, 0),
            item("queue-release-handoff", 1000, 0)
        ],
        "release_all makes every leased item claimable (accepted with a lease or claimed), and \
         no item that is not yet due"
    );
    queue.release_all().await.expect("release_all is Ok again");

    discard_all(
        queue,
        &[
            "queue-release-handoff",
            "queue-release-claimed",
            "queue-release-later",
        ],
    )
    .await;
    assert_no_work(queue, "after the release check").await;
}

async fn queue_purge_takes_the_work_with_the_invocation(
    queue: &Arc<dyn DeliveryQueue>,
    invocations: &Arc<dyn InvocationScans>,
) {
    // Far older than any invocation the other suites finish, so this purge deletes only it.
    const LONG_AGO: i64 = 3 * SWEEP;
    queue
        .accept(
            &[fresh("queue-purged", IDENTITY_CREATED)],
            at(1100),
            Some(at(1110)),
        )
        .await
        .unwrap();
    invocations
        .transition("queue-purged", &OPEN, &completion(LONG_AGO))
        .await
        .unwrap();

    let purged = invocations
        .purge(at(LONG_AGO + 1), at(LONG_AGO + 1), 10)
        .await
        .unwrap();
    assert_eq!(purged, 1, "purge counts the invocations it deleted");
    assert_eq!(invocations.get("queue-purged").await.unwrap(), None);
    assert_no_work(queue, "purging an invocation removes its work item").await;
    assert_eq!(queue.claim_due(at(1200), at(1210), 10).await.unwrap(), []);
}

async fn queue_concurrent_accepts_and_settles_all_land(
    queue: &Arc<dyn DeliveryQueue>,
    invocations: &Arc<dyn InvocationScans>,
) {
    const N: usize = 200;
    let id = |n: usize| format!("queue-burst-{n:03}");

    let mut accepts = JoinSet::new();
    for n in 0..N {
        let queue = Arc::clone(queue);
        let invocation = fresh(&id(n), PRE_APPROVAL);
        accepts.spawn(async move { queue.accept(&[invocation], at(1200), None).await });
    }
    for result in accepts.join_all().await {
        result.expect("every concurrent accept resolves Ok");
    }
    let claimed = queue.claim_due(at(1200), at(1210), 2 * N).await.unwrap();
    assert_eq!(
        claimed.len(),
        N,
        "every concurrently accepted item is claimable"
    );

    let mut settles = JoinSet::new();
    for n in 0..N {
        let queue = Arc::clone(queue);
        let id = id(n);
        settles.spawn(async move {
            let transition = Transition {
                output: Some(json!({"approved": true, "n": n})),
                ..completion(1201)
            };
            let written = queue
                .settle(
                    &id,
                    &attempt(1200, Some(200), AttemptOutcome::Completed),
                    &OPEN,
                    Some(&transition),
                    &NextStep::Done,
                )
                .await;
            (n, written)
        });
    }
    for (n, written) in settles.join_all().await {
        let written = written
            .unwrap_or_else(|e| panic!("concurrent settle {n}: {e:?}"))
            .unwrap_or_else(|| panic!("concurrent settle {n} found no invocation"));
        assert_eq!(
            (written.state, written.attempts.len()),
            (InvocationState::Completed, 1),
            "concurrent settle {n}"
        );
    }
    for n in 0..N {
        let stored = invocations.get(&id(n)).await.unwrap().unwrap();
        assert_eq!(
            (stored.state, stored.output, stored.attempts),
            (
                InvocationState::Completed,
                Some(json!({"approved": true, "n": n})),
                vec![attempt(1200, Some(200), AttemptOutcome::Completed)]
            ),
            "every one of {N} concurrent settles lands on its own invocation ({})",
            id(n)
        );
    }
    assert_no_work(queue, "every settled item is removed").await;
}
