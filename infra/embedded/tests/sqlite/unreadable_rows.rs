//! One row that cannot be read back never stops a claim, a sweep or a list for everyone: it is
//! moved to the `quarantine` table and the rest go on. The rows here are damaged the way a build
//! without bounded request times damaged them: a `timestamp` sent in microseconds became a due
//! time and deadline in the year 56,000, which sorts before every real time as text and does not
//! parse back.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use triggerline::model::{Invocation, InvocationState};
use triggerline::ports::{
    DeliveryQueue, InvocationScans, InvocationStore, Judge, Judged, WorkSource,
};
use triggerline::query::{InvocationQuery, RawCollection};
use triggerline_embedded::{Sqlite, SqliteDeliveryQueue, SqliteInvocationStore};

const YEAR_56000: &str = "+56887-03-14T10:00:00.000Z";

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 10, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn invocation(id: &str, deadline: Option<DateTime<Utc>>) -> Invocation {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "triggerId": "idn:access-request-pre-approval",
        "triggerType": "REQUEST_RESPONSE",
        "subscriptionId": "sub-1",
        "subscriptionName": "Listener",
        "invocationType": "REAL_TIME",
        "responseMode": "ASYNC",
        "state": "PENDING",
        "created": at(0).to_rfc3339(),
        "completed": null,
        "deadline": deadline.map(|d| d.to_rfc3339()),
        "input": {},
        "contentJson": {},
        "output": null,
        "error": null,
        "secretHash": "sha256:00",
        "attempts": []
    }))
    .unwrap()
}

/// Damages rows behind the store's back, as an older build or a bad disk left them.
fn damage(path: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
}

