//! [`SubscriptionStore`] on the `subscriptions` table.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use triggerline::Error;
use triggerline::catalog::Catalog;
use triggerline::error::ResourceKind;
use triggerline::model::{Subscription, TriggerType};
use triggerline::ports::{SubscriptionAdmin, SubscriptionStore};
use triggerline::query::{Page, SubscriptionField, SubscriptionQuery};
use triggerline::secrets::{CredentialKey, SealedSubscription};

use crate::Sqlite;
use crate::error::{db, from_body, to_body, to_sql_int};
use crate::query::{Columns, page};

const WHAT: &str = "subscription";

/// The SQLite [`SubscriptionStore`]. Bodies are stored with their credentials sealed by
/// `credentials` ([`CredentialKey::seal`]); bodies written before credentials were encrypted
/// are read as they are and sealed on their next write.
#[derive(Clone, Debug)]
pub struct SqliteSubscriptionStore {
    db: Sqlite,
    credentials: CredentialKey,
}

impl SqliteSubscriptionStore {
    /// A store over `db`; any number of stores may share one database (all with the same
    /// `credentials`, derived from the service key).
    pub fn new(db: Sqlite, credentials: CredentialKey) -> Self {
        SqliteSubscriptionStore { db, credentials }
    }

    fn row(&self, subscription: &Subscription) -> Result<Row, Error> {
        let sealed = self
            .credentials
            .seal(subscription)
            .map_err(Error::unavailable)?;
        Row::of(subscription, &sealed)
    }

    fn open(&self, sealed: SealedSubscription) -> Result<Subscription, Error> {
        self.credentials.open(sealed).map_err(Error::unavailable)
    }

    /// Opens every subscription of a list, leaving out with a warning those whose credentials
    /// do not open (a changed service key): they need a person, and the rest must still work.
    fn open_all(&self, sealed: Vec<SealedSubscription>) -> Vec<Subscription> {
        let mut opened = Vec::with_capacity(sealed.len());
        for one in sealed {
            let id = one.id().to_owned();
            match self.credentials.open(one) {
                Ok(subscription) => opened.push(subscription),
                Err(e) => tracing::warn!(subscription = %id, reason = %e,
                    "subscription whose credentials do not open left out of a list"),
            }
        }
        opened
    }
}

impl Columns for SubscriptionField {
    const TABLE: &'static str = "subscriptions";
    const DEFAULT_ORDER: Option<&'static str> = None;
    const SELECT: &'static str = "id, body";

    type Item = SealedSubscription;

    fn read(
        row: &rusqlite::Row<'_>,
    ) -> rusqlite::Result<(String, Result<SealedSubscription, Error>)> {
        let body: String = row.get(1)?;
        Ok((row.get(0)?, from_body(WHAT, &body)))
    }

    fn column(self) -> &'static str {
        match self {
            SubscriptionField::Id => "id",
            SubscriptionField::TriggerId => "trigger_id",
            SubscriptionField::Type => "type",
            SubscriptionField::TriggerName => "trigger_name",
        }
    }
}

/// A subscription as one row: the queried columns and the JSON body. Built before the write is
/// queued, so the writer thread spends no time serializing.
struct Row {
    id: String,
    trigger_id: String,
    trigger_name: String,
    kind: &'static str,
    version: i64,
    body: String,
}

impl Row {
    fn of(s: &Subscription, sealed: &SealedSubscription) -> Result<Row, Error> {
        Ok(Row {
            id: s.id.clone(),
            trigger_id: s.trigger_id.clone(),
            trigger_name: s.trigger_name.clone(),
            kind: s.subscription_type().as_str(),
            version: to_sql_int("version", s.version)?,
            body: to_body(WHAT, sealed)?,
        })
    }
}

fn not_found(id: String) -> Error {
    Error::NotFound {
        kind: ResourceKind::Subscription,
        id,
    }
}

fn insert(conn: &Connection, row: &Row, max_per_trigger: usize) -> Result<(), Error> {
    let (count, first): (i64, Option<String>) = conn
        .prepare_cached("SELECT COUNT(*), MIN(id) FROM subscriptions WHERE trigger_id = ?1")
        .and_then(|mut stmt| stmt.query_row([&row.trigger_id], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(db)?;
    if usize::try_from(count).unwrap_or(usize::MAX) >= max_per_trigger {
        let trigger_type = Catalog::builtin()
            .get(&row.trigger_id)
            .map_or(TriggerType::FireAndForget, |e| e.trigger.trigger_type);
        return Err(Error::SubscriptionLimit {
            trigger_id: row.trigger_id.clone(),
            trigger_type,
            limit: max_per_trigger,
            existing: first.unwrap_or_default(),
        });
    }
    let inserted = conn
        .prepare_cached(
            "INSERT INTO subscriptions (id, trigger_id, trigger_name, type, version, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                row.id,
                row.trigger_id,
                row.trigger_name,
                row.kind,
                row.version,
                row.body
            ])
        })
        .map_err(db)?;
    if inserted == 0 {
        return Err(Error::AlreadyExists {
            kind: ResourceKind::Subscription,
            id: row.id.clone(),
        });
    }
    Ok(())
}

