//! Subscription credentials at rest in the SQLite file, and the file's mode: what the file holds
//! is read directly, not through the store.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};
use triggerline::Error;
use triggerline::duration::IsoDuration;
use triggerline::model::{
    DispatchMode, HttpAuth, HttpTarget, PreviousSigningSecret, Subscription, Target,
};
use triggerline::ports::{SubscriptionAdmin, SubscriptionStore};
use triggerline::query::{RawCollection, SubscriptionQuery};
use triggerline::secrets::{CredentialKey, SecretKey};
use triggerline_embedded::{Sqlite, SqliteSubscriptionStore};

const TOKEN: &str = "bearer-7c1f0d9e-token";
const URL_PASSWORD: &str = "url-pw-5b2a";
const BASIC_PASSWORD: &str = "basic-pw-88e1";
const SIGNING: &str = "whsec_dGhlLXNpZ25pbmcta2V5LW9mLXRoZS10ZXN0";
const HOST: &str = "hooks-3f9a.example.com";

fn key(byte: u8) -> CredentialKey {
    SecretKey::new(vec![byte; 32]).credential_key()
}

fn subscription(id: &str) -> Subscription {
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    Subscription {
        heartbeat_timeout: None,
        health: Default::default(),
        id: id.into(),
        name: "HR".into(),
        description: None,
        trigger_id: "idn:identity-created".into(),
        trigger_name: "Identity Created".into(),
        target: Target::Http(HttpTarget {
            url: format!("https://hook-user:{URL_PASSWORD}@{HOST}/in"),
            mode: DispatchMode::Sync,
            auth: HttpAuth::Bearer {
                token: TOKEN.into(),
            },
        }),
        response_deadline: IsoDuration::parse("responseDeadline", "PT1H").unwrap(),
        enabled: true,
        filter: None,
        signing_secret: SIGNING.into(),
        previous_signing_secret: None,
        created: at,
        modified: at,
        version: 1,
    }
}

