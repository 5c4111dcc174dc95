//! [`InvocationStore`] and [`InvocationScans`] on a map, which [`super::MemoryQueue`] shares.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::lock;
use crate::Error;
use crate::error::ResourceKind;
use crate::model::{Invocation, InvocationState};
use crate::ports::{InvocationScans, InvocationStore, Transition};
use crate::query::{InvocationField, InvocationQuery, Page, SortKey};
use crate::time::format_time;

/// The invocations and their delivery work, as one database: a queue write and an invocation
/// write are one step under the one lock.
#[derive(Debug, Default)]
pub(super) struct Tables {
    pub(super) invocations: BTreeMap<String, Invocation>,
    pub(super) work: BTreeMap<String, Work>,
    /// The order invocations were written in (ordering keys follow it).
    pub(super) accepted: BTreeMap<String, u64>,
}

/// A work row: what a [`crate::ports::WorkItem`] is, plus its lease.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Work {
    pub(super) not_before: DateTime<Utc>,
    pub(super) leased_until: Option<DateTime<Utc>>,
    pub(super) attempts: u32,
}

impl Tables {
    /// Inserts every invocation, or none when any id is taken or twice in the batch.
    pub(super) fn insert_all(&mut self, invocations: &[Invocation]) -> Result<(), Error> {
        let mut ids = std::collections::BTreeSet::new();
        for i in invocations {
            if self.invocations.contains_key(&i.id) || !ids.insert(i.id.as_str()) {
                return Err(Error::AlreadyExists {
                    kind: ResourceKind::Invocation,
                    id: i.id.clone(),
                });
            }
        }
        for i in invocations {
            self.invocations.insert(i.id.clone(), i.clone());
            let next = self.accepted.len() as u64;
            self.accepted.insert(i.id.clone(), next);
        }
        Ok(())
    }

    /// Whether the work of `id` waits for an earlier invocation of its subscription and
    /// ordering key that is not finished yet.
    pub(super) fn waits_its_turn(&self, id: &str) -> bool {
        let Some(invocation) = self.invocations.get(id) else {
            return false;
        };
        let Some(key) = &invocation.ordering_key else {
            return false;
        };
        let seq = self.accepted.get(id).copied().unwrap_or(u64::MAX);
        self.invocations.values().any(|other| {
            other.id != invocation.id
                && other.state.is_open()
                && other.subscription_id == invocation.subscription_id
                && other.ordering_key.as_ref() == Some(key)
                && self.accepted.get(&other.id).is_some_and(|s| *s < seq)
        })
    }
}

/// Invocations by id. `MemoryInvocations::default()` is empty; [`MemoryInvocations::all`] shows
/// what the use case wrote. [`super::MemoryQueue::over`] gives the queue that writes into it.
#[derive(Debug, Clone, Default)]
pub struct MemoryInvocations {
    pub(super) tables: Arc<Mutex<Tables>>,
}

impl MemoryInvocations {
    /// A store holding `invocations` (without work: as if created with `create_all`).
    pub fn with(invocations: impl IntoIterator<Item = Invocation>) -> Self {
        let store = MemoryInvocations::default();
        lock(&store.tables)
            .invocations
            .extend(invocations.into_iter().map(|i| (i.id.clone(), i)));
        store
    }

    /// Every stored invocation, in id order.
    pub fn all(&self) -> Vec<Invocation> {
        lock(&self.tables).invocations.values().cloned().collect()
    }
}

fn field(i: &Invocation, field: InvocationField) -> Option<String> {
    match field {
        InvocationField::TriggerId => Some(i.trigger_id.clone()),
        InvocationField::SubscriptionId => Some(i.subscription_id.clone()),
        InvocationField::SubscriptionName => Some(i.subscription_name.clone()),
        // As the stores keep them: text that sorts in time order.
        InvocationField::Created => Some(format_time(&i.created)),
        InvocationField::Completed => i.completed.as_ref().map(format_time),
    }
}

#[async_trait]
impl InvocationStore for MemoryInvocations {
    async fn create_all(&self, invocations: &[Invocation]) -> Result<(), Error> {
        lock(&self.tables).insert_all(invocations)
    }

    async fn get(&self, id: &str) -> Result<Option<Invocation>, Error> {
        Ok(lock(&self.tables).invocations.get(id).cloned())
    }

    async fn transition(
        &self,
        id: &str,
        from: &[InvocationState],
        transition: &Transition,
    ) -> Result<Invocation, Error> {
        let mut tables = lock(&self.tables);
        let invocation = tables
            .invocations
            .get_mut(id)
            .ok_or_else(|| Error::NotFound {
                kind: ResourceKind::Invocation,
                id: id.to_owned(),
            })?;
        if !from.contains(&invocation.state) {
            return Err(Error::NotOpen {
                id: id.to_owned(),
                status: invocation.state,
            });
        }
        transition.apply_to(invocation);
        Ok(invocation.clone())
    }

    async fn overdue(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Invocation>, Error> {
        let tables = lock(&self.tables);
        let mut overdue: Vec<&Invocation> = tables
            .invocations
            .values()
            .filter(|i| i.state.is_open() && i.due().is_some_and(|d| d < now))
            .collect();
        overdue.sort_by_key(|i| i.due());
        Ok(overdue.into_iter().take(limit).cloned().collect())
    }

    async fn keep_alive(
        &self,
        id: &str,
        due: DateTime<Utc>,
        heartbeat: Option<DateTime<Utc>>,
    ) -> Result<Invocation, Error> {
        let mut tables = lock(&self.tables);
        let invocation = tables
            .invocations
            .get_mut(id)
            .ok_or_else(|| Error::NotFound {
                kind: ResourceKind::Invocation,
                id: id.to_owned(),
            })?;
        if !invocation.state.is_open() {
            return Err(Error::NotOpen {
                id: id.to_owned(),
                status: invocation.state,
            });
        }
        if let Some(timer) = invocation.heartbeat.as_mut() {
            timer.due = Some(due);
            if heartbeat.is_some() {
                timer.last = heartbeat;
            }
        }
        Ok(invocation.clone())
    }
}

#[async_trait]
impl InvocationScans for MemoryInvocations {
    async fn list(&self, query: &InvocationQuery) -> Result<Page<Invocation>, Error> {
        // In id order, and `apply` sorts stably: id is the final tie-break.
        let all = self.all();
        if query.sorters.is_empty() {
            let newest_first = InvocationQuery {
                sorters: vec![SortKey {
                    field: InvocationField::Created,
                    descending: true,
                }],
                ..query.clone()
            };
            return Ok(newest_first.apply(&all, field));
        }
        Ok(query.apply(&all, field))
    }

    async fn purge(
        &self,
        succeeded_before: DateTime<Utc>,
        failed_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, Error> {
        let mut tables = lock(&self.tables);
        let expired: Vec<String> = tables
            .invocations
            .values()
            .filter(|i| {
                let before = match i.state {
                    InvocationState::Completed => succeeded_before,
                    InvocationState::Failed | InvocationState::TimedOut => failed_before,
                    InvocationState::Pending | InvocationState::Acknowledged => return false,
                };
                i.completed.is_some_and(|c| c < before)
            })
            .take(limit)
            .map(|i| i.id.clone())
            .collect();
        for id in &expired {
            // The work goes with its invocation, as the SQLite foreign key takes it.
            tables.invocations.remove(id);
            tables.work.remove(id);
        }
        Ok(expired.len())
    }
}
