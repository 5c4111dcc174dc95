//! The one writer thread and its group commit (see the crate doc for why).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

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

/// How long a batch of only [`Writer::submit_soon`] jobs waits for a job that someone waits on,
/// to share its commit. A write made soon is that of a synchronous start's outcome, answered
/// before it is durable; the next start comes within a fraction of a millisecond while a
/// producer keeps calling, and its accept's commit then carries the outcome for free. Past
/// this, the batch commits alone: the longest an outcome stays in memory only.
pub(crate) const LINGER: Duration = Duration::from_millis(2);

/// Where a queued job's result arrives.
pub(crate) type Reply<T> = oneshot::Receiver<Result<T, triggerline::Error>>;

trait Job: Send {
    /// Runs the work; returns whether its changes are to be kept. It may run a second time
    /// after its batch was rolled back (see [`run_batch`]); the last run's result is the answer.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch is committed (`failed` is `None`) or abandoned.
    fn finish(self: Box<Self>, failed: Option<&Arc<StoreError>>);
    /// Whether nobody waits on this job's commit (see [`Writer::submit_soon`]).
    fn soon(&self) -> bool;
}

struct Pending<T, F> {
    work: F,
    result: Option<Result<T, triggerline::Error>>,
    reply: oneshot::Sender<Result<T, triggerline::Error>>,
    span: Span,
    /// For a job made soon, the count of such jobs not yet finished, which this one leaves
    /// when it is.
    soon: Option<Arc<AtomicUsize>>,
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
        if let Some(outstanding) = &self.soon {
            // Nobody reads the answer of a write made soon; a failure is only seen here.
            if let Err(e) = &answer {
                self.span.in_scope(|| {
                    tracing::warn!(error = %e, "a write made after its answer was lost; \
                        the invocation's leased work brings it back when the lease ends");
                });
            }
            outstanding.fetch_sub(1, Ordering::SeqCst);
        }
        // The caller may have stopped waiting; its write stands all the same.
        let _ = self.reply.send(answer);
    }

    fn soon(&self) -> bool {
        self.soon.is_some()
    }
}

/// Handle to the writer thread; cheap to clone. The thread ends when the last handle is dropped,
/// after finishing what is queued.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
    /// Jobs queued with [`Writer::submit_soon`] and not yet finished.
    soon: Arc<AtomicUsize>,
    /// Batches taken; only tests read it, to see that batches form.
    #[cfg_attr(not(test), allow(dead_code))]
    batches: Arc<AtomicU64>,
}

impl Writer {
    /// A writer without checkpoints whose linger is `linger`, for tests (some must know that a
    /// job made soon is still lingering).
    #[cfg(test)]
    pub(crate) fn spawn_lingering(
        conn: Connection,
        linger: Duration,
    ) -> Result<Writer, StoreError> {
        Self::start(conn, None, linger)
    }

    /// Starts the writer thread on `conn`, which must be the database's only write connection,
    /// telling `checkpoints` after every commit.
    pub(crate) fn spawn_with(
        conn: Connection,
        checkpoints: Option<Checkpoints>,
    ) -> Result<Writer, StoreError> {
        Self::start(conn, checkpoints, LINGER)
    }

