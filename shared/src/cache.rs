//! A read-through cache of each trigger's subscriptions, for the intake's fan-out (one lookup
//! per `start`). Every write made through this decorator invalidates it, so where one process
//! owns the store (the local stack on SQLite) invalidation is exact: a change is visible to the
//! next `start`. Where other processes write too (the AWS functions: subscriptions are written
//! by another Lambda), entries also expire after a maximum age, which bounds how long a change
//! takes to reach deliveries.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::Error;
use crate::model::Subscription;
use crate::ports::SubscriptionStore;
use crate::query::{Page, SubscriptionQuery};
use async_trait::async_trait;

/// [`SubscriptionStore`] with each trigger's subscriptions cached.
#[derive(Debug)]
pub struct CachedSubscriptions {
    inner: Arc<dyn SubscriptionStore>,
    /// `None`: entries live until a write through this decorator.
    max_age: Option<Duration>,
    state: RwLock<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    by_trigger: HashMap<String, (Instant, Arc<Vec<Subscription>>)>,
    /// Bumped by every write; a read that started before a write must not fill the cache.
    generation: u64,
}

impl CachedSubscriptions {
    /// A cache that only writes through it invalidate (the store has no other writer).
    pub fn new(inner: Arc<dyn SubscriptionStore>) -> Self {
        CachedSubscriptions {
            inner,
            max_age: None,
            state: RwLock::new(Cache::default()),
        }
    }

    /// A cache whose entries are also read again once older than `max_age` (other processes
    /// write the store too).
    pub fn with_max_age(inner: Arc<dyn SubscriptionStore>, max_age: Duration) -> Self {
        CachedSubscriptions {
            max_age: Some(max_age),
            ..Self::new(inner)
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
            if let Some((filled, hit)) = cache.by_trigger.get(trigger_id) {
                if self.max_age.is_none_or(|max| filled.elapsed() < max) {
                    return Ok(hit.as_ref().clone());
                }
            }
            cache.generation
        };
        let filled = Instant::now();
        let fresh = self.inner.list_for_trigger(trigger_id).await?;
        let mut cache = self.state.write().unwrap_or_else(|e| e.into_inner());
        if cache.generation == generation {
            cache
                .by_trigger
                .insert(trigger_id.to_owned(), (filled, Arc::new(fresh.clone())));
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
