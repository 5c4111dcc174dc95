//! [`InvocationStore`] on the `invocations` table.

use std::sync::{LazyLock, OnceLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, ToSql, params};
use serde_json::value::RawValue;
use triggerline::Error;
use triggerline::error::ResourceKind;
use triggerline::model::{
    Attempt, DispatchMode, Heartbeat, Invocation, InvocationState, InvocationType, LazyJson,
    TriggerType,
};
use triggerline::ports::{InvocationScans, InvocationStore, Judge, Judged, Transition};
use triggerline::query::{InvocationField, InvocationQuery, Page};
use triggerline::time::format_time;
use triggerline::trace::TraceContext;

use crate::Sqlite;
use crate::error::{StoreError, db, from_body, parse_time, to_body, to_sql_int};
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
    const SELECT: &'static str = SELECT;

    type Item = Invocation;

    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, Result<Invocation, Error>)> {
        let stored = Stored::from_row(row)?;
        Ok((stored.id.clone(), stored.decode()))
    }

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
///
/// `body` is the invocation as created and is never rewritten: what changes later lives in
/// columns (`state`, `completed`, `deadline`, `output`, `error`) and attempts made after the
/// insert are appended to `attempts`, one JSON object per line. Settling a delivery is then a
/// small update on the single writer thread instead of reading, decoding, re-encoding and
/// rewriting the whole body (input included), which made that thread the pipeline's bottleneck.
pub(crate) struct Row {
    pub(crate) id: String,
    trigger_id: String,
    subscription_id: String,
    subscription_name: String,
    state: &'static str,
    created: String,
    completed: Option<String>,
    deadline: Option<String>,
    output: Option<String>,
    error: Option<String>,
    body: String,
    last_heartbeat: Option<String>,
    heartbeat_due: Option<String>,
    ordering_key: Option<String>,
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
            output: i.output.as_ref().map(|o| to_body(WHAT, o)).transpose()?,
            error: i.error.clone(),
            body: to_body(WHAT, &BodyOut::of(i))?,
            ordering_key: i.ordering_key.clone(),
            last_heartbeat: i
                .heartbeat
                .as_ref()
                .and_then(|h| h.last)
                .as_ref()
                .map(format_time),
            heartbeat_due: i
                .heartbeat
                .as_ref()
                .and_then(|h| h.due)
                .as_ref()
                .map(format_time),
        })
    }
}

/// What `body` holds: the invocation as created, less what its columns hold (ids, names,
/// state, times, outcome, ordering key; schema version 9). Rows written before keep those
/// fields in their body too; reads take them from the columns, as they did for what changes.
/// About 300 bytes less per row, so more rows per page: each commit writes fewer pages to the
/// WAL, the accept's as the settle's.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct BodyOut<'a> {
    trigger_type: TriggerType,
    invocation_type: InvocationType,
    response_mode: Option<DispatchMode>,
    input: &'a serde_json::Value,
    content_json: &'a serde_json::Value,
    secret_hash: &'a str,
    /// Attempts made before the insert (an invocation written with its outcome).
    #[serde(skip_serializing_if = "<[Attempt]>::is_empty")]
    attempts: &'a [Attempt],
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<&'a TraceContext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat: Option<&'a Heartbeat>,
}

impl<'a> BodyOut<'a> {
    fn of(i: &'a Invocation) -> Self {
        BodyOut {
            trigger_type: i.trigger_type,
            invocation_type: i.invocation_type,
            response_mode: i.response_mode,
            input: &i.input,
            content_json: &i.content_json,
            secret_hash: &i.secret_hash,
            attempts: &i.attempts,
            trace: i.trace.as_ref(),
            heartbeat: i.heartbeat.as_ref(),
        }
    }
}

/// A JSON member of the body, kept as text until someone looks ([`LazyJson`]); one that would
/// not parse then is refused now, as corrupt.
fn lazy(what: &'static str, text: Box<RawValue>) -> Result<LazyJson, Error> {
    LazyJson::from_text(text).map_err(|unparsable| {
        StoreError::Corrupt {
            what,
            source: unparsable.0,
        }
        .into()
    })
}

/// A `body` as read, of either form: the fields the columns hold are ignored where present.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct BodyIn {
    trigger_type: TriggerType,
    invocation_type: InvocationType,
    response_mode: Option<DispatchMode>,
    // Kept as text: most reads never look at them (see `LazyJson`).
    input: Box<RawValue>,
    content_json: Box<RawValue>,
    secret_hash: String,
    #[serde(default)]
    attempts: Vec<Attempt>,
    #[serde(default)]
    trace: Option<TraceContext>,
    #[serde(default)]
    heartbeat: Option<Heartbeat>,
}

