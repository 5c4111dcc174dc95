//! The ports: what the use cases need from the outside world, as traits the adapters implement
//! (`infra/embedded` on SQLite, `infra/aws` on DynamoDB). Conditional writes are part of each
//! contract; `crate::contract` (feature `test-support`) holds the suite every adapter must pass.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::Error;
use crate::model::{Invocation, InvocationState, Subscription};
use crate::query::{InvocationQuery, Page, SubscriptionQuery};

/// Where subscriptions live.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + std::fmt::Debug {
    /// Inserts `subscription` unless its trigger already has `max_per_trigger` subscriptions.
    ///
    /// The count and the insert are one atomic step, so two concurrent creates cannot both pass
    /// the limit. Errors: [`Error::SubscriptionLimit`] (naming any one existing subscription of
    /// the trigger) when the trigger is full, checked first; [`Error::AlreadyExists`] when the id
    /// is taken.
    async fn create(
        &self,
        subscription: &Subscription,
        max_per_trigger: usize,
    ) -> Result<(), Error>;

    /// The subscription with this id, if any.
    async fn get(&self, id: &str) -> Result<Option<Subscription>, Error>;

    /// One page of subscriptions matching `query`. Ties in the sort order are broken by id,
    /// and without sorters the order is by id, so pages never overlap.
    async fn list(&self, query: &SubscriptionQuery) -> Result<Page<Subscription>, Error>;

    /// Every subscription of one trigger, enabled or not (the dispatcher's fan-out), in no
    /// particular order.
    async fn list_for_trigger(&self, trigger_id: &str) -> Result<Vec<Subscription>, Error>;

    /// Replaces the stored subscription if its stored `version` is still `expected_version`.
    ///
    /// Errors: [`Error::NotFound`] when it is gone; [`Error::Conflict`] when another write came
    /// first.
    async fn replace(
        &self,
        subscription: &Subscription,
        expected_version: u64,
    ) -> Result<(), Error>;

    /// Deletes the subscription. Errors: [`Error::NotFound`] when there is none.
    async fn delete(&self, id: &str) -> Result<(), Error>;
}

/// How an open invocation ends (or moves on), as one conditional write.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub to: InvocationState,
    /// Set when `to` is final.
    pub completed: Option<DateTime<Utc>>,
    pub output: Option<Value>,
    pub error: Option<String>,
}

/// Where invocations and their outcomes live.
#[async_trait]
pub trait InvocationStore: Send + Sync + std::fmt::Debug {
    /// Inserts every invocation in one atomic, durable step (all or none).
    ///
    /// Errors: [`Error::AlreadyExists`] when any id is taken, or appears twice in the batch; then
    /// none is written.
    async fn create_all(&self, invocations: &[Invocation]) -> Result<(), Error>;

    /// The invocation with this id, if any.
    async fn get(&self, id: &str) -> Result<Option<Invocation>, Error>;

    /// One page of invocations matching `query`. Ties in the sort order are broken by id; with
    /// no sorters the newest come first.
    async fn list(&self, query: &InvocationQuery) -> Result<Page<Invocation>, Error>;

    /// Moves the invocation to `transition.to` if its state is still one of `from`, sets
    /// `completed`, `output` and `error` to the transition's values (`None` clears), and returns
    /// it as written. Exactly one of several concurrent transitions from the same state wins.
    ///
    /// Errors: [`Error::NotFound`] when there is none; [`Error::NotOpen`] (with the current
    /// state) when its state is not in `from`.
    async fn transition(
        &self,
        id: &str,
        from: &[InvocationState],
        transition: &Transition,
    ) -> Result<Invocation, Error>;
}
