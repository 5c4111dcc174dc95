//! The one writer thread and its group commit (see the crate doc for why).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::Span;

use crate::checkpoint::Checkpoints;
use crate::error::StoreError;

/// The most jobs one transaction takes. Large enough to share an fsync among a burst, small
/// enough that the first caller of a batch is not kept waiting behind thousands of others.
pub(crate) const MAX_BATCH: usize = 256;

/// Jobs waiting for the writer. Past this, `write` waits for room instead of queueing without
/// bound, so an overloaded writer slows its callers rather than eating memory.
const QUEUE_CAPACITY: usize = 4096;

/// Where a queued job's result arrives.
pub(crate) type Reply<T> = oneshot::Receiver<Result<T, triggerline::Error>>;

trait Job: Send {
    /// Runs the work; returns whether its changes are to be kept. It may run a second time
    /// after its batch was rolled back (see [`run_batch`]); the last run's result is the answer.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch is committed (`failed` is `None`) or abandoned.
    fn finish(self: Box<Self>, failed: Option<&Arc<StoreError>>);
}

struct Pending<T, F> {
    work: F,
    result: Option<Result<T, triggerline::Error>>,
    reply: oneshot::Sender<Result<T, triggerline::Error>>,
    span: Span,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: Fn(&Connection) -> Result<T, triggerline::Error> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let work = &self.work;
        // A panicking job must not take the writer, and every later write, down with it.
        let result = catch_unwind(AssertUnwindSafe(|| self.span.in_scope(|| work(conn))))
            .unwrap_or_else(|_| Err(StoreError::JobPanicked.into()));
        let keep = result.is_ok();
        self.result = Some(result);
        keep
    }

    fn finish(self: Box<Self>, failed: Option<&Arc<StoreError>>) {
        let answer = match (failed, self.result) {
            (Some(cause), _) => Err(StoreError::Batch(Arc::clone(cause)).into()),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::WriterGone.into()),
        };
        // The caller may have stopped waiting; its write stands all the same.
        let _ = self.reply.send(answer);
    }
}

/// Handle to the writer thread; cheap to clone. The thread ends when the last handle is dropped,
/// after finishing what is queued.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
    /// Batches taken; only tests read it, to see that batches form.
    #[cfg_attr(not(test), allow(dead_code))]
    batches: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer thread on `conn`, which must be the database's only write connection.
    #[cfg(test)]
    pub(crate) fn spawn(conn: Connection) -> Result<Writer, StoreError> {
        Self::spawn_with(conn, None)
    }

    /// [`Writer::spawn`], telling `checkpoints` after every commit.
    pub(crate) fn spawn_with(
        conn: Connection,
        checkpoints: Option<Checkpoints>,
    ) -> Result<Writer, StoreError> {
        let (queue, jobs) = mpsc::channel(QUEUE_CAPACITY);
        let batches = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&batches);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(&conn, jobs, &counter, checkpoints.as_ref()))
            .map_err(StoreError::Spawn)?;
        Ok(Writer { queue, batches })
    }

    /// Runs `work` in the next group commit and returns its result once that is committed.
    ///
    /// `work` runs inside a transaction the writer owns: it must not begin, commit or roll back
    /// by itself. Its changes are kept only if it returns `Ok`. It is `Fn` because it may run
    /// twice: when another job of its batch fails, the batch is rolled back and run again with
    /// a savepoint per job ([`run_batch`]), so it must do nothing but its database work.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, triggerline::Error>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, triggerline::Error> + Send + 'static,
    {
        let reply = self.submit(work).await?;
        reply.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Queues `work` and returns where its result will arrive; split from [`Writer::write`] so
    /// that tests can line up several jobs for one batch.
    pub(crate) async fn submit<T, F>(&self, work: F) -> Result<Reply<T>, triggerline::Error>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, triggerline::Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            work,
            result: None,
            reply,
            span: Span::current(),
        });
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        Ok(answer)
    }

    /// How many batches the writer has taken (committed or not).
    #[cfg(test)]
    pub(crate) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
}

fn run(
    conn: &Connection,
    mut jobs: mpsc::Receiver<Box<dyn Job>>,
    batches: &AtomicU64,
    checkpoints: Option<&Checkpoints>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while jobs.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        batches.fetch_add(1, Ordering::Relaxed);
        commit(conn, &mut batch);
        if let Some(checkpoints) = checkpoints {
            checkpoints.committed();
        }
    }
    tracing::debug!("sqlite writer stopped: every handle was dropped");
}

