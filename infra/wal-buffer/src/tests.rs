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

/// The gathering itself, against a parent file that records what reaches it (and can fail),
/// where the tests above can only count: the bytes, their order, the write size limit and the
/// failure path, which a real disk will not produce on demand.
mod gathering {
    use std::ffi::{c_int, c_void};

    use rusqlite::ffi;

    use crate::{FLUSH_AT, File, Gathered, close, read, sync, write};

    #[derive(Debug, PartialEq)]
    enum Seen {
        Write { offset: i64, bytes: Vec<u8> },
        Sync,
        Read,
    }

    #[repr(C)]
    struct Parent {
        base: ffi::sqlite3_file,
        seen: Vec<Seen>,
        fail: bool,
    }

    unsafe extern "C" fn parent_write(
        file: *mut ffi::sqlite3_file,
        buf: *const c_void,
        amount: c_int,
        offset: i64,
    ) -> c_int {
        // SAFETY: only called with a `Parent` and `amount` bytes at `buf`, by the shim.
        unsafe {
            let parent = &mut *file.cast::<Parent>();
            if parent.fail {
                return ffi::SQLITE_IOERR_WRITE;
            }
            let bytes = std::slice::from_raw_parts(buf.cast::<u8>(), amount as usize).to_vec();
            parent.seen.push(Seen::Write { offset, bytes });
        }
        ffi::SQLITE_OK
    }

    unsafe extern "C" fn parent_sync(file: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
        // SAFETY: only called with a `Parent`.
        unsafe { (*file.cast::<Parent>()).seen.push(Seen::Sync) };
        ffi::SQLITE_OK
    }

    unsafe extern "C" fn parent_read(
        file: *mut ffi::sqlite3_file,
        _buf: *mut c_void,
        _amount: c_int,
        _offset: i64,
    ) -> c_int {
        // SAFETY: only called with a `Parent`.
        unsafe { (*file.cast::<Parent>()).seen.push(Seen::Read) };
        ffi::SQLITE_OK
    }

    unsafe extern "C" fn parent_close(_file: *mut ffi::sqlite3_file) -> c_int {
        ffi::SQLITE_OK
    }

    /// A shim WAL file over a recording parent; both boxed so the pointers stay put.
    struct Wal {
        shim: Box<File>,
        parent: Box<Parent>,
    }

    impl Wal {
        fn new() -> Wal {
            // SAFETY: an all-zero method table is every method absent (`None`).
            let mut methods: ffi::sqlite3_io_methods = unsafe { std::mem::zeroed() };
            methods.iVersion = 1;
            methods.xWrite = Some(parent_write);
            methods.xSync = Some(parent_sync);
            methods.xRead = Some(parent_read);
            methods.xClose = Some(parent_close);
            let mut parent = Box::new(Parent {
                base: ffi::sqlite3_file {
                    pMethods: Box::leak(Box::new(methods)),
                },
                seen: Vec::new(),
                fail: false,
            });
            let shim = Box::new(File {
                base: ffi::sqlite3_file {
                    pMethods: &crate::METHODS,
                },
                real: (&mut *parent as *mut Parent).cast(),
                gathered: Box::into_raw(Box::<Gathered>::default()),
            });
            Wal { shim, parent }
        }

        fn file(&mut self) -> *mut ffi::sqlite3_file {
            (&mut *self.shim as *mut File).cast()
        }

        fn write(&mut self, offset: i64, bytes: &[u8]) -> c_int {
            let file = self.file();
            // SAFETY: `file` is a shim file over a live parent; `bytes` is readable.
            unsafe { write(file, bytes.as_ptr().cast(), bytes.len() as c_int, offset) }
        }

        fn sync(&mut self) -> c_int {
            let file = self.file();
            // SAFETY: as for `write`.
            unsafe { sync(file, 0) }
        }

        fn read(&mut self) -> c_int {
            let mut buf = [0u8; 8];
            let file = self.file();
            // SAFETY: as for `write`; `buf` has the 8 bytes asked for.
            unsafe { read(file, buf.as_mut_ptr().cast(), 8, 0) }
        }

