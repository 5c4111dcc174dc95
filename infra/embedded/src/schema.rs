//! Schema migrations, applied in order according to `PRAGMA user_version`.
//!
//! Each entry moves the schema one version up and is never edited once released: a change is a
//! new entry. A subscription's `body` holds the whole model as JSON and is the record of truth;
//! the other columns copy the fields that queries filter and sort on. An invocation's `body` is
//! the invocation as created; the columns that change later (state, times, output, error,
//! appended attempts) are the truth for those fields (version 4), and its place in the delivery
//! queue is in its row too (version 5), and so are its heartbeat timer's last heartbeat and due
//! time (version 6). Since version 9 the body leaves out every field a column holds.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: subscriptions and invocations.
    "CREATE TABLE subscriptions (
        id           TEXT PRIMARY KEY NOT NULL,
        trigger_id   TEXT NOT NULL,
        trigger_name TEXT NOT NULL,
        type         TEXT NOT NULL,
        version      INTEGER NOT NULL,
        body         TEXT NOT NULL
    );
    CREATE INDEX subscriptions_by_trigger_id ON subscriptions (trigger_id, id);
    CREATE INDEX subscriptions_by_trigger_name ON subscriptions (trigger_name, id);

    CREATE TABLE invocations (
        id                TEXT PRIMARY KEY NOT NULL,
        trigger_id        TEXT NOT NULL,
        subscription_id   TEXT NOT NULL,
        subscription_name TEXT NOT NULL,
        state             TEXT NOT NULL,
        created           TEXT NOT NULL,
        completed         TEXT,
        deadline          TEXT,
        body              TEXT NOT NULL
    );
    CREATE INDEX invocations_by_trigger_id ON invocations (trigger_id, created);
    CREATE INDEX invocations_by_subscription_id ON invocations (subscription_id, created);
    CREATE INDEX invocations_by_created ON invocations (created, id);
    CREATE INDEX invocations_by_completed ON invocations (completed, id);
    -- The deadline sweep reads only open invocations; the partial index stays as small as the
    -- set of invocations still waiting for an answer.
    CREATE INDEX invocations_open_by_deadline ON invocations (deadline)
        WHERE state IN ('PENDING', 'ACKNOWLEDGED');",
    // 2: the delivery queue, and retention's indexes.
    "-- One row per invocation still to be delivered. Deleting the invocation (retention)
    -- deletes its work with it. The key is the only lookup besides the two time indexes, so the
    -- table is clustered on it.
    CREATE TABLE work (
        invocation_id TEXT PRIMARY KEY NOT NULL
                      REFERENCES invocations (id) ON DELETE CASCADE,
        not_before    TEXT NOT NULL,
        leased_until  TEXT,
        attempts      INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- claim_due and next_due read unleased work by due time and leased work by lease end, each
    -- from an index holding only its half, so neither walks past the other half's rows (the
    -- thousands of items leased to in-flight deliveries).
    CREATE INDEX work_unleased_by_not_before ON work (not_before)
        WHERE leased_until IS NULL;
    CREATE INDEX work_leased_by_leased_until ON work (leased_until)
        WHERE leased_until IS NOT NULL;
    -- Retention deletes finished invocations by completion time, with one cutoff for the
    -- succeeded and one for the rest. Partial indexes hold only finished invocations (an
    -- intake's insert does not touch them) and do not compete with the sweep's index.
    CREATE INDEX invocations_succeeded_by_completed ON invocations (completed)
        WHERE state = 'COMPLETED';
    CREATE INDEX invocations_failed_by_completed ON invocations (completed)
        WHERE state IN ('FAILED', 'TIMED_OUT');",
    // 3: rows no read can decode are moved here, out of every sweep, claim and list.
    "-- An invocation whose stored times or body cannot be read back (written by an older build
    -- that did not bound its times, or damaged on disk). Kept as it was, for a person to look at
    -- or restore; nothing in Triggerline reads it.
    CREATE TABLE quarantine (
        id      TEXT PRIMARY KEY NOT NULL,
        source  TEXT NOT NULL,
        at      TEXT NOT NULL,
        reason  TEXT NOT NULL,
        row     TEXT NOT NULL
    );",
    // 4: what changes after an invocation is created moves out of its body.
    "-- The body stays as created; settling writes these columns and appends to `attempts`
    -- (attempts made after the insert, one JSON object per line, after those in the body)
    -- instead of rewriting the body. `output` is JSON text; `state`, `completed` and `deadline`
    -- were already columns. Rows from before take their current output and error from their
    -- body; one whose body is not JSON keeps NULLs and is quarantined when first read.
    ALTER TABLE invocations ADD COLUMN output TEXT;
    ALTER TABLE invocations ADD COLUMN error TEXT;
    ALTER TABLE invocations ADD COLUMN attempts TEXT;
    UPDATE invocations
       SET output = NULLIF(body -> '$.output', 'null'), error = body ->> '$.error'
     WHERE json_valid(body);",
    // 5: the delivery queue moves into the invocation's row.
    "-- Work due (`not_before`), its lease (`leased_until`) and its attempts were a row of
    -- `work`, inserted with the invocation and deleted when it settled: with them in the row,
    -- an accept is one insert and a settle one update, with two B-tree entries fewer each (the
    -- single writer thread is the local pipeline's bottleneck). `not_before` is NULL when
    -- nothing is queued. The two partial indexes keep the roles of `work`'s.
    ALTER TABLE invocations ADD COLUMN not_before TEXT;
    ALTER TABLE invocations ADD COLUMN leased_until TEXT;
    ALTER TABLE invocations ADD COLUMN work_attempts INTEGER NOT NULL DEFAULT 0;
    UPDATE invocations
       SET not_before = w.not_before, leased_until = w.leased_until, work_attempts = w.attempts
      FROM work AS w
     WHERE w.invocation_id = invocations.id;
    DROP TABLE work;
    CREATE INDEX invocations_unleased_by_not_before ON invocations (not_before)
        WHERE not_before IS NOT NULL AND leased_until IS NULL;
    CREATE INDEX invocations_leased_by_leased_until ON invocations (leased_until)
        WHERE not_before IS NOT NULL AND leased_until IS NOT NULL;
    -- FIRE_AND_FORGET invocations have no deadline: the sweep never needs them, and leaving
    -- them out spares each one an insert and a delete in this index.
    DROP INDEX invocations_open_by_deadline;
    CREATE INDEX invocations_open_by_deadline ON invocations (deadline)
        WHERE state IN ('PENDING', 'ACKNOWLEDGED') AND deadline IS NOT NULL;",
    // 6: heartbeats.
    "-- An acknowledged invocation whose subscription sets `heartbeatTimeout` times out at its
    -- heartbeat due time if that comes before its deadline. The timeout is in the body (copied
    -- at creation); the last heartbeat and the due time change, so they are columns, NULL on
    -- rows from before and on invocations without heartbeats. The sweep reads this partial
    -- index beside `invocations_open_by_deadline`; it holds only open invocations whose timer
    -- runs.
    ALTER TABLE invocations ADD COLUMN last_heartbeat TEXT;
    ALTER TABLE invocations ADD COLUMN heartbeat_due TEXT;
    CREATE INDEX invocations_open_by_heartbeat_due ON invocations (heartbeat_due)
        WHERE state IN ('PENDING', 'ACKNOWLEDGED') AND heartbeat_due IS NOT NULL;",
    // 7: the Idempotency-Keys of start and test.
    "-- One row per key (`key`: the caller's scope and key), remembered until `expires` (24 h):
    -- the hash of the request it came with and, once accepted, the invocations it raised (a
    -- JSON array of {id, subscriptionId, subscriptionName}; NULL while the first request is
    -- still being accepted). Retention deletes expired rows through the index on `expires`.
    CREATE TABLE idempotency_keys (
        key          TEXT PRIMARY KEY NOT NULL,
        request_hash TEXT NOT NULL,
        created      TEXT NOT NULL,
        expires      TEXT NOT NULL,
        raised       TEXT
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_keys_by_expires ON idempotency_keys (expires);",
    // 8: ordering keys.
    "-- A start's orderingKey (NULL without one). Work of an ordered invocation accepted while an
    -- earlier one of its subscription and key is open is parked: its lease is the far-future
    -- PARKED time (crate::queue::PARKED), so no claim takes it and next_due never wakes for
    -- it. When an ordered invocation leaves the open states (or is deleted open), the
    -- earliest parked one of its subscription and key (rowid: the order of acceptance) is
    -- unparked by these triggers, in the same transaction as the write that finished it,
    -- whichever write that is (a delivery, the callback, the sweep).
    ALTER TABLE invocations ADD COLUMN ordering_key TEXT;
    CREATE INDEX invocations_by_ordering_key ON invocations (subscription_id, ordering_key)
        WHERE ordering_key IS NOT NULL;
    CREATE TRIGGER invocations_next_in_order_when_finished
    AFTER UPDATE OF state ON invocations
    WHEN NEW.ordering_key IS NOT NULL
     AND OLD.state IN ('PENDING', 'ACKNOWLEDGED')
     AND NEW.state NOT IN ('PENDING', 'ACKNOWLEDGED')
    BEGIN
        UPDATE invocations SET leased_until = NULL
        WHERE rowid = (SELECT rowid FROM invocations
                       WHERE subscription_id = NEW.subscription_id
                         AND ordering_key = NEW.ordering_key
                         AND leased_until = '9999-12-31T23:59:59.999Z'
                       ORDER BY rowid LIMIT 1);
    END;
    CREATE TRIGGER invocations_next_in_order_when_deleted
    AFTER DELETE ON invocations
    WHEN OLD.ordering_key IS NOT NULL AND OLD.state IN ('PENDING', 'ACKNOWLEDGED')
    BEGIN
        UPDATE invocations SET leased_until = NULL
        WHERE rowid = (SELECT rowid FROM invocations
                       WHERE subscription_id = OLD.subscription_id
                         AND ordering_key = OLD.ordering_key
                         AND leased_until = '9999-12-31T23:59:59.999Z'
                       ORDER BY rowid LIMIT 1);
    END;",
    // 9: bodies without what the columns hold.
    "-- Nothing changes in the tables. From this version an invocation's `body` leaves out the
    -- fields its columns hold (id, trigger and subscription ids, subscription name, state,
    -- created, completed, deadline, output, error, ordering key): reads take them from the
    -- columns, and rows written before still read back as they did. A build that knows only
    -- version 8 would fail to read the new bodies and set the rows aside; the version number
    -- makes it refuse the file instead (SchemaTooNew), so going back to it loses nothing.",
    // 10: the ordering-key index holds open invocations only.
    "-- Version 8's index held every ordered invocation until retention deleted it, and parking
    -- and unparking read each of its subscription's and key's rows from the table to find the
    -- open ones: a key's accepts and settles slowed with its history (600 finished invocations
    -- per key made the bench's ordered run CPU-bound in SQLite's page reads). The index now
    -- holds only open ordered invocations, in acceptance order (an index ends with the rowid),
    -- so both find their row at the first entry of the key. The triggers are those of version
    -- 8 but for the state condition that lets them use the index; a parked invocation is open.
    DROP TRIGGER invocations_next_in_order_when_finished;
    DROP TRIGGER invocations_next_in_order_when_deleted;
    DROP INDEX invocations_by_ordering_key;
    CREATE INDEX invocations_open_by_ordering_key ON invocations (subscription_id, ordering_key)
        WHERE ordering_key IS NOT NULL AND state IN ('PENDING', 'ACKNOWLEDGED');
    CREATE TRIGGER invocations_next_in_order_when_finished
    AFTER UPDATE OF state ON invocations
    WHEN NEW.ordering_key IS NOT NULL
     AND OLD.state IN ('PENDING', 'ACKNOWLEDGED')
     AND NEW.state NOT IN ('PENDING', 'ACKNOWLEDGED')
    BEGIN
        UPDATE invocations SET leased_until = NULL
        WHERE rowid = (SELECT rowid FROM invocations
                       WHERE subscription_id = NEW.subscription_id
                         AND ordering_key = NEW.ordering_key
                         AND state IN ('PENDING', 'ACKNOWLEDGED')
                         AND leased_until = '9999-12-31T23:59:59.999Z'
                       ORDER BY rowid LIMIT 1);
    END;
    CREATE TRIGGER invocations_next_in_order_when_deleted
    AFTER DELETE ON invocations
    WHEN OLD.ordering_key IS NOT NULL AND OLD.state IN ('PENDING', 'ACKNOWLEDGED')
    BEGIN
        UPDATE invocations SET leased_until = NULL
        WHERE rowid = (SELECT rowid FROM invocations
                       WHERE subscription_id = OLD.subscription_id
                         AND ordering_key = OLD.ordering_key
                         AND state IN ('PENDING', 'ACKNOWLEDGED')
                         AND leased_until = '9999-12-31T23:59:59.999Z'
                       ORDER BY rowid LIMIT 1);
    END;",
    // 11: the unparking trigger fires only for writes that name the ordering key.
    "-- Since version 8 the trigger fired on every write of `state`, and SQLite runs a row
    -- trigger's program (a frame set up per row) before it looks at the WHEN: about 6 % of an
    -- unordered invocation's accept and settle in SQLite, for a trigger that never applies to
    -- it. It now fires on writes that name `ordering_key`, which the one statement that
    -- finishes invocations (`invocations::write_outcome`) does for an ordered row only (`SET
    -- ordering_key = ordering_key`, which changes nothing); its unordered statement leaves the
    -- trigger out altogether. The condition and the unparking are those of version 10.
    DROP TRIGGER invocations_next_in_order_when_finished;
    CREATE TRIGGER invocations_next_in_order_when_finished
    AFTER UPDATE OF ordering_key ON invocations
    WHEN NEW.ordering_key IS NOT NULL
     AND OLD.state IN ('PENDING', 'ACKNOWLEDGED')
     AND NEW.state NOT IN ('PENDING', 'ACKNOWLEDGED')
    BEGIN
        UPDATE invocations SET leased_until = NULL
        WHERE rowid = (SELECT rowid FROM invocations
                       WHERE subscription_id = NEW.subscription_id
                         AND ordering_key = NEW.ordering_key
                         AND state IN ('PENDING', 'ACKNOWLEDGED')
                         AND leased_until = '9999-12-31T23:59:59.999Z'
                       ORDER BY rowid LIMIT 1);
    END;",
];

