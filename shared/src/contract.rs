//! The port contract suites (feature `test-support`): what every store adapter must do, written
//! once and run by each adapter's tests (SQLite on a temp file, DynamoDB on an emulator), so that
//! both prove the same behaviour.
//!
//! Each suite takes a fresh, empty store and runs many small checks; a failed check panics with a
//! message naming the broken promise. Checks build on realistic model values for real catalog
//! triggers and build their queries with [`ListQuery::parse`], so they exercise the real
//! collection-parameter parser. Every check removes the subscriptions it created, so later
//! checks start from an empty subscription store; invocations cannot be deleted, so the list
//! checks run first and later checks use ids of their own.
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
    Attempt, DispatchMode, EventBridgeTarget, HttpAuth, HttpTarget, Invocation, InvocationState,
    InvocationType, Subscription, Target, TriggerType,
};
use crate::ports::{InvocationStore, SubscriptionStore, Transition};
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
pub async fn invocation_store(store: Arc<dyn InvocationStore>) {
    invocations_start_empty(&store).await;
    invocation_lists(&store).await;
    invocation_create_all_is_all_or_nothing(&store).await;
    invocation_transition_completes_an_open_invocation_once(&store).await;
    invocation_transition_moves_through_acknowledged(&store).await;
    invocation_transition_of_an_unknown_id_is_not_found(&store).await;
    invocation_transition_has_one_winner_under_concurrency(&store).await;
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
                password: "c0rrect-h0rse-battery".to_owned(),
            },
        }),
        response_deadline: IsoDuration::parse("responseDeadline", "PT1H").unwrap(),
        enabled: true,
        filter: Some(
            JsonPathFilter::parse("filter", r#"$[?($.identity.type == "IDENTITY")]"#).unwrap(),
        ),
        signing_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwQ3pXb7yV4gE=".to_owned(),
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
            outcome: "DELIVERED".to_owned(),
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
                token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0cmlnZ2VybGluZSJ9.c2lnbmF0dXJl".to_owned(),
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

async fn invocations_start_empty(store: &Arc<dyn InvocationStore>) {
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

async fn invocation_lists(store: &Arc<dyn InvocationStore>) {
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

async fn invocation_create_all_is_all_or_nothing(store: &Arc<dyn InvocationStore>) {
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

async fn invocation_transition_completes_an_open_invocation_once(store: &Arc<dyn InvocationStore>) {
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

async fn invocation_transition_moves_through_acknowledged(store: &Arc<dyn InvocationStore>) {
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

async fn invocation_transition_of_an_unknown_id_is_not_found(store: &Arc<dyn InvocationStore>) {
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

async fn invocation_transition_has_one_winner_under_concurrency(store: &Arc<dyn InvocationStore>) {
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
