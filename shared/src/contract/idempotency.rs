//! The [`IdempotencyStore`] contract.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::idempotency::{IdempotencyRecord, Raised};
use crate::ports::IdempotencyStore;

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn record(key: &str, hash: &str, created: i64) -> IdempotencyRecord {
    IdempotencyRecord {
        key: key.to_owned(),
        request_hash: hash.to_owned(),
        created: at(created),
        expires: at(created + 24 * 60),
        raised: None,
    }
}

fn raised(id: &str) -> Raised {
    Raised {
        id: id.to_owned(),
        subscription_id: format!("sub-of-{id}"),
        subscription_name: "Listener".to_owned(),
    }
}

/// Runs every check on `store` (empty, or holding only other keys).
pub async fn idempotency_store(store: Arc<dyn IdempotencyStore>) {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let key = |name: &str| format!("idem#5:scope#{name}-{unique}");

    // The first claim writes; a second finds the first's record, in progress.
    let first = record(&key("a"), "h1", 0);
    assert_eq!(
        store.claim(&first, at(0)).await.unwrap(),
        None,
        "a fresh key is claimed"
    );
    let again = record(&key("a"), "h2", 1);
    assert_eq!(
        store.claim(&again, at(1)).await.unwrap(),
        Some(first.clone()),
        "a claimed key returns the first claim, unchanged"
    );

    // What it raised is recorded, and returned with it from then on.
    store
        .record_raised(&key("a"), at(0), &[raised("i1"), raised("i2")])
        .await
        .unwrap();
    let found = store.claim(&again, at(2)).await.unwrap().unwrap();
    assert_eq!(found.raised, Some(vec![raised("i1"), raised("i2")]));
    assert_eq!(found.request_hash, "h1");

    // A record of another claim (another creation time) is not overwritten.
    store
        .record_raised(&key("a"), at(5), &[raised("other")])
        .await
        .unwrap();
    let found = store.claim(&again, at(2)).await.unwrap().unwrap();
    assert_eq!(found.raised, Some(vec![raised("i1"), raised("i2")]));

    // Nothing raised is recorded too (a start that matched nothing).
    let empty = record(&key("empty"), "h", 0);
    assert_eq!(store.claim(&empty, at(0)).await.unwrap(), None);
    store
        .record_raised(&key("empty"), at(0), &[])
        .await
        .unwrap();
    let found = store.claim(&empty, at(1)).await.unwrap().unwrap();
    assert_eq!(found.raised, Some(vec![]));

    // Releasing keeps a key with invocations, and frees one without.
    store.release(&key("a"), at(0)).await.unwrap();
    assert!(
        store.claim(&again, at(3)).await.unwrap().is_some(),
        "a key that raised invocations is never released"
    );
    let failed = record(&key("failed"), "h", 0);
    assert_eq!(store.claim(&failed, at(0)).await.unwrap(), None);
    store.release(&key("failed"), at(1)).await.unwrap();
    assert!(
        store.claim(&failed, at(0)).await.unwrap().is_some(),
        "release of another claim's time leaves the record"
    );
    store.release(&key("failed"), at(0)).await.unwrap();
    assert_eq!(
        store
            .claim(&record(&key("failed"), "h", 2), at(2))
            .await
            .unwrap(),
        None,
        "a released key is claimed again"
    );

    // After it expires a key is claimed afresh, over the old record.
    let later = record(&key("a"), "h3", 24 * 60);
    assert_eq!(
        store.claim(&later, at(24 * 60)).await.unwrap(),
        None,
        "an expired key is claimed again"
    );
    let found = store.claim(&later, at(24 * 60 + 1)).await.unwrap().unwrap();
    assert_eq!(found, later, "the new claim replaced the expired record");

    // Of concurrent claims of one key, exactly one writes.
    let mut racers = tokio::task::JoinSet::new();
    for n in 0..16 {
        let store = Arc::clone(&store);
        let racer = record(&key("raced"), &format!("h{n}"), 0);
        racers.spawn(async move { store.claim(&racer, at(0)).await.unwrap() });
    }
    let results = racers.join_all().await;
    let winners = results.iter().filter(|r| r.is_none()).count();
    assert_eq!(winners, 1, "exactly one concurrent claim wins: {results:?}");
    let hashes: std::collections::BTreeSet<&str> = results
        .iter()
        .flatten()
        .map(|r| r.request_hash.as_str())
        .collect();
    assert_eq!(
        hashes.len(),
        1,
        "every loser sees the one winner: {hashes:?}"
    );

    // Retention deletes expired records only.
    let purged = store.purge_expired(at(24 * 60 + 2), 1000).await.unwrap();
    assert!(purged <= 1000);
    assert!(
        store
            .claim(&later, at(24 * 60 + 3))
            .await
            .unwrap()
            .is_some(),
        "a live record survives retention"
    );
}