/// The schema version this build writes.
#[cfg(test)]
pub(crate) const VERSION: usize = MIGRATIONS.len();

/// Brings the schema up to date in one transaction. `IMMEDIATE` takes the write lock before
/// reading the version, so two processes opening a new file at once cannot both migrate it.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let applied = usize::try_from(found).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::SchemaTooNew {
            found,
            known: MIGRATIONS.len(),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(sql)?;
        // PRAGMA takes no parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
        tracing::info!(version = index + 1, "sqlite schema migrated");
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn), VERSION as i64);
    }

    /// A row written by version 3 kept everything in its body; after the migration it reads
    /// back the same, and settles like a new row.
    #[test]
    fn rows_written_before_version_4_read_back_unchanged() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 3").unwrap();
        let body = serde_json::json!({
            "id": "a", "triggerId": "t", "triggerType": "REQUEST_RESPONSE",
            "subscriptionId": "s", "subscriptionName": "n", "invocationType": "REAL_TIME",
            "responseMode": "ASYNC", "state": "FAILED", "created": "2026-01-01T00:00:00.000Z",
            "completed": "2026-01-01T00:00:01.000Z", "deadline": "2026-01-02T00:00:00.000Z",
            "input": {"k": 1}, "contentJson": {}, "output": {"approved": false},
            "error": "receiver said no", "secretHash": "h",
            "attempts": [{"startedAt": "2026-01-01T00:00:00.500Z", "target": "example.com",
                          "statusCode": 500, "durationMs": 3, "outcome": "failed",
                          "error": "HTTP 500"}]
        });
        conn.execute(
            "INSERT INTO invocations (id, trigger_id, subscription_id, subscription_name, state,
                                      created, completed, deadline, body)
             VALUES ('a', 't', 's', 'n', 'FAILED', '2026-01-01T00:00:00.000Z',
                     '2026-01-01T00:00:01.000Z', '2026-01-02T00:00:00.000Z', ?1)",
            [body.to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO invocations (id, trigger_id, subscription_id, subscription_name, state,
                                      created, body)
             VALUES ('broken', 't', 's', 'n', 'PENDING', '2026-01-01T00:00:00.000Z', '{not json')",
            [],
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let expected: triggerline::model::Invocation = serde_json::from_value(body).unwrap();
        let read = crate::invocations::find(&conn, "a").unwrap().unwrap();
        assert_eq!(read.decode().unwrap(), expected);
        let broken = crate::invocations::find(&conn, "broken").unwrap().unwrap();
        assert!(
            broken.decode().is_err(),
            "still unreadable, for the quarantine"
        );
    }

    /// Work queued by version 4 (a row of `work`) is in its invocation's row after the
    /// migration, with its due time, lease and attempts; an invocation without work is not queued.
    #[test]
    fn work_queued_before_version_5_is_still_queued() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 4;
             INSERT INTO invocations (id, trigger_id, subscription_id, subscription_name, state,
                                      created, body)
             VALUES ('queued', 't', 's', 'n', 'PENDING', '2026-01-01T00:00:00.000Z', '{}'),
                    ('settled', 't', 's', 'n', 'COMPLETED', '2026-01-01T00:00:00.000Z', '{}');
             INSERT INTO work (invocation_id, not_before, leased_until, attempts)
             VALUES ('queued', '2026-01-01T00:00:05.000Z', '2026-01-01T00:01:00.000Z', 2);",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let work = |id: &str| -> (Option<String>, Option<String>, u32) {
            conn.query_row(
                "SELECT not_before, leased_until, work_attempts FROM invocations WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
        };
        assert_eq!(
            work("queued"),
            (
                Some("2026-01-01T00:00:05.000Z".to_owned()),
                Some("2026-01-01T00:01:00.000Z".to_owned()),
                2
            )
        );
        assert_eq!(work("settled"), (None, None, 0));
        let claimable: Vec<String> = conn
            .prepare(crate::queue::DUE_EXPIRED)
            .unwrap()
            .query_map(rusqlite::params!["2026-01-01T00:02:00.000Z", 10], |r| {
                r.get(0)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(claimable, ["queued"], "claimable once its lease has ended");
    }

    /// Rows written by version 5 have no heartbeat timer; after the migration they read back
    /// unchanged, and the sweep's query still finds them by their deadline.
    #[test]
    fn rows_written_before_version_6_read_back_without_a_heartbeat_timer() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 5").unwrap();
        let body = serde_json::json!({
            "id": "a", "triggerId": "t", "triggerType": "REQUEST_RESPONSE",
            "subscriptionId": "s", "subscriptionName": "n", "invocationType": "REAL_TIME",
            "responseMode": "ASYNC", "state": "ACKNOWLEDGED", "created": "2026-01-01T00:00:00.000Z",
            "completed": null, "deadline": "2026-01-02T00:00:00.000Z",
            "input": {"k": 1}, "contentJson": {}, "output": null, "error": null,
            "secretHash": "h", "attempts": []
        });
        conn.execute(
            "INSERT INTO invocations (id, trigger_id, subscription_id, subscription_name, state,
                                      created, deadline, body)
             VALUES ('a', 't', 's', 'n', 'ACKNOWLEDGED', '2026-01-01T00:00:00.000Z',
                     '2026-01-02T00:00:00.000Z', ?1)",
            [body.to_string()],
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let expected: triggerline::model::Invocation = serde_json::from_value(body).unwrap();
        let read = crate::invocations::find(&conn, "a").unwrap().unwrap();
        let read = read.decode().unwrap();
        assert_eq!(read, expected);
        assert_eq!(read.heartbeat, None);
        let overdue: Vec<String> = conn
            .prepare(crate::invocations::OVERDUE)
            .unwrap()
            .query_map(rusqlite::params!["2026-01-03T00:00:00.000Z", 10], |r| {
                r.get(0)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(overdue, ["a"], "overdue by its deadline");
    }

    /// Version 7 adds the key table beside version 6's rows, which read back unchanged.
    #[test]
    fn version_7_adds_idempotency_keys_and_keeps_invocations() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..6] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 6;
             INSERT INTO invocations (id, trigger_id, subscription_id, subscription_name, state,
                                      created, body)
             VALUES ('kept', 't', 's', 'n', 'PENDING', '2026-01-01T00:00:00.000Z', '{}');",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        assert_eq!(version(&conn), VERSION as i64);
        let kept: i64 = conn
            .query_row(
                "SELECT count(*) FROM invocations WHERE id = 'kept'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kept, 1);
        conn.execute(
            "INSERT INTO idempotency_keys (key, request_hash, created, expires)
             VALUES ('idem#1:a#k', 'h', '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z')",
            [],
        )
        .unwrap();
        assert!(
            conn.execute(
                "INSERT INTO idempotency_keys (key, request_hash, created, expires)
                 VALUES ('idem#1:a#k', 'h', '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z')",
                [],
            )
            .is_err(),
            "one row per key"
        );
    }

    /// Version 8 adds ordering keys; rows of version 7 read back without one.
    #[test]
    fn version_8_adds_ordering_keys_and_keeps_invocations() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 7;
             INSERT INTO invocations (id, trigger_id, subscription_id, subscription_name, state,
                                      created, body)
             VALUES ('kept', 't', 's', 'n', 'PENDING', '2026-01-01T00:00:00.000Z', '{}');",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        assert_eq!(version(&conn), VERSION as i64);
        let key: Option<String> = conn
            .query_row(
                "SELECT ordering_key FROM invocations WHERE id = 'kept'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(key, None);
        // The parked time the triggers look for is the queue's.
        assert!(MIGRATIONS[7].contains(crate::queue::PARKED));
    }

    /// What parking a new ordered invocation and finishing the open one of its key cost, in
    /// SQLite VM steps, after `history` finished invocations of the same subscription and key
    /// (schema `versions` applied). Checks on the way that both still do their job.
    fn ordering_steps(versions: usize, history: usize) -> (i32, i32) {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..versions] {
            conn.execute_batch(sql).unwrap();
        }
        let mut insert = conn
            .prepare(
                "INSERT INTO invocations (id, trigger_id, subscription_id, subscription_name,
                                          state, created, body, not_before, leased_until,
                                          ordering_key)
                 VALUES (?1, 't', 's', 'n', ?2, '2026-01-01T00:00:00.000Z', '{}', ?3, ?4, 'k')",
            )
            .unwrap();
        for i in 0..history {
            let id = format!("done-{i:05}");
            insert
                .execute(rusqlite::params![
                    id,
                    "COMPLETED",
                    None::<&str>,
                    None::<&str>
                ])
                .unwrap();
        }
        let due = Some("2026-01-01T00:00:00.000Z");
        insert
            .execute(rusqlite::params!["head", "PENDING", due, None::<&str>])
            .unwrap();
        insert
            .execute(rusqlite::params![
                "next",
                "PENDING",
                due,
                crate::queue::PARKED
            ])
            .unwrap();
        insert
            .execute(rusqlite::params!["new", "PENDING", due, None::<&str>])
            .unwrap();
        let lease = |id: &str| -> Option<String> {
            conn.query_row(
                "SELECT leased_until FROM invocations WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };

        let mut park = conn.prepare(crate::invocations::PARK_BEHIND_OPEN).unwrap();
        park.execute(rusqlite::params!["new", "s", "k", crate::queue::PARKED])
            .unwrap();
        assert_eq!(lease("new").as_deref(), Some(crate::queue::PARKED));

        // Naming the key, as `write_outcome` does for an ordered row (version 11's trigger
        // fires on that; earlier versions' on the state).
        let mut finish = conn
            .prepare(
                "UPDATE invocations SET state = 'COMPLETED', ordering_key = ordering_key
                 WHERE id = 'head'",
            )
            .unwrap();
        finish.execute([]).unwrap();
        assert_eq!(lease("next"), None, "the next in order is unparked");
        assert_eq!(lease("new").as_deref(), Some(crate::queue::PARKED));

        (
            park.get_status(rusqlite::StatementStatus::VmStep),
            finish.get_status(rusqlite::StatementStatus::VmStep),
        )
    }

    /// Parking and unparking find their row at the first open entry of the key, however many
    /// finished invocations the key had: version 8 read each of them, so a busy key's accepts
    /// and settles slowed with its history until retention deleted it.
    #[test]
    fn ordering_work_does_not_grow_with_a_keys_history() {
        let fresh = ordering_steps(VERSION, 0);
        let busy = ordering_steps(VERSION, 2_000);
        assert_eq!(busy, fresh);

        // The same measure sees the growth version 9's schema had.
        let (park_before, finish_before) = ordering_steps(9, 2_000);
        assert!(
            park_before > 2_000 && finish_before > 2_000,
            "{park_before} {finish_before}"
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
            "{err:?}"
        );
    }
}