/// The columns a read of whole invocations selects, in [`Stored::from_row`]'s order.
pub(crate) const SELECT: &str = "id, body, state, completed, deadline, output, error, attempts, \
                                 last_heartbeat, heartbeat_due, trigger_id, subscription_id, \
                                 subscription_name, created, ordering_key";

/// One whole invocation by id (made once: the callback's judge and every read back use it).
static BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SELECT} FROM invocations WHERE id = ?1"));

/// One invocation as read, not yet decoded: rows are decoded after they leave the writer thread
/// or the read transaction, so neither spends its time in JSON.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) id: String,
    body: String,
    state: String,
    completed: Option<String>,
    deadline: Option<String>,
    output: Option<String>,
    error: Option<String>,
    attempts: Option<String>,
    last_heartbeat: Option<String>,
    heartbeat_due: Option<String>,
    trigger_id: String,
    subscription_id: String,
    subscription_name: String,
    created: String,
    ordering_key: Option<String>,
}

impl Stored {
    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
        Ok(Stored {
            id: r.get(0)?,
            body: r.get(1)?,
            state: r.get(2)?,
            completed: r.get(3)?,
            deadline: r.get(4)?,
            output: r.get(5)?,
            error: r.get(6)?,
            attempts: r.get(7)?,
            last_heartbeat: r.get(8)?,
            heartbeat_due: r.get(9)?,
            trigger_id: r.get(10)?,
            subscription_id: r.get(11)?,
            subscription_name: r.get(12)?,
            created: r.get(13)?,
            ordering_key: r.get(14)?,
        })
    }

    /// The invocation: the body as created, with the columns' values and every attempt.
    pub(crate) fn decode(self) -> Result<Invocation, Error> {
        self.decode_as(Inputs::Checked)
    }

    fn decode_as(self, inputs: Inputs) -> Result<Invocation, Error> {
        let body: BodyIn = from_body(WHAT, &self.body)?;
        let member = |what, text| match inputs {
            Inputs::Checked => lazy(what, text),
            Inputs::Unchecked => Ok(LazyJson::from_text_unchecked(text)),
        };
        let mut invocation = Invocation {
            id: self.id,
            trigger_id: self.trigger_id,
            trigger_type: body.trigger_type,
            subscription_id: self.subscription_id,
            subscription_name: self.subscription_name,
            invocation_type: body.invocation_type,
            response_mode: body.response_mode,
            state: InvocationState::parse(&self.state)
                .ok_or_else(|| Error::from(StoreError::BadState(self.state.clone())))?,
            created: parse_time("invocation creation time", self.created)?,
            completed: self
                .completed
                .map(|t| parse_time("invocation completion time", t))
                .transpose()?,
            deadline: self
                .deadline
                .map(|t| parse_time("invocation deadline", t))
                .transpose()?,
            input: member("invocation input", body.input)?,
            content_json: member("invocation content", body.content_json)?,
            output: self
                .output
                .map(|o| from_body("invocation output", &o))
                .transpose()?,
            error: self.error,
            secret_hash: body.secret_hash,
            attempts: body.attempts,
            trace: body.trace,
            ordering_key: self.ordering_key,
            heartbeat: body.heartbeat,
        };
        if let Some(timer) = invocation.heartbeat.as_mut() {
            timer.last = self
                .last_heartbeat
                .map(|t| parse_time("invocation last heartbeat", t))
                .transpose()?;
            timer.due = self
                .heartbeat_due
                .map(|t| parse_time("invocation heartbeat due time", t))
                .transpose()?;
        }
        for line in self.attempts.as_deref().unwrap_or_default().lines() {
            invocation
                .attempts
                .push(from_body("invocation attempt", line)?);
        }
        Ok(invocation)
    }

    /// [`Stored::decode`], or the row as [`Unreadable`] for the quarantine.
    pub(crate) fn read(self) -> Result<Invocation, Unreadable> {
        self.read_as(Inputs::Checked)
    }

    fn read_as(self, inputs: Inputs) -> Result<Invocation, Unreadable> {
        let id = self.id.clone();
        self.decode_as(inputs).map_err(|e| Unreadable::new(id, &e))
    }
}