        fn seen(&mut self) -> Vec<Seen> {
            std::mem::take(&mut self.parent.seen)
        }
    }

    impl Drop for Wal {
        fn drop(&mut self) {
            let file = self.file();
            // SAFETY: closes the shim once, which frees its buffer.
            unsafe { close(file) };
        }
    }

    fn frame(fill: u8) -> (Vec<u8>, Vec<u8>) {
        (vec![fill; 24], vec![fill.wrapping_add(1); 4096])
    }

    #[test]
    fn contiguous_writes_reach_the_file_as_one_write_before_the_sync() {
        let mut wal = Wal::new();
        let (h1, p1) = frame(1);
        let (h2, p2) = frame(3);
        let mut offset = 32;
        for part in [&h1, &p1, &h2, &p2] {
            assert_eq!(wal.write(offset, part), ffi::SQLITE_OK);
            offset += part.len() as i64;
        }
        assert_eq!(wal.seen(), [], "nothing reaches the file before the sync");
        assert_eq!(wal.sync(), ffi::SQLITE_OK);
        assert_eq!(
            wal.seen(),
            [
                Seen::Write {
                    offset: 32,
                    bytes: [h1, p1, h2, p2].concat()
                },
                Seen::Sync
            ]
        );
    }

    #[test]
    fn a_write_elsewhere_or_a_read_first_sends_what_was_gathered() {
        let mut wal = Wal::new();
        wal.write(0, &[7; 100]);
        // SQLite rewrites a frame of the same transaction in place: not contiguous.
        wal.write(40, &[8; 10]);
        assert_eq!(
            wal.seen(),
            [Seen::Write {
                offset: 0,
                bytes: vec![7; 100]
            }]
        );
        assert_eq!(wal.read(), ffi::SQLITE_OK);
        assert_eq!(
            wal.seen(),
            [
                Seen::Write {
                    offset: 40,
                    bytes: vec![8; 10]
                },
                Seen::Read
            ]
        );
    }

    #[test]
    fn no_write_is_longer_than_the_unix_vfs_takes_and_none_is_lost() {
        let mut wal = Wal::new();
        let mut expected = Vec::new();
        let mut offset = 32;
        for i in 0..40u8 {
            let (header, page) = frame(i);
            for part in [header, page] {
                wal.write(offset, &part);
                offset += part.len() as i64;
                expected.extend_from_slice(&part);
            }
        }
        wal.sync();
        let seen = wal.seen();
        assert_eq!(seen.last(), Some(&Seen::Sync));
        let mut next = 32;
        let mut written = Vec::new();
        for s in &seen[..seen.len() - 1] {
            let Seen::Write { offset, bytes } = s else {
                panic!("unexpected {s:?}");
            };
            assert_eq!(*offset, next, "in order and contiguous");
            assert!(bytes.len() <= FLUSH_AT, "a write of {} bytes", bytes.len());
            next += bytes.len() as i64;
            written.extend_from_slice(bytes);
        }
        assert_eq!(written, expected);
        assert!(seen.len() > 2, "40 frames do not fit one write");
    }

    #[test]
    fn a_failed_write_fails_the_sync_and_leaves_nothing_behind() {
        let mut wal = Wal::new();
        wal.write(0, &[1; 100]);
        wal.parent.fail = true;
        assert_eq!(wal.sync(), ffi::SQLITE_IOERR_WRITE);
        assert_eq!(wal.seen(), [], "no sync after a failed write");
        wal.parent.fail = false;
        // SQLite fails that commit and writes its next one where it began.
        wal.write(0, &[2; 10]);
        assert_eq!(wal.sync(), ffi::SQLITE_OK);
        assert_eq!(
            wal.seen(),
            [
                Seen::Write {
                    offset: 0,
                    bytes: vec![2; 10]
                },
                Seen::Sync
            ]
        );
    }
}
