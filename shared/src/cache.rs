//! A read-through cache of each trigger's subscriptions, for the intake's fan-out (one lookup
//! per `start`). Every write made through this decorator invalidates it, so where one process
//! owns the store (the local stack on SQLite) invalidation is exact: a change is visible to the
//! next `start`. Where other processes write too (the AWS functions: subscriptions are written
//! by another Lambda), entries also expire after a maximum age, which bounds how long a change
//! takes to reach deliveries.
//!
//! Single subscriptions read by id (`get`: a delivery of claimed work, the SQS consumer's or
//! the local worker's) are cached the same way, so a warm consumer reads each subscription once
//! per `max_age`, and the local worker once per write, rather than once per delivery.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::Error;
use crate::model::Subscription;
use crate::ports::{SubscriptionAdmin, SubscriptionStore};
use crate::query::{Page, SubscriptionQuery};
use async_trait::async_trait;

/// Subscriptions cached by id at most: every trigger's subscriptions (at most 50 each, over a
/// fixed catalog) fit many times over, and the map cannot grow without bound on ids that a
/// caller made up.
const MAX_CACHED_IDS: usize = 4096;

/// [`SubscriptionStore`] (and [`SubscriptionAdmin`], when the inner store is one) with each
/// trigger's subscriptions cached. Generic over the inner store, so that a delivering function
/// that caches a concrete store links only the [`SubscriptionStore`] half.
#[derive(Debug)]
pub struct CachedSubscriptions<S: ?Sized = dyn SubscriptionAdmin> {
    inner: Arc<S>,
    /// `None`: entries live until a write through this decorator.
    max_age: Option<Duration>,
    state: RwLock<Cache>,
}

/// A trigger's subscriptions as cached: handing them out copies the `Arc`s, not the models.
type Shared = Arc<[Arc<Subscription>]>;

#[derive(Debug, Default)]
struct Cache {
    by_trigger: HashMap<String, (Instant, Shared)>,
    /// `get` results (a missing subscription too).
    by_id: HashMap<String, (Instant, Option<Arc<Subscription>>)>,
    /// Bumped by every write; a read that started before a write must not fill the cache.
    generation: u64,
}

impl<S: ?Sized> CachedSubscriptions<S> {
    /// A cache that only writes through it invalidate (the store has no other writer).
    pub fn new(inner: Arc<S>) -> Self {
        CachedSubscriptions {
            inner,
            max_age: None,
            state: RwLock::new(Cache::default()),
        }
    }

    /// A cache whose entries are also read again once older than `max_age` (other processes
    /// write the store too).
    pub fn with_max_age(inner: Arc<S>, max_age: Duration) -> Self {
        CachedSubscriptions {
            max_age: Some(max_age),
            ..Self::new(inner)
        }
    }

    /// Whether an entry filled at `filled` may still be served.
    fn fresh(&self, filled: Instant) -> bool {
        self.max_age.is_none_or(|max| filled.elapsed() < max)
    }

    fn invalidate(&self) {
        let mut cache = self.state.write().unwrap_or_else(|e| e.into_inner());
        cache.by_trigger.clear();
        cache.by_id.clear();
        cache.generation += 1;
    }
}

#[async_trait]
impl<S: SubscriptionStore + ?Sized> SubscriptionStore for CachedSubscriptions<S> {
    async fn get(&self, id: &str) -> Result<Option<Subscription>, Error> {
        let generation = {
            let cache = self.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some((filled, hit)) = cache.by_id.get(id) {
                if self.fresh(*filled) {
                    return Ok(hit.as_deref().cloned());
                }
            }
            cache.generation
        };
        let filled = Instant::now();
        let fresh = self.inner.get(id).await?;
        let mut cache = self.state.write().unwrap_or_else(|e| e.into_inner());
        if cache.generation == generation {
            // Bounded like the trigger entries are by the catalog: expired entries go first.
            if cache.by_id.len() >= MAX_CACHED_IDS {
                cache.by_id.retain(|_, (at, _)| self.fresh(*at));
                if cache.by_id.len() >= MAX_CACHED_IDS {
                    cache.by_id.clear();
                }
            }
            cache
                .by_id
                .insert(id.to_owned(), (filled, fresh.clone().map(Arc::new)));
        }
        Ok(fresh)
    }

