//! The in-process parts of the local stack: the worker that delivers queued invocations, the
//! channel that wakes it, the watch that wakes synchronous callers, the JSONL event outbox, and
//! the timers for the deadline sweep and retention.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use std::io::Write;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use triggerline::ports::{
    DeliveryQueue, Event, EventPublisher, Handoff, IdempotencyStore, InvocationScans,
    InvocationWatch, WatchSubscription, WorkItem, WorkSignal, WorkSource,
};
use triggerline::usecases::delivery::Delivery;
use triggerline::usecases::sweep::{self, Retention, Sweep};

/// Hands accepted work to the worker: straight to a delivery task of its own while the worker
/// has a free permit, else through a bounded channel the worker drains as permits free up.
#[derive(Debug, Clone)]
pub struct ChannelSignal {
    items: mpsc::Sender<Handoff>,
    permits: Arc<Semaphore>,
    delivery: Arc<Delivery>,
}

#[async_trait]
impl WorkSignal for ChannelSignal {
    async fn wake(&self, work: Vec<Handoff>) {
        for item in work {
            // A permit freed while the worker waits for one goes to the worker (the semaphore
            // is fair), so work behind a saturated worker is not overtaken here.
            if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
                spawn_delivery(&self.delivery, Job::Handoff(Box::new(item)), permit);
                continue;
            }
            // A closed channel means the worker stopped; the item stays queued in SQLite and
            // is delivered after the next start.
            if self.items.send(item).await.is_err() {
                return;
            }
        }
    }
}

/// Runs `job` on a task of its own, holding `permit` until it is settled. The delivery's future
/// is about 5 KiB; boxed first, the spawn moves a pointer instead of copying it into the task
/// (the copies were about 1 % of the F&F profile's samples).
fn spawn_delivery(delivery: &Arc<Delivery>, job: Job, permit: OwnedSemaphorePermit) {
    let delivery = Arc::clone(delivery);
    tokio::spawn(Box::pin(async move {
        job.run(&delivery).await;
        drop(permit);
    }));
}

/// Nudges the worker to look at the queue (its `poke`).
#[derive(Debug, Clone)]
pub struct NotifyPoke(pub Arc<tokio::sync::Notify>);

impl triggerline::ports::WorkPoke for NotifyPoke {
    fn poke(&self) {
        self.0.notify_one();
    }
}

/// Wakes synchronous `start` callers when an invocation they wait on changes.
#[derive(Debug, Clone)]
pub struct BroadcastWatch {
    changes: broadcast::Sender<Arc<str>>,
}

impl Default for BroadcastWatch {
    fn default() -> Self {
        BroadcastWatch {
            changes: broadcast::channel(4096).0,
        }
    }
}

impl InvocationWatch for BroadcastWatch {
    fn changed(&self, invocation_id: &str) {
        // Nobody waits unless a synchronous start is open: then the id is not even copied.
        if self.changes.receiver_count() > 0 {
            let _ = self.changes.send(Arc::from(invocation_id));
        }
    }

    fn subscribe(&self) -> Box<dyn WatchSubscription> {
        Box::new(BroadcastSubscription(self.changes.subscribe()))
    }
}

struct BroadcastSubscription(broadcast::Receiver<Arc<str>>);

#[async_trait]
impl WatchSubscription for BroadcastSubscription {
    async fn wait(&mut self, ids: &[String], timeout: Duration) {
        let _ = tokio::time::timeout(timeout, async {
            loop {
                match self.0.recv().await {
                    Ok(id) if ids.iter().any(|i| **i == *id) => return,
                    Ok(_) => {}
                    // Missed some changes: let the caller re-read rather than guess.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await;
                    }
                }
            }
        })
        .await;
    }
}

/// Appends events as JSON lines to `<data-dir>/events.jsonl`: the local stand-in for an
/// EventBridge bus, which producers can tail. One thread owns the file and writes whatever has
/// queued up in one go, so publishing never blocks the runtime and bursts cost one write. Like
/// EventBridge's `PutEvents`, publishing does not wait for the disk; an event in the channel
/// when the process is killed is lost (the invocation's outcome itself is already durable).
///
/// The file is rotated like a log once it holds [`EVENTS_FILE_MAX_BYTES`]: renamed to
/// `events.jsonl.1` (replacing the one before) and started anew, so the outbox takes at most
/// about twice that on disk, as retention bounds the database (`tail -F` follows the rename).
#[derive(Debug, Clone)]
pub struct JsonlEvents {
    lines: std::sync::mpsc::Sender<Vec<u8>>,
}

