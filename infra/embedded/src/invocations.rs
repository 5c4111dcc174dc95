//! [`InvocationStore`] on the `invocations` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use triggerline::Error;
use triggerline::error::ResourceKind;
use triggerline::model::{Invocation, InvocationState};
use triggerline::ports::{InvocationScans, InvocationStore, Transition};
use triggerline::query::{InvocationField, InvocationQuery, Page};
use triggerline::time::format_time;

use crate::Sqlite;
use crate::error::{db, from_body, to_body, to_sql_int};
use crate::quarantine::{self, Unreadable};
use crate::query::{Columns, page};

const WHAT: &str = "invocation";

/// The SQLite [`InvocationStore`].
#[derive(Clone, Debug)]
pub struct SqliteInvocationStore {
    db: Sqlite,
}

impl SqliteInvocationStore {
    /// A store over `db`; any number of stores may share one database.
    pub fn new(db: Sqlite) -> Self {
        SqliteInvocationStore { db }
    }
}

impl Columns for InvocationField {
    const TABLE: &'static str = "invocations";
    const DEFAULT_ORDER: Option<&'static str> = Some("created DESC");
    const WHAT: &'static str = WHAT;

    fn column(self) -> &'static str {
        match self {
            InvocationField::TriggerId => "trigger_id",
            InvocationField::SubscriptionId => "subscription_id",
            InvocationField::SubscriptionName => "subscription_name",
            InvocationField::Created => "created",
            InvocationField::Completed => "completed",
        }
    }

    fn nullable(self) -> bool {
        matches!(self, InvocationField::Completed)
    }
}

/// An invocation as one row. Times are stored as [`format_time`] text, which sorts in time
/// order, so `created` and `completed` compare and sort as the wire shows them.
pub(crate) struct Row {
    pub(crate) id: String,
    trigger_id: String,
    subscription_id: String,
    subscription_name: String,
    state: &'static str,
    created: String,
    completed: Option<String>,
    deadline: Option<String>,
    body: String,
}

impl Row {
    /// Built before a write is queued, so the writer thread spends no time serializing.
    pub(crate) fn of(i: &Invocation) -> Result<Row, Error> {
        Ok(Row {
            id: i.id.clone(),
            trigger_id: i.trigger_id.clone(),
            subscription_id: i.subscription_id.clone(),
            subscription_name: i.subscription_name.clone(),
            state: i.state.as_str(),
            created: format_time(&i.created),
            completed: i.completed.as_ref().map(format_time),
            deadline: i.deadline.as_ref().map(format_time),
            body: to_body(WHAT, i)?,
        })
    }
}

/// The deadline sweep's query; the `state IN` term is the partial index's own condition, which
/// is what lets SQLite use that index.
pub(crate) const OVERDUE: &str = "SELECT id, body FROM invocations
     WHERE state IN ('PENDING', 'ACKNOWLEDGED') AND deadline < ?1
     ORDER BY deadline LIMIT ?2";

/// Retention's delete. Each half of the selection is a range of its own partial index (whose
/// condition it repeats word for word, or SQLite would not use it); a `UNION ALL` keeps the
/// planner from falling back to a scan, as an `OR` across both may. Foreign keys delete the
/// invocations' work items with them.
pub(crate) const PURGE: &str = "DELETE FROM invocations WHERE id IN (
         SELECT id FROM invocations WHERE state = 'COMPLETED' AND completed < ?1
         UNION ALL
         SELECT id FROM invocations WHERE state IN ('FAILED', 'TIMED_OUT') AND completed < ?2
         LIMIT ?3)";

/// Inserts every row, or fails with [`Error::AlreadyExists`] on the first taken id; the
/// caller's job must then be rolled back (returning the error does that), so none is kept.
pub(crate) fn insert_all(conn: &Connection, rows: &[Row]) -> Result<(), Error> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO invocations (id, trigger_id, subscription_id, subscription_name, state,
                                      created, completed, deadline, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING",
        )
        .map_err(db)?;
    for row in rows {
        let inserted = stmt
            .execute(params![
                row.id,
                row.trigger_id,
                row.subscription_id,
                row.subscription_name,
                row.state,
                row.created,
                row.completed,
                row.deadline,
                row.body
            ])
            .map_err(db)?;
        if inserted == 0 {
            return Err(Error::AlreadyExists {
                kind: ResourceKind::Invocation,
                id: row.id.clone(),
            });
        }
    }
    Ok(())
}

/// The invocation as the connection sees it (inside a write job: including the batch's earlier
/// writes).
pub(crate) fn find(conn: &Connection, id: &str) -> Result<Option<Invocation>, Error> {
    find_body(conn, id)?
        .map(|(_, b)| from_body(WHAT, &b))
        .transpose()
}