    fn start(
        conn: Connection,
        checkpoints: Option<Checkpoints>,
        linger: Duration,
    ) -> Result<Writer, StoreError> {
        let (queue, jobs) = mpsc::channel(QUEUE_CAPACITY);
        let batches = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&batches);
        // Only the timeout of a linger runs on it (see `Lingering`).
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(StoreError::Spawn)?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let lingering = Lingering { timer, linger };
                run(&conn, jobs, &counter, checkpoints.as_ref(), &lingering);
            })
            .map_err(StoreError::Spawn)?;
        Ok(Writer {
            queue,
            soon: Arc::new(AtomicUsize::new(0)),
            batches,
        })
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

    /// Queues `work` for a commit nobody waits on, and returns once it is queued. It commits
    /// with the next job someone waits on, or alone after [`LINGER`]. A failure is logged.
    /// Until it is committed, [`Writer::flushed`] waits for it.
    pub(crate) async fn submit_soon<F>(&self, work: F) -> Result<(), triggerline::Error>
    where
        F: Fn(&Connection) -> Result<(), triggerline::Error> + Send + 'static,
    {
        // Counted before it is queued, so that no read can miss it.
        self.soon.fetch_add(1, Ordering::SeqCst);
        let queued = self.queue_job(work, Some(Arc::clone(&self.soon))).await;
        if queued.is_err() {
            self.soon.fetch_sub(1, Ordering::SeqCst);
        }
        queued.map(drop)
    }

    /// Resolves once every job queued with [`Writer::submit_soon`] before this call is
    /// committed (or abandoned): at once when there is none, else with a commit of its own
    /// (an empty job, which does not linger) behind them.
    pub(crate) async fn flushed(&self) -> Result<(), triggerline::Error> {
        if self.soon.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        self.write(|_: &Connection| Ok(())).await
    }

    /// Queues `work` and returns where its result will arrive; split from [`Writer::write`] so
    /// that tests can line up several jobs for one batch.
    pub(crate) async fn submit<T, F>(&self, work: F) -> Result<Reply<T>, triggerline::Error>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, triggerline::Error> + Send + 'static,
    {
        self.queue_job(work, None).await
    }

    async fn queue_job<T, F>(
        &self,
        work: F,
        soon: Option<Arc<AtomicUsize>>,
    ) -> Result<Reply<T>, triggerline::Error>
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
            soon,
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
    lingering: &Lingering,
) {
    let mut batch = Batch::default();
    while jobs.blocking_recv_many(&mut batch.jobs, MAX_BATCH) > 0 {
        if batch.all_soon() {
            lingering.wait_for_more(conn, &mut jobs, &mut batch);
        }
        batches.fetch_add(1, Ordering::Relaxed);
        commit(conn, &mut batch);
        if let Some(checkpoints) = checkpoints {
            checkpoints.committed();
        }
    }
    tracing::debug!("sqlite writer stopped: every handle was dropped");
}

/// The jobs of one group commit, and how far they have run in its open transaction.
#[derive(Default)]
struct Batch {
    jobs: Vec<Box<dyn Job>>,
    /// How many of `jobs` have run in the batch's transaction (begun with the first of them).
    ran: usize,
    /// Set once a job asked for its changes to be dropped: the jobs after it wait for the run
    /// with a savepoint each ([`run_batch_isolated`]).
    dropped: bool,
    /// A failure of the transaction itself while lingering, which the commit reports.
    failed: Option<StoreError>,
}

impl Batch {
    fn all_soon(&self) -> bool {
        self.jobs.iter().all(|job| job.soon())
    }

