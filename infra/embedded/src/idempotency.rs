//! [`IdempotencyStore`] on the `idempotency_keys` table (schema version 6).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use triggerline::Error;
use triggerline::idempotency::{IdempotencyRecord, Raised};
use triggerline::ports::IdempotencyStore;
use triggerline::time::format_time;

use crate::Sqlite;
use crate::error::{db, from_body, parse_time, to_body, to_sql_int};

const WHAT: &str = "idempotency key";

/// The SQLite [`IdempotencyStore`]. A claim is one job of the single writer (read the key's
/// row, then insert or replace it), so nothing interleaves between its check and its write:
/// of two concurrent claims of one key, one writes and the other reads what it wrote.
#[derive(Clone, Debug)]
pub struct SqliteIdempotencyStore {
    db: Sqlite,
}

impl SqliteIdempotencyStore {
    /// A store over `db`; any number of stores may share one database.
    pub fn new(db: Sqlite) -> Self {
        SqliteIdempotencyStore { db }
    }
}

fn read(conn: &Connection, key: &str) -> Result<Option<IdempotencyRecord>, Error> {
    let row: Option<(String, String, String, Option<String>)> = conn
        .prepare_cached(
            "SELECT request_hash, created, expires, raised FROM idempotency_keys WHERE key = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()
        })
        .map_err(db)?;
    row.map(|(request_hash, created, expires, raised)| {
        Ok(IdempotencyRecord {
            key: key.to_owned(),
            request_hash,
            created: parse_time("idempotency key creation time", created)?,
            expires: parse_time("idempotency key expiry", expires)?,
            raised: raised
                .map(|r| from_body::<Vec<Raised>>(WHAT, &r))
                .transpose()?,
        })
    })
    .transpose()
}

#[async_trait]
impl IdempotencyStore for SqliteIdempotencyStore {
    async fn claim(
        &self,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, Error> {
        let raised = record
            .raised
            .as_ref()
            .map(|r| to_body(WHAT, r))
            .transpose()?;
        let (key, hash) = (record.key.clone(), record.request_hash.clone());
        let (created, expires) = (format_time(&record.created), format_time(&record.expires));
        let now = format_time(&now);
        self.db
            .write(move |conn| {
                // Times are format_time text, which compares in time order.
                let found = read(conn, &key)?;
                if let Some(found) = found.filter(|f| format_time(&f.expires) > now) {
                    return Ok(Some(found));
                }
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO idempotency_keys
                         (key, request_hash, created, expires, raised)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut stmt| stmt.execute(params![key, hash, created, expires, raised]))
                .map_err(db)?;
                Ok(None)
            })
            .await
    }

    async fn record_raised(
        &self,
        key: &str,
        created: DateTime<Utc>,
        raised: &[Raised],
    ) -> Result<(), Error> {
        let raised = to_body(WHAT, &raised)?;
        let (key, created) = (key.to_owned(), format_time(&created));
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE idempotency_keys SET raised = ?3 WHERE key = ?1 AND created = ?2",
                )
                .and_then(|mut stmt| stmt.execute(params![key, created, raised]))
                .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn release(&self, key: &str, created: DateTime<Utc>) -> Result<(), Error> {
        let (key, created) = (key.to_owned(), format_time(&created));
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM idempotency_keys
                     WHERE key = ?1 AND created = ?2 AND raised IS NULL",
                )
                .and_then(|mut stmt| stmt.execute(params![key, created]))
                .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        let now = format_time(&now);
        let limit = to_sql_int("limit", limit as u64)?;
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM idempotency_keys WHERE key IN (
                         SELECT key FROM idempotency_keys WHERE expires <= ?1 LIMIT ?2)",
                )
                .and_then(|mut stmt| stmt.execute(params![now, limit]))
                .map_err(db)
            })
            .await
    }
}
