//! [`DeliveryQueue`] on the `invocations` table: an invocation still to be delivered has its
//! work in its own row (`not_before`, `leased_until`, `work_attempts`), written with it.
//!
//! Work is due from `not_before`. A lease (`leased_until`) says that a worker holds the item;
//! the item is claimable again once the lease has ended, which is how the items of a worker that
//! died come back. Every write here is one job of the group-committing writer, so a burst of
//! accepts and settles from thousands of concurrent deliveries shares its fsyncs; each job is a
//! handful of statements on the primary key or on one of the two work indexes.

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::{Connection, params};
use triggerline::Error;
use triggerline::error::ResourceKind;
use triggerline::model::{Attempt, Invocation, InvocationState};
use triggerline::ports::{DeliveryQueue, NextStep, Transition, WorkItem, WorkSource};
use triggerline::time::format_time;

use crate::Sqlite;
use crate::error::{db, parse_time, to_sql_int};
use crate::invocations::{
    Outcome, Queued, Row, Seen, Stored, WorkChange, attempt_line, decoded, insert_all, read_back,
    state_and_attempts, state_of, write_attempt, write_outcome,
};
use crate::quarantine::{self, Unreadable};

/// The lease of parked work: ordered work waiting for an earlier invocation of its
/// subscription and key to finish. Far enough ahead that no claim takes it, and read by the
/// schema's triggers (version 8), which unpark it.
pub(crate) const PARKED: &str = "9999-12-31T23:59:59.999Z";

/// Due, unleased items, oldest first: a range of `invocations_unleased_by_not_before` in order, so
/// it stops after `limit` rows however long the backlog.
pub(crate) const DUE_UNLEASED: &str = "SELECT id, not_before, work_attempts FROM invocations
     WHERE leased_until IS NULL AND not_before <= ?1
     ORDER BY not_before LIMIT ?2";

/// Due items whose lease has ended: a range of `invocations_leased_by_leased_until`. Only the leases
/// that ran out are read, which are few (a worker died, or a delivery overran its lease).
pub(crate) const DUE_EXPIRED: &str = "SELECT id, not_before, work_attempts FROM invocations
     WHERE leased_until < ?1 AND not_before <= ?1
     ORDER BY not_before LIMIT ?2";

/// The earliest due time and the earliest lease end: one step into each partial index.
pub(crate) const NEXT_DUE: &str = "SELECT MIN(t) FROM (
         SELECT not_before AS t FROM (
             SELECT not_before FROM invocations
             WHERE not_before IS NOT NULL AND leased_until IS NULL
             ORDER BY not_before LIMIT 1)
         UNION ALL
         SELECT leased_until FROM (
             SELECT leased_until FROM invocations
             WHERE not_before IS NOT NULL AND leased_until IS NOT NULL
             ORDER BY leased_until LIMIT 1))";

/// The SQLite [`DeliveryQueue`]. It shares the database (and the transaction of each write) with
/// [`crate::SqliteInvocationStore`], so an invocation and its work are written together.
#[derive(Clone, Debug)]
pub struct SqliteDeliveryQueue {
    db: Sqlite,
}

impl SqliteDeliveryQueue {
    /// A queue over `db`; any number of queues and stores may share one database.
    pub fn new(db: Sqlite) -> Self {
        SqliteDeliveryQueue { db }
    }
}

/// Work as read: invocation id, `not_before` text, attempts.
type RawItem = (String, String, u32);

fn raw_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawItem> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

/// Work as the port hands it out.
fn work_item((invocation_id, not_before, attempts): RawItem) -> Result<WorkItem, Error> {
    Ok(WorkItem {
        invocation_id,
        not_before: parse_time("work not_before", not_before)?,
        attempts,
    })
}

/// When a new work item is due and how long it is leased, formatted for its row.
fn queued(not_before: DateTime<Utc>, leased_until: Option<DateTime<Utc>>) -> Queued {
    Queued {
        not_before: format_time(&not_before),
        // A lease that ends before the item is due changes nothing about when it can be
        // claimed; storing none keeps `next_due` from naming a time at which nothing is due.
        leased_until: leased_until
            .filter(|until| *until >= not_before)
            .map(|until| format_time(&until)),
    }
}

/// The item as stored: times at the millisecond precision of the row, so that it equals what
/// `claim_due` returns later.
fn stored_item(invocation_id: &str, not_before: DateTime<Utc>) -> WorkItem {
    WorkItem {
        invocation_id: invocation_id.to_owned(),
        not_before: not_before.trunc_subsecs(3),
        attempts: 0,
    }
}