    async fn list_for_trigger(&self, trigger_id: &str) -> Result<Vec<Arc<Subscription>>, Error> {
        let generation = {
            let cache = self.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some((filled, hit)) = cache.by_trigger.get(trigger_id) {
                if self.fresh(*filled) {
                    return Ok(hit.to_vec());
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
                .insert(trigger_id.to_owned(), (filled, Arc::from(fresh.as_slice())));
        }
        Ok(fresh)
    }

    // Writes invalidate before and after: the store applies a write before its answer arrives,
    // and in between another caller (told of the change by whoever read it from the store) must
    // not be served the entry the write replaced.
    async fn replace(
        &self,
        subscription: &Subscription,
        expected_version: u64,
    ) -> Result<(), Error> {
        self.invalidate();
        let result = self.inner.replace(subscription, expected_version).await;
        self.invalidate();
        result
    }
}

#[async_trait]
impl<S: SubscriptionAdmin + ?Sized> SubscriptionAdmin for CachedSubscriptions<S> {
    async fn create(
        &self,
        subscription: &Subscription,
        max_per_trigger: usize,
    ) -> Result<(), Error> {
        self.invalidate();
        let result = self.inner.create(subscription, max_per_trigger).await;
        self.invalidate();
        result
    }

    async fn list(&self, query: &SubscriptionQuery) -> Result<Page<Subscription>, Error> {
        self.inner.list(query).await
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        self.invalidate();
        let result = self.inner.delete(id).await;
        self.invalidate();
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::duration::IsoDuration;
    use crate::model::{DispatchMode, HttpAuth, HttpTarget, Target};

    /// One subscription, counting the reads that reach it.
    #[derive(Debug, Default)]
    struct Counting {
        stored: Mutex<Option<Subscription>>,
        gets: AtomicUsize,
    }

    #[async_trait]
    impl SubscriptionStore for Counting {
        async fn get(&self, id: &str) -> Result<Option<Subscription>, Error> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            Ok(self.stored.lock().unwrap().clone().filter(|s| s.id == id))
        }
        async fn list_for_trigger(&self, _: &str) -> Result<Vec<Arc<Subscription>>, Error> {
            unimplemented!()
        }
        async fn replace(&self, s: &Subscription, _: u64) -> Result<(), Error> {
            self.create(s, 0).await
        }
    }

    #[async_trait]
    impl SubscriptionAdmin for Counting {
        async fn create(&self, s: &Subscription, _: usize) -> Result<(), Error> {
            *self.stored.lock().unwrap() = Some(s.clone());
            Ok(())
        }

        async fn list(&self, _: &SubscriptionQuery) -> Result<Page<Subscription>, Error> {
            unimplemented!()
        }

        async fn delete(&self, _: &str) -> Result<(), Error> {
            *self.stored.lock().unwrap() = None;
            Ok(())
        }
    }

    fn subscription(name: &str) -> Subscription {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Subscription {
            heartbeat_timeout: None,
            health: Default::default(),
            id: "s".into(),
            name: name.into(),
            description: None,
            trigger_id: "idn:identity-created".into(),
            trigger_name: "Identity Created".into(),
            target: Target::Http(HttpTarget {
                url: "https://hooks.example.com/in".into(),
                mode: DispatchMode::Sync,
                auth: HttpAuth::None,
            }),
            response_deadline: IsoDuration::parse("responseDeadline", "PT1H").unwrap(),
            enabled: true,
            filter: None,
            signing_secret: "whsec_c2lnbmluZy1rZXktb2YtdGhlLXRlc3Q=".into(),
            previous_signing_secret: None,
            created: at,
            modified: at,
            version: 1,
        }
    }

    #[tokio::test]
    async fn with_a_max_age_a_get_is_read_once_until_it_expires_or_a_write_passes() {
        let store = Arc::new(Counting::default());
        store.create(&subscription("first"), 50).await.unwrap();
        let cache = CachedSubscriptions::with_max_age(store.clone(), Duration::from_secs(3600));
        for _ in 0..3 {
            assert_eq!(cache.get("s").await.unwrap().unwrap().name, "first");
        }
        assert_eq!(cache.get("gone").await.unwrap(), None);
        assert_eq!(cache.get("gone").await.unwrap(), None);
        assert_eq!(store.gets.load(Ordering::SeqCst), 2, "one read per id");

        // Another writer's change is not seen within the max age; a write through it is.
        store.replace(&subscription("elsewhere"), 1).await.unwrap();
        assert_eq!(cache.get("s").await.unwrap().unwrap().name, "first");
        cache.replace(&subscription("through"), 1).await.unwrap();
        assert_eq!(cache.get("s").await.unwrap().unwrap().name, "through");

        let expiring = CachedSubscriptions::with_max_age(store.clone(), Duration::ZERO);
        let before = store.gets.load(Ordering::SeqCst);
        expiring.get("s").await.unwrap();
        expiring.get("s").await.unwrap();
        assert_eq!(store.gets.load(Ordering::SeqCst), before + 2);
    }

    /// A store whose writes land at once but answer only when released, as a remote store's
    /// answer arrives after the write is visible to every other reader.
    #[derive(Debug, Default)]
    struct Landing {
        inner: Counting,
        landed: tokio::sync::Notify,
        release: tokio::sync::Notify,
    }

    #[async_trait]
    impl SubscriptionStore for Landing {
        async fn get(&self, id: &str) -> Result<Option<Subscription>, Error> {
            self.inner.get(id).await
        }
        async fn list_for_trigger(&self, _: &str) -> Result<Vec<Arc<Subscription>>, Error> {
            unimplemented!()
        }
        async fn replace(&self, s: &Subscription, _: u64) -> Result<(), Error> {
            self.inner.create(s, 0).await?;
            self.landed.notify_one();
            self.release.notified().await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_write_that_landed_is_seen_before_its_answer_arrives() {
        let store = Arc::new(Landing::default());
        store
            .inner
            .create(&subscription("first"), 50)
            .await
            .unwrap();
        let cache = Arc::new(CachedSubscriptions::with_max_age(
            store.clone(),
            Duration::from_secs(3600),
        ));
        assert_eq!(cache.get("s").await.unwrap().unwrap().name, "first");

        let writer = Arc::clone(&cache);
        let write = tokio::spawn(async move { writer.replace(&subscription("disabled"), 1).await });
        store.landed.notified().await;
        assert_eq!(
            cache.get("s").await.unwrap().unwrap().name,
            "disabled",
            "the store has the write: the cache must not answer with what it replaced"
        );
        store.release.notify_one();
        write.await.unwrap().unwrap();
        assert_eq!(cache.get("s").await.unwrap().unwrap().name, "disabled");
    }

    /// The local stack's cache: every write passes through it, so an entry lives until one
    /// does (a replace, a create, a delete).
    #[tokio::test]
    async fn without_a_max_age_a_get_is_read_once_until_a_write_passes() {
        let store = Arc::new(Counting::default());
        store.create(&subscription("first"), 50).await.unwrap();
        let cache = CachedSubscriptions::new(store.clone());
        for _ in 0..3 {
            assert_eq!(cache.get("s").await.unwrap().unwrap().name, "first");
        }
        assert_eq!(store.gets.load(Ordering::SeqCst), 1);

        cache.replace(&subscription("through"), 1).await.unwrap();
        assert_eq!(cache.get("s").await.unwrap().unwrap().name, "through");
        cache.delete("s").await.unwrap();
        assert_eq!(cache.get("s").await.unwrap(), None);
        cache.create(&subscription("again"), 50).await.unwrap();
        assert_eq!(cache.get("s").await.unwrap().unwrap().name, "again");
        assert_eq!(store.gets.load(Ordering::SeqCst), 4);
    }
}
