//! The database handle: a pool of read connections and the writer thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use tokio::sync::Semaphore;
use tracing::Span;

use crate::error::{StoreError, db};
use crate::writer::Writer;

/// Read connections. Reads are short indexed lookups and pages; a few connections keep the
/// blocking pool from piling up behind them without holding many file handles.
const READERS: u32 = 4;

/// The most connections kept for point lookups ([`Sqlite::lookup`]): one per runtime worker
/// (tokio starts one per core) up to this, at least two.
const MAX_LOOKUP_CONNECTIONS: usize = 8;

/// How long a connection waits for a lock held by another connection (another process on the
/// same file, or a WAL checkpoint) before giving up with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a read waits for a free pooled connection.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);

/// Handle to one SQLite database file; cheap to clone.
///
/// Reads run on a pool of read-only connections through `spawn_blocking`, point lookups on
/// read-only connections of their own on the calling thread; writes are queued to
/// one writer thread that commits them in groups (see the crate doc). The writer thread ends once
/// every clone (and every store built on one) is dropped.
#[derive(Clone)]
pub struct Sqlite {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    readers: Pool<SqliteConnectionManager>,
    /// Connections for point lookups only, which hold one for microseconds: a lookup runs on a
    /// runtime thread, and waiting there for a pooled reader held by a page read would stall
    /// every task on that thread.
    lookups: Pool<SqliteConnectionManager>,
    /// One permit per pooled connection: a read waits for one here, on the runtime, before it
    /// takes a blocking thread. Without it a burst of reads (64 producers' first `start`s
    /// missing the subscription cache at once) took a blocking thread each, to wait for one of
    /// the four connections: 71 threads, each with its stack and allocator heap, where four
    /// could read at a time.
    reads: Arc<Semaphore>,
    writer: Writer,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Sqlite {
    /// Opens (creating if needed) the database file, sets WAL mode, `synchronous=FULL`, foreign
    /// keys and a busy timeout, and runs the schema migrations.
    ///
    /// Errors: [`triggerline::Error::Unavailable`] when the file cannot be opened or migrated
    /// (including a file written by a newer Triggerline).
    pub async fn open(path: &Path) -> Result<Sqlite, triggerline::Error> {
        let path = path.to_owned();
        let span = Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| open_blocking(path)))
            .await
            .map_err(StoreError::from)?
    }

    /// Runs `read` on a pooled read-only connection, off the async runtime, once every write
    /// made soon before it is committed ([`Sqlite::write_soon`]).
    pub(crate) async fn read<T, F>(&self, read: F) -> Result<T, triggerline::Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, triggerline::Error> + Send + 'static,
    {
        self.flushed().await?;
        let permit = Arc::clone(&self.inner.reads)
            .acquire_owned()
            .await
            .map_err(StoreError::from)?;
        let pool = self.inner.readers.clone();
        let span = Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(|| {
                let mut conn = pool.get().map_err(StoreError::from)?;
                read(&mut conn)
            })
        })
        .await
        .map_err(StoreError::from)?
    }

    /// Runs a point lookup (`read` must read a handful of rows by key) on a read-only
    /// connection kept for lookups, on the calling thread. Such a read takes microseconds, less
    /// than handing it to the blocking pool and back, which showed as much of a callback's
    /// cost; pages and scans go through [`Sqlite::read`]. Like that, it first waits for the
    /// writes made soon before it.
    pub(crate) async fn lookup<T, F>(&self, read: F) -> Result<T, triggerline::Error>
    where
        F: FnOnce(&mut Connection) -> Result<T, triggerline::Error>,
    {
        self.flushed().await?;
        let mut conn = self.inner.lookups.get().map_err(StoreError::from)?;
        read(&mut conn)
    }

    /// Resolves once every write made soon ([`Sqlite::write_soon`]) before this call is
    /// committed: what a read does first, so that it sees them. Free when there is none.
    pub(crate) async fn flushed(&self) -> Result<(), triggerline::Error> {
        self.inner.writer.flushed().await
    }

    /// Queues `write` for the writer and returns without waiting for its commit: for a write
    /// whose caller has already answered from what it holds (a synchronous start's outcome).
    /// It commits with the next write somebody waits on, or alone within
    /// [`crate::writer::LINGER`]; every read begun after this returns waits for it. `write` may
    /// run twice, as for [`Sqlite::write`].
    pub(crate) async fn write_soon<F>(&self, write: F) -> Result<(), triggerline::Error>
    where
        F: Fn(&Connection) -> Result<(), triggerline::Error> + Send + 'static,
    {
        self.inner.writer.submit_soon(write).await
    }

    /// Runs `write` in the writer's next group commit; resolves once it is durable. `write` may
    /// run twice (see [`crate::writer::Writer::write`]).
    pub(crate) async fn write<T, F>(&self, write: F) -> Result<T, triggerline::Error>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, triggerline::Error> + Send + 'static,
    {
        self.inner.writer.write(write).await
    }
}

