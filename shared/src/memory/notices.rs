//! The outward notices of the use cases, recorded: published events, invocation changes and
//! work handed to a worker.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::lock;
use crate::Error;
use crate::ports::{
    Event, EventPublisher, Handoff, InvocationWatch, WatchSubscription, WorkSignal,
};

/// An [`EventPublisher`] that keeps what it is given. [`RecordingEvents::failing`] refuses
/// every publish instead (the bus is down), keeping nothing.
#[derive(Debug, Clone, Default)]
pub struct RecordingEvents {
    published: Arc<Mutex<Vec<Event>>>,
    failing: bool,
}

impl RecordingEvents {
    /// A publisher whose every `publish` fails with [`Error::Unavailable`].
    pub fn failing() -> Self {
        RecordingEvents {
            failing: true,
            ..RecordingEvents::default()
        }
    }

    /// Every event published so far, in order.
    pub fn published(&self) -> Vec<Event> {
        lock(&self.published).clone()
    }
}

#[async_trait]
impl EventPublisher for RecordingEvents {
    async fn publish(&self, events: &[Event]) -> Result<(), Error> {
        if self.failing {
            return Err(Error::unavailable(std::io::Error::other(
                "the event bus is down (RecordingEvents::failing)",
            )));
        }
        lock(&self.published).extend_from_slice(events);
        Ok(())
    }
}

/// An [`InvocationWatch`] that wakes waiters as the local stack's does, and keeps every change
/// it was told of.
#[derive(Debug, Clone)]
pub struct MemoryWatch {
    changes: broadcast::Sender<Arc<str>>,
    changed: Arc<Mutex<Vec<String>>>,
}

impl Default for MemoryWatch {
    fn default() -> Self {
        MemoryWatch {
            changes: broadcast::channel(1024).0,
            changed: Arc::default(),
        }
    }
}

impl MemoryWatch {
    /// The ids of every change so far, in order (repeats included).
    pub fn changed_ids(&self) -> Vec<String> {
        lock(&self.changed).clone()
    }
}

impl InvocationWatch for MemoryWatch {
    fn changed(&self, invocation_id: &str) {
        lock(&self.changed).push(invocation_id.to_owned());
        // No receiver means nobody waits; that is fine.
        let _ = self.changes.send(Arc::from(invocation_id));
    }

    fn subscribe(&self) -> Box<dyn WatchSubscription> {
        Box::new(Listener(self.changes.subscribe()))
    }
}

struct Listener(broadcast::Receiver<Arc<str>>);

#[async_trait]
impl WatchSubscription for Listener {
    async fn wait(&mut self, ids: &[String], timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, async {
            loop {
                match self.0.recv().await {
                    Ok(id) if ids.iter().any(|i| **i == *id) => return,
                    Ok(_) => {}
                    // Missed some changes: the caller re-reads rather than guess.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        })
        .await;
    }
}

/// A [`WorkSignal`] that keeps the work handed to it (no worker takes it).
#[derive(Debug, Clone, Default)]
pub struct RecordingSignal {
    handoffs: Arc<Mutex<Vec<Handoff>>>,
    wakes: Arc<Mutex<Vec<usize>>>,
}

impl RecordingSignal {
    /// Every hand-off so far, in order.
    pub fn handoffs(&self) -> Vec<Handoff> {
        lock(&self.handoffs).clone()
    }

    /// How many hand-offs each wake carried, in order.
    pub fn wakes(&self) -> Vec<usize> {
        lock(&self.wakes).clone()
    }
}

#[async_trait]
impl WorkSignal for RecordingSignal {
    async fn wake(&self, work: Vec<Handoff>) {
        lock(&self.wakes).push(work.len());
        lock(&self.handoffs).extend(work);
    }
}
