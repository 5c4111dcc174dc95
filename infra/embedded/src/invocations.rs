//! [`InvocationStore`] on the `invocations` table.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use triggerline::Error;
use triggerline::error::ResourceKind;
use triggerline::model::{Invocation, InvocationState};
use triggerline::ports::{InvocationStore, Transition};
use triggerline::query::{InvocationField, InvocationQuery, Page};
use triggerline::time::format_time;

use crate::Sqlite;
use crate::error::{db, from_body, to_body};
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
struct Row {
    id: String,
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
    fn of(i: &Invocation) -> Result<Row, Error> {
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

fn insert_all(conn: &Connection, rows: Vec<Row>) -> Result<(), Error> {
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
        // Returning an error makes the writer roll the whole job back, so none is kept.
        if inserted == 0 {
            return Err(Error::AlreadyExists {
                kind: ResourceKind::Invocation,
                id: row.id,
            });
        }
    }
    Ok(())
}

fn apply(
    conn: &Connection,
    id: String,
    from: &[InvocationState],
    transition: Transition,
) -> Result<Invocation, Error> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM invocations WHERE id = ?1")
        .and_then(|mut stmt| stmt.query_row([&id], |r| r.get(0)).optional())
        .map_err(db)?;
    let Some(body) = body else {
        return Err(Error::NotFound {
            kind: ResourceKind::Invocation,
            id,
        });
    };
    let mut invocation: Invocation = from_body(WHAT, &body)?;
    let current = invocation.state;
    if !from.contains(&current) {
        return Err(Error::NotOpen {
            id,
            status: current,
        });
    }
    invocation.state = transition.to;
    invocation.completed = transition.completed;
    invocation.output = transition.output;
    invocation.error = transition.error;
    let row = Row::of(&invocation)?;
    // The state guard is redundant while this job is the only writer, and keeps the write
    // correct should that ever change.
    let updated = conn
        .prepare_cached(
            "UPDATE invocations SET state = ?2, completed = ?3, body = ?4
             WHERE id = ?1 AND state = ?5",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                row.id,
                row.state,
                row.completed,
                row.body,
                current.as_str()
            ])
        })
        .map_err(db)?;
    if updated == 0 {
        return Err(Error::Conflict {
            kind: ResourceKind::Invocation,
            id,
        });
    }
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
        self.db.write(move |conn| insert_all(conn, rows)).await
    }

    async fn get(&self, id: &str) -> Result<Option<Invocation>, Error> {
        let id = id.to_owned();
        self.db
            .read(move |conn| {
                let body: Option<String> = conn
                    .prepare_cached("SELECT body FROM invocations WHERE id = ?1")
                    .and_then(|mut stmt| stmt.query_row([&id], |r| r.get(0)).optional())
                    .map_err(db)?;
                body.map(|b| from_body(WHAT, &b)).transpose()
            })
            .await
    }

    async fn list(&self, query: &InvocationQuery) -> Result<Page<Invocation>, Error> {
        let query = query.clone();
        self.db.read(move |conn| page(conn, &query)).await
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
            .write(move |conn| apply(conn, id, &from, transition))
            .await
    }
}