/// Whether a read checks now that the input and content will parse when looked at
/// ([`LazyJson::from_text`]), or leaves them unchecked for a reader that never looks
/// ([`LazyJson::from_text_unchecked`]).
#[derive(Clone, Copy)]
enum Inputs {
    Checked,
    Unchecked,
}

/// What a transition writes, encoded before the write is queued.
pub(crate) struct Outcome {
    state: &'static str,
    completed: Option<String>,
    output: Option<String>,
    error: Option<String>,
}

impl Outcome {
    pub(crate) fn of(transition: &Transition) -> Result<Outcome, Error> {
        Ok(Outcome {
            state: transition.to.as_str(),
            completed: transition.completed.as_ref().map(format_time),
            output: transition
                .output
                .as_ref()
                .map(|o| to_body(WHAT, o))
                .transpose()?,
            error: transition.error.clone(),
        })
    }
}

/// The invocation's state, if it exists (inside a write job: including the batch's earlier
/// writes).
pub(crate) fn state_of(conn: &Connection, id: &str) -> Result<Option<InvocationState>, Error> {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM invocations WHERE id = ?1")
        .and_then(|mut stmt| stmt.query_row([id], |r| r.get(0)).optional())
        .map_err(db)?;
    state
        .map(|s| InvocationState::parse(&s).ok_or_else(|| StoreError::BadState(s).into()))
        .transpose()
}

/// A write's condition on the row: that it is still in this state, with no attempt yet (a
/// first delivery's settle, the common case). Without one, a write applies to the row as it
/// is. Only that case is conditional: a condition on a count of attempts would call SQL
/// functions, which make SQLite keep a statement journal for the write (the cost `OR FAIL`
/// avoids in [`write_outcome`]), where `attempts IS NULL` does not.
pub(crate) type Seen = Option<InvocationState>;

/// The `WHERE` terms of a [`Seen`] condition, its state bound as parameter `n`.
fn seen_terms(seen: Seen, n: usize) -> String {
    match seen {
        None => String::new(),
        Some(_) => format!(" AND state = ?{n} AND attempts IS NULL"),
    }
}

/// The invocation's state and how many attempts it has recorded, if it exists (inside a write
/// job). Attempts are stored one JSON line each, and JSON escapes newlines inside strings.
pub(crate) fn state_and_attempts(
    conn: &Connection,
    id: &str,
) -> Result<Option<(InvocationState, usize)>, Error> {
    let row: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT state, coalesce(length(attempts) - length(replace(attempts, char(10), '')), 0)
             FROM invocations WHERE id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(db)?;
    row.map(|(s, n)| {
        let state = InvocationState::parse(&s).ok_or(StoreError::BadState(s))?;
        Ok((state, usize::try_from(n).unwrap_or(usize::MAX)))
    })
    .transpose()
}

/// What a write does to the invocation's place in the delivery queue: its `not_before`,
/// `leased_until` and `work_attempts` columns (version 5; before, a row of its own table).
pub(crate) enum WorkChange {
    /// Leaves it as it is: a callback or the sweep settles the invocation, and a retry already
    /// queued stays queued (its delivery then finds the invocation settled).
    Keep,
    /// Takes it out of the queue: delivered, or given up.
    Remove,
    /// Queues the next attempt at this (formatted) time, unleased, one attempt more.
    RetryAt(String),
}

impl WorkChange {
    /// The `SET` terms, the retry time bound as parameter `n`.
    fn set(&self, n: usize) -> String {
        match self {
            WorkChange::Keep => String::new(),
            WorkChange::Remove => ", not_before = NULL, leased_until = NULL".to_owned(),
            WorkChange::RetryAt(_) => format!(
                ", not_before = ?{n}, leased_until = NULL, work_attempts = work_attempts + 1"
            ),
        }
    }

    fn retry_at(&self) -> Option<&String> {
        match self {
            WorkChange::RetryAt(at) => Some(at),
            WorkChange::Keep | WorkChange::Remove => None,
        }
    }
}

