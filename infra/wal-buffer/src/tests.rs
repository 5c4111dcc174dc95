//! Real SQLite files in a temporary directory: a writer opened through the VFS, readers through
//! the default one, as the embedded store uses them.

use std::cell::Cell;
use std::path::Path;
use std::thread::LocalKey;

use rusqlite::{Connection, OpenFlags, params};

use super::{FLUSH_AT, VFS_NAME, register};

thread_local! {
    /// WAL writes SQLite made through the VFS, and writes the VFS made to the file for them,
    /// on this thread (tests run in parallel; each uses its connections on its own thread).
    pub(super) static WRITES_IN: Cell<u64> = const { Cell::new(0) };
    pub(super) static WRITES_OUT: Cell<u64> = const { Cell::new(0) };
}

pub(super) fn count(counter: &'static LocalKey<Cell<u64>>) {
    counter.with(|c| c.set(c.get() + 1));
}

fn counted() -> (u64, u64) {
    (WRITES_IN.with(Cell::get), WRITES_OUT.with(Cell::get))
}

fn writer(path: &Path) -> Connection {
    register().expect("register the VFS");
    let conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), VFS_NAME)
        .expect("open through the VFS");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .expect("WAL mode");
    assert_eq!(mode, "wal");
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
         CREATE INDEX IF NOT EXISTS rows_by_body ON rows (body);",
    )
    .expect("schema");
    conn
}

fn reader(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open a reader")
}

/// What a reader sees: the row count and the total of the bodies' lengths and first bytes.
fn seen(conn: &Connection) -> (i64, i64) {
    conn.query_row(
        "SELECT count(*), coalesce(sum(length(body) + unicode(body)), 0) FROM rows",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .expect("read the rows")
}

fn body(i: usize, len: usize) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; len]
}

#[test]
fn a_commit_is_written_with_one_write_and_read_by_another_connection_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    let conn = writer(&path);
    let other = reader(&path);
    let (in0, out0) = counted();
    let mut expected = (0, 0);
    for i in 0..50 {
        let b = body(i, 300);
        conn.execute("INSERT INTO rows (body) VALUES (?1)", params![b])
            .expect("insert");
        expected = (expected.0 + 1, expected.1 + 300 + i64::from(b[0]));
        // The reader's next read must find the commit in the file, not in the writer's memory.
        assert_eq!(seen(&other), expected, "after commit {i}");
    }
    let (writes_in, writes_out) = (counted().0 - in0, counted().1 - out0);
    // Each commit writes at least two frames (the table's leaf and the index's), each frame two
    // writes (its header, its page): four or more gathered into one.
    assert!(writes_in >= 4 * 50, "SQLite's WAL writes: {writes_in}");
    assert_eq!(writes_out, 50, "one write per commit");
}

#[test]
fn a_transaction_that_spills_and_rewrites_its_frames_reads_them_back_from_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    let mut conn = writer(&path);
    // A cache of ten pages makes the transaction spill frames to the WAL before its commit,
    // and the updates then rewrite frames this transaction already wrote: both paths where
    // SQLite reads its own unpublished frames back (and recomputes their checksums).
    conn.execute_batch("PRAGMA cache_size = 10;")
        .expect("cache size");
    let tx = conn.transaction().expect("begin");
    for i in 0..2_000 {
        tx.execute("INSERT INTO rows (body) VALUES (?1)", params![body(i, 200)])
            .expect("insert");
    }
    tx.execute("UPDATE rows SET body = zeroblob(200) WHERE id % 3 = 0", [])
        .expect("update");
    tx.commit().expect("commit");
    let other = reader(&path);
    let (rows, _) = seen(&other);
    assert_eq!(rows, 2_000);
    let upper: i64 = other
        .query_row(
            "SELECT count(*) FROM rows WHERE body = zeroblob(200)",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(upper, 666);
    let check: String = other
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");
}

#[test]
fn writes_larger_than_the_buffer_and_a_copy_of_the_files_recover_every_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    let conn = writer(&path);
    let mut expected = (0, 0);
    for i in 0..40 {
        // Every fourth commit is larger than the buffer: it is written out part by part.
        let len = if i % 4 == 0 { FLUSH_AT + 10_000 } else { 700 };
        let b = body(i, len);
        conn.execute("INSERT INTO rows (body) VALUES (?1)", params![b])
            .expect("insert");
        expected = (expected.0 + 1, expected.1 + len as i64 + i64::from(b[0]));
    }
    // Copy the database and its WAL while the writer is open and has checkpointed nothing:
    // opening the copy recovers from the WAL's bytes on disk alone, as after a crash.
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).expect("mkdir");
    for suffix in ["", "-wal"] {
        std::fs::copy(
            dir.path().join(format!("t.db{suffix}")),
            copy.join(format!("t.db{suffix}")),
        )
        .expect("copy");
    }
    let recovered = Connection::open(copy.join("t.db")).expect("open the copy");
    assert_eq!(seen(&recovered), expected);
    let check: String = recovered
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");
    drop(conn);
}

#[test]
fn files_other_than_the_wal_pass_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    let conn = writer(&path);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    let (in0, out0) = counted();
    // A checkpoint writes the database file, which is not gathered.
    conn.execute("INSERT INTO rows (body) VALUES (x'00')", [])
        .expect("insert");
    let (in1, out1) = counted();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    assert_eq!(
        counted(),
        (in1, out1),
        "the checkpoint's writes are not gathered"
    );
    // The insert's frames went out together (with the WAL's new header, synced on its own
    // after a truncation: two writes).
    assert!(in1 - in0 >= 4, "gathered {}", in1 - in0);
    assert!(out1 - out0 <= 2, "written {}", out1 - out0);
    let (rows, _) = seen(&reader(&path));
    assert_eq!(rows, 1);
}
