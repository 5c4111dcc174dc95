//! The SQLite stores and queue against the port contract suites, on real database files, plus
//! what only an embedded database has to prove: data and work outlive the handle, reopening is
//! harmless, and group commit keeps up with a burst of concurrent writes.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use tokio::task::JoinSet;
use triggerline::cache::CachedSubscriptions;
use triggerline::contract;
use triggerline::ports::{
    DeliveryQueue, InvocationScans, InvocationStore, NextStep, SubscriptionAdmin,
    SubscriptionStore, WorkItem, WorkSource,
};
use triggerline_embedded::{
    Sqlite, SqliteDeliveryQueue, SqliteIdempotencyStore, SqliteInvocationStore,
    SqliteSubscriptionStore,
};

async fn open(path: &Path) -> Sqlite {
    Sqlite::open(path)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e:?}", path.display()))
}

/// The key the stores seal credentials with (any fixed service key).
fn credentials() -> triggerline::secrets::CredentialKey {
    triggerline::secrets::SecretKey::new(vec![7; 32]).credential_key()
}

async fn stores(dir: &tempfile::TempDir) -> (Arc<dyn SubscriptionAdmin>, Arc<dyn InvocationScans>) {
    let db = open(&dir.path().join("triggerline.db")).await;
    (
        Arc::new(SqliteSubscriptionStore::new(db.clone(), credentials())),
        Arc::new(SqliteInvocationStore::new(db)),
    )
}