/// Sets the outcome's columns on the row (whose state the caller has checked), appending
/// `attempt` (a JSON line) if there is one and changing its work as `work` says, in one row
/// update.
pub(crate) fn write_outcome(
    conn: &Connection,
    id: &str,
    attempt: Option<&str>,
    outcome: &Outcome,
    work: &WorkChange,
    seen: Seen,
) -> Result<bool, Error> {
    let mut params: Vec<&dyn ToSql> = vec![
        &id,
        &attempt,
        &outcome.state,
        &outcome.completed,
        &outcome.output,
        &outcome.error,
    ];
    params.extend(work.retry_at().map(|at| at as &dyn ToSql));
    let state = seen.map(InvocationState::as_str);
    params.extend(state.as_ref().map(|s| s as &dyn ToSql));
    // An unordered row first, with the statement that leaves the unparking trigger out (schema
    // version 11): nearly every row is one. A row with an ordering key (or one not as `seen`,
    // or gone) changes nothing there and takes the statement that names the key, which fires
    // the trigger.
    for ordered in [false, true] {
        let changed = conn
            .prepare_cached(outcome_sql(work, seen, ordered))
            .and_then(|mut stmt| stmt.execute(params.as_slice()))
            .map_err(db)?;
        if changed > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// [`write_outcome`]'s statement for `work`, with or without a seen state's condition, for an
/// unordered or an ordered row: each made once, not formatted on every write.
fn outcome_sql(work: &WorkChange, seen: Seen, ordered: bool) -> &'static str {
    static MADE: [OnceLock<String>; 12] = [const { OnceLock::new() }; 12];
    let kind = match work {
        WorkChange::Keep => 0,
        WorkChange::Remove => 1,
        WorkChange::RetryAt(_) => 2,
    };
    let slot = kind * 4 + usize::from(seen.is_some()) * 2 + usize::from(ordered);
    MADE[slot].get_or_init(|| {
        // The seen state follows the six outcome parameters and the retry time, if any.
        let terms = seen_terms(seen, 7 + usize::from(work.retry_at().is_some()));
        // `OR FAIL`: with the ordering trigger, SQLite would otherwise keep a statement journal
        // for this UPDATE, a copy of every page it touches (about 30 of the 250 mallocs of a
        // delivery, measured). FAIL keeps what a failing statement changed instead of undoing
        // it, and nothing is lost by that: a failed job makes the writer roll the batch back and
        // rerun it with a savepoint per job (`writer.rs`).
        format!(
            "UPDATE OR FAIL invocations SET attempts = coalesce(attempts, '') || coalesce(?2, ''),
                                state = ?3, completed = ?4, output = ?5, error = ?6{}{}
         WHERE id = ?1{}{terms}",
            work.set(7),
            if ordered {
                ", ordering_key = ordering_key"
            } else {
                ""
            },
            if ordered {
                ""
            } else {
                " AND ordering_key IS NULL"
            },
        )
    })
}

/// Appends one attempt (a JSON line) to the row and changes its work as `work` says, if the
/// row is as `seen` (any row, without). Whether it wrote.
pub(crate) fn write_attempt(
    conn: &Connection,
    id: &str,
    line: &str,
    work: &WorkChange,
    seen: Seen,
) -> Result<bool, Error> {
    let mut params: Vec<&dyn ToSql> = vec![&id, &line];
    params.extend(work.retry_at().map(|at| at as &dyn ToSql));
    let state = seen.map(InvocationState::as_str);
    let terms = seen_terms(seen, params.len() + 1);
    params.extend(state.as_ref().map(|s| s as &dyn ToSql));
    conn.prepare_cached(&format!(
        "UPDATE invocations SET attempts = coalesce(attempts, '') || ?2{}
         WHERE id = ?1{terms}",
        work.set(3)
    ))
    .and_then(|mut stmt| stmt.execute(params.as_slice()))
    .map(|changed| changed > 0)
    .map_err(db)
}

/// The row a write job just changed. Read by a second statement rather than with `RETURNING`,
/// which SQLite implements by buffering the rows in an ephemeral table: a b-tree and its page
/// cache set up and torn down per write, several KiB of allocations each time.
pub(crate) fn read_back(conn: &Connection, id: &str) -> Result<Stored, Error> {
    conn.prepare_cached(&BY_ID)
        .and_then(|mut stmt| stmt.query_row([id], Stored::from_row))
        .map_err(db)
}

/// An attempt as the line [`write_attempt`] stores.
pub(crate) fn attempt_line(attempt: &Attempt) -> Result<String, Error> {
    let mut line = to_body("invocation attempt", attempt)?;
    line.push('\n');
    Ok(line)
}

/// The deadline sweep's query: the earliest `?2` of the open invocations past their deadline
/// or their heartbeat due time. Each half is a range of its own partial index, limited on its
/// own (the `state IN` term is the index's condition and `deadline <` / `heartbeat_due <`
/// implies its `IS NOT NULL`, which is what lets SQLite use it); `UNION` takes an invocation
/// past both once, and the outer order is by whichever time comes first.
pub(crate) const OVERDUE: &str =
    "SELECT id, body, state, completed, deadline, output, error, attempts, last_heartbeat,
            heartbeat_due, trigger_id, subscription_id, subscription_name, created, ordering_key
     FROM invocations
     WHERE id IN (
         SELECT id FROM (SELECT id FROM invocations
                          WHERE state IN ('PENDING', 'ACKNOWLEDGED') AND deadline < ?1
                          ORDER BY deadline LIMIT ?2)
         UNION
         SELECT id FROM (SELECT id FROM invocations
                          WHERE state IN ('PENDING', 'ACKNOWLEDGED') AND heartbeat_due < ?1
                          ORDER BY heartbeat_due LIMIT ?2))
     ORDER BY coalesce(min(deadline, heartbeat_due), deadline, heartbeat_due), id LIMIT ?2";

/// Retention's delete. Each half of the selection is a range of its own partial index (whose
/// condition it repeats word for word, or SQLite would not use it); a `UNION ALL` keeps the
/// planner from falling back to a scan, as an `OR` across both may. An invocation's work is in
/// its row and goes with it.
pub(crate) const PURGE: &str = "DELETE FROM invocations WHERE id IN (
         SELECT id FROM invocations WHERE state = 'COMPLETED' AND completed < ?1
         UNION ALL
         SELECT id FROM invocations WHERE state IN ('FAILED', 'TIMED_OUT') AND completed < ?2
         LIMIT ?3)";

