//! Rows that cannot be read back are moved out of the way, so that one bad row never stops a
//! sweep, a claim or a list for everyone.
//!
//! An invocation row is unreadable when its body is not a valid invocation or a time column does
//! not parse (a build that did not bound request times could store the year 56,000, which sorts
//! before every real time as text, so it headed every due and overdue query). Reads skip such a
//! row at once; a write job then moves it, whole, into the `quarantine` table (schema version 3)
//! and deletes it with its work, logging it once at WARN. Nothing is lost: the row is kept as
//! JSON for a person to inspect or restore (`SELECT * FROM quarantine`).

use rusqlite::{Connection, params};
use triggerline::Error;
use triggerline::time::format_time;

use crate::Sqlite;
use crate::error::db;

/// A row a read could not decode: its id and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable {
    pub(crate) id: String,
    pub(crate) reason: String,
}

impl Unreadable {
    pub(crate) fn new(id: String, error: &Error) -> Unreadable {
        // The domain error says only "store unavailable"; its source says what was wrong, and
        // that one's own source (serde_json's or chrono's message) says how, e.g. a number out
        // of range where "not valid JSON" alone would leave a reader puzzled by valid JSON.
        let reason = match std::error::Error::source(error) {
            Some(what) => match what.source() {
                Some(how) => format!("{what}: {how}"),
                None => what.to_string(),
            },
            None => error.to_string(),
        };
        Unreadable { id, reason }
    }
}

/// Moves unreadable invocations into `quarantine`, logging each once. A failure here is logged
/// and otherwise ignored: the rows stay skipped, and the next read that meets them tries again.
pub(crate) async fn invocations(db: &Sqlite, rows: Vec<Unreadable>) {
    if rows.is_empty() {
        return;
    }
    let to_move = rows.clone();
    match db.write(move |conn| move_invocations(conn, &to_move)).await {
        Ok(()) => rows.iter().for_each(moved),
        Err(e) => tracing::warn!(error = %e, count = rows.len(),
            "cannot quarantine unreadable invocations; they stay skipped"),
    }
}

/// Logs that `row` was moved into `quarantine` (by [`invocations`], or by a write job that
/// found it, through [`move_invocations`]).
pub(crate) fn moved(row: &Unreadable) {
    tracing::warn!(invocation = %row.id, reason = %row.reason,
        "unreadable invocation moved to the quarantine table");
}

/// Moves each row into `quarantine`, inside the caller's write job.
pub(crate) fn move_invocations(conn: &Connection, rows: &[Unreadable]) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let at = format_time(&chrono::Utc::now());
    let mut keep = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO quarantine (id, source, at, reason, row)
             SELECT id, 'invocations', ?2, ?3,
                    json_object('id', id, 'trigger_id', trigger_id,
                                'subscription_id', subscription_id,
                                'subscription_name', subscription_name, 'state', state,
                                'created', created, 'completed', completed,
                                'deadline', deadline, 'output', output, 'error', error,
                                'attempts', attempts, 'body', body,
                                'not_before', not_before, 'leased_until', leased_until,
                                'work_attempts', work_attempts)
             FROM invocations WHERE id = ?1",
        )
        .map_err(db)?;
    let mut delete = conn
        .prepare_cached("DELETE FROM invocations WHERE id = ?1")
        .map_err(db)?;
    for row in rows {
        keep.execute(params![row.id, at, row.reason]).map_err(db)?;
        // Its work is in its row and goes with it.
        delete.execute([&row.id]).map_err(db)?;
    }
    Ok(())
}
