//! Invocation status: the list and the detail of one invocation.

use std::sync::Arc;

use crate::error::ResourceKind;
use crate::model::Invocation;
use crate::ports::InvocationScans;
use crate::query::{InvocationQuery, Page};
use crate::{Error, Result};

/// The status-query use cases.
#[derive(Debug, Clone)]
pub struct InvocationStatuses {
    store: Arc<dyn InvocationScans>,
}

impl InvocationStatuses {
    pub fn new(store: Arc<dyn InvocationScans>) -> Self {
        InvocationStatuses { store }
    }

    pub async fn list(&self, query: &InvocationQuery) -> Result<Page<Invocation>> {
        self.store.list(query).await
    }

    /// One invocation. An id that cannot be one (over [`MAX_ID_BYTES`]) is a 400 without a store
    /// read: DynamoDB refuses keys over 2 KB with an error that is not the caller's 404.
    pub async fn get(&self, id: &str) -> Result<Invocation> {
        require_invocation_id(id)?;
        self.store.get(id).await?.ok_or_else(|| Error::NotFound {
            kind: ResourceKind::Invocation,
            id: id.to_owned(),
        })
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