/// When an invocation's work is due and until when it is leased, formatted for its row.
pub(crate) struct Queued {
    pub(crate) not_before: String,
    pub(crate) leased_until: Option<String>,
}

/// Inserts every row, queued for delivery as `queued` says (not at all when `None`), or fails
/// with [`Error::AlreadyExists`] on the first taken id; the caller's job must then be rolled
/// back (returning the error does that), so none is kept.
pub(crate) fn insert_all(
    conn: &Connection,
    rows: &[Row],
    queued: Option<&Queued>,
) -> Result<(), Error> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO invocations (id, trigger_id, subscription_id, subscription_name, state,
                                      created, completed, deadline, output, error, body,
                                      not_before, leased_until, work_attempts, last_heartbeat,
                                      heartbeat_due, ordering_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, ?14, ?15, ?16)
             ON CONFLICT (id) DO NOTHING",
        )
        .map_err(db)?;
    let not_before = queued.map(|q| &q.not_before);
    for row in rows {
        // Ordered work is claimed in its turn, never leased to the caller.
        let leased_until = queued
            .and_then(|q| q.leased_until.as_ref())
            .filter(|_| row.ordering_key.is_none());
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
                row.output,
                row.error,
                row.body,
                not_before,
                leased_until,
                row.last_heartbeat,
                row.heartbeat_due,
                row.ordering_key
            ])
            .map_err(db)?;
        if inserted == 0 {
            return Err(Error::AlreadyExists {
                kind: ResourceKind::Invocation,
                id: row.id.clone(),
            });
        }
        if let (Some(key), Some(_)) = (&row.ordering_key, queued) {
            park_behind_open(conn, &row.id, &row.subscription_id, key)?;
        }
    }
    Ok(())
}

/// Parks invocation ?1 if an earlier one of subscription ?2 and key ?3 is open; its
/// conditions are those of the index on open ordered invocations (schema version 10), so the
/// first entry of the key answers.
pub(crate) const PARK_BEHIND_OPEN: &str = "UPDATE invocations SET leased_until = ?4
     WHERE id = ?1 AND EXISTS (
         SELECT 1 FROM invocations p
         WHERE p.subscription_id = ?2 AND p.ordering_key = ?3
           AND p.state IN ('PENDING', 'ACKNOWLEDGED')
           AND p.rowid < (SELECT rowid FROM invocations WHERE id = ?1))";

/// Parks the work of a just-inserted ordered invocation if an earlier invocation of its
/// subscription and key is still open (schema versions 8 and 10 say how it is unparked).
fn park_behind_open(
    conn: &Connection,
    id: &str,
    subscription_id: &str,
    key: &str,
) -> Result<(), Error> {
    conn.prepare_cached(PARK_BEHIND_OPEN)
        .and_then(|mut stmt| stmt.execute(params![id, subscription_id, key, crate::queue::PARKED]))
        .map(drop)
        .map_err(db)
}