/// How large `events.jsonl` grows before it is rotated: 64 MiB, hundreds of thousands of
/// completion events, each at most an output of 128 KiB and its envelope.
pub const EVENTS_FILE_MAX_BYTES: u64 = 64 * 1024 * 1024;

impl JsonlEvents {
    /// Opens (creating it owner-only, 0600: events carry invocation outputs) the outbox file.
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        Self::open_rotating(path, EVENTS_FILE_MAX_BYTES)
    }

    /// [`JsonlEvents::open`], rotating the file once it holds `max_bytes`.
    pub fn open_rotating(path: PathBuf, max_bytes: u64) -> std::io::Result<Self> {
        let mut outbox = Outbox::open(path, max_bytes)?;
        let (lines, queued) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("events-jsonl".into())
            .spawn(move || {
                while let Ok(first) = queued.recv() {
                    // Under load events come one per callback: waiting a moment lets one write
                    // carry the burst, and spares the senders a wake-up each (they only wake
                    // this thread while it waits in `recv`).
                    std::thread::sleep(GATHER);
                    let burst = std::iter::once(first).chain(queued.try_iter());
                    if let Err(e) = outbox.append(burst) {
                        tracing::error!(error = %e, "cannot append to events.jsonl");
                    }
                }
            })?;
        Ok(JsonlEvents { lines })
    }
}

/// The open `events.jsonl`, how much it holds, and when it is rotated.
struct Outbox {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    written: u64,
    max_bytes: u64,
}

impl Outbox {
    fn open(path: PathBuf, max_bytes: u64) -> std::io::Result<Outbox> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path)?;
        let written = file.metadata()?.len();
        Ok(Outbox {
            path,
            out: std::io::BufWriter::new(file),
            written,
            max_bytes,
        })
    }

    /// Writes `lines` and flushes them; then rotates the file if it is full. A burst is never
    /// split between two files.
    fn append(&mut self, lines: impl Iterator<Item = Vec<u8>>) -> std::io::Result<()> {
        for line in lines {
            self.out.write_all(&line)?;
            self.written += line.len() as u64;
        }
        self.out.flush()?;
        if self.written >= self.max_bytes {
            let mut rotated = self.path.clone().into_os_string();
            rotated.push(".1");
            std::fs::rename(&self.path, rotated)?;
            *self = Outbox::open(self.path.clone(), self.max_bytes)?;
        }
        Ok(())
    }
}

/// How long the `events.jsonl` thread gathers events after the first of a burst before it writes
/// them: an event is in the file at most this much later than unbatched.
const GATHER: Duration = Duration::from_millis(1);

/// One line of `events.jsonl`: an EventBridge event's envelope. Serialized from borrows (no
/// copy of the detail), its keys in the order they always had (alphabetical).
#[derive(serde::Serialize)]
struct Line<'a> {
    detail: &'a serde_json::value::RawValue,
    #[serde(rename = "detail-type")]
    detail_type: &'a str,
    #[serde(rename = "event-bus")]
    event_bus: &'a str,
    source: &'a str,
    time: &'a str,
}

#[async_trait]
impl EventPublisher for JsonlEvents {
    async fn publish(&self, events: &[Event]) -> Result<(), triggerline::Error> {
        let mut lines = Vec::new();
        let time = triggerline::time::format_time(&chrono::Utc::now());
        for e in events {
            let line = Line {
                detail: &e.detail,
                detail_type: &e.detail_type,
                event_bus: e.bus.as_deref().unwrap_or("triggerline"),
                source: &e.source,
                time: &time,
            };
            serde_json::to_writer(&mut lines, &line).map_err(triggerline::Error::unavailable)?;
            lines.push(b'\n');
        }
        self.lines.send(lines).map_err(|_| {
            triggerline::Error::unavailable(std::io::Error::other(
                "the events.jsonl writer stopped",
            ))
        })
    }
}

/// Delivers queued invocations: new work arrives through the channel at once; the database is
/// polled only for due retries, delayed invocations and items a crashed process left behind.
#[derive(Debug)]
pub struct Worker {
    /// Shared with every delivery task: cloning the context itself per delivery copied its
    /// strings (URLs, names) each time.
    delivery: Arc<Delivery>,
    /// The queue `delivery` writes, as the worker polls it.
    work: Arc<dyn WorkSource>,
    items: mpsc::Receiver<Handoff>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    poke: Arc<Notify>,
}