async fn queue(dir: &tempfile::TempDir) -> (Arc<dyn WorkSource>, Arc<dyn InvocationScans>) {
    let db = open(&dir.path().join("triggerline.db")).await;
    (
        Arc::new(SqliteDeliveryQueue::new(db.clone())),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_store_meets_the_port_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("triggerline.db")).await;
    contract::idempotency_store(Arc::new(SqliteIdempotencyStore::new(db.clone()))).await;
    let left: i64 = rusqlite::Connection::open(dir.path().join("triggerline.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM idempotency_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 1, "retention deleted the expired records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_queue_meets_the_port_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, invocations) = queue(&dir).await;
    contract::delivery_queue(queue, invocations).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cached_subscription_store_meets_the_port_contract_too() {
    let dir = tempfile::tempdir().unwrap();
    let (subscriptions, _) = stores(&dir).await;
    contract::subscription_store(Arc::new(CachedSubscriptions::new(subscriptions))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_with_a_max_age_reads_again_what_other_writers_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = stores(&dir).await;
    let trusting =
        CachedSubscriptions::with_max_age(Arc::clone(&store), std::time::Duration::from_secs(3600));
    let expiring = CachedSubscriptions::with_max_age(Arc::clone(&store), std::time::Duration::ZERO);
    assert!(
        trusting
            .list_for_trigger("idn:identity-created")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        expiring
            .list_for_trigger("idn:identity-created")
            .await
            .unwrap()
            .is_empty()
    );

    // Another writer (not through either cache) adds a subscription.
    store
        .create(&subscription("elsewhere", "idn:identity-created"), 50)
        .await
        .unwrap();
    assert!(
        trusting
            .list_for_trigger("idn:identity-created")
            .await
            .unwrap()
            .is_empty(),
        "within its max age an entry is served from the cache"
    );
    assert_eq!(
        expiring
            .list_for_trigger("idn:identity-created")
            .await
            .unwrap()
            .len(),
        1,
        "past its max age an entry is read again"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_contract_holds_on_a_single_threaded_runtime_too() {
    let dir = tempfile::tempdir().unwrap();
    let (subscriptions, invocations) = stores(&dir).await;
    contract::subscription_store(subscriptions).await;
    contract::invocation_store(Arc::clone(&invocations)).await;
    // On the same file: the queue suite leaves the store suite's invocations alone. It reads
    // through the queue's own handle, as a process does: a write made soon is seen by the reads
    // of the handle that made it (`settle_held_soon`), not by another process's.
    let (queue, queue_invocations) = queue(&dir).await;
    contract::delivery_queue(queue, queue_invocations).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triggerline.db");
    {
        let db = open(&path).await;
        SqliteSubscriptionStore::new(db.clone(), credentials())
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
        SqliteSubscriptionStore::new(db.clone(), credentials())
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
    SqliteSubscriptionStore::new(first.clone(), credentials())
        .create(&subscription("before", "idn:identity-created"), 50)
        .await
        .unwrap();

    let second = open(&path).await;
    let again = SqliteSubscriptionStore::new(second, credentials());
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
    assert_eq!(version, 11, "the schema version after two opens");
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

/// Checkpoints run on their own thread: committed pages must reach the database file while it
/// is open, long before the writer's own checkpoint at 4,000 pages would copy them.
#[tokio::test]
async fn committed_pages_reach_the_database_file_while_it_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let db = open(&path).await;
    let invocations = SqliteInvocationStore::new(db.clone());
    let before = std::fs::metadata(&path).unwrap().len();
    for i in 0..200 {
        invocations
            .create_all(&[invocation(&format!("grow-{i:03}"))])
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::metadata(&path).unwrap().len() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint copied the WAL into {} within 30 s",
            path.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(invocations);
    drop(db);
}

fn minutes(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 10, 0, 0).unwrap() + Duration::minutes(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_work_survives_a_crash_and_comes_back_after_release_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triggerline.db");
    {
        // The process hands the item to its own worker and dies before settling it.
        let db = open(&path).await;
        SqliteDeliveryQueue::new(db)
            .accept(&[invocation("in-flight")], minutes(0), Some(minutes(10)))
            .await
            .unwrap();
    }

    let db = open(&path).await;
    let queue = SqliteDeliveryQueue::new(db.clone());
    assert_eq!(
        queue.claim_due(minutes(1), minutes(2), 10).await.unwrap(),
        [],
        "the lease is stored with the item"
    );
    queue.release_all().await.unwrap();
    assert_eq!(
        queue.claim_due(minutes(1), minutes(2), 10).await.unwrap(),
        [WorkItem {
            invocation_id: "in-flight".to_owned(),
            not_before: minutes(0),
            attempts: 0,
        }],
        "after a restart, release_all gives the dead process's item back at once"
    );
    assert_eq!(
        SqliteInvocationStore::new(db)
            .get("in-flight")
            .await
            .unwrap(),
        Some(invocation("in-flight")),
        "the invocation was written with its work"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_items_keep_millisecond_times_like_the_rest_of_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = queue(&dir).await;
    let precise = minutes(0) + Duration::nanoseconds(123_456_789);

    let accepted = queue
        .accept(&[invocation("precise")], precise, None)
        .await
        .unwrap();
    let claimed = queue.claim_due(precise, minutes(1), 10).await.unwrap();
    assert_eq!(
        accepted, claimed,
        "accept returns the item as stored, so the two agree"
    );
    assert_eq!(
        claimed[0].not_before,
        minutes(0) + Duration::milliseconds(123)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_deliveries_shares_the_writer() {
    // 2,000 deliveries end to end (accept, claim, settle) from concurrent tasks: every write is
    // a group-commit job, and all of them land.
    const N: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let (queue, invocations) = queue(&dir).await;

    let mut accepts = JoinSet::new();
    for n in 0..N {
        let queue = Arc::clone(&queue);
        accepts.spawn(async move {
            queue
                .accept(&[invocation(&format!("d-{n:04}"))], minutes(0), None)
                .await
        });
    }
    for result in accepts.join_all().await {
        result.unwrap();
    }
    let mut claimed = Vec::new();
    loop {
        let batch = queue.claim_due(minutes(0), minutes(1), 256).await.unwrap();
        if batch.is_empty() {
            break;
        }
        claimed.extend(batch);
    }
    assert_eq!(claimed.len(), N);

    let mut settles = JoinSet::new();
    for item in claimed {
        let queue = Arc::clone(&queue);
        settles.spawn(async move {
            let attempt = triggerline::model::Attempt {
                started_at: minutes(0),
                target: "hooks.example.com".to_owned(),
                status_code: Some(204),
                duration_ms: 3,
                outcome: triggerline::model::AttemptOutcome::Completed,
                error: None,
            };
            queue
                .settle(&item.invocation_id, &attempt, &[], None, &NextStep::Done)
                .await
        });
    }
    for result in settles.join_all().await {
        assert_eq!(result.unwrap().unwrap().attempts.len(), 1);
    }
    assert_eq!(queue.next_due().await.unwrap(), None);
    let sample = invocations.get("d-1999").await.unwrap().unwrap();
    assert_eq!(sample.attempts.len(), 1);
}