/// The invocation's id and body as stored, undecoded.
fn find_body(conn: &Connection, id: &str) -> Result<Option<(String, String)>, Error> {
    conn.prepare_cached("SELECT id, body FROM invocations WHERE id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(db)
}

/// Writes `invocation` back over its row (the body and every column a write can change) if
/// the row's state is still `current`.
///
/// The state guard is redundant while the writer thread is the only writer, and keeps the write
/// correct should that ever change: it fails with [`Error::Conflict`].
pub(crate) fn update(
    conn: &Connection,
    invocation: &Invocation,
    current: InvocationState,
) -> Result<(), Error> {
    let row = Row::of(invocation)?;
    let updated = conn
        .prepare_cached(
            "UPDATE invocations SET state = ?2, completed = ?3, deadline = ?4, body = ?5
             WHERE id = ?1 AND state = ?6",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                row.id,
                row.state,
                row.completed,
                row.deadline,
                row.body,
                current.as_str()
            ])
        })
        .map_err(db)?;
    if updated == 0 {
        return Err(Error::Conflict {
            kind: ResourceKind::Invocation,
            id: row.id,
        });
    }
    Ok(())
}

/// Sets the transition's state and outcome on `invocation` (nothing else).
pub(crate) fn set_outcome(invocation: &mut Invocation, transition: &Transition) {
    invocation.state = transition.to;
    invocation.completed = transition.completed;
    invocation.output.clone_from(&transition.output);
    invocation.error.clone_from(&transition.error);
}

fn apply(
    conn: &Connection,
    id: String,
    from: &[InvocationState],
    transition: &Transition,
) -> Result<Invocation, Error> {
    let Some(mut invocation) = find(conn, &id)? else {
        return Err(Error::NotFound {
            kind: ResourceKind::Invocation,
            id,
        });
    };
    let current = invocation.state;
    if !from.contains(&current) {
        return Err(Error::NotOpen {
            id,
            status: current,
        });
    }
    set_outcome(&mut invocation, transition);
    update(conn, &invocation, current)?;
    Ok(invocation)
}

#[async_trait]
impl InvocationStore for SqliteInvocationStore {
    async fn create_all(&self, invocations: &[Invocation]) -> Result<(), Error> {
        if invocations.is_empty() {
            return Ok(());
        }
        let rows = invocations
            .iter()
            .map(Row::of)
            .collect::<Result<Vec<_>, _>>()?;
        self.db.write(move |conn| insert_all(conn, &rows)).await
    }

    async fn get(&self, id: &str) -> Result<Option<Invocation>, Error> {
        let id = id.to_owned();
        let found = self.db.read(move |conn| find_body(conn, &id)).await?;
        match found.map(|(id, body)| (from_body(WHAT, &body), id)) {
            None => Ok(None),
            Some((Ok(invocation), _)) => Ok(Some(invocation)),
            // Unreadable: moved out of the way, so it is as gone for this caller as for the next.
            Some((Err(e), id)) => {
                quarantine::invocations(&self.db, vec![Unreadable::new(id, &e)]).await;
                Ok(None)
            }
        }
    }

    async fn transition(
        &self,
        id: &str,
        from: &[InvocationState],
        transition: &Transition,
    ) -> Result<Invocation, Error> {
        let id = id.to_owned();
        let from = from.to_vec();
        let transition = transition.clone();
        self.db
            .write(move |conn| apply(conn, id, &from, &transition))
            .await
    }

    async fn overdue(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Invocation>, Error> {
        let now = format_time(&now);
        let limit = to_sql_int("limit", limit as u64)?;
        let (overdue, unreadable) = self
            .db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(OVERDUE).map_err(db)?;
                let rows = stmt
                    .query_map(params![now, limit], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(db)?;
                let mut overdue = Vec::new();
                let mut unreadable = Vec::new();
                for row in rows {
                    let (id, body) = row.map_err(db)?;
                    match from_body(WHAT, &body) {
                        Ok(invocation) => overdue.push(invocation),
                        Err(e) => unreadable.push(Unreadable::new(id, &e)),
                    }
                }
                Ok((overdue, unreadable))
            })
            .await?;
        // Out of the deadline index, so that the next sweep does not meet them first again.
        quarantine::invocations(&self.db, unreadable).await;
        Ok(overdue)
    }
}

#[async_trait]
impl InvocationScans for SqliteInvocationStore {
    async fn list(&self, query: &InvocationQuery) -> Result<Page<Invocation>, Error> {
        let query = query.clone();
        let (page, unreadable) = self.db.read(move |conn| page(conn, &query)).await?;
        quarantine::invocations(&self.db, unreadable).await;
        Ok(page)
    }

    async fn purge(
        &self,
        succeeded_before: DateTime<Utc>,
        failed_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, Error> {
        let succeeded_before = format_time(&succeeded_before);
        let failed_before = format_time(&failed_before);
        let limit = to_sql_int("limit", limit as u64)?;
        self.db
            .write(move |conn| {
                conn.prepare_cached(PURGE)
                    .and_then(|mut stmt| {
                        stmt.execute(params![succeeded_before, failed_before, limit])
                    })
                    .map_err(db)
            })
            .await
    }
}
