//! Invocation status: the list and the detail of one invocation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::duration::IsoDuration;
use crate::error::ResourceKind;
use crate::model::Invocation;
use crate::ports::{InvocationScans, InvocationWatch};
use crate::query::{InvocationQuery, Page};
use crate::{Error, Result};

/// The status-query use cases.
#[derive(Debug, Clone)]
pub struct InvocationStatuses {
    store: Arc<dyn InvocationScans>,
    watch: Arc<dyn InvocationWatch>,
    /// The longest `wait` a detail read may ask for: the synchronous start's wait limit, so
    /// that a producer re-attaching after a 542 holds no longer than the start itself could.
    max_wait: Duration,
}

impl InvocationStatuses {
    pub fn new(
        store: Arc<dyn InvocationScans>,
        watch: Arc<dyn InvocationWatch>,
        max_wait: Duration,
    ) -> Self {
        InvocationStatuses {
            store,
            watch,
            max_wait,
        }
    }

    pub async fn list(&self, query: &InvocationQuery) -> Result<Page<Invocation>> {
        self.store.list(query).await
    }

    /// One invocation. An id that cannot be one (over [`MAX_ID_BYTES`]) is a 400 without a store
    /// read: DynamoDB refuses keys over 2 KB with an error that is not the caller's 404.
    pub async fn get(&self, id: &str) -> Result<Invocation> {
        require_invocation_id(id)?;
        self.store.get(id).await?.ok_or_else(|| not_found(id))
    }

    /// One invocation, as soon as it is finished or, when `wait` (an ISO-8601 duration, at most
    /// the wait limit) has passed, as it is then: how a producer that got a 542 waits for the
    /// answer without polling. An id not (yet) stored is waited on too, because on AWS an
    /// invocation whose first attempt is still running may be written only with its outcome;
    /// it is a 404 if still unknown when the wait ends.
    pub async fn get_waiting(&self, id: &str, wait: &str) -> Result<Invocation> {
        require_invocation_id(id)?;
        let wait = self.wait_span(wait)?;
        let started = Instant::now();
        // Subscribed before the first read, so that a change in between is not missed.
        let mut changes = self.watch.subscribe();
        let ids = [id.to_owned()];
        loop {
            let left = wait.saturating_sub(started.elapsed());
            match self.store.get(id).await? {
                Some(invocation) if !invocation.state.is_open() || left.is_zero() => {
                    return Ok(invocation);
                }
                None if left.is_zero() => return Err(not_found(id)),
                _ => changes.wait(&ids, left).await,
            }
        }
    }

    fn wait_span(&self, text: &str) -> Result<Duration> {
        let wait = Duration::from_millis(IsoDuration::parse("wait", text)?.as_millis());
        if wait > self.max_wait {
            return Err(Error::invalid(
                "wait",
                format!(
                    "`{text}` is longer than the wait limit, PT{}S",
                    self.max_wait.as_secs_f64()
                ),
            ));
        }
        Ok(wait)
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        kind: ResourceKind::Invocation,
        id: id.to_owned(),
    }
}

/// The longest id a route looks up. Triggerline's own are 36-byte UUIDs
/// ([`crate::time::is_invocation_id`]); the bound is looser so that ids written by other tools
/// are still found, and far below DynamoDB's 2,048-byte key limit.
pub const MAX_ID_BYTES: usize = 128;

/// An id a route may look up: 1 to [`MAX_ID_BYTES`] bytes, else a 400 naming `id`. The id
/// itself is not echoed: it may be anything.
pub fn require_invocation_id(id: &str) -> Result<()> {
    if (1..=MAX_ID_BYTES).contains(&id.len()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "id",
            format!("an invocation id is 1 to {MAX_ID_BYTES} bytes"),
        ))
    }
}