/// Longest the worker sleeps between looks at the queue.
const MAX_POLL: Duration = Duration::from_secs(1);

impl Worker {
    /// A worker and the signal that feeds it.
    pub fn new(
        delivery: Delivery,
        work: Arc<dyn WorkSource>,
        concurrency: usize,
        poke: Arc<Notify>,
    ) -> (Worker, ChannelSignal) {
        // Hand-offs waiting for a free permit hold whole invocations; a fan-out fills this
        // channel faster than deliveries drain it, so its size weighs on peak memory.
        // A quarter of the concurrency keeps the worker fed (it takes the next one as soon as a
        // delivery ends) and makes the intake wait sooner, which is the backpressure meant.
        let (tx, rx) = mpsc::channel((concurrency / 4).max(16));
        let worker = Worker {
            delivery: Arc::new(delivery),
            work,
            items: rx,
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            poke,
        };
        let signal = ChannelSignal {
            items: tx,
            permits: Arc::clone(&worker.permits),
            delivery: Arc::clone(&worker.delivery),
        };
        (worker, signal)
    }

    /// Frees the leases an earlier run of the process left on work it was delivering when it
    /// stopped, so the queue delivers that work now rather than when the leases end. Call it
    /// before any work is accepted: a lease taken by this run's intake and then freed here
    /// would let the queue deliver that work a second time beside its hand-off.
    pub async fn release_leases(&self) {
        if let Err(e) = self.work.release_all().await {
            tracing::error!(error = %e, "cannot release leases left by an earlier run");
        }
    }