/// Moves a FAILED invocation back to PENDING and queues it again, with a fresh retry budget.
/// Its attempts stay, as the history of the earlier round.
fn reopen(conn: &Connection, id: &str, deadline: Option<&str>, when: &Queued) -> Result<(), Error> {
    let Some(current) = state_of(conn, id)? else {
        return Err(Error::NotFound {
            kind: ResourceKind::Invocation,
            id: id.to_owned(),
        });
    };
    if current != InvocationState::Failed {
        return Err(Error::NotOpen {
            id: id.to_owned(),
            status: current,
        });
    }
    conn.prepare_cached(
        "UPDATE invocations SET state = 'PENDING', completed = NULL, output = NULL, error = NULL,
                                deadline = ?2, not_before = ?3, leased_until = ?4,
                                work_attempts = 0, last_heartbeat = NULL, heartbeat_due = NULL
         WHERE id = ?1",
    )
    .and_then(|mut stmt| stmt.execute(params![id, deadline, when.not_before, when.leased_until]))
    .map(drop)
    .map_err(db)
}

/// Leases the oldest due items. A row whose due time does not parse is never handed out: it is
/// quarantined with its invocation in this same transaction (and returned, to be logged), so it
/// cannot head the due index and stop every claim after it.
fn claim(
    conn: &Connection,
    now: &str,
    lease_until: &str,
    limit: i64,
) -> Result<(Vec<WorkItem>, Vec<Unreadable>), Error> {
    let mut due = Vec::new();
    for sql in [DUE_UNLEASED, DUE_EXPIRED] {
        let mut stmt = conn.prepare_cached(sql).map_err(db)?;
        let rows = stmt.query_map(params![now, limit], raw_item).map_err(db)?;
        for row in rows {
            due.push(row.map_err(db)?);
        }
    }
    // Both halves are oldest first; merged, the oldest `limit` of them are the oldest overall.
    due.sort_unstable_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut items = Vec::with_capacity(due.len());
    let mut unreadable = Vec::new();
    for raw in due {
        let id = raw.0.clone();
        match work_item(raw) {
            Ok(item) => items.push(item),
            Err(e) => unreadable.push(Unreadable::new(id, &e)),
        }
    }
    quarantine::move_invocations(conn, &unreadable)?;
    let mut lease = conn
        .prepare_cached("UPDATE invocations SET leased_until = ?2 WHERE id = ?1")
        .map_err(db)?;
    for item in &items {
        lease
            .execute(params![item.invocation_id, lease_until])
            .map_err(db)?;
    }
    Ok((items, unreadable))
}

/// What recording an attempt found and wrote.
enum Recorded {
    /// The invocation no longer exists.
    Gone,
    /// The row was as the caller holds it (same state, same number of attempts), so it now
    /// reads as the caller's copy settled; not read back.
    AsHeld,
    /// The row as written.
    Row(Box<Stored>),
}

/// Appends `attempt`, applies `outcome` when the state is one of `from`, and changes the work.
/// With `held` (the state and attempt count the caller's copy has), a row that matches it is
/// not read back.
fn record_attempt(
    conn: &Connection,
    id: &str,
    attempt: &str,
    from: &[InvocationState],
    outcome: Option<&Outcome>,
    next: &WorkChange,
    held: Option<(InvocationState, usize)>,
) -> Result<Recorded, Error> {
    // Appends the attempt, with the outcome when `state` (the row's) is one of `from`, if the
    // row is as `seen`; whether it wrote.
    let write = |state: InvocationState, seen: Seen| match outcome.filter(|_| from.contains(&state))
    {
        Some(outcome) => write_outcome(conn, id, Some(attempt), outcome, next, seen),
        None => write_attempt(conn, id, attempt, next, seen),
    };
    // The common case: a first attempt, the row as the caller holds it. The write is then
    // conditional on that, which spares reading the row first; a row that changed meanwhile
    // (or is gone), and any later attempt, take the longer way below.
    if let Some((state, 0)) = held
        && write(state, Some(state))?
    {
        return Ok(Recorded::AsHeld);
    }
    // A deleted invocation took its work with it, so without one there is nothing to settle.
    let Some(current) = state_and_attempts(conn, id)? else {
        return Ok(Recorded::Gone);
    };
    write(current.0, None)?;
    if held == Some(current) {
        return Ok(Recorded::AsHeld);
    }
    read_back(conn, id).map(|row| Recorded::Row(Box::new(row)))
}

