//! Invocations in DynamoDB.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use triggerline::Error;
use triggerline::model::{Attempt, Invocation, InvocationState};
use triggerline::ports::{InvocationStore, Transition};
use triggerline::query::{InvocationQuery, Page};

/// [`InvocationStore`] on one DynamoDB table; the SQS queue writes through it too.
#[derive(Debug, Clone)]
pub struct DynamoInvocationStore {
    client: Client,
    table: String,
}

impl DynamoInvocationStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoInvocationStore {
            client,
            table: table.to_owned(),
        }
    }

    /// The queue's half of `settle`, in one conditional write: appends `attempt`, and applies
    /// `transition` when the state is one of `from` (otherwise leaves the state as it is).
    /// Returns the invocation as written, `None` when it no longer exists.
    pub async fn record_attempt(
        &self,
        _id: &str,
        _attempt: &Attempt,
        _from: &[InvocationState],
        _transition: Option<&Transition>,
    ) -> Result<Option<Invocation>, Error> {
        let _ = (&self.client, &self.table);
        unimplemented!("record_attempt")
    }

    /// The queue's half of `replay`: FAILED back to PENDING (clearing `completed`, `output` and
    /// `error`, setting `deadline`, keeping the attempts), as one conditional write.
    ///
    /// Errors: [`Error::NotFound`]; [`Error::NotOpen`] with the current state when not FAILED.
    pub async fn reopen(
        &self,
        _id: &str,
        _deadline: Option<DateTime<Utc>>,
    ) -> Result<Invocation, Error> {
        unimplemented!("reopen")
    }
}

#[async_trait]
impl InvocationStore for DynamoInvocationStore {
    async fn create_all(&self, _i: &[Invocation]) -> Result<(), Error> {
        unimplemented!("create_all")
    }
    async fn get(&self, _id: &str) -> Result<Option<Invocation>, Error> {
        unimplemented!("get")
    }
    async fn list(&self, _q: &InvocationQuery) -> Result<Page<Invocation>, Error> {
        unimplemented!("list")
    }
    async fn transition(
        &self,
        _id: &str,
        _from: &[InvocationState],
        _t: &Transition,
    ) -> Result<Invocation, Error> {
        unimplemented!("transition")
    }
    async fn overdue(&self, _now: DateTime<Utc>, _limit: usize) -> Result<Vec<Invocation>, Error> {
        unimplemented!("overdue")
    }
    async fn purge(
        &self,
        _s: DateTime<Utc>,
        _f: DateTime<Utc>,
        _limit: usize,
    ) -> Result<usize, Error> {
        unimplemented!("purge")
    }
}
