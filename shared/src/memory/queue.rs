//! [`DeliveryQueue`] on the maps of a [`MemoryInvocations`]: an invocation and its work are
//! written together, as on SQLite.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::invocations::{MemoryInvocations, Tables, Work};
use super::lock;
use crate::Error;
use crate::error::ResourceKind;
use crate::model::{Attempt, Invocation, InvocationState};
use crate::ports::{DeliveryQueue, NextStep, Transition, WorkItem, WorkSource};

/// The work queue of one [`MemoryInvocations`]. Leases end at the times the caller passes
/// (`leased_until`, `lease_until`); the queue has no clock of its own, so a test moves time by
/// passing a later `now` to `claim_due`.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    tables: Arc<Mutex<Tables>>,
}

/// A work item as queued, with its lease (`None`: claimable once due).
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub item: WorkItem,
    pub leased_until: Option<DateTime<Utc>>,
}

impl MemoryQueue {
    /// The queue that writes into (and reads) `invocations`' storage.
    pub fn over(invocations: &MemoryInvocations) -> Self {
        MemoryQueue {
            tables: Arc::clone(&invocations.tables),
        }
    }

    /// Every queued item, in invocation id order.
    pub fn queued(&self) -> Vec<Queued> {
        lock(&self.tables)
            .work
            .iter()
            .map(|(id, work)| Queued {
                item: item(id, work),
                leased_until: work.leased_until,
            })
            .collect()
    }
}

fn item(id: &str, work: &Work) -> WorkItem {
    WorkItem {
        invocation_id: id.to_owned(),
        not_before: work.not_before,
        attempts: work.attempts,
    }
}

/// A fresh work row. A lease that ends before the item is due changes nothing about when it can
/// be claimed, so none is kept (and `next_due` names no time at which nothing is due).
fn fresh(not_before: DateTime<Utc>, leased_until: Option<DateTime<Utc>>) -> Work {
    Work {
        not_before,
        leased_until: leased_until.filter(|until| *until >= not_before),
        attempts: 0,
    }
}

#[async_trait]
impl DeliveryQueue for MemoryQueue {
    async fn accept(
        &self,
        invocations: &[Invocation],
        not_before: DateTime<Utc>,
        leased_until: Option<DateTime<Utc>>,
    ) -> Result<Vec<WorkItem>, Error> {
        let mut tables = lock(&self.tables);
        tables.insert_all(invocations)?;
        Ok(invocations
            .iter()
            .map(|i| {
                // Ordered work is claimed in its turn, never leased to the caller.
                let work = fresh(
                    not_before,
                    leased_until.filter(|_| i.ordering_key.is_none()),
                );
                tables.work.insert(i.id.clone(), work.clone());
                item(&i.id, &work)
            })
            .collect())
    }

    async fn settle(
        &self,
        invocation_id: &str,
        attempt: &Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
        next: &NextStep,
    ) -> Result<Option<Invocation>, Error> {
        let mut tables = lock(&self.tables);
        let Some(invocation) = tables.invocations.get_mut(invocation_id) else {
            return Ok(None);
        };
        invocation.attempts.push(attempt.clone());
        if let Some(transition) = transition.filter(|_| from.contains(&invocation.state)) {
            transition.apply_to(invocation);
        }
        let written = invocation.clone();
        match next {
            NextStep::Done => {
                tables.work.remove(invocation_id);
            }
            NextStep::RetryAt(at) => {
                if let Some(work) = tables.work.get_mut(invocation_id) {
                    work.not_before = *at;
                    work.leased_until = None;
                    work.attempts += 1;
                }
            }
        }
        Ok(Some(written))
    }

    async fn replay(
        &self,
        invocation_id: &str,
        deadline: Option<DateTime<Utc>>,
        not_before: DateTime<Utc>,
        leased_until: Option<DateTime<Utc>>,
    ) -> Result<WorkItem, Error> {
        let mut tables = lock(&self.tables);
        let invocation =
            tables
                .invocations
                .get_mut(invocation_id)
                .ok_or_else(|| Error::NotFound {
                    kind: ResourceKind::Invocation,
                    id: invocation_id.to_owned(),
                })?;
        if invocation.state != InvocationState::Failed {
            return Err(Error::NotOpen {
                id: invocation_id.to_owned(),
                status: invocation.state,
            });
        }
        invocation.state = InvocationState::Pending;
        invocation.completed = None;
        invocation.output = None;
        invocation.error = None;
        invocation.deadline = deadline;
        if let Some(timer) = invocation.heartbeat.as_mut() {
            timer.last = None;
            timer.due = None;
        }
        // A replay starts a new round of delivery: its retry budget starts again too.
        let work = fresh(not_before, leased_until);
        tables.work.insert(invocation_id.to_owned(), work.clone());
        Ok(item(invocation_id, &work))
    }

    async fn discard(&self, invocation_id: &str) -> Result<(), Error> {
        lock(&self.tables).work.remove(invocation_id);
        Ok(())
    }

    fn orders_by_key(&self) -> bool {
        true
    }

    async fn postpone(&self, invocation_id: &str, until: DateTime<Utc>) -> Result<(), Error> {
        if let Some(work) = lock(&self.tables).work.get_mut(invocation_id) {
            work.not_before = until;
            work.leased_until = None;
        }
        Ok(())
    }
}

#[async_trait]
impl WorkSource for MemoryQueue {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkItem>, Error> {
        let mut tables = lock(&self.tables);
        let mut due: Vec<WorkItem> = tables
            .work
            .iter()
            .filter(|(id, w)| {
                w.not_before <= now
                    && w.leased_until.is_none_or(|l| l < now)
                    && !tables.waits_its_turn(id)
            })
            .map(|(id, w)| item(id, w))
            .collect();
        // Oldest first; in id order on ties (the map's order, kept by the stable sort).
        due.sort_by_key(|i| i.not_before);
        due.truncate(limit);
        for claimed in &due {
            if let Some(work) = tables.work.get_mut(&claimed.invocation_id) {
                work.leased_until = Some(lease_until);
            }
        }
        Ok(due)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let tables = lock(&self.tables);
        Ok(tables
            .work
            .iter()
            .filter(|(id, _)| !tables.waits_its_turn(id))
            .map(|(_, w)| w.leased_until.unwrap_or(w.not_before))
            .min())
    }

    async fn release_all(&self) -> Result<(), Error> {
        for work in lock(&self.tables).work.values_mut() {
            work.leased_until = None;
        }
        Ok(())
    }
}