fn quarantined(path: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, reason FROM quarantine ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

async fn open(dir: &tempfile::TempDir) -> (std::path::PathBuf, Sqlite) {
    let path = dir.path().join("triggerline.db");
    let db = Sqlite::open(&path).await.unwrap();
    (path, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_time_that_does_not_parse_is_quarantined_and_the_rest_are_claimed() {
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = open(&dir).await;
    let queue = SqliteDeliveryQueue::new(db.clone());
    let store = SqliteInvocationStore::new(db);
    let all = [
        invocation("good-1", Some(at(60))),
        invocation("bad", Some(at(60))),
        invocation("good-2", Some(at(60))),
    ];
    queue.accept(&all, at(0), None).await.unwrap();
    damage(
        &path,
        &format!(
            "UPDATE invocations SET not_before = '{YEAR_56000}' WHERE id = 'bad';
             UPDATE invocations SET deadline = '{YEAR_56000}',
                    body = json_set(body, '$.deadline', '{YEAR_56000}') WHERE id = 'bad';"
        ),
    );

    let claimed = queue.claim_due(at(1), at(100), 10).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|w| w.invocation_id.as_str()).collect();
    assert_eq!(
        ids,
        ["good-1", "good-2"],
        "the bad row heads the index, yet both good ones come out"
    );
    let moved = quarantined(&path);
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].0, "bad");
    assert!(moved[0].1.contains("not_before"), "{}", moved[0].1);
    assert_eq!(
        store.get("bad").await.unwrap(),
        None,
        "out of the live tables"
    );
    assert_eq!(
        queue.claim_due(at(3), at(4), 10).await.unwrap().len(),
        0,
        "the good ones are leased, and the bad one is claimed by nobody again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_skips_an_unreadable_overdue_invocation_and_times_out_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = open(&dir).await;
    let store = SqliteInvocationStore::new(db);
    store
        .create_all(&[
            invocation("late-1", Some(at(5))),
            invocation("bad", Some(at(5))),
            invocation("late-2", Some(at(6))),
        ])
        .await
        .unwrap();
    damage(
        &path,
        &format!(
            "UPDATE invocations SET deadline = '{YEAR_56000}',
                    body = json_set(body, '$.deadline', '{YEAR_56000}') WHERE id = 'bad';"
        ),
    );

    let overdue = store.overdue(at(10), 500).await.unwrap();
    let ids: Vec<_> = overdue.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["late-1", "late-2"]);
    assert_eq!(quarantined(&path).len(), 1, "moved once");
    assert_eq!(store.overdue(at(10), 500).await.unwrap().len(), 2);
    assert_eq!(quarantined(&path).len(), 1, "and not met again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_leaves_out_a_row_whose_body_is_not_json() {
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = open(&dir).await;
    let store = SqliteInvocationStore::new(db);
    store
        .create_all(&[
            invocation("a", None),
            invocation("b", None),
            invocation("c", None),
        ])
        .await
        .unwrap();
    damage(
        &path,
        "UPDATE invocations SET body = '{not json' WHERE id = 'b';",
    );

    let query = InvocationQuery::parse(&RawCollection {
        sorters: Some("created".into()),
        ..Default::default()
    })
    .unwrap();
    let page = store.list(&query).await.unwrap();
    let ids: Vec<_> = page.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(quarantined(&path)[0].0, "b");
    assert_eq!(store.get("b").await.unwrap(), None);
    assert!(store.get("a").await.unwrap().is_some());
}

/// A callback's judged transition that meets an unreadable row answers `Missing` (the callback
/// then answers 401, as for an unknown id), moves the row to the quarantine in the same write,
/// and never shows it to the judge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judged_transition_quarantines_an_unreadable_row_unjudged() {
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = open(&dir).await;
    let store = SqliteInvocationStore::new(db);
    store
        .create_all(&[invocation("bad", None), invocation("good", None)])
        .await
        .unwrap();
    damage(
        &path,
        "UPDATE invocations SET body = '{not json' WHERE id = 'bad';",
    );
    let judged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let judge: Judge = {
        let judged = std::sync::Arc::clone(&judged);
        std::sync::Arc::new(move |_: &Invocation| {
            judged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(triggerline::Error::Unauthenticated)
        })
    };

    let found = store
        .transition_judged("bad", InvocationState::OPEN, judge)
        .await
        .unwrap();

    assert!(matches!(found, Judged::Missing), "{found:?}");
    assert_eq!(judged.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(quarantined(&path).len(), 1);
    assert_eq!(quarantined(&path)[0].0, "bad");
    assert_eq!(store.get("bad").await.unwrap(), None);
    assert!(store.get("good").await.unwrap().is_some());
}

/// The input and content are kept as text until read; text that is JSON but would not parse
/// into a value then (nested deeper than serde_json parses, a number past `f64`, a lone
/// surrogate escape) makes its row set aside when it is read, as corrupt, like a body that is
/// not JSON, and is never handed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_or_content_that_would_not_parse_is_quarantined_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = open(&dir).await;
    let store = SqliteInvocationStore::new(db);
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let damages = [
        ("deep", format!("json_set(body, '$.input', json('{deep}'))")),
        // Spliced as text: SQLite's own JSON functions would rewrite these.
        (
            "huge",
            "replace(body, '\"input\":{}', '\"input\":[1e400]')".to_owned(),
        ),
        (
            "surrogate",
            "replace(body, '\"contentJson\":{}', '\"contentJson\":\"\\ud800\"')".to_owned(),
        ),
    ];
    let mut rows: Vec<_> = damages.iter().map(|(id, _)| invocation(id, None)).collect();
    rows.push(invocation("good", None));
    store.create_all(&rows).await.unwrap();
    for (id, body) in &damages {
        damage(
            &path,
            &format!("UPDATE invocations SET body = {body} WHERE id = '{id}';"),
        );
        let text: String = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT body FROM invocations WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(
            serde_json::from_str::<serde_json::Value>(&text).is_err(),
            "{id}: {text}"
        );
        assert!(
            serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok(),
            "{id} is still JSON: {text}"
        );
    }

    for (id, _) in &damages {
        assert_eq!(store.get(id).await.unwrap(), None, "{id}");
    }
    let mut moved = quarantined(&path);
    moved.sort();
    assert_eq!(
        moved.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["deep", "huge", "surrogate"]
    );
    // Each reason names the member and what its parse met.
    for ((id, reason), (member, met)) in moved.iter().zip([
        ("invocation input", "recursion limit exceeded"),
        ("invocation input", "number out of range"),
        ("invocation content", "hex escape"),
    ]) {
        assert!(reason.contains(member), "{id}: {reason}");
        assert!(reason.contains(met), "{id}: {reason}");
    }
    let good = store.get("good").await.unwrap().unwrap();
    assert_eq!(*good.input, serde_json::json!({}));
}