/// The invocation's row, undecoded (inside a write job: including the batch's earlier writes).
pub(crate) fn find(conn: &Connection, id: &str) -> Result<Option<Stored>, Error> {
    conn.prepare_cached(&BY_ID)
        .and_then(|mut stmt| stmt.query_row([id], Stored::from_row).optional())
        .map_err(db)
}

/// Moves the invocation from one of `from` to the outcome. The state is checked and set in one
/// write job on the single writer, so no other write comes between.
fn apply(
    conn: &Connection,
    id: &str,
    from: &[InvocationState],
    outcome: &Outcome,
) -> Result<Stored, Error> {
    apply_if_held(conn, id, from, outcome, None)?.map_or_else(|| read_back(conn, id), Ok)
}

/// [`apply`], not reading the row back (`None`) when it had the state and attempt count in
/// `held`.
fn apply_if_held(
    conn: &Connection,
    id: &str,
    from: &[InvocationState],
    outcome: &Outcome,
    held: Option<(InvocationState, usize)>,
) -> Result<Option<Stored>, Error> {
    let Some((current, attempts)) = state_and_attempts(conn, id)? else {
        return Err(Error::NotFound {
            kind: ResourceKind::Invocation,
            id: id.to_owned(),
        });
    };
    if !from.contains(&current) {
        return Err(Error::NotOpen {
            id: id.to_owned(),
            status: current,
        });
    }
    write_outcome(conn, id, None, outcome, &WorkChange::Keep, None)?;
    if held == Some((current, attempts)) {
        return Ok(None);
    }
    read_back(conn, id).map(Some)
}

/// What [`judge_and_apply`] found: the judgement, or a row it had to set aside.
enum InJob {
    Judged(Judged),
    Quarantined(Unreadable),
}

/// [`InvocationStore::transition_judged`] inside a write job. The answer is the row as read with
/// the transition applied: nothing else can change it within the job.
fn judge_and_apply(
    conn: &Connection,
    id: &str,
    from: &[InvocationState],
    judge: &Judge,
) -> Result<InJob, Error> {
    let Some(stored) = find(conn, id)? else {
        return Ok(InJob::Judged(Judged::Missing));
    };
    // The judge and the callback's telemetry and notices never look at the input.
    let mut invocation = match stored.read_as(Inputs::Unchecked) {
        Ok(invocation) => invocation,
        Err(unreadable) => {
            quarantine::move_invocations(conn, std::slice::from_ref(&unreadable))?;
            return Ok(InJob::Quarantined(unreadable));
        }
    };
    let transition = match judge(&invocation) {
        Ok(transition) => transition,
        Err(refusal) => {
            return Ok(InJob::Judged(Judged::Refused(
                Box::new(invocation),
                refusal,
            )));
        }
    };
    let was = invocation.state;
    if !from.contains(&was) {
        return Err(Error::NotOpen {
            id: id.to_owned(),
            status: was,
        });
    }
    write_outcome(
        conn,
        id,
        None,
        &Outcome::of(&transition)?,
        &WorkChange::Keep,
        None,
    )?;
    transition.apply_to(&mut invocation);
    Ok(InJob::Judged(Judged::Written {
        was,
        invocation: Box::new(invocation),
    }))
}

/// Sets the heartbeat columns of an open invocation (the state is checked and the row written
/// in one write job on the single writer); `last` NULL leaves the last heartbeat.
fn keep_alive(conn: &Connection, id: &str, due: &str, last: Option<&str>) -> Result<Stored, Error> {
    let Some(current) = state_of(conn, id)? else {
        return Err(Error::NotFound {
            kind: ResourceKind::Invocation,
            id: id.to_owned(),
        });
    };
    if !current.is_open() {
        return Err(Error::NotOpen {
            id: id.to_owned(),
            status: current,
        });
    }
    conn.prepare_cached(
        "UPDATE invocations SET heartbeat_due = ?2, last_heartbeat = coalesce(?3, last_heartbeat)
         WHERE id = ?1",
    )
    .and_then(|mut stmt| stmt.execute(params![id, due, last]))
    .map_err(db)?;
    read_back(conn, id)
}