fn update(conn: &Connection, row: &Row, expected_version: i64) -> Result<(), Error> {
    let updated = conn
        .prepare_cached(
            "UPDATE subscriptions
             SET trigger_id = ?2, trigger_name = ?3, type = ?4, version = ?5, body = ?6
             WHERE id = ?1 AND version = ?7",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                row.id,
                row.trigger_id,
                row.trigger_name,
                row.kind,
                row.version,
                row.body,
                expected_version
            ])
        })
        .map_err(db)?;
    if updated > 0 {
        return Ok(());
    }
    let exists = conn
        .prepare_cached("SELECT 1 FROM subscriptions WHERE id = ?1")
        .and_then(|mut stmt| stmt.exists([&row.id]))
        .map_err(db)?;
    Err(if exists {
        Error::Conflict {
            kind: ResourceKind::Subscription,
            id: row.id.clone(),
        }
    } else {
        not_found(row.id.clone())
    })
}

#[async_trait]
impl SubscriptionStore for SqliteSubscriptionStore {
    async fn get(&self, id: &str) -> Result<Option<Subscription>, Error> {
        // A point read by key: on this thread, not the blocking pool, where hundreds of
        // concurrent deliveries reading their subscription after a write emptied the cache
        // each took a thread of its own to wait for one of the pool's connections.
        let sealed: Option<SealedSubscription> = self
            .db
            .lookup(|conn| {
                let body: Option<String> = conn
                    .prepare_cached("SELECT body FROM subscriptions WHERE id = ?1")
                    .and_then(|mut stmt| stmt.query_row([id], |r| r.get(0)).optional())
                    .map_err(db)?;
                body.map(|b| from_body(WHAT, &b)).transpose()
            })
            .await?;
        sealed.map(|s| self.open(s)).transpose()
    }

    /// Unreadable rows are left out with a warning, as in `list`: one subscription whose body
    /// does not decode or open must not stop deliveries to the trigger's others.
    async fn list_for_trigger(&self, trigger_id: &str) -> Result<Vec<Arc<Subscription>>, Error> {
        let trigger_id = trigger_id.to_owned();
        let sealed: Vec<SealedSubscription> = self
            .db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT id, body FROM subscriptions WHERE trigger_id = ?1 ORDER BY id",
                    )
                    .map_err(db)?;
                let rows = stmt
                    .query_map([&trigger_id], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(db)?;
                let mut found = Vec::new();
                for row in rows {
                    let (id, body) = row.map_err(db)?;
                    match from_body(WHAT, &body) {
                        Ok(sealed) => found.push(sealed),
                        Err(e) => tracing::warn!(subscription = %id, reason = %e,
                            "unreadable subscription left out of a trigger's subscriptions"),
                    }
                }
                Ok(found)
            })
            .await?;
        Ok(self.open_all(sealed).into_iter().map(Arc::new).collect())
    }

    async fn replace(
        &self,
        subscription: &Subscription,
        expected_version: u64,
    ) -> Result<(), Error> {
        let row = self.row(subscription)?;
        let expected = to_sql_int("version", expected_version)?;
        self.db
            .write(move |conn| update(conn, &row, expected))
            .await
    }
}

#[async_trait]
impl SubscriptionAdmin for SqliteSubscriptionStore {
    async fn create(
        &self,
        subscription: &Subscription,
        max_per_trigger: usize,
    ) -> Result<(), Error> {
        let row = self.row(subscription)?;
        self.db
            .write(move |conn| insert(conn, &row, max_per_trigger))
            .await
    }

    async fn list(&self, query: &SubscriptionQuery) -> Result<Page<Subscription>, Error> {
        let query = query.clone();
        let (page, unreadable) = self.db.read(move |conn| page(conn, &query)).await?;
        // Skipped, not moved: a subscription that does not decode (a key that changed, say)
        // is a configuration problem for a person to fix, not a row to take away.
        for row in unreadable {
            tracing::warn!(subscription = %row.id, reason = %row.reason,
                "unreadable subscription left out of a list");
        }
        Ok(Page {
            items: self.open_all(page.items),
            total: page.total,
        })
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        let id = id.to_owned();
        self.db
            .write(move |conn| {
                let deleted = conn
                    .prepare_cached("DELETE FROM subscriptions WHERE id = ?1")
                    .and_then(|mut stmt| stmt.execute([&id]))
                    .map_err(db)?;
                if deleted == 0 {
                    return Err(not_found(id.clone()));
                }
                Ok(())
            })
            .await
    }
}
