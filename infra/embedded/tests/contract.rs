//! The SQLite stores against the port contract suites, on real database files, plus what only
//! an embedded database has to prove: data outlives the handle, reopening is harmless, and group
//! commit keeps up with a burst of concurrent writes.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tokio::task::JoinSet;
use triggerline::contract;
use triggerline::ports::{InvocationStore, SubscriptionStore};
use triggerline_embedded::{Sqlite, SqliteInvocationStore, SqliteSubscriptionStore};

async fn open(path: &Path) -> Sqlite {
    Sqlite::open(path)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e:?}", path.display()))
}

async fn stores(dir: &tempfile::TempDir) -> (Arc<dyn SubscriptionStore>, Arc<dyn InvocationStore>) {
    let db = open(&dir.path().join("triggerline.db")).await;
    (
        Arc::new(SqliteSubscriptionStore::new(db.clone())),
        Arc::new(SqliteInvocationStore::new(db)),
    )
}

fn subscription(id: &str, trigger_id: &str) -> triggerline::model::Subscription {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "name": format!("Listener {id}"),
        "description": null,
        "triggerId": trigger_id,
        "triggerName": "Identity Created",
        "target": {"type": "HTTP", "url": "https://hooks.example.com/in", "mode": "SYNC",
                   "auth": {"kind": "none"}},
        "responseDeadline": "PT1H",
        "enabled": true,
        "filter": null,
        "signingSecret": "whsec_c2VjcmV0",
        "created": "2025-03-14T09:26:53.271Z",
        "modified": "2025-03-14T09:26:53.271Z",
        "version": 1
    }))
    .unwrap()
}

fn invocation(id: &str) -> triggerline::model::Invocation {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "triggerId": "idn:identity-created",
        "triggerType": "FIRE_AND_FORGET",
        "subscriptionId": "sub-1",
        "subscriptionName": "Listener",
        "invocationType": "REAL_TIME",
        "responseMode": null,
        "state": "PENDING",
        "created": Utc.with_ymd_and_hms(2025, 3, 14, 9, 26, 53).unwrap().to_rfc3339(),
        "completed": null,
        "deadline": null,
        "input": {"identity": {"type": "IDENTITY", "id": "2c7180a46faadee4016fb4e018c20642",
                               "name": "Michael Michaels"}},
        "contentJson": {},
        "output": null,
        "error": null,
        "secretHash": "sha256:00",
        "attempts": []
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscription_store_meets_the_port_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (subscriptions, _) = stores(&dir).await;
    contract::subscription_store(subscriptions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invocation_store_meets_the_port_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (_, invocations) = stores(&dir).await;
    contract::invocation_store(invocations).await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_contract_holds_on_a_single_threaded_runtime_too() {
    let dir = tempfile::tempdir().unwrap();
    let (subscriptions, invocations) = stores(&dir).await;
    contract::subscription_store(subscriptions).await;
    contract::invocation_store(invocations).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triggerline.db");
    {
        let db = open(&path).await;
        SqliteSubscriptionStore::new(db.clone())
            .create(&subscription("kept", "idn:identity-created"), 50)
            .await
            .unwrap();
        SqliteInvocationStore::new(db)
            .create_all(&[invocation("kept-invocation")])
            .await
            .unwrap();
    }

    let db = open(&path).await;
    assert_eq!(
        SqliteSubscriptionStore::new(db.clone())
            .get("kept")
            .await
            .unwrap(),
        Some(subscription("kept", "idn:identity-created"))
    );
    assert_eq!(
        SqliteInvocationStore::new(db)
            .get("kept-invocation")
            .await
            .unwrap(),
        Some(invocation("kept-invocation"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_twice_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triggerline.db");
    let first = open(&path).await;
    SqliteSubscriptionStore::new(first.clone())
        .create(&subscription("before", "idn:identity-created"), 50)
        .await
        .unwrap();

    let second = open(&path).await;
    let again = SqliteSubscriptionStore::new(second);
    assert!(
        again.get("before").await.unwrap().is_some(),
        "reopening must keep the data"
    );
    again
        .create(&subscription("after", "idn:identity-created"), 50)
        .await
        .expect("a second handle on the same file can write");
    drop(first);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1, "the schema version after two opens");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_directory_is_unavailable_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let result = Sqlite::open(&dir.path().join("no/such/dir/triggerline.db")).await;
    assert!(
        matches!(result, Err(triggerline::Error::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_takes_500_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (subscriptions, invocations) = stores(&dir).await;

    let mut writes = JoinSet::new();
    for i in 0..500 {
        let subscriptions = Arc::clone(&subscriptions);
        let invocations = Arc::clone(&invocations);
        writes.spawn(async move {
            subscriptions
                .create(
                    &subscription(&format!("burst-{i:03}"), "idn:identity-created"),
                    1000,
                )
                .await?;
            invocations
                .create_all(&[invocation(&format!("burst-{i:03}"))])
                .await
        });
    }
    for result in writes.join_all().await {
        result.expect("every concurrent write resolves Ok");
    }

    let all = subscriptions
        .list_for_trigger("idn:identity-created")
        .await
        .unwrap();
    assert_eq!(all.len(), 500, "every accepted subscription is readable");
    for i in 0..500 {
        assert!(
            invocations
                .get(&format!("burst-{i:03}"))
                .await
                .unwrap()
                .is_some(),
            "invocation burst-{i:03} is readable"
        );
    }
}