    /// Runs the jobs not yet run, in the batch's transaction (begun first if none has run).
    fn run_pending(&mut self, conn: &Connection) -> Result<(), StoreError> {
        if self.ran == 0 {
            conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        while !self.dropped && self.ran < self.jobs.len() {
            let keep = self.jobs[self.ran].run(conn);
            self.ran += 1;
            // Some failures (disk full, I/O errors) make SQLite roll back the whole
            // transaction by itself; then the earlier jobs' changes are gone too and none may
            // be reported kept.
            if conn.is_autocommit() {
                return Err(StoreError::TransactionLost);
            }
            if !keep {
                self.dropped = true;
            }
        }
        Ok(())
    }

    /// [`Batch::run_pending`] while the batch lingers: a failure is kept for the commit.
    fn run_ahead(&mut self, conn: &Connection) {
        if self.failed.is_none() {
            if let Err(e) = self.run_pending(conn) {
                self.failed = Some(e);
            }
        }
    }
}

/// How the writer thread holds a batch that nobody waits on.
struct Lingering {
    /// A runtime on the writer thread for the timeout alone.
    timer: tokio::runtime::Runtime,
    linger: Duration,
}

impl Lingering {
    /// Holds a batch of jobs nobody waits on for up to the linger, taking the jobs queued
    /// meanwhile, until one that somebody waits on arrives, the batch is full, or every handle
    /// is dropped.
    ///
    /// It polls the queue for [`SPIN`] before it sleeps for the rest. The jobs run as they
    /// arrive, in the batch's open transaction, so that the awaited job that ends the linger
    /// finds only its own work and the commit ahead of it: a synchronous start's outcome (the
    /// usual job made soon) costs more to write than the next start's accept, which would
    /// otherwise wait for it. The open transaction holds only the write lock, which no other
    /// connection takes (readers and the PASSIVE checkpoints never wait for it).
    fn wait_for_more(
        &self,
        conn: &Connection,
        jobs: &mut mpsc::Receiver<Box<dyn Job>>,
        batch: &mut Batch,
    ) {
        let spin_until = std::time::Instant::now() + SPIN;
        self.timer.block_on(async {
            let until = tokio::time::Instant::now() + self.linger;
            while batch.jobs.len() < MAX_BATCH && batch.all_soon() {
                batch.run_ahead(conn);
                if let Some(job) = spin_for_job(jobs, spin_until) {
                    batch.jobs.push(job);
                    continue;
                }
                let room = MAX_BATCH - batch.jobs.len();
                match tokio::time::timeout_at(until, jobs.recv_many(&mut batch.jobs, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        });
    }
}

/// How long a lingering writer polls its queue before it sleeps. The accept that ends a linger
/// is usually the next synchronous start of the same producer, 100-250 µs after the answer
/// whose outcome lingers; waking a sleeping thread for it cost the start about 100 µs of its
/// round trip on the 2-vCPU VM of docs/performance.md (its idle vCPUs halt at once, so a
/// wake-up is an interrupt through the host). Polling costs at most this much CPU per linger,
/// and only batches made of writes nobody waits on linger.
const SPIN: Duration = Duration::from_micros(250);

/// The next queued job, polled for until `until` without sleeping.
fn spin_for_job(
    jobs: &mut mpsc::Receiver<Box<dyn Job>>,
    until: std::time::Instant,
) -> Option<Box<dyn Job>> {
    loop {
        match jobs.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) if std::time::Instant::now() >= until => {
                return None;
            }
            Err(mpsc::error::TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
}

/// Commits `batch` (or abandons it), answers its jobs and leaves it empty for the next.
fn commit(conn: &Connection, batch: &mut Batch) {
    let failed = match run_batch(conn, batch) {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, cause = ?e, jobs = batch.jobs.len(), "sqlite group commit failed");
            if !conn.is_autocommit() {
                if let Err(rollback) = conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %rollback, "sqlite rollback after a failed batch failed");
                }
            }
            Some(Arc::new(e))
        }
    };
    for job in batch.jobs.drain(..) {
        job.finish(failed.as_ref());
    }
    batch.ran = 0;
    batch.dropped = false;
}

/// Runs a batch in one transaction. First without savepoints: a savepoint makes SQLite copy
/// every page a job touches into its statement journal before changing it (in memory, a
/// malloc and a memcpy per KiB), which profiles showed as the writer's largest cost; nearly
/// every batch has no failing job and needs none. If a job fails, the transaction is rolled
/// back and the whole batch runs again with a savepoint per job, so that only the failed job's
/// changes are dropped.
fn run_batch(conn: &Connection, batch: &mut Batch) -> Result<(), StoreError> {
    if let Some(failed) = batch.failed.take() {
        return Err(failed);
    }
    batch.run_pending(conn)?;
    if !batch.dropped {
        conn.execute_batch("COMMIT")?;
        return Ok(());
    }
    conn.execute_batch("ROLLBACK")?;
    run_batch_isolated(conn, &mut batch.jobs)
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
        lingering(LINGER)
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

    fn lingering(linger: Duration) -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY);")
            .unwrap();
        (Writer::spawn_lingering(conn, linger).unwrap(), dir)
    }

    /// The keys another connection reads: what is committed, not what the writer holds.
    fn committed(dir: &tempfile::TempDir) -> Vec<String> {
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        let mut s = conn.prepare("SELECT k FROM t ORDER BY k").unwrap();
        let rows = s.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// Polls until `done` holds for what is committed (at most 10 s).
    async fn committed_until(dir: &tempfile::TempDir, done: impl Fn(&[String]) -> bool) {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !done(&committed(dir)) {
            assert!(std::time::Instant::now() < until, "{:?}", committed(dir));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Far longer than any test: a job made soon commits only when something else makes it.
    const FOREVER: Duration = Duration::from_secs(600);

    #[tokio::test]
    async fn a_job_made_soon_lingers_for_the_next_awaited_job_and_shares_its_commit() {
        let (w, dir) = lingering(FOREVER);
        let (release, held) = hold(&w).await;
        w.submit_soon(insert("a")).await.unwrap();
        drop(release);
        held.await.unwrap().unwrap();
        assert!(committed(&dir).is_empty(), "it lingers");

        w.write(insert("b")).await.unwrap();

        assert_eq!(committed(&dir), ["a", "b"]);
        assert_eq!(w.batches(), 2, "the held job, then both in one commit");
        assert_eq!(w.soon.load(Ordering::SeqCst), 0);
    }

    /// A job that inserts `k`, counts its runs and says when it first ran.
    fn signalled(
        k: &'static str,
        runs: &Arc<AtomicU64>,
    ) -> (
        impl Fn(&Connection) -> triggerline::Result<()> + use<>,
        oneshot::Receiver<()>,
    ) {
        let (ran, first_run) = oneshot::channel::<()>();
        let ran = std::sync::Mutex::new(Some(ran));
        let job = counted(k, runs);
        let signalled = move |c: &Connection| {
            let result = job(c);
            if let Some(ran) = ran.lock().unwrap().take() {
                let _ = ran.send(());
            }
            result
        };
        (signalled, first_run)
    }

    /// Waits (at most 10 s) for a job made soon to run while it lingers.
    async fn ran_ahead(first_run: oneshot::Receiver<()>) {
        tokio::time::timeout(Duration::from_secs(10), first_run)
            .await
            .expect("a job made soon runs while it lingers")
            .unwrap();
    }

    #[tokio::test]
    async fn a_job_made_soon_runs_while_it_lingers_and_commits_with_the_next() {
        let (w, dir) = lingering(FOREVER);
        let runs = Arc::new(AtomicU64::new(0));
        let (job, first_run) = signalled("a", &runs);
        w.submit_soon(job).await.unwrap();

        // It runs with nothing after it: the job that ends the linger does not wait for it.
        ran_ahead(first_run).await;
        assert!(
            committed(&dir).is_empty(),
            "it ran, and lingers uncommitted"
        );

        w.write(insert("b")).await.unwrap();

        assert_eq!(committed(&dir), ["a", "b"]);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "it ran once");
        assert_eq!(w.batches(), 1, "one commit for both");
    }

    #[tokio::test]
    async fn a_job_made_soon_that_ran_ahead_is_kept_when_the_job_that_joins_it_fails() {
        let (w, dir) = lingering(FOREVER);
        w.write(insert("taken")).await.unwrap();
        let runs = Arc::new(AtomicU64::new(0));
        let (job, first_run) = signalled("a", &runs);
        w.submit_soon(job).await.unwrap();
        ran_ahead(first_run).await;

        let clash = w.write(insert("taken")).await;

        assert!(clash.is_err());
        assert_eq!(committed(&dir), ["a", "taken"]);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "ahead, then again with a savepoint of its own"
        );
    }

    #[tokio::test]
    async fn flushed_waits_for_every_job_made_soon_before_it() {
        let (w, dir) = lingering(FOREVER);
        w.flushed().await.unwrap();
        assert_eq!(
            w.batches(),
            0,
            "with none made soon, flushed commits nothing"
        );
        w.submit_soon(insert("a")).await.unwrap();
        w.submit_soon(insert("b")).await.unwrap();

        w.flushed().await.unwrap();

        assert_eq!(committed(&dir), ["a", "b"]);
    }

    #[tokio::test]
    async fn a_job_made_soon_commits_alone_when_nothing_follows() {
        let (w, dir) = lingering(Duration::from_millis(5));
        w.submit_soon(insert("a")).await.unwrap();
        committed_until(&dir, |keys| keys == ["a"]).await;
        assert_eq!(w.batches(), 1);
    }

    #[tokio::test]
    async fn a_lingering_job_is_committed_when_the_last_handle_is_dropped() {
        let (w, dir) = lingering(FOREVER);
        w.submit_soon(insert("a")).await.unwrap();
        drop(w);
        committed_until(&dir, |keys| keys == ["a"]).await;
    }

    #[tokio::test]
    async fn a_failed_job_made_soon_is_no_longer_waited_for() {
        let (w, dir) = lingering(FOREVER);
        w.write(insert("a")).await.unwrap();
        w.submit_soon(insert("a")).await.unwrap();
        w.submit_soon(insert("b")).await.unwrap();

        w.flushed().await.unwrap();

        assert_eq!(committed(&dir), ["a", "b"], "the clash alone was dropped");
        assert_eq!(w.soon.load(Ordering::SeqCst), 0);
        w.flushed().await.unwrap();
        assert_eq!(w.batches(), 2, "nothing left to wait for: no commit");
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

    fn job() -> Box<dyn Job> {
        let (reply, _answer) = oneshot::channel::<Result<(), triggerline::Error>>();
        Box::new(Pending {
            work: |_: &Connection| Ok(()),
            result: None,
            reply,
            span: Span::none(),
            soon: None,
        })
    }

    /// The lingering writer's poll takes a job already queued, and gives up at its deadline on
    /// an empty queue or at once on a closed one, so that the timed wait takes over.
    #[test]
    fn the_spin_takes_a_queued_job_and_ends_at_its_deadline_or_a_closed_queue() {
        let (queue, mut jobs) = mpsc::channel(4);
        queue.try_send(job()).unwrap();
        let far = std::time::Instant::now() + Duration::from_secs(60);
        assert!(spin_for_job(&mut jobs, far).is_some(), "the queued job");

        let past = std::time::Instant::now();
        assert!(
            spin_for_job(&mut jobs, past).is_none(),
            "empty, deadline passed"
        );

        drop(queue);
        assert!(
            spin_for_job(&mut jobs, far).is_none(),
            "closed: no spinning to the deadline"
        );
    }
}