    /// Runs until `stop`, then waits for in-flight deliveries to settle. The leases of an
    /// earlier run are released first by [`Worker::release_leases`].
    pub async fn run(mut self, stop: CancellationToken) {
        // The queue is read on the timer and when poked, never per handed-off item.
        let mut next_poll = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                work = self.items.recv() => match work {
                    Some(work) => self.spawn(Job::Handoff(Box::new(work))).await,
                    None => break,
                },
                () = tokio::time::sleep_until(next_poll) => {
                    self.claim().await;
                    next_poll = tokio::time::Instant::now() + self.until_next_due().await;
                }
                () = self.poke.notified() => {
                    self.claim().await;
                    next_poll = tokio::time::Instant::now() + self.until_next_due().await;
                }
            }
        }
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let _ = self.permits.acquire_many(all).await;
    }

    async fn until_next_due(&self) -> Duration {
        match self.work.next_due().await {
            Ok(Some(at)) => (at - self.delivery.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_millis(5), MAX_POLL),
            Ok(None) => MAX_POLL,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the queue");
                MAX_POLL
            }
        }
    }

    async fn claim(&self) {
        let free = self.permits.available_permits();
        if free == 0 {
            return;
        }
        let now = self.delivery.clock.now();
        let until = triggerline::time::later(now, self.delivery.policy.lease_span());
        match self.work.claim_due(now, until, free).await {
            Ok(items) => {
                for item in items {
                    self.spawn(Job::Queued(item)).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot claim due work"),
        }
    }

    async fn spawn(&self, job: Job) {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        spawn_delivery(&self.delivery, job, permit);
    }

    /// One step of [`Worker::run`], to its end: delivers the hand-offs waiting in the channel
    /// and the queued items due now (up to the concurrency), concurrently, and returns how many
    /// jobs it ran. Tests drive the worker with it instead of waiting for the loop.
    pub async fn run_once(&mut self) -> usize {
        let mut jobs = Vec::new();
        while let Ok(work) = self.items.try_recv() {
            jobs.push(Job::Handoff(Box::new(work)));
        }
        let now = self.delivery.clock.now();
        let until = triggerline::time::later(now, self.delivery.policy.lease_span());
        match self.work.claim_due(now, until, self.concurrency).await {
            Ok(items) => jobs.extend(items.into_iter().map(Job::Queued)),
            Err(e) => tracing::warn!(error = %e, "cannot claim due work"),
        }
        let ran = jobs.len();
        let mut running = tokio::task::JoinSet::new();
        for job in jobs {
            let delivery = Arc::clone(&self.delivery);
            running.spawn(async move { job.run(&delivery).await });
        }
        while running.join_next().await.is_some() {}
        ran
    }
}

/// Work for one delivery: handed off by the intake, or claimed from the queue.
#[derive(Debug)]
enum Job {
    Handoff(Box<Handoff>),
    Queued(WorkItem),
}

impl Job {
    async fn run(self, delivery: &Delivery) {
        let (id, result) = match self {
            Job::Handoff(work) => (
                work.item.invocation_id.clone(),
                delivery.deliver_handoff(*work).await,
            ),
            Job::Queued(item) => (item.invocation_id.clone(), delivery.deliver(&item).await),
        };
        if let Err(e) = result {
            // The work row stays; its lease runs out and the poller tries again.
            tracing::warn!(invocation = %id, error = %e, "delivery not settled");
        }
    }
}

/// How many expired `Idempotency-Key`s one delete of retention removes.
const PURGE_BATCH: usize = 500;

/// The local stack's timers: the deadline sweep (with the recovery of lost work, which only a
/// queue in two steps, as on the AWS backend, can need) and retention.
#[derive(Debug)]
pub struct Upkeep {
    pub sweep: Sweep,
    pub queue: Arc<dyn DeliveryQueue>,
    /// The delivery lease; work unsent two leases after it was due is sent again.
    pub lease: Duration,
    pub scans: Arc<dyn InvocationScans>,
    /// Expired `Idempotency-Key`s go with retention.
    pub keys: Arc<dyn IdempotencyStore>,
    pub retention: Retention,
    pub sweep_every: Duration,
    pub purge_every: Duration,
}

impl Upkeep {
    /// Runs the deadline sweep every `sweep_every` and retention every `purge_every`, until
    /// `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut sweep_tick = tokio::time::interval(self.sweep_every);
        let mut purge_tick = tokio::time::interval(self.purge_every);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = sweep_tick.tick() => self.sweep_once().await,
                _ = purge_tick.tick() => self.purge_once().await,
            }
        }
    }

    /// One deadline sweep and one recovery of lost work.
    pub async fn sweep_once(&self) {
        match self.sweep.time_out_overdue().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(timed_out = n, "deadline sweep"),
            Err(e) => tracing::warn!(error = %e, "deadline sweep failed"),
        }
        match sweep::recover_unsent(&*self.queue, &*self.sweep.clock, self.lease).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(recovered = n, "work of accepted invocations sent again"),
            Err(e) => tracing::warn!(error = %e, "recovery of unsent work failed"),
        }
    }

    /// One retention pass.
    pub async fn purge_once(&self) {
        match sweep::purge(&*self.scans, &*self.sweep.clock, self.retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "retention"),
            Err(e) => tracing::warn!(error = %e, "retention failed"),
        }
        let now = self.sweep.clock.now();
        loop {
            match self.keys.purge_expired(now, PURGE_BATCH).await {
                Ok(n) if n < PURGE_BATCH => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "retention of Idempotency-Keys failed");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::Utc;
    use triggerline::catalog::Catalog;
    use triggerline::model::{Invocation, Subscription};
    use triggerline::ports::SubscriptionAdmin;
    use triggerline::secrets::SecretKey;
    use triggerline::time::{RandomJitter, SystemClock};
    use triggerline::usecases::delivery::DeliveryPolicy;
    use triggerline::usecases::notify::Notifier;
    use triggerline_embedded::{
        Sqlite, SqliteDeliveryQueue, SqliteInvocationStore, SqliteSubscriptionStore,
    };
    use triggerline_webhook::HttpWebhookClient;

    use super::*;

    #[test]
    fn the_outbox_is_rotated_once_full_and_keeps_the_file_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let rotated = dir.path().join("events.jsonl.1");
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).ok();
        let line = |n: usize| [vec![b'x'; n - 1], b"\n".to_vec()].concat();

        let mut outbox = Outbox::open(path.clone(), 100).unwrap();
        outbox.append([line(60)].into_iter()).unwrap();
        assert_eq!((size(&path), size(&rotated)), (Some(60), None));
        // A burst that fills the file stays whole in it; the next line starts a new file.
        outbox.append([line(30), line(20)].into_iter()).unwrap();
        assert_eq!((size(&path), size(&rotated)), (Some(0), Some(110)));
        outbox.append([line(40)].into_iter()).unwrap();
        assert_eq!((size(&path), size(&rotated)), (Some(40), Some(110)));
        // Reopened (a restart), it counts what the file already holds; the rotated file is
        // replaced, so the outbox never holds more than two files.
        drop(outbox);
        let mut outbox = Outbox::open(path.clone(), 100).unwrap();
        outbox.append([line(70)].into_iter()).unwrap();
        assert_eq!((size(&path), size(&rotated)), (Some(0), Some(110)));
        let kept = std::fs::read_to_string(&rotated).unwrap();
        assert_eq!(kept.lines().map(str::len).collect::<Vec<_>>(), [39, 69]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the new file is owner-only too");
        }
    }

    /// A webhook receiver on 127.0.0.1 that answers 200 and counts what it gets.
    async fn receiver() -> (String, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let app = axum::Router::new().fallback(move || {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::OK
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, count)
    }

    fn subscription(url: &str) -> Subscription {
        serde_json::from_value(serde_json::json!({
            "id": "sub-1", "name": "Listener", "description": null,
            "triggerId": "idn:identity-created", "triggerName": "Identity Created",
            "target": {"type": "HTTP", "url": url, "mode": "SYNC", "auth": {"kind": "none"}},
            "responseDeadline": "PT1H", "enabled": true, "filter": null,
            "signingSecret": "whsec_c2VjcmV0", "created": "2025-03-14T09:26:53.271Z",
            "modified": "2025-03-14T09:26:53.271Z", "version": 1
        }))
        .unwrap()
    }

    fn invocation(id: &str) -> Invocation {
        serde_json::from_value(serde_json::json!({
            "id": id, "triggerId": "idn:identity-created", "triggerType": "FIRE_AND_FORGET",
            "subscriptionId": "sub-1", "subscriptionName": "Listener",
            "invocationType": "REAL_TIME", "responseMode": null, "state": "PENDING",
            "created": Utc::now().to_rfc3339(), "completed": null, "deadline": null,
            "input": {"identity": {"type": "IDENTITY", "id": "1", "name": "Ann"}},
            "contentJson": {}, "output": null, "error": null, "secretHash": "sha256:00",
            "attempts": []
        }))
        .unwrap()
    }

    /// The subscriptions of `delivery(dir)`'s database, as the subscription API writes them.
    async fn admin(dir: &tempfile::TempDir) -> SqliteSubscriptionStore {
        let db = Sqlite::open(&dir.path().join("triggerline.db"))
            .await
            .unwrap();
        SqliteSubscriptionStore::new(db, SecretKey::new(vec![7; 32]).credential_key())
    }

    /// The queue of [`delivery`], as the worker polls it.
    async fn work_source(dir: &tempfile::TempDir) -> Arc<dyn WorkSource> {
        let db = Sqlite::open(&dir.path().join("triggerline.db"))
            .await
            .unwrap();
        Arc::new(SqliteDeliveryQueue::new(db))
    }

    async fn delivery(dir: &tempfile::TempDir) -> Delivery {
        let db = Sqlite::open(&dir.path().join("triggerline.db"))
            .await
            .unwrap();
        let key = SecretKey::new(vec![7; 32]);
        let events: Arc<dyn EventPublisher> =
            Arc::new(JsonlEvents::open(dir.path().join("events.jsonl")).unwrap());
        Delivery {
            catalog: Catalog::builtin(),
            subscriptions: Arc::new(SqliteSubscriptionStore::new(
                db.clone(),
                key.credential_key(),
            )),
            invocations: Arc::new(SqliteInvocationStore::new(db.clone())),
            queue: Arc::new(SqliteDeliveryQueue::new(db)),
            client: Arc::new(HttpWebhookClient::new(true)),
            events: events.clone(),
            clock: Arc::new(SystemClock),
            jitter: Arc::new(RandomJitter),
            key,
            policy: DeliveryPolicy {
                public_url: "http://127.0.0.1:9".into(),
                max_attempts: 3,
                event_source: "triggerline".into(),
                subscriber_bus: "default".into(),
                lease: Duration::from_secs(60),
                health: Default::default(),
            },
            notifier: Notifier {
                events: Some(events),
                watch: Arc::new(BroadcastWatch::default()),
                event_source: "triggerline".into(),
                inline_completion_events: true,
                poke: None,
            },
        }
    }

    /// Accepts `id` leased until `lease` from now and returns its hand-off.
    async fn handed_off(delivery: &Delivery, id: &str, url: &str, lease: i64) -> Handoff {
        let now = Utc::now();
        let leased_until = now + chrono::Duration::seconds(lease);
        let item = delivery
            .queue
            .accept(&[invocation(id)], now, Some(leased_until))
            .await
            .unwrap()
            .remove(0);
        Handoff {
            item,
            leased_until,
            invocation: invocation(id),
            subscription: Some(Arc::new(subscription(url))),
        }
    }

    #[tokio::test]
    async fn a_hand_off_within_its_lease_is_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let delivery = delivery(&dir).await;
        let (url, received) = receiver().await;

        let work = handed_off(&delivery, "fresh", &url, 60).await;
        let settled = delivery.deliver_handoff(work).await.unwrap();

        assert_eq!(received.load(Ordering::SeqCst), 1);
        assert!(settled.is_some_and(|i| !i.state.is_open()));
    }

    #[tokio::test]
    async fn a_hand_off_that_outlived_its_lease_is_left_to_the_queue_and_sent_once() {
        let dir = tempfile::tempdir().unwrap();
        let delivery = delivery(&dir).await;
        let (url, received) = receiver().await;

        // It waited behind a saturated worker: less than one attempt of its lease is left, so
        // the queue may already have handed the item to another delivery.
        let work = handed_off(&delivery, "stale", &url, 5).await;
        assert_eq!(delivery.deliver_handoff(work).await.unwrap(), None);
        assert_eq!(
            received.load(Ordering::SeqCst),
            0,
            "not sent from the stale copy"
        );

        // Once the lease ends, whoever claims the item delivers it, reading it afresh.
        let later = Utc::now() + chrono::Duration::seconds(6);
        let claimed = work_source(&dir)
            .await
            .claim_due(later, later + chrono::Duration::seconds(60), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        admin(&dir)
            .await
            .create(&subscription(&url), 50)
            .await
            .unwrap();
        delivery.deliver(&claimed[0]).await.unwrap();
        assert_eq!(received.load(Ordering::SeqCst), 1);
    }

    /// A worker with 4 delivery permits (not running), its signal, and one subscription to a
    /// receiver that counts what it is sent.
    struct Subscribed {
        delivery: Delivery,
        url: String,
        received: Arc<AtomicUsize>,
        worker: Worker,
        signal: ChannelSignal,
    }

    async fn subscribed_worker(dir: &tempfile::TempDir) -> Subscribed {
        let delivery = delivery(dir).await;
        let (url, received) = receiver().await;
        admin(dir)
            .await
            .create(&subscription(&url), 50)
            .await
            .unwrap();
        let (worker, signal) = Worker::new(
            delivery.clone(),
            work_source(dir).await,
            4,
            Arc::new(Notify::new()),
        );
        Subscribed {
            delivery,
            url,
            received,
            worker,
            signal,
        }
    }

    #[tokio::test]
    async fn one_worker_step_delivers_hand_offs_and_due_work() {
        let dir = tempfile::tempdir().unwrap();
        let Subscribed {
            delivery,
            url,
            received,
            mut worker,
            signal,
        } = subscribed_worker(&dir).await;
        assert_eq!(worker.run_once().await, 0, "nothing to do yet");

        // One handed off by the intake while every delivery permit is taken, so that it waits
        // in the channel; one queued and due (as after a restart).
        let busy = Arc::clone(&worker.permits)
            .acquire_many_owned(4)
            .await
            .unwrap();
        let work = handed_off(&delivery, "handed", &url, 60).await;
        signal.wake(vec![work]).await;
        assert_eq!(received.load(Ordering::SeqCst), 0, "no permit, no delivery");
        drop(busy);
        delivery
            .queue
            .accept(&[invocation("queued")], Utc::now(), None)
            .await
            .unwrap();

        assert_eq!(worker.run_once().await, 2);
        assert_eq!(received.load(Ordering::SeqCst), 2);
        for id in ["handed", "queued"] {
            let settled = delivery.invocations.get(id).await.unwrap().unwrap();
            assert!(!settled.state.is_open(), "{id} is {}", settled.state);
        }
        assert_eq!(
            worker.run_once().await,
            0,
            "settled work is not claimed again"
        );
    }

    /// With a delivery permit free, a hand-off is delivered by a task of its own at once,
    /// without the worker's loop running at all.
    #[tokio::test]
    async fn a_hand_off_with_a_free_permit_is_delivered_without_the_worker_loop() {
        let dir = tempfile::tempdir().unwrap();
        let Subscribed {
            delivery,
            url,
            received,
            worker,
            signal,
        } = subscribed_worker(&dir).await;

        let work = handed_off(&delivery, "direct", &url, 60).await;
        signal.wake(vec![work]).await;

        // Settled, and its permit given back when its task ended.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let stored = delivery.invocations.get("direct").await.unwrap().unwrap();
            let free = worker.permits.available_permits();
            if !stored.state.is_open() && free == 4 {
                break;
            }
            assert!(
                std::time::Instant::now() < until,
                "still {} with {free} permits free",
                stored.state
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(received.load(Ordering::SeqCst), 1);
    }
}
