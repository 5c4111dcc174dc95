//! Invocation status: the list and the detail of one invocation.

use std::sync::Arc;

use crate::error::ResourceKind;
use crate::model::Invocation;
use crate::ports::InvocationStore;
use crate::query::{InvocationQuery, Page};
use crate::{Error, Result};

/// The status-query use cases.
#[derive(Debug, Clone)]
pub struct InvocationStatuses {
    store: Arc<dyn InvocationStore>,
}

impl InvocationStatuses {
    pub fn new(store: Arc<dyn InvocationStore>) -> Self {
        InvocationStatuses { store }
    }

    pub async fn list(&self, query: &InvocationQuery) -> Result<Page<Invocation>> {
        self.store.list(query).await
    }

    pub async fn get(&self, id: &str) -> Result<Invocation> {
        self.store.get(id).await?.ok_or_else(|| Error::NotFound {
            kind: ResourceKind::Invocation,
            id: id.to_owned(),
        })
    }
}
