//! The [`SubscriptionStore`] contract.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::fixtures::*;
use crate::Error;
use crate::duration::IsoDuration;
use crate::error::ResourceKind;
use crate::model::{
    DispatchMode, EventBridgeTarget, HttpAuth, HttpTarget, PreviousSigningSecret, Subscription,
    Target, TriggerType,
};
use crate::ports::SubscriptionAdmin;

/// Runs every [`SubscriptionStore`] check against `store`, which must be fresh and empty.
pub async fn subscription_store(store: Arc<dyn SubscriptionAdmin>) {
    subscriptions_start_empty(&store).await;
    subscription_lists(&store).await;
    subscription_create_then_get_round_trips(&store).await;
    subscription_get_of_an_unknown_id_is_none(&store).await;
    subscription_create_refuses_a_taken_id(&store).await;
    subscription_create_refuses_a_second_request_response_subscription(&store).await;
    subscription_create_refuses_the_51st_fire_and_forget_subscription(&store).await;
    subscription_limit_holds_under_concurrent_creates(&store).await;
    subscription_replace_is_conditional_on_the_version(&store).await;
    subscription_rotated_out_signing_secret_round_trips_and_goes(&store).await;
    subscription_delete_removes_once(&store).await;
}

async fn delete_all(store: &Arc<dyn SubscriptionAdmin>, ids: impl IntoIterator<Item = String>) {
    for id in ids {
        store
            .delete(&id)
            .await
            .unwrap_or_else(|e| panic!("cleanup: delete {id}: {e:?}"));
    }
}

async fn subscriptions_start_empty(store: &Arc<dyn SubscriptionAdmin>) {
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

async fn subscription_lists(store: &Arc<dyn SubscriptionAdmin>) {
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
            **s,
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

async fn subscription_create_then_get_round_trips(store: &Arc<dyn SubscriptionAdmin>) {
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

async fn subscription_get_of_an_unknown_id_is_none(store: &Arc<dyn SubscriptionAdmin>) {
    assert_eq!(
        store
            .get("00000000-0000-4000-8000-000000000000")
            .await
            .unwrap(),
        None,
        "get of an unknown id must be Ok(None)"
    );
}

async fn subscription_create_refuses_a_taken_id(store: &Arc<dyn SubscriptionAdmin>) {
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
    store: &Arc<dyn SubscriptionAdmin>,
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
    store: &Arc<dyn SubscriptionAdmin>,
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

async fn subscription_limit_holds_under_concurrent_creates(store: &Arc<dyn SubscriptionAdmin>) {
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

async fn subscription_replace_is_conditional_on_the_version(store: &Arc<dyn SubscriptionAdmin>) {
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

/// A rotation is a replace that keeps the previous signing secret with the end of its grace
/// period (both read back exactly, by id and in a trigger's list); a later replace without it
/// (the grace period over, or a rotation with none) leaves no trace of it.
async fn subscription_rotated_out_signing_secret_round_trips_and_goes(
    store: &Arc<dyn SubscriptionAdmin>,
) {
    let original = http_subscription("rotate-me", IDENTITY_CREATED);
    store.create(&original, 50).await.unwrap();

    let rotated = Subscription {
        signing_secret: "whsec_bmV3LXNpZ25pbmcta2V5LWFmdGVyLXJvdGF0aW9u".into(),
        previous_signing_secret: Some(PreviousSigningSecret {
            secret: original.signing_secret.clone(),
            until: at(40),
        }),
        modified: at(16),
        version: 2,
        ..original.clone()
    };
    store
        .replace(&rotated, 1)
        .await
        .expect("replace with a previous signing secret");
    assert_eq!(
        store.get("rotate-me").await.unwrap(),
        Some(rotated.clone()),
        "get must return the previous signing secret and its grace end exactly"
    );
    assert_eq!(
        store.list_for_trigger(IDENTITY_CREATED).await.unwrap(),
        vec![Arc::new(rotated.clone())],
        "the deliveries' read must see the previous signing secret too"
    );

    let expired = Subscription {
        previous_signing_secret: None,
        modified: at(41),
        version: 3,
        ..rotated
    };
    store.replace(&expired, 2).await.unwrap();
    assert_eq!(
        store.get("rotate-me").await.unwrap(),
        Some(expired),
        "a replace without a previous signing secret must drop the stored one"
    );
    delete_all(store, ["rotate-me".to_owned()]).await;
}

async fn subscription_delete_removes_once(store: &Arc<dyn SubscriptionAdmin>) {
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