fn commit(conn: &Connection, batch: &mut Vec<Box<dyn Job>>) {
    let failed = match run_batch(conn, batch) {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, cause = ?e, jobs = batch.len(), "sqlite group commit failed");
            if !conn.is_autocommit() {
                if let Err(rollback) = conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %rollback, "sqlite rollback after a failed batch failed");
                }
            }
            Some(Arc::new(e))
        }
    };
    for job in batch.drain(..) {
        job.finish(failed.as_ref());
    }
}

/// Runs a batch in one transaction. First without savepoints: a savepoint makes SQLite copy
/// every page a job touches into its statement journal before changing it (in memory, a
/// malloc and a memcpy per KiB), which profiles showed as the writer's largest cost; nearly
/// every batch has no failing job and needs none. If a job fails, the transaction is rolled
/// back and the whole batch runs again with a savepoint per job, so that only the failed job's
/// changes are dropped.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let mut all_kept = true;
    for job in batch.iter_mut() {
        let keep = job.run(conn);
        // Some failures (disk full, I/O errors) make SQLite roll back the whole transaction
        // by itself; then the earlier jobs' changes are gone too and none may be reported kept.
        if conn.is_autocommit() {
            return Err(StoreError::TransactionLost);
        }
        if !keep {
            all_kept = false;
            break;
        }
    }
    if all_kept {
        conn.execute_batch("COMMIT")?;
        return Ok(());
    }
    conn.execute_batch("ROLLBACK")?;
    run_batch_isolated(conn, batch)
}