/// The `body` column as stored, through a connection of the test's own.
fn raw_body(path: &Path, id: &str) -> String {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("SELECT body FROM subscriptions WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .unwrap()
}

/// Every byte of the database and its write-ahead log, as a copy of the data dir would hold.
fn raw_files(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    for suffix in ["-wal", "-shm"] {
        if let Ok(more) = std::fs::read(sibling(path, suffix)) {
            bytes.extend(more);
        }
    }
    bytes
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn assert_no_plaintext(what: &str, stored: &[u8], secrets: &[&str]) {
    for secret in secrets {
        let found = stored
            .windows(secret.len())
            .any(|window| window == secret.as_bytes());
        assert!(!found, "{secret} in plain text in {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_rows_hold_no_plaintext_credentials_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triggerline.db");
    let store = SqliteSubscriptionStore::new(Sqlite::open(&path).await.unwrap(), key(7));
    let original = subscription("sub-1");
    store.create(&original, 50).await.unwrap();

    let body = raw_body(&path, "sub-1");
    assert_no_plaintext(
        "the body column",
        body.as_bytes(),
        &[TOKEN, URL_PASSWORD, SIGNING, HOST],
    );
    assert!(body.contains("sealed:v1:"), "{body}");
    assert_no_plaintext(
        "the database files",
        &raw_files(&path),
        &[TOKEN, URL_PASSWORD, SIGNING],
    );

    assert_eq!(store.get("sub-1").await.unwrap(), Some(original.clone()));
    assert_eq!(
        store
            .list_for_trigger("idn:identity-created")
            .await
            .unwrap(),
        vec![Arc::new(original.clone())]
    );
    let all = SubscriptionQuery::parse(&RawCollection::default()).unwrap();
    assert_eq!(
        store.list(&all).await.unwrap().items,
        vec![original.clone()]
    );

    // A replace seals the new secret too.
    let replaced = Subscription {
        target: Target::Http(HttpTarget {
            url: format!("https://{HOST}/basic"),
            mode: DispatchMode::Async,
            auth: HttpAuth::Basic {
                user_name: "hr".into(),
                password: BASIC_PASSWORD.into(),
            },
        }),
        version: 2,
        ..original
    };
    store.replace(&replaced, 1).await.unwrap();
    assert_no_plaintext(
        "the replaced body",
        raw_body(&path, "sub-1").as_bytes(),
        &[BASIC_PASSWORD, SIGNING],
    );
    assert_eq!(store.get("sub-1").await.unwrap(), Some(replaced));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_out_signing_secret_is_stored_sealed_and_round_trips() {
    const NEW_SIGNING: &str = "whsec_cm90YXRlZC1pbi1zaWduaW5nLWtleQ";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triggerline.db");
    let store = SqliteSubscriptionStore::new(Sqlite::open(&path).await.unwrap(), key(7));
    let original = subscription("sub-1");
    store.create(&original, 50).await.unwrap();
    let until = chrono::DateTime::from_timestamp(1_700_086_400, 0).unwrap();

    let rotated = Subscription {
        signing_secret: NEW_SIGNING.into(),
        previous_signing_secret: Some(PreviousSigningSecret {
            secret: SIGNING.into(),
            until,
        }),
        version: 2,
        ..original
    };
    store.replace(&rotated, 1).await.unwrap();

    let body = raw_body(&path, "sub-1");
    assert_no_plaintext("the rotated body", body.as_bytes(), &[SIGNING, NEW_SIGNING]);
    assert_eq!(body.matches("sealed:v1:").count(), 4, "{body}");
    assert_eq!(store.get("sub-1").await.unwrap(), Some(rotated.clone()));
    // Sealed for this subscription and field: it does not open under another key.
    let other = SqliteSubscriptionStore::new(Sqlite::open(&path).await.unwrap(), key(8));
    assert!(other.get("sub-1").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_before_encryption_are_read_and_sealed_on_their_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triggerline.db");
    let store = SqliteSubscriptionStore::new(Sqlite::open(&path).await.unwrap(), key(7));
    // A row as the previous version wrote it: the model's JSON, secrets in plain text.
    let legacy = subscription("legacy");
    {
        let conn = Connection::open(&path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn.execute(
            "INSERT INTO subscriptions (id, trigger_id, trigger_name, type, version, body)
             VALUES (?1, ?2, ?3, 'HTTP', 1, ?4)",
            [
                &legacy.id,
                &legacy.trigger_id,
                &legacy.trigger_name,
                &serde_json::to_string(&legacy).unwrap(),
            ],
        )
        .unwrap();
    }
    assert!(raw_body(&path, "legacy").contains(TOKEN));

    assert_eq!(store.get("legacy").await.unwrap(), Some(legacy.clone()));
    let next = Subscription {
        name: "renamed".into(),
        version: 2,
        ..legacy
    };
    store.replace(&next, 1).await.unwrap();
    assert_no_plaintext(
        "the rewritten body",
        raw_body(&path, "legacy").as_bytes(),
        &[TOKEN, URL_PASSWORD, SIGNING],
    );
    assert_eq!(store.get("legacy").await.unwrap(), Some(next));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_service_key_opens_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triggerline.db");
    let db = Sqlite::open(&path).await.unwrap();
    SqliteSubscriptionStore::new(db.clone(), key(7))
        .create(&subscription("sub-1"), 50)
        .await
        .unwrap();

    let other = SqliteSubscriptionStore::new(db, key(8));
    let err = other.get("sub-1").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(!format!("{err:?}").contains(TOKEN));
    // Lists and deliveries leave it out and go on with the rest.
    assert_eq!(
        other
            .list_for_trigger("idn:identity-created")
            .await
            .unwrap(),
        vec![]
    );
    let all = SubscriptionQuery::parse(&RawCollection::default()).unwrap();
    assert!(other.list(&all).await.unwrap().items.is_empty());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_database_and_its_wal_and_shm_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triggerline.db");
    let store = SqliteSubscriptionStore::new(Sqlite::open(&path).await.unwrap(), key(7));
    // A committed write, so that the WAL and the shared-memory index exist.
    store.create(&subscription("sub-1"), 50).await.unwrap();
    for file in [path.clone(), sibling(&path, "-wal"), sibling(&path, "-shm")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
    }
}
