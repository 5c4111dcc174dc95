//! The in-process parts of the local stack: the worker that delivers queued invocations, the
//! channel that wakes it, the watch that wakes synchronous callers, the JSONL event outbox, and
//! the timers for the deadline sweep and retention.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use std::io::Write;

use tokio::sync::{Notify, Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use triggerline::ports::{
    Event, EventPublisher, Handoff, InvocationWatch, WatchSubscription, WorkItem, WorkSignal,
};
use triggerline::usecases::delivery::Delivery;
use triggerline::usecases::sweep::{self, Retention};

/// Hands accepted work to the worker through a bounded channel.
#[derive(Debug, Clone)]
pub struct ChannelSignal {
    items: mpsc::Sender<Handoff>,
}

#[async_trait]
impl WorkSignal for ChannelSignal {
    async fn wake(&self, work: Vec<Handoff>) {
        for item in work {
            // A closed channel means the worker stopped; the item stays queued in SQLite and
            // is delivered after the next start.
            if self.items.send(item).await.is_err() {
                return;
            }
        }
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
        // No receiver means nobody waits; that is fine.
        let _ = self.changes.send(Arc::from(invocation_id));
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
#[derive(Debug, Clone)]
pub struct JsonlEvents {
    lines: std::sync::mpsc::Sender<Vec<u8>>,
}

impl JsonlEvents {
    /// Opens (creating it owner-only, 0600: events carry invocation outputs) the outbox file.
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        let (lines, queued) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("events-jsonl".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(file);
                while let Ok(first) = queued.recv() {
                    let mut result = out.write_all(&first);
                    while let (Ok(()), Ok(next)) = (&result, queued.try_recv()) {
                        result = out.write_all(&next);
                    }
                    if let Err(e) = result.and_then(|()| out.flush()) {
                        tracing::error!(error = %e, "cannot append to events.jsonl");
                    }
                }
            })?;
        Ok(JsonlEvents { lines })
    }
}

#[async_trait]
impl EventPublisher for JsonlEvents {
    async fn publish(&self, events: &[Event]) -> Result<(), triggerline::Error> {
        let mut lines = Vec::new();
        for e in events {
            let line = serde_json::json!({
                "time": triggerline::time::format_time(&chrono::Utc::now()),
                "event-bus": e.bus.as_deref().unwrap_or("triggerline"),
                "source": e.source,
                "detail-type": e.detail_type,
                "detail": e.detail,
            });
            lines.extend_from_slice(line.to_string().as_bytes());
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
    delivery: Delivery,
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
        concurrency: usize,
        poke: Arc<Notify>,
    ) -> (Worker, ChannelSignal) {
        let (tx, rx) = mpsc::channel(concurrency.max(1) * 4);
        let worker = Worker {
            delivery,
            items: rx,
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            poke,
        };
        (worker, ChannelSignal { items: tx })
    }

    /// Runs until `stop`, then waits for in-flight deliveries to settle.
    pub async fn run(mut self, stop: CancellationToken) {
        if let Err(e) = self.delivery.queue.release_all().await {
            tracing::error!(error = %e, "cannot release leases left by an earlier run");
        }
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
        match self.delivery.queue.next_due().await {
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
        match self.delivery.queue.claim_due(now, until, free).await {
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
        let delivery = self.delivery.clone();
        tokio::spawn(async move {
            let (id, result) = match job {
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
            drop(permit);
        });
    }
}

/// Work for one delivery: handed off by the intake, or claimed from the queue.
#[derive(Debug)]
enum Job {
    Handoff(Box<Handoff>),
    Queued(WorkItem),
}

/// Runs the deadline sweep every `every` and retention every `purge_every`, until `stop`.
pub async fn upkeep(
    delivery: Delivery,
    retention: Retention,
    every: Duration,
    purge_every: Duration,
    stop: CancellationToken,
) {
    let mut sweep_tick = tokio::time::interval(every);
    let mut purge_tick = tokio::time::interval(purge_every);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = sweep_tick.tick() => {
                match sweep::time_out_overdue(&delivery).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(timed_out = n, "deadline sweep"),
                    Err(e) => tracing::warn!(error = %e, "deadline sweep failed"),
                }
            }
            _ = purge_tick.tick() => {
                match sweep::purge(&delivery, retention).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "retention"),
                    Err(e) => tracing::warn!(error = %e, "retention failed"),
                }
            }
        }
    }
}
