//! The delivery queue on SQS.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use chrono::{DateTime, Utc};
use triggerline::Error;
use triggerline::model::{Attempt, Invocation, InvocationState};
use triggerline::ports::{DeliveryQueue, NextStep, Transition, WorkItem};

use crate::dynamo::DynamoInvocationStore;

/// The queue's URL: `queue` itself when it is one, else looked up by name.
pub async fn resolve_queue_url(_sqs: &Client, _queue: &str) -> Result<String, Error> {
    unimplemented!("resolve_queue_url")
}

/// Creates the work queue and its dead-letter queue (redrive after 5 receives) if missing.
pub async fn create_missing_queues(_sqs: &Client, _work: &str, _dlq: &str) -> Result<(), Error> {
    unimplemented!("create_missing_queues")
}

/// Reads a work message's body (what the SQS consumer Lambda receives).
pub fn parse_work_message(_body: &str) -> Result<WorkItem, Error> {
    unimplemented!("parse_work_message")
}

/// [`DeliveryQueue`] on an SQS queue, writing invocations through DynamoDB.
#[derive(Debug, Clone)]
pub struct SqsDeliveryQueue {
    sqs: Client,
    queue_url: String,
    invocations: Arc<DynamoInvocationStore>,
}

impl SqsDeliveryQueue {
    pub fn new(sqs: Client, queue_url: String, invocations: Arc<DynamoInvocationStore>) -> Self {
        SqsDeliveryQueue {
            sqs,
            queue_url,
            invocations,
        }
    }

    /// Puts a received item that is not due yet back on the queue, delayed by what is left (at
    /// most SQS's 15 minutes; it comes back as often as needed).
    pub async fn defer(&self, _item: &WorkItem, _now: DateTime<Utc>) -> Result<(), Error> {
        let _ = (&self.sqs, &self.queue_url, &self.invocations);
        unimplemented!("defer")
    }
}

#[async_trait]
impl DeliveryQueue for SqsDeliveryQueue {
    async fn accept(
        &self,
        _invocations: &[Invocation],
        _not_before: DateTime<Utc>,
        _leased_until: Option<DateTime<Utc>>,
    ) -> Result<Vec<WorkItem>, Error> {
        unimplemented!("accept")
    }
    async fn claim_due(
        &self,
        _now: DateTime<Utc>,
        _lease_until: DateTime<Utc>,
        _limit: usize,
    ) -> Result<Vec<WorkItem>, Error> {
        unimplemented!("claim_due")
    }
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, Error> {
        unimplemented!("next_due")
    }
    async fn settle(
        &self,
        _id: &str,
        _attempt: &Attempt,
        _from: &[InvocationState],
        _transition: Option<&Transition>,
        _next: &NextStep,
    ) -> Result<Option<Invocation>, Error> {
        unimplemented!("settle")
    }
    async fn replay(
        &self,
        _id: &str,
        _deadline: Option<DateTime<Utc>>,
        _not_before: DateTime<Utc>,
        _leased_until: Option<DateTime<Utc>>,
    ) -> Result<WorkItem, Error> {
        unimplemented!("replay")
    }
    async fn discard(&self, _id: &str) -> Result<(), Error> {
        unimplemented!("discard")
    }
    async fn release_all(&self) -> Result<(), Error> {
        unimplemented!("release_all")
    }
}
