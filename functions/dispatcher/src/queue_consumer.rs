//! The SQS consumer (`dispatcher-queue`): one attempt per work message, and one queued `start`
//! per `Trigger Invocation Requested` event the intake rule routes here
//! ([`crate::requested`]), with partial batch
//! failure reporting (the event source mapping has `FunctionResponseTypes:
//! [ReportBatchItemFailures]`), so one bad record does not send its whole batch back.
//!
//! A record that fails on its last receive before the work queue's redrive is moved to the
//! dead-letter queue by the consumer itself, as a new message, and reported processed, so that it
//! keeps the DLQ's whole retention period ([`SqsDeliveryQueue::dead_letter`]).
//!
//! The same function consumes the ordered (FIFO) queue: its records carry a `MessageGroupId`
//! (one subscription and ordering key) and are processed one key at a time, in order
//! ([`ordered_group`]).

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
/// and the redrive moves it on its next receive. Records of the ordered queue also list
/// those whose invocation is not finished: their messages stay in flight, holding their key.
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
    // Records of the ordered queue, by message group (one subscription and ordering key), in
    // the order SQS gave them; the others each on their own.
    let mut groups: Vec<(String, Vec<SqsMessage>)> = Vec::new();
    let mut singles = Vec::new();
    for record in event.records {
        match record.attributes.get("MessageGroupId").cloned() {
            Some(group) => match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, records)) => records.push(record),
                None => groups.push((group, vec![record])),
            },
            None => singles.push(record),
        }
    }
    // Spawned rather than joined in place: records run on every core, and a panic in one
    // fails that record (or that group) only.
    let mut tasks = Vec::new();
    for record in singles {
        let ids = vec![record.message_id.clone().unwrap_or_default()];
        let (delivery, queue, permits) = (delivery.clone(), queue.clone(), permits.clone());
        let task = tokio::spawn(async move {
            // The semaphore is never closed, so this always gets a permit.
            let _permit = permits.acquire_owned().await.ok();
            vec![one(&delivery, &queue, &record).await]
        });
        tasks.push((ids, task));
    }
    for (_, records) in groups {
        let ids = records
            .iter()
            .map(|r| r.message_id.clone().unwrap_or_default())
            .collect();
        let (delivery, queue, permits) = (delivery.clone(), queue.clone(), permits.clone());
        let task = tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.ok();
            ordered_group(&delivery, &queue, records).await
        });
        tasks.push((ids, task));
    }
    let mut response = SqsBatchResponse::default();
    for (ids, task) in tasks {
        let outcomes = match task.await {
            Ok(outcomes) => outcomes,
            Err(error) => {
                tracing::error!(message_ids = ?ids, %error, "work message processing panicked");
                ids.iter().map(|_| Outcome::Panicked).collect()
            }
        };
        for (id, outcome) in ids.into_iter().zip(outcomes) {
            if outcome.is_failure(&id) {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
    }
    response
}

/// One record of the work queue.
async fn one(delivery: &Delivery, queue: &SqsDeliveryQueue, record: &SqsMessage) -> Outcome {
    match process(delivery, queue, record).await {
        Err(error) if queue.is_last_receive(receive_count(record)) => {
            dead_letter(queue, record, error).await
        }
        Err(error) => Outcome::Failed(error),
        Ok(()) => Outcome::Done,
    }
}

/// The records of one key of the ordered queue, one after the other, in order: the first
/// whose invocation is not finished stays in flight (reported failed, so that the mapping
/// leaves it to its visibility timeout) and the ones behind it are let go unprocessed, to
/// come back once it is deleted. A record that fails also holds the key (it is received again;
/// there is no redrive on this queue), except one that is no work message at all, which is
/// moved to the dead-letter queue at once.
async fn ordered_group(
    delivery: &Delivery,
    queue: &SqsDeliveryQueue,
    records: Vec<SqsMessage>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(records.len());
    let mut blocked = false;
    for record in records {
        if blocked {
            if let Some(handle) = &record.receipt_handle {
                queue.let_go(handle).await;
            }
            outcomes.push(Outcome::Behind);
            continue;
        }
        let outcome = match process_ordered(delivery, queue, &record).await {
            Ok(false) => Outcome::Done,
            Ok(true) => Outcome::Kept,
            Err(error @ Error::Invalid { .. }) => dead_letter(queue, &record, error).await,
            Err(error) => Outcome::Failed(error),
        };
        blocked = matches!(outcome, Outcome::Kept | Outcome::Failed(_));
        outcomes.push(outcome);
    }
    outcomes
}

/// Moves a failed record to the dead-letter queue; if that fails, it stays failed.
async fn dead_letter(queue: &SqsDeliveryQueue, record: &SqsMessage, error: Error) -> Outcome {
    match queue.dead_letter(&failed(record, &error)).await {
        Ok(()) => Outcome::DeadLettered(error),
        Err(move_error) => {
            tracing::warn!(%error, %move_error, "failed record not moved to the dead-letter queue");
            Outcome::Failed(error)
        }
    }
}

/// One record of the ordered queue ([`SqsDeliveryQueue::admit_ordered`]): delivered when it
/// is its invocation's turn. Returns whether its message stays in flight, holding its key.
async fn process_ordered(
    delivery: &Delivery,
    queue: &SqsDeliveryQueue,
    record: &SqsMessage,
) -> Result<bool, Error> {
    let body = record.body.as_deref().unwrap_or_default();
    let id = triggerline_aws::sqs::parse_message(body)?.invocation_id;
    let handle = record.receipt_handle.as_deref().unwrap_or_default();
    let now = delivery.clock.now();
    if let Some(admitted) = queue.admit_ordered(body, handle, now).await? {
        delivery
            .deliver_read(&admitted.item, admitted.invocation)
            .await?;
    }
    Ok(queue.keeps(&id).await)
}

/// What became of one record.
enum Outcome {
    Done,
    /// It failed on its last receive and is in the dead-letter queue now.
    DeadLettered(Error),
    /// It failed and is to be received again (or redriven).
    Failed(Error),
    /// An ordered record whose invocation is not finished: kept in flight, holding its key.
    Kept,
    /// An ordered record behind a kept or failed one of its key: not processed, let go.
    Behind,
    /// Its task panicked.
    Panicked,
}

impl Outcome {
    /// Whether the record is listed for the mapping to leave (not delete), logging why.
    fn is_failure(&self, id: &str) -> bool {
        match self {
            Outcome::Done => false,
            Outcome::DeadLettered(error) => {
                tracing::warn!(message_id = %id, %error,
                    "record failed on its last receive; moved to the dead-letter queue");
                false
            }
            Outcome::Failed(error @ (Error::Invalid { .. } | Error::TooLarge { .. })) => {
                tracing::warn!(message_id = %id, %error,
                    "not a work message; it goes to the dead-letter queue after its last receive");
                true
            }
            Outcome::Failed(error) => {
                tracing::warn!(message_id = %id, %error,
                    "work message not processed; it will be received again");
                true
            }
            Outcome::Kept | Outcome::Behind | Outcome::Panicked => true,
        }
    }
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