fn open_blocking(path: PathBuf) -> Result<Sqlite, triggerline::Error> {
    create_owner_only(&path)?;
    let mut conn = open_writer(&path)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(db)?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Still correct, only slower: readers and the writer then take turns.
        tracing::warn!(path = %path.display(), mode, "sqlite could not switch to WAL mode");
    }
    // FULL makes every commit survive a power cut, not just a crash; group commit pays for it.
    // The WAL buffer (`open_writer`) relies on it too: FULL's sync before a commit is published
    // is what writes the gathered frames out before any reader can look for them.
    // A batch that runs again with a savepoint per job (one of its jobs failed) writes its undo
    // pages to a statement journal, as does a statement that may abort halfway; kept in memory,
    // that costs a copy, where the default spills it to a temporary file and pays for a write.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
    )
    .map_err(db)?;
    conn.set_prepared_statement_cache_capacity(64);
    crate::schema::migrate(&mut conn)?;
    // Checkpoints run on their own thread (see `checkpoint`), not inside the writer's commits,
    // except the one that keeps the WAL bounded: see `checkpoint::WRITER_PAGES`.
    conn.execute_batch(&format!(
        "PRAGMA wal_autocheckpoint = {};",
        crate::checkpoint::WRITER_PAGES
    ))
    .map_err(db)?;
    let checkpoints = crate::checkpoint::spawn(&path)?;

    let pool = |size: u32| {
        let manager = SqliteConnectionManager::file(&path).with_init(|c| {
            c.busy_timeout(BUSY_TIMEOUT)?;
            // Every write must go through the writer, or group commit and the single-writer
            // reasoning of the conditional writes would silently stop holding.
            c.execute_batch("PRAGMA query_only = ON; PRAGMA foreign_keys = ON;")
        });
        Pool::builder()
            .max_size(size)
            .connection_timeout(POOL_TIMEOUT)
            // A local file connection does not go stale; a probe query per checkout is pure cost.
            .test_on_check_out(false)
            .build(manager)
            .map_err(StoreError::from)
    };
    let readers = pool(READERS)?;
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let lookups = pool(cores.clamp(2, MAX_LOOKUP_CONNECTIONS) as u32)?;
    let writer = Writer::spawn_with(conn, Some(checkpoints))?;
    tracing::debug!(path = %path.display(), "sqlite database open");
    Ok(Sqlite {
        inner: Arc::new(Inner {
            path,
            readers,
            lookups,
            reads: Arc::new(Semaphore::new(READERS as usize)),
            writer,
        }),
    })
}

/// The writer's connection. On unix its commits go out through the WAL buffer: one write per
/// commit instead of two per page. It needs `synchronous = FULL`, which `open_blocking` sets
/// (see `triggerline_wal_buffer`).
#[cfg(unix)]
fn open_writer(path: &Path) -> Result<Connection, triggerline::Error> {
    triggerline_wal_buffer::register().map_err(db)?;
    Connection::open_with_flags_and_vfs(
        path,
        rusqlite::OpenFlags::default(),
        triggerline_wal_buffer::VFS_NAME,
    )
    .map_err(db)
}

#[cfg(not(unix))]
fn open_writer(path: &Path) -> Result<Connection, triggerline::Error> {
    Connection::open(path).map_err(db)
}

/// Creates the database file owner-only (0600) if it does not exist yet. SQLite gives the
/// `-wal` and `-shm` files it makes beside it the database file's mode, so all three stay
/// readable by the owner only, whatever the umask. An existing file keeps its mode: it is the
/// owner's to choose.
fn create_owner_only(path: &Path) -> Result<(), triggerline::Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Create {
            path: path.to_owned(),
            source,
        }
        .into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use super::*;

    /// A burst of reads does not take a blocking thread per read: reads past the pool's
    /// connections wait on the runtime. Each read holds its connection a moment, so that
    /// without the permits the burst would pile up a thread per read behind the pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_reads_does_not_take_a_thread_per_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("t.db")).await.unwrap();
        let threads = Arc::new(Mutex::new(HashSet::new()));
        let reads: Vec<_> = (0..64)
            .map(|_| {
                let db = db.clone();
                let threads = Arc::clone(&threads);
                tokio::spawn(async move {
                    db.read(move |conn| {
                        threads.lock().unwrap().insert(std::thread::current().id());
                        conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                            .map_err(db_error)?;
                        std::thread::sleep(Duration::from_millis(2));
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        for read in reads {
            read.await.unwrap().unwrap();
        }
        // Not exactly READERS: a read hands its permit on from its blocking thread before that
        // thread is idle again, so the next read may start a thread of its own (5 to 7 seen).
        // Without the permits: 63 or 64.
        let used = threads.lock().unwrap().len();
        assert!(used < 16, "{used} blocking threads read");
    }

    /// A point lookup does not wait for the pooled reads: with every pooled connection held by
    /// a long read (a status page over a large table), a lookup (a callback's or a cache
    /// miss's, on a runtime thread) still answers, from a connection of its own. Before, it
    /// blocked its runtime thread until a read ended, or failed after the pool's 10 s.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lookup_does_not_wait_for_reads_holding_every_pooled_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("t.db")).await.unwrap();
        let (held, mut holding) = tokio::sync::mpsc::unbounded_channel();
        let release = Arc::new(std::sync::Barrier::new(READERS as usize + 1));
        let reads: Vec<_> = (0..READERS)
            .map(|_| {
                let (db, held, release) = (db.clone(), held.clone(), Arc::clone(&release));
                tokio::spawn(async move {
                    db.read(move |_conn| {
                        held.send(()).unwrap();
                        release.wait();
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        for _ in 0..READERS {
            holding.recv().await.unwrap();
        }
        let looked_up = db
            .lookup(|conn| {
                conn.query_row("SELECT 42", [], |r| r.get::<_, i64>(0))
                    .map_err(db_error)
            })
            .await;
        // Released before asserting, so that a failure does not leave the reads blocked.
        tokio::task::spawn_blocking(move || release.wait())
            .await
            .unwrap();
        for read in reads {
            read.await.unwrap().unwrap();
        }
        assert_eq!(looked_up.unwrap(), 42);
    }

    fn db_error(e: rusqlite::Error) -> triggerline::Error {
        db(e)
    }
}