/// Decodes a row read inside a write job, after it left the writer thread. A row a write just
/// changed does not fail to decode unless its body was already damaged.
pub(crate) async fn decoded(db: &Sqlite, stored: Stored) -> Result<Invocation, Error> {
    match stored.read() {
        Ok(invocation) => Ok(invocation),
        Err(unreadable) => {
            let reason = unreadable.reason.clone();
            let id = unreadable.id.clone();
            quarantine::invocations(db, vec![unreadable]).await;
            Err(StoreError::Unreadable { id, reason }.into())
        }
    }
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
        self.db
            .write(move |conn| insert_all(conn, &rows, None))
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<Invocation>, Error> {
        let found = self.db.lookup(|conn| find(conn, id)).await?;
        match found.map(Stored::read) {
            None => Ok(None),
            Some(Ok(invocation)) => Ok(Some(invocation)),
            // Unreadable: moved out of the way, so it is as gone for this caller as for the next.
            Some(Err(unreadable)) => {
                quarantine::invocations(&self.db, vec![unreadable]).await;
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
        let outcome = Outcome::of(transition)?;
        let stored = self
            .db
            .write(move |conn| apply(conn, &id, &from, &outcome))
            .await?;
        decoded(&self.db, stored).await
    }

    async fn transition_held(
        &self,
        held: Invocation,
        from: &[InvocationState],
        transition: &Transition,
    ) -> Result<Invocation, Error> {
        let id = held.id.clone();
        let states = from.to_vec();
        let outcome = Outcome::of(transition)?;
        let as_held = Some((held.state, held.attempts.len()));
        let stored = self
            .db
            .write(move |conn| apply_if_held(conn, &id, &states, &outcome, as_held))
            .await?;
        match stored {
            Some(stored) => decoded(&self.db, stored).await,
            None => {
                let mut written = held;
                transition.apply_to(&mut written);
                Ok(written)
            }
        }
    }

    /// One write job: the writer reads the row on its own connection (its pages are in the
    /// writer's cache, where a reader would fetch them again after every commit), decodes it,
    /// asks `judge` and writes the outcome, so no other write comes between the check and the
    /// write. A row that cannot be decoded is moved to the quarantine in the same job.
    async fn transition_judged(
        &self,
        id: &str,
        from: &[InvocationState],
        judge: Judge,
    ) -> Result<Judged, Error> {
        let id = id.to_owned();
        let states = from.to_vec();
        let judged = self
            .db
            .write(move |conn| judge_and_apply(conn, &id, &states, &judge))
            .await?;
        Ok(match judged {
            InJob::Judged(judged) => judged,
            InJob::Quarantined(row) => {
                quarantine::moved(&row);
                Judged::Missing
            }
        })
    }

    async fn overdue(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Invocation>, Error> {
        let now = format_time(&now);
        let limit = to_sql_int("limit", limit as u64)?;
        let (overdue, unreadable) = self
            .db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(OVERDUE).map_err(db)?;
                let rows = stmt
                    .query_map(params![now, limit], Stored::from_row)
                    .map_err(db)?;
                let mut overdue = Vec::new();
                let mut unreadable = Vec::new();
                for row in rows {
                    match row.map_err(db)?.read() {
                        Ok(invocation) => overdue.push(invocation),
                        Err(bad) => unreadable.push(bad),
                    }
                }
                Ok((overdue, unreadable))
            })
            .await?;
        // Out of the deadline index, so that the next sweep does not meet them first again.
        quarantine::invocations(&self.db, unreadable).await;
        Ok(overdue)
    }

    async fn keep_alive(
        &self,
        id: &str,
        due: DateTime<Utc>,
        heartbeat: Option<DateTime<Utc>>,
    ) -> Result<Invocation, Error> {
        let id = id.to_owned();
        let due = format_time(&due);
        let last = heartbeat.as_ref().map(format_time);
        let stored = self
            .db
            .write(move |conn| keep_alive(conn, &id, &due, last.as_deref()))
            .await?;
        decoded(&self.db, stored).await
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn words(sql: &str) -> String {
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The sweep decodes what it selects with [`Stored::from_row`], so it selects the same.
    #[test]
    fn the_sweep_selects_the_columns_a_row_is_read_from() {
        let select = words(&format!("SELECT {SELECT} FROM invocations"));
        assert!(words(OVERDUE).starts_with(&select), "{OVERDUE}");
    }

    /// A body written now leaves out what the row's columns hold, and reads back whole.
    #[tokio::test]
    async fn a_body_holds_only_what_no_column_does_and_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("t.db")).await.unwrap();
        let store = SqliteInvocationStore::new(db.clone());
        let mut invocation: Invocation = serde_json::from_value(serde_json::json!({
            "id": "0193a1b2-0000-7000-8000-000000000001",
            "triggerId": "idn:access-request-pre-approval",
            "triggerType": "REQUEST_RESPONSE",
            "subscriptionId": "0193a1b2-0000-7000-8000-000000000002",
            "subscriptionName": "Approver",
            "invocationType": "REAL_TIME",
            "responseMode": "ASYNC",
            "state": "PENDING",
            "created": "2026-01-01T00:00:00.000Z",
            "completed": null,
            "deadline": "2026-01-02T00:00:00.000Z",
            "input": {"identity": {"id": "2c91"}},
            "contentJson": {"k": "v"},
            "output": null,
            "error": null,
            "secretHash": "h",
            "attempts": [],
            "trace": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
            "orderingKey": "key-1",
            "heartbeat": {"timeout": "PT30S"}
        }))
        .unwrap();
        store
            .create_all(std::slice::from_ref(&invocation))
            .await
            .unwrap();

        let body: String = db
            .lookup(|conn| {
                conn.query_row("SELECT body FROM invocations", [], |r| r.get(0))
                    .map_err(db_error)
            })
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "contentJson",
                "heartbeat",
                "input",
                "invocationType",
                "responseMode",
                "secretHash",
                "trace",
                "triggerType"
            ]
        );
        assert_eq!(
            store.get(&invocation.id).await.unwrap().as_ref(),
            Some(&invocation)
        );

        // Settled: the columns carry the outcome and the attempt, the body is as written.
        let transition = Transition {
            to: InvocationState::Completed,
            completed: Some("2026-01-01T00:00:05.000Z".parse().unwrap()),
            output: Some(serde_json::json!({"approved": true})),
            error: None,
        };
        let written = store
            .transition(&invocation.id, InvocationState::OPEN, &transition)
            .await
            .unwrap();
        transition.apply_to(&mut invocation);
        assert_eq!(written, invocation);
        assert_eq!(store.get(&invocation.id).await.unwrap(), Some(invocation));
    }

    fn db_error(e: rusqlite::Error) -> Error {
        crate::error::db(e)
    }

    /// The outcome's write takes the statement without the unparking trigger for an unordered
    /// row and the one with it for an ordered row (schema version 11): finishing an ordered
    /// invocation still unparks the next of its key, and a write whose row is not as seen
    /// changes nothing either way.
    #[test]
    fn an_outcome_unparks_the_next_in_order_and_writes_unordered_rows_alike() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let due = "2026-01-01T00:00:00.000Z";
        for (id, key, lease) in [
            ("head", Some("k"), None),
            ("next", Some("k"), Some(crate::queue::PARKED)),
            ("plain", None, None),
        ] {
            conn.execute(
                "INSERT INTO invocations (id, trigger_id, subscription_id, subscription_name,
                                          state, created, body, not_before, leased_until,
                                          ordering_key)
                 VALUES (?1, 't', 's', 'n', 'PENDING', ?2, '{}', ?2, ?3, ?4)",
                rusqlite::params![id, due, lease, key],
            )
            .unwrap();
        }
        let row = |id: &str| -> (String, Option<String>, Option<String>) {
            conn.query_row(
                "SELECT state, leased_until, attempts FROM invocations WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
        };
        let done = Outcome {
            state: "COMPLETED",
            completed: Some("2026-01-01T00:00:01.000Z".to_owned()),
            output: None,
            error: None,
        };
        let attempt = Some("{}\n");
        let pending = Some(InvocationState::Pending);

        // Not as seen: a state it does not have.
        let acked = Some(InvocationState::Acknowledged);
        for id in ["plain", "head"] {
            let wrote =
                write_outcome(&conn, id, attempt, &done, &WorkChange::Remove, acked).unwrap();
            assert!(!wrote, "{id}");
            assert_eq!(row(id).0, "PENDING", "{id}");
        }
        assert_eq!(row("next").1.as_deref(), Some(crate::queue::PARKED));

        let wrote = write_outcome(&conn, "plain", attempt, &done, &WorkChange::Remove, pending);
        assert!(wrote.unwrap());
        assert_eq!(
            row("plain"),
            ("COMPLETED".to_owned(), None, Some("{}\n".to_owned()))
        );
        assert_eq!(row("next").1.as_deref(), Some(crate::queue::PARKED));

        let wrote = write_outcome(&conn, "head", attempt, &done, &WorkChange::Remove, pending);
        assert!(wrote.unwrap());
        assert_eq!(
            row("head"),
            ("COMPLETED".to_owned(), None, Some("{}\n".to_owned()))
        );
        assert_eq!(row("next").1, None, "the next in order is unparked");
        assert!(!write_outcome(&conn, "gone", attempt, &done, &WorkChange::Remove, None).unwrap());
    }
}