/// One settle's write job ([`record_attempt`]), its inputs encoded here, before it is queued, so
/// that the writer thread spends no time serializing.
fn settle_job(
    invocation_id: &str,
    attempt: &Attempt,
    from: &[InvocationState],
    transition: Option<&Transition>,
    next: &NextStep,
    held: Option<(InvocationState, usize)>,
) -> Result<impl Fn(&Connection) -> Result<Recorded, Error> + Send + 'static, Error> {
    let id = invocation_id.to_owned();
    let line = attempt_line(attempt)?;
    let states = from.to_vec();
    let outcome = transition.map(Outcome::of).transpose()?;
    let work = work_change(next);
    Ok(move |conn: &Connection| {
        record_attempt(conn, &id, &line, &states, outcome.as_ref(), &work, held)
    })
}

impl SqliteDeliveryQueue {
    /// One settle, durable when it returns.
    async fn record(
        &self,
        invocation_id: &str,
        attempt: &Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
        next: &NextStep,
        held: Option<(InvocationState, usize)>,
    ) -> Result<Recorded, Error> {
        let job = settle_job(invocation_id, attempt, from, transition, next, held)?;
        self.db.write(job).await
    }
}

/// The work change a settle's next step writes.
fn work_change(next: &NextStep) -> WorkChange {
    match next {
        NextStep::Done => WorkChange::Remove,
        NextStep::RetryAt(at) => WorkChange::RetryAt(format_time(at)),
    }
}

#[async_trait]
impl DeliveryQueue for SqliteDeliveryQueue {
    async fn accept(
        &self,
        invocations: &[Invocation],
        not_before: DateTime<Utc>,
        leased_until: Option<DateTime<Utc>>,
    ) -> Result<Vec<WorkItem>, Error> {
        if invocations.is_empty() {
            return Ok(Vec::new());
        }
        let rows = invocations
            .iter()
            .map(Row::of)
            .collect::<Result<Vec<_>, _>>()?;
        let when = queued(not_before, leased_until);
        self.db
            .write(move |conn| insert_all(conn, &rows, Some(&when)))
            .await?;
        Ok(invocations
            .iter()
            .map(|i| stored_item(&i.id, not_before))
            .collect())
    }

    async fn settle(
        &self,
        invocation_id: &str,
        attempt: &Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
        next: &NextStep,
    ) -> Result<Option<Invocation>, Error> {
        let recorded = self
            .record(invocation_id, attempt, from, transition, next, None)
            .await?;
        match recorded {
            Recorded::Row(stored) => decoded(&self.db, *stored).await.map(Some),
            Recorded::Gone | Recorded::AsHeld => Ok(None),
        }
    }

    async fn settle_held(
        &self,
        held: Invocation,
        attempt: &Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
        next: &NextStep,
    ) -> Result<Invocation, Error> {
        let as_held = Some((held.state, held.attempts.len()));
        let recorded = self
            .record(&held.id, attempt, from, transition, next, as_held)
            .await?;
        match recorded {
            Recorded::AsHeld => Ok(triggerline::ports::settled(held, attempt, from, transition)),
            Recorded::Row(stored) => decoded(&self.db, *stored).await,
            Recorded::Gone => Ok(held),
        }
    }

    async fn settle_held_soon(
        &self,
        held: Invocation,
        attempt: &Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
        next: &NextStep,
    ) -> Result<Invocation, Error> {
        let as_held = Some((held.state, held.attempts.len()));
        let job = settle_job(&held.id, attempt, from, transition, next, as_held)?;
        self.db.write_soon(move |conn| job(conn).map(drop)).await?;
        // The caller accepted the row just before, so it reads as held until this lands.
        Ok(triggerline::ports::settled(held, attempt, from, transition))
    }

    async fn replay(
        &self,
        invocation_id: &str,
        deadline: Option<DateTime<Utc>>,
        not_before: DateTime<Utc>,
        leased_until: Option<DateTime<Utc>>,
    ) -> Result<WorkItem, Error> {
        let id = invocation_id.to_owned();
        let when = queued(not_before, leased_until);
        let deadline = deadline.as_ref().map(format_time);
        self.db
            .write(move |conn| reopen(conn, &id, deadline.as_deref(), &when))
            .await?;
        // A replay starts a new round of delivery: its retry budget starts again too.
        Ok(stored_item(invocation_id, not_before))
    }

