//! The SQS consumer (`dispatcher-queue`): one attempt per work message, and one queued `start`
//! per `Trigger Invocation Requested` event the intake rule routes here
//! ([`crate::requested`]), with partial batch
//! failure reporting (the event source mapping has `FunctionResponseTypes:
//! [ReportBatchItemFailures]`), so one bad record does not send its whole batch back.
//!
//! A record that fails on its last receive before the work queue's redrive is moved to the
//! dead-letter queue by the consumer itself, as a new message, and reported processed, so that it
//! keeps the DLQ's whole retention period ([`SqsDeliveryQueue::dead_letter`]).

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use tokio::sync::Semaphore;
use triggerline::Error;
use triggerline::usecases::delivery::Delivery;
use triggerline_aws::sqs::{FailedMessage, MessageAttribute, SqsDeliveryQueue};

/// Records delivered at once. A batch is usually small (the mapping's `BatchSize`, 10), but a
/// batching window can make it large; each record holds a connection and up to a 10 s attempt,
/// so the fan-out is capped.
pub const MAX_CONCURRENT_RECORDS: usize = 32;

/// Processes every record of `event` concurrently and lists the ones to receive again:
/// a record whose processing failed (the store or queue was unavailable: it is retried after
/// the visibility timeout) and a record whose body is not a work message (it never will be;
/// it reaches the dead-letter queue after `maxReceiveCount` receives, where it can be looked
/// at). A failed delivery attempt is not a failed record: the attempt is recorded and, when
/// retried, re-enqueued by the queue itself. A record failing on its last receive is moved to
/// the dead-letter queue (when `queue` has one) and not listed; if the move fails, it is listed,
/// and the redrive moves it on its next receive.
///
/// A record without a `messageId` cannot be named; if it fails, it is reported with an empty
/// identifier, which Lambda treats as a failure of the whole batch (never seen in practice:
/// SQS always sets one).
pub async fn handle(
    delivery: &Delivery,
    queue: &SqsDeliveryQueue,
    event: SqsEvent,
) -> SqsBatchResponse {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_RECORDS));
    // Spawned rather than joined in place: records run on every core, and a panic in one
    // fails that record only.
    let tasks: Vec<_> = event
        .records
        .into_iter()
        .map(|record| {
            let id = record.message_id.clone().unwrap_or_default();
            let (delivery, queue, permits) = (delivery.clone(), queue.clone(), permits.clone());
            let task = tokio::spawn(async move {
                // The semaphore is never closed, so this always gets a permit.
                let _permit = permits.acquire_owned().await.ok();
                let result = process(&delivery, &queue, &record).await;
                match result {
                    Err(error) if queue.is_last_receive(receive_count(&record)) => {
                        match queue.dead_letter(&failed(&record, &error)).await {
                            Ok(()) => Outcome::DeadLettered(error),
                            Err(move_error) => {
                                tracing::warn!(%error, %move_error, "failed record not moved to the dead-letter queue");
                                Outcome::Failed(error)
                            }
                        }
                    }
                    Err(error) => Outcome::Failed(error),
                    Ok(()) => Outcome::Done,
                }
            });
            (id, task)
        })
        .collect();
    let mut response = SqsBatchResponse::default();
    for (id, task) in tasks {
        let failed = match task.await {
            Ok(Outcome::Done) => false,
            Ok(Outcome::DeadLettered(error)) => {
                tracing::warn!(
                    message_id = %id,
                    %error,
                    "record failed on its last receive; moved to the dead-letter queue"
                );
                false
            }
            Ok(Outcome::Failed(error @ (Error::Invalid { .. } | Error::TooLarge { .. }))) => {
                tracing::warn!(
                    message_id = %id,
                    %error,
                    "not a work message; it goes to the dead-letter queue after its last receive"
                );
                true
            }
            Ok(Outcome::Failed(error)) => {
                tracing::warn!(
                    message_id = %id,
                    %error,
                    "work message not processed; it will be received again"
                );
                true
            }
            Err(error) => {
                tracing::error!(message_id = %id, %error, "work message processing panicked");
                true
            }
        };
        if failed {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// What became of one record.
enum Outcome {
    Done,
    /// It failed on its last receive and is in the dead-letter queue now.
    DeadLettered(Error),
    /// It failed and is to be received again (or redriven).
    Failed(Error),
}

/// `ApproximateReceiveCount`, this receive included; 0 when absent (never the last receive).
fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The record as the dead-letter queue gets it.
fn failed(record: &SqsMessage, error: &Error) -> FailedMessage {
    let attributes: HashMap<String, MessageAttribute> = record
        .message_attributes
        .iter()
        .map(|(name, a)| {
            let attribute = MessageAttribute {
                data_type: a.data_type.clone().unwrap_or_default(),
                string_value: a.string_value.clone(),
                binary_value: a.binary_value.as_ref().map(|b| b.0.clone()),
            };
            (name.clone(), attribute)
        })
        .collect();
    FailedMessage {
        body: record.body.clone().unwrap_or_default(),
        attributes,
        sent_timestamp: record
            .attributes
            .get("SentTimestamp")
            .and_then(|t| t.parse().ok()),
        reason: error.to_string(),
    }
}

/// One record. [`SqsDeliveryQueue::admit_received`] reads the body (an error for one that is no work
/// message), puts a record that is not due back on the queue for the time left (SQS delays a
/// message by 15 minutes at most, so a later one comes round more than once), and drops a stale
/// one: its invocation is gone, finished, or was attempted since the message was queued (the
/// safety net of an inline delivery, or a message whose deletion failed), which delivering
/// would duplicate and would start a second chain of retries. What is left is delivered with the
/// invocation `admit_received` read, or, on a first receive of a message that carries it, with
/// the invocation as carried, unread (the write recording the attempt is conditional instead).
async fn process(
    delivery: &Delivery,
    queue: &SqsDeliveryQueue,
    record: &SqsMessage,
) -> Result<(), Error> {
    let body = record.body.as_deref().unwrap_or_default();
    if let Some(requested) = crate::requested::parse(body) {
        return crate::requested::start(delivery, queue, requested?).await;
    }
    let now = delivery.clock.now();
    let Some(admitted) = queue
        .admit_received(body, now, receive_count(record))
        .await?
    else {
        return Ok(());
    };
    delivery
        .deliver_read(&admitted.item, admitted.invocation)
        .await
        .map(drop)
}
