//! A read-through cache of each trigger's subscriptions, for the intake's fan-out (one lookup
//! per `start`). Only this process writes the local database and every write goes through this
//! decorator, so invalidation is exact: a change is visible to the next `start`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use triggerline::Error;
use triggerline::model::Subscription;
use triggerline::ports::SubscriptionStore;
use triggerline::query::{Page, SubscriptionQuery};

#[derive(Debug)]
pub struct CachedSubscriptions {
    inner: Arc<dyn SubscriptionStore>,
    state: RwLock<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    by_trigger: HashMap<String, Arc<Vec<Subscription>>>,
    /// Bumped by every write; a read that started before a write must not fill the cache.
    generation: u64,
}

impl CachedSubscriptions {
    pub fn new(inner: Arc<dyn SubscriptionStore>) -> Self {
        CachedSubscriptions {
            inner,
            state: RwLock::new(Cache::default()),
        }
    }

    fn invalidate(&self) {
        let mut cache = self.state.write().unwrap_or_else(|e| e.into_inner());
        cache.by_trigger.clear();
        cache.generation += 1;
    }
}

#[async_trait]
impl SubscriptionStore for CachedSubscriptions {
    async fn create(
        &self,
        subscription: &Subscription,
        max_per_trigger: usize,
    ) -> Result<(), Error> {
        let result = self.inner.create(subscription, max_per_trigger).await;
        self.invalidate();
        result
    }

    async fn get(&self, id: &str) -> Result<Option<Subscription>, Error> {
        self.inner.get(id).await
    }

    async fn list(&self, query: &SubscriptionQuery) -> Result<Page<Subscription>, Error> {
        self.inner.list(query).await
    }

    async fn list_for_trigger(&self, trigger_id: &str) -> Result<Vec<Subscription>, Error> {
        let generation = {
            let cache = self.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = cache.by_trigger.get(trigger_id) {
                return Ok(hit.as_ref().clone());
            }
            cache.generation
        };
        let fresh = self.inner.list_for_trigger(trigger_id).await?;
        let mut cache = self.state.write().unwrap_or_else(|e| e.into_inner());
        if cache.generation == generation {
            cache
                .by_trigger
                .insert(trigger_id.to_owned(), Arc::new(fresh.clone()));
        }
        Ok(fresh)
    }

    async fn replace(
        &self,
        subscription: &Subscription,
        expected_version: u64,
    ) -> Result<(), Error> {
        let result = self.inner.replace(subscription, expected_version).await;
        self.invalidate();
        result
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        let result = self.inner.delete(id).await;
        self.invalidate();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triggerline_embedded::{Sqlite, SqliteSubscriptionStore};

    #[tokio::test]
    async fn passes_the_subscription_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("t.db")).await.unwrap();
        let store = CachedSubscriptions::new(Arc::new(SqliteSubscriptionStore::new(db)));
        triggerline::contract::subscription_store(Arc::new(store)).await;
    }
}
