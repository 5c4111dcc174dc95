//! [`SubscriptionStore`] on a map.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::lock;
use crate::Error;
use crate::catalog::Catalog;
use crate::error::ResourceKind;
use crate::model::{Subscription, TriggerType};
use crate::ports::{SubscriptionAdmin, SubscriptionStore};
use crate::query::{Page, SubscriptionField, SubscriptionQuery};

/// Subscriptions by id. `MemorySubscriptions::default()` is empty; [`MemorySubscriptions::all`]
/// shows what the use case wrote.
#[derive(Debug, Clone, Default)]
pub struct MemorySubscriptions {
    by_id: Arc<Mutex<BTreeMap<String, Subscription>>>,
}

impl MemorySubscriptions {
    /// A store holding `subscriptions`, as if each had been created (without the limit).
    pub fn with(subscriptions: impl IntoIterator<Item = Subscription>) -> Self {
        let store = MemorySubscriptions::default();
        lock(&store.by_id).extend(subscriptions.into_iter().map(|s| (s.id.clone(), s)));
        store
    }

    /// Every stored subscription, in id order.
    pub fn all(&self) -> Vec<Subscription> {
        lock(&self.by_id).values().cloned().collect()
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        kind: ResourceKind::Subscription,
        id: id.to_owned(),
    }
}

#[async_trait]
impl SubscriptionStore for MemorySubscriptions {
    async fn get(&self, id: &str) -> Result<Option<Subscription>, Error> {
        Ok(lock(&self.by_id).get(id).cloned())
    }

    async fn list_for_trigger(&self, trigger_id: &str) -> Result<Vec<Arc<Subscription>>, Error> {
        Ok(lock(&self.by_id)
            .values()
            .filter(|s| s.trigger_id == trigger_id)
            .map(|s| Arc::new(s.clone()))
            .collect())
    }

    async fn replace(
        &self,
        subscription: &Subscription,
        expected_version: u64,
    ) -> Result<(), Error> {
        let mut by_id = lock(&self.by_id);
        let stored = by_id
            .get_mut(&subscription.id)
            .ok_or_else(|| not_found(&subscription.id))?;
        if stored.version != expected_version {
            return Err(Error::Conflict {
                kind: ResourceKind::Subscription,
                id: subscription.id.clone(),
            });
        }
        *stored = subscription.clone();
        Ok(())
    }
}

#[async_trait]
impl SubscriptionAdmin for MemorySubscriptions {
    async fn create(
        &self,
        subscription: &Subscription,
        max_per_trigger: usize,
    ) -> Result<(), Error> {
        let mut by_id = lock(&self.by_id);
        let mut same_trigger = by_id
            .values()
            .filter(|s| s.trigger_id == subscription.trigger_id)
            .map(|s| &s.id);
        // The limit is checked first, and names the trigger's first subscription by id, as the
        // SQLite store does.
        let first = same_trigger.next().cloned();
        let count = usize::from(first.is_some()) + same_trigger.count();
        if count >= max_per_trigger {
            return Err(Error::SubscriptionLimit {
                trigger_id: subscription.trigger_id.clone(),
                trigger_type: Catalog::builtin()
                    .get(&subscription.trigger_id)
                    .map_or(TriggerType::FireAndForget, |e| e.trigger.trigger_type),
                limit: max_per_trigger,
                existing: first.unwrap_or_default(),
            });
        }
        if by_id.contains_key(&subscription.id) {
            return Err(Error::AlreadyExists {
                kind: ResourceKind::Subscription,
                id: subscription.id.clone(),
            });
        }
        by_id.insert(subscription.id.clone(), subscription.clone());
        Ok(())
    }

    async fn list(&self, query: &SubscriptionQuery) -> Result<Page<Subscription>, Error> {
        // In id order, and `apply` sorts stably: id is the final tie-break.
        let all = self.all();
        Ok(query.apply(&all, |s, field| {
            Some(match field {
                SubscriptionField::Id => s.id.clone(),
                SubscriptionField::TriggerId => s.trigger_id.clone(),
                SubscriptionField::Type => s.subscription_type().as_str().to_owned(),
                SubscriptionField::TriggerName => s.trigger_name.clone(),
            })
        }))
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        lock(&self.by_id)
            .remove(id)
            .map(drop)
            .ok_or_else(|| not_found(id))
    }
}