/// [`run_batch`] with each job in its own savepoint: a job that fails is rolled back alone.
fn run_batch_isolated(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        // Cached: these run twice per job, and parsing them anew each time showed in profiles.
        conn.prepare_cached("SAVEPOINT job")?.execute([])?;
        let keep = job.run(conn);
        if conn.is_autocommit() {
            return Err(StoreError::TransactionLost);
        }
        if !keep {
            conn.prepare_cached("ROLLBACK TO job")?.execute([])?;
        }
        conn.prepare_cached("RELEASE job")?.execute([])?;
    }
    conn.execute_batch("COMMIT")?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn writer() -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY);")
            .unwrap();
        (Writer::spawn(conn).unwrap(), dir)
    }

    fn insert(k: &'static str) -> impl Fn(&Connection) -> triggerline::Result<()> {
        move |c: &Connection| {
            c.execute("INSERT INTO t (k) VALUES (?1)", [k])
                .map(|_| ())
                .map_err(crate::error::db)
        }
    }

    async fn keys(w: &Writer) -> Vec<String> {
        w.write(|c: &Connection| {
            let mut s = c.prepare("SELECT k FROM t ORDER BY k").unwrap();
            let rows = s.query_map([], |r| r.get(0)).unwrap();
            Ok(rows.map(Result::unwrap).collect())
        })
        .await
        .unwrap()
    }

    /// Holds the writer thread inside a job of its own batch until the returned sender is
    /// dropped, so that the jobs queued meanwhile are all taken into the next batch.
    async fn hold(w: &Writer) -> (std::sync::mpsc::Sender<()>, Reply<()>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let started = std::sync::Mutex::new(Some(started));
        let reply = w
            .submit(move |_c: &Connection| {
                if let Some(started) = started.lock().unwrap().take() {
                    let _ = started.send(());
                }
                let _ = wait.recv();
                Ok(())
            })
            .await
            .unwrap();
        running.await.unwrap();
        (release, reply)
    }

    #[tokio::test]
    async fn queued_jobs_share_one_transaction() {
        let (w, _dir) = writer();
        let (release, held) = hold(&w).await;
        let mut replies = Vec::new();
        for k in ["a", "b", "c", "d"] {
            replies.push(w.submit(insert(k)).await.unwrap());
        }
        drop(release);
        held.await.unwrap().unwrap();
        for reply in replies {
            reply.await.unwrap().unwrap();
        }
        assert_eq!(
            w.batches(),
            2,
            "the held job, then the four queued behind it"
        );
        assert_eq!(keys(&w).await, ["a", "b", "c", "d"]);
    }

    #[tokio::test]
    async fn a_failed_job_is_rolled_back_alone() {
        let (w, _dir) = writer();
        let (release, held) = hold(&w).await;
        let first = w.submit(insert("x")).await.unwrap();
        let failing = w
            .submit(|c: &Connection| -> triggerline::Result<()> {
                c.execute("INSERT INTO t (k) VALUES ('y')", [])
                    .map_err(crate::error::db)?;
                Err(triggerline::Error::invalid("k", "changed my mind"))
            })
            .await
            .unwrap();
        let clash = w.submit(insert("x")).await.unwrap();
        let last = w.submit(insert("z")).await.unwrap();
        drop(release);
        held.await.unwrap().unwrap();

        first.await.unwrap().unwrap();
        assert!(matches!(
            failing.await.unwrap(),
            Err(triggerline::Error::Invalid { .. })
        ));
        assert!(matches!(
            clash.await.unwrap(),
            Err(triggerline::Error::Unavailable(_))
        ));
        last.await.unwrap().unwrap();
        assert_eq!(w.batches(), 2);
        assert_eq!(keys(&w).await, ["x", "z"]);
    }

    /// A job that counts its runs and inserts `k`.
    fn counted(
        k: &'static str,
        runs: &Arc<AtomicU64>,
    ) -> impl Fn(&Connection) -> triggerline::Result<()> + use<> {
        let runs = Arc::clone(runs);
        let insert = insert(k);
        move |c: &Connection| {
            runs.fetch_add(1, Ordering::SeqCst);
            insert(c)
        }
    }

    #[tokio::test]
    async fn a_batch_without_failures_runs_each_job_once_and_one_with_a_failure_again_isolated() {
        let (w, _dir) = writer();
        let runs = Arc::new(AtomicU64::new(0));

        let (release, held) = hold(&w).await;
        let clean: Vec<_> = submit_all(&w, [counted("a", &runs), counted("b", &runs)]).await;
        drop(release);
        held.await.unwrap().unwrap();
        for reply in clean {
            reply.await.unwrap().unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "no failure: one run each");

        // The clash fails in the optimistic pass, so the batch is rolled back and run again
        // with a savepoint per job: the jobs before it run twice, and their rows are kept once.
        runs.store(0, Ordering::SeqCst);
        let (release, held) = hold(&w).await;
        let before = w.submit(counted("c", &runs)).await.unwrap();
        let clash = w.submit(counted("a", &runs)).await.unwrap();
        let after = w.submit(counted("d", &runs)).await.unwrap();
        drop(release);
        held.await.unwrap().unwrap();
        before.await.unwrap().unwrap();
        assert!(clash.await.unwrap().is_err());
        after.await.unwrap().unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            5,
            "c and the clash twice, d once"
        );
        assert_eq!(keys(&w).await, ["a", "b", "c", "d"]);
    }

    async fn submit_all<F>(w: &Writer, jobs: impl IntoIterator<Item = F>) -> Vec<Reply<()>>
    where
        F: Fn(&Connection) -> triggerline::Result<()> + Send + 'static,
    {
        let mut replies = Vec::new();
        for job in jobs {
            replies.push(w.submit(job).await.unwrap());
        }
        replies
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_writer_lives_on() {
        let (w, _dir) = writer();
        let panicked = w
            .write(|_c: &Connection| -> triggerline::Result<()> { panic!("job bug") })
            .await;
        assert!(matches!(panicked, Err(triggerline::Error::Unavailable(_))));
        w.write(insert("after")).await.unwrap();
        assert_eq!(keys(&w).await, ["after"]);
    }

    #[tokio::test]
    async fn a_job_that_ends_the_transaction_fails_the_whole_batch() {
        let (w, _dir) = writer();
        let (release, held) = hold(&w).await;
        let innocent = w.submit(insert("kept?")).await.unwrap();
        let rogue = w
            .submit(|c: &Connection| c.execute_batch("ROLLBACK").map_err(crate::error::db))
            .await
            .unwrap();
        drop(release);
        held.await.unwrap().unwrap();
        assert!(matches!(
            innocent.await.unwrap(),
            Err(triggerline::Error::Unavailable(_))
        ));
        assert!(matches!(
            rogue.await.unwrap(),
            Err(triggerline::Error::Unavailable(_))
        ));
        assert!(keys(&w).await.is_empty());
    }
}