    async fn discard(&self, invocation_id: &str) -> Result<(), Error> {
        let id = invocation_id.to_owned();
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE invocations SET not_before = NULL, leased_until = NULL WHERE id = ?1",
                )
                .and_then(|mut stmt| stmt.execute([&id]))
                .map(drop)
                .map_err(db)
            })
            .await
    }

    fn orders_by_key(&self) -> bool {
        true
    }

    async fn postpone(&self, invocation_id: &str, until: DateTime<Utc>) -> Result<(), Error> {
        let id = invocation_id.to_owned();
        let until = format_time(&until);
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE invocations SET not_before = ?2, leased_until = NULL
                     WHERE id = ?1 AND not_before IS NOT NULL",
                )
                .and_then(|mut stmt| stmt.execute(params![id, until]))
                .map(drop)
                .map_err(db)
            })
            .await
    }
}

#[async_trait]
impl WorkSource for SqliteDeliveryQueue {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkItem>, Error> {
        let now = format_time(&now);
        let lease_until = format_time(&lease_until);
        let limit = to_sql_int("limit", limit as u64)?;
        let (due, unreadable) = self
            .db
            .write(move |conn| claim(conn, &now, &lease_until, limit))
            .await?;
        for row in unreadable {
            tracing::warn!(invocation = %row.id, reason = %row.reason,
                "unreadable work item moved to the quarantine table with its invocation");
        }
        Ok(due)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let next: Option<String> = self
            .db
            .read(|conn| {
                conn.prepare_cached(NEXT_DUE)
                    .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
                    .map_err(db)
            })
            .await?;
        next.map(|t| parse_time("work due time", t)).transpose()
    }

    async fn release_all(&self) -> Result<(), Error> {
        self.db
            .write(|conn| {
                conn.execute(
                    "UPDATE invocations SET leased_until = NULL
                     WHERE not_before IS NOT NULL AND leased_until IS NOT NULL
                       AND leased_until <> ?1",
                    [PARKED],
                )
                .map(drop)
                .map_err(db)
            })
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rusqlite::Connection;

    use crate::invocations::{OVERDUE, PURGE};

    use super::*;

    /// The query plan's lines for `sql` on a migrated, empty database.
    fn plan(sql: &str, params: usize) -> Vec<String> {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let values: Vec<String> = (0..params)
            .map(|_| "2025-01-01T00:00:00.000Z".into())
            .collect();
        stmt.query_map(rusqlite::params_from_iter(values), |r| {
            r.get::<_, String>(3)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// Asserts that `sql` reads through each of `indexes` and never walks a whole table (an
    /// index walked in order is fine: every query here stops at a `LIMIT`).
    fn assert_indexed(sql: &str, params: usize, indexes: &[&str]) {
        let plan = plan(sql, params);
        for line in &plan {
            assert!(
                line != "SCAN invocations",
                "a full scan in the plan of {sql}: {plan:#?}"
            );
        }
        for index in indexes {
            assert!(
                plan.iter().any(|line| line.contains(index)),
                "{index} unused by {sql}: {plan:#?}"
            );
        }
    }

    #[test]
    fn the_sweep_reads_only_open_invocations_through_the_partial_index() {
        assert_indexed(
            OVERDUE,
            2,
            &[
                "invocations_open_by_deadline",
                "invocations_open_by_heartbeat_due",
            ],
        );
        // Each half reads its index in order and stops at the limit; the sorts in the plan
        // (the union's by id, the result's by due time) are over at most that many rows each.
    }

    #[test]
    fn retention_selects_through_the_two_finished_by_completed_indexes() {
        assert_indexed(
            PURGE,
            3,
            &[
                "invocations_succeeded_by_completed",
                "invocations_failed_by_completed",
            ],
        );
    }

    #[test]
    fn claiming_reads_each_half_through_its_own_index() {
        assert_indexed(DUE_UNLEASED, 2, &["invocations_unleased_by_not_before"]);
        assert!(
            !plan(DUE_UNLEASED, 2)
                .iter()
                .any(|l| l.contains("TEMP B-TREE")),
            "the backlog is read in due order and stops at the limit, without a sort"
        );
        assert_indexed(DUE_EXPIRED, 2, &["invocations_leased_by_leased_until"]);
        assert_indexed(
            NEXT_DUE,
            0,
            &[
                "invocations_unleased_by_not_before",
                "invocations_leased_by_leased_until",
            ],
        );
    }
}
