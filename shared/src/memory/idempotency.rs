//! [`IdempotencyStore`] on a map.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::lock;
use crate::Error;
use crate::idempotency::{IdempotencyRecord, Raised};
use crate::ports::IdempotencyStore;

/// The in-memory [`IdempotencyStore`]. Clones share their records.
#[derive(Debug, Clone, Default)]
pub struct MemoryIdempotency {
    records: Arc<Mutex<BTreeMap<String, IdempotencyRecord>>>,
}

impl MemoryIdempotency {
    /// How many records are kept (expired or not).
    pub fn len(&self) -> usize {
        lock(&self.records).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotency {
    async fn claim(
        &self,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, Error> {
        let mut records = lock(&self.records);
        match records.get(&record.key) {
            Some(found) if found.expires > now => Ok(Some(found.clone())),
            _ => {
                records.insert(record.key.clone(), record.clone());
                Ok(None)
            }
        }
    }

    async fn record_raised(
        &self,
        key: &str,
        created: DateTime<Utc>,
        raised: &[Raised],
    ) -> Result<(), Error> {
        if let Some(found) = lock(&self.records)
            .get_mut(key)
            .filter(|r| r.created == created)
        {
            found.raised = Some(raised.to_vec());
        }
        Ok(())
    }

    async fn release(&self, key: &str, created: DateTime<Utc>) -> Result<(), Error> {
        let mut records = lock(&self.records);
        if records
            .get(key)
            .is_some_and(|r| r.created == created && r.raised.is_none())
        {
            records.remove(key);
        }
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        let mut records = lock(&self.records);
        let expired: Vec<String> = records
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect();
        for key in &expired {
            records.remove(key);
        }
        Ok(expired.len())
    }
}
