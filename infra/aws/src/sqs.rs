//! The delivery queue on SQS.
//!
//! The durable record of an invocation is its DynamoDB item; the SQS work queue carries one small
//! message per piece of delivery work ([`WorkMessage`]):
//!
//! ```json
//! {"invocationId": "…", "notBefore": 1741944413271, "attempts": 0, "recorded": 0}
//! ```
//!
//! `notBefore` is epoch milliseconds, `attempts` the attempts made in this round of delivery (the
//! retry budget), `recorded` how many attempts the invocation had recorded when the message was
//! queued.
//!
//! The first message of an accept that no process delivers in memory (the Lambda intake) also
//! carries the invocation (`"invocation": {…}`), so that the consumer delivers it without
//! reading it back ([`SqsDeliveryQueue::admit_received`]), and `"unrecorded": true` when the
//! invocation was not written at all: nobody can call back before its outcome is written (see
//! `outcome_first`), so the message, which SQS keeps as durably as DynamoDB keeps an item, is its
//! record until the consumer writes it with the outcome of its first attempt
//! ([`DynamoInvocationStore::create_delivered`]). Work delivered unread is judged by the write
//! that records its attempt instead of by a read: it is conditional on the attempts the message
//! was queued with ([`DynamoInvocationStore::record_attempt_if_current`]), so of two copies only
//! the first to record queues a retry. A message is *stale* once the invocation records more attempts than that: someone
//! delivered it since and queued its own follow-up, so the message is deleted unprocessed (the
//! rule is the domain's, [`triggerline::work::is_stale`]; this adapter only applies it). That
//! is what makes the safety net of a leased item (see [`DeliveryQueue::accept`]) harmless when
//! the in-memory delivery did happen, and what keeps a message whose deletion failed from
//! starting a second chain of retries.
//!
//! SQS delays a message by at most 15 minutes. A message received before its `notBefore` is sent
//! again, delayed by what is left (at most 15 minutes), and the received one deleted
//! ([`SqsDeliveryQueue::defer`]); a new message also starts the receive count (the redrive to the
//! dead-letter queue after 5 receives) afresh.
//!
//! A message that fails on its last receive before the work queue's redrive (the
//! `maxReceiveCount`th) is moved to the dead-letter queue by the consumer itself, as a new message
//! ([`SqsDeliveryQueue::dead_letter`]): SQS's redrive keeps a message's original enqueue time, so
//! the DLQ's 14 days would count from when it was first queued; a new message gets all 14 days.
//! The redrive stays the safety net for a message whose consumer never answers (a crash, a
//! timeout) or whose move fails.
//!
//! ## Ordering keys
//!
//! Work of an invocation with an ordering key goes to a second queue, a FIFO queue, with one
//! message group per subscription and key ([`order_group`]). SQS hands out nothing more of a group
//! while one of its messages is in flight, and the group's messages in the order they were sent;
//! so the one message of an ordered invocation stays in flight until the invocation is finished
//! (the domain's rule, [`work::ordered_step`]; this adapter applies it): its visibility is
//! extended until a retry is due, while its subscription's circuit holds it, or, acknowledged,
//! for the recheck interval, after which it is looked at again; a finished (or vanished)
//! invocation's message is deleted, and the next of its key goes.
//! No second message is ever queued for ordered work (a new message would go to the end of its
//! group): a retry's attempt count is the invocation's recorded attempts less those recorded
//! when the message was sent. FIFO queues take no per-message delay, so a delayed start's message
//! is kept in flight until due, holding its key, which is the order asked for. The queue has
//! no redrive (a message moved aside would let the next of its key overtake it).
//!
//! Receipt handles of received messages are held in memory (invocation id → handle) so that
//! `settle` and `discard` can delete the message. On Lambda the SQS event source mapping deletes
//! the messages a function processed successfully, so settling without a held handle is normal.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::primitives::Blob;
#[cfg(feature = "create-resources")]
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    SendMessageBatchRequestEntry,
};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use triggerline::Error;
use triggerline::limits::SQS_MESSAGE_BYTES;
use triggerline::model::{Attempt, DispatchMode, Invocation, InvocationState, InvocationType};
use triggerline::ports::{
    DeliveryQueue, InvocationStore, NextStep, Transition, WorkItem, WorkSource,
};
use triggerline::work::{self, OrderedStep};

use crate::dynamo::{DynamoInvocationStore, Recorded, Unsent};
use crate::error::{AwsFailure, unavailable};

/// The longest delay SQS takes (`DelaySeconds`), in seconds.
pub const MAX_DELAY_SECONDS: i64 = 900;
/// The longest visibility timeout SQS takes, in seconds (12 hours).
const MAX_VISIBILITY_SECONDS: i64 = 43_200;
/// Entries per `SendMessageBatch` / `DeleteMessageBatch`, and messages per `ReceiveMessage`.
const BATCH: usize = 10;
/// Receives after which the work queue moves a message to its dead-letter queue.
pub const MAX_RECEIVE_COUNT: u32 = 5;

/// The queue's URL: `queue` itself when it is one, else looked up by name.
pub async fn resolve_queue_url(sqs: &Client, queue: &str) -> Result<String, Error> {
    if queue.starts_with("http") {
        return Ok(queue.to_owned());
    }
    let out = sqs
        .get_queue_url()
        .queue_name(queue)
        .send()
        .await
        .map_err(|e| unavailable("GetQueueUrl", e))?;
    out.queue_url
        .ok_or_else(|| failure("GetQueueUrl", format!("no URL for queue {queue}")))
}

/// Creates the work queue and its dead-letter queue (redrive after 5 receives) if missing.
#[cfg(feature = "create-resources")]
pub async fn create_missing_queues(sqs: &Client, work: &str, dlq: &str) -> Result<(), Error> {
    let dlq_url = create_queue(sqs, dlq, HashMap::new()).await?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| unavailable("GetQueueAttributes", e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| failure("GetQueueAttributes", format!("no ARN for queue {dlq}")))?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT.to_string(),
    });
    let attributes = HashMap::from([(QueueAttributeName::RedrivePolicy, redrive.to_string())]);
    create_queue(sqs, work, attributes).await.map(drop)
}

/// Creates the FIFO queue of ordered work if missing. No redrive: an ordered message that fails
/// is received again until it succeeds (moving it aside would let the next of its key overtake
/// it); one that is no work message is moved to the dead-letter queue by its consumer.
#[cfg(feature = "create-resources")]
pub async fn create_missing_ordered_queue(sqs: &Client, name: &str) -> Result<(), Error> {
    let attributes = HashMap::from([(QueueAttributeName::FifoQueue, "true".to_owned())]);
    create_queue(sqs, name, attributes).await.map(drop)
}

/// `CreateQueue`, which returns the existing queue when its attributes are equal. A queue that
/// exists with other attributes (changed by hand or by a template) is left as it is.
#[cfg(feature = "create-resources")]
async fn create_queue(
    sqs: &Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, Error> {
    let created = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await;
    match created {
        Ok(out) => out
            .queue_url
            .ok_or_else(|| failure("CreateQueue", format!("no URL for queue {name}"))),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_name_exists()) =>
        {
            tracing::warn!(
                queue = name,
                "queue exists with other attributes; left as it is"
            );
            resolve_queue_url(sqs, name).await
        }
        Err(e) => Err(unavailable("CreateQueue", e)),
    }
}

/// The body of a work message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkMessage {
    pub invocation_id: String,
    /// Epoch milliseconds.
    pub not_before: i64,
    pub attempts: u32,
    /// Attempts the invocation had recorded when this was queued; absent in a message of unknown
    /// origin, which is then never taken for stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<usize>,
    /// The invocation itself, on the first message of an accept that no process delivers in
    /// memory (the Lambda intake): the consumer delivers it without reading it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ///
    /// Kept as JSON here and read with [`WorkMessage::carried`]: converting through a `Value`
    /// reuses the invocation codec the DynamoDB store links anyway, where a typed field would
    /// compile a second one into every function that sends or receives work.
    pub invocation: Option<serde_json::Value>,
    /// The message is the invocation's only record until its first attempt is written
    /// (no DynamoDB write at accept: nothing can call back before the outcome is written).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unrecorded: bool,
}

impl WorkMessage {
    /// The invocation this message carries, if any.
    ///
    /// Errors: [`Error::Invalid`] when it carries something that is no invocation.
    pub fn carried(&self) -> Result<Option<Invocation>, Error> {
        self.invocation
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| Error::invalid("invocation", format!("not an invocation: {e}")))
    }

    fn item(&self) -> Result<WorkItem, Error> {
        Ok(WorkItem {
            invocation_id: self.invocation_id.clone(),
            not_before: Utc
                .timestamp_millis_opt(self.not_before)
                .single()
                .ok_or_else(|| Error::invalid("notBefore", "out of range"))?,
            attempts: self.attempts,
        })
    }

    fn body(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether `invocation` moved on since this message was queued (the domain's rule,
    /// [`work::is_stale`]).
    fn is_stale(&self, invocation: Option<&Invocation>) -> bool {
        work::is_stale(self.recorded, invocation)
    }

    /// What becomes of this message of the ordered queue (the domain's rule,
    /// [`work::ordered_step`]).
    ///
    /// Errors: [`Error::Invalid`] for a message whose time is out of range.
    fn ordered_step(
        &self,
        invocation: Option<&Invocation>,
        now: DateTime<Utc>,
        recheck: chrono::Duration,
    ) -> Result<OrderedStep, Error> {
        Ok(work::ordered_step(
            self.item()?,
            self.recorded,
            invocation,
            now,
            recheck,
        ))
    }
}

/// A received message that is due and current: the work, and its invocation as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub item: WorkItem,
    pub invocation: Invocation,
}

/// Reads a work message's body (what the SQS consumer Lambda receives).
pub fn parse_work_message(body: &str) -> Result<WorkItem, Error> {
    parse_message(body)?.item()
}

/// Reads a work message's body with everything it carries.
pub fn parse_message(body: &str) -> Result<WorkMessage, Error> {
    let message: WorkMessage = serde_json::from_str(body)
        .map_err(|e| Error::invalid("body", format!("not a work message: {e}")))?;
    if message.invocation_id.is_empty() {
        return Err(Error::invalid("invocationId", "empty"));
    }
    message.item()?;
    message.carried()?;
    Ok(message)
}

/// What this process knows about an item it holds: received (with a handle to delete it), or
/// leased to itself by `accept`/`replay` (delivered in memory; its message is the safety net).
#[derive(Debug, Clone)]
struct Held {
    attempts: u32,
    /// Attempts the invocation had recorded when the item was taken.
    recorded: Option<usize>,
    handles: Vec<String>,
    /// Past this, SQS hands the message out again (and a newer receipt handle replaces ours).
    lease_until: DateTime<Utc>,
    /// The invocation as its message carried it, when it was admitted without a read: its
    /// attempt is then recorded by a write conditional on the attempts it had
    /// ([`DynamoInvocationStore::record_attempt_if_current`]), or, `unrecorded`, by writing the
    /// invocation for the first time ([`DynamoInvocationStore::create_delivered`]).
    carried: Option<Carried>,
    /// The message is on the ordered (FIFO) queue: it stays in flight, holding its key, until
    /// its invocation is finished.
    ordered: bool,
}

#[derive(Debug, Clone)]
struct Carried {
    invocation: Invocation,
    unrecorded: bool,
}

/// [`DeliveryQueue`] on an SQS queue, writing invocations through DynamoDB.
#[derive(Debug, Clone)]
pub struct SqsDeliveryQueue {
    sqs: Client,
    queue_url: String,
    invocations: Arc<DynamoInvocationStore>,
    held: Arc<Mutex<HashMap<String, Held>>>,
    /// Whether an accept whose messages could not be sent leaves its invocations written, as a
    /// process that died between the two steps does (tests make that state with it).
    keep_unsent: bool,
    /// Where the consumer moves a message failing on its last receive; `None`: it is left to the
    /// redrive.
    dead_letters: Option<DeadLetters>,
    /// Whether `accept` may leave an invocation unwritten until its outcome (see
    /// [`SqsDeliveryQueue::recording_first`]).
    unrecorded_accepts: bool,
    /// Whether work leased to its accepting caller is left unsent rather than backed by a
    /// delayed message (see [`SqsDeliveryQueue::unsent_while_leased`]).
    leased_unsent: bool,
    /// The FIFO queue of work with an ordering key; `None`: ordering keys are not offered.
    ordered: Option<OrderedQueue>,
    /// Invocations whose ordered message was left in flight by the last step (it holds its
    /// key): the Lambda consumer reports their records failed so that the event source mapping
    /// does not delete them ([`SqsDeliveryQueue::take_kept`]).
    kept: Arc<Mutex<HashSet<String>>>,
}

/// The ordered queue, as this process uses it.
#[derive(Debug, Clone)]
struct OrderedQueue {
    url: String,
    /// How long an acknowledged invocation holds its key before it is looked at again.
    recheck: chrono::Duration,
}

/// The work queue's dead-letter queue, as the consumer sees it.
#[derive(Debug, Clone)]
struct DeadLetters {
    url: String,
    /// The work queue's `maxReceiveCount`: the receive after this one is the redrive's.
    max_receive_count: u32,
}

/// A message attribute, carried over to the dead-letter queue as it was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    pub data_type: String,
    pub string_value: Option<String>,
    pub binary_value: Option<Vec<u8>>,
}

/// A received message that failed: what the consumer knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedMessage {
    pub body: String,
    pub attributes: HashMap<String, MessageAttribute>,
    /// `SentTimestamp` (epoch milliseconds), when the work queue got it, if known.
    pub sent_timestamp: Option<i64>,
    /// Why it failed (the error), for whoever looks at it in the DLQ.
    pub reason: String,
}

/// Attributes the dead-letter move adds to a message.
pub mod dead_letter_attribute {
    /// Why the message failed on its last receive.
    pub const FAILURE: &str = "triggerline.failure";
    /// When the work queue first got it (epoch milliseconds): the moved message's own
    /// `SentTimestamp` is the move's.
    pub const FIRST_SENT: &str = "triggerline.firstSentTimestamp";
}

/// The longest failure reason written as an attribute, in bytes: the attribute counts towards
/// the message's size limit.
const MAX_REASON_BYTES: usize = 1024;

impl SqsDeliveryQueue {
    pub fn new(sqs: Client, queue_url: String, invocations: Arc<DynamoInvocationStore>) -> Self {
        SqsDeliveryQueue {
            sqs,
            queue_url,
            invocations,
            held: Arc::new(Mutex::new(HashMap::new())),
            keep_unsent: false,
            dead_letters: None,
            unrecorded_accepts: true,
            leased_unsent: false,
            ordered: None,
            kept: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// This queue, offering ordering keys on the FIFO queue at `url` (see [`work::ordered_step`]);
    /// an acknowledged invocation is looked at again every `recheck`.
    pub fn with_ordered_queue(mut self, url: String, recheck: std::time::Duration) -> Self {
        self.ordered = Some(OrderedQueue {
            url,
            recheck: chrono::Duration::from_std(recheck).unwrap_or(chrono::Duration::seconds(30)),
        });
        self
    }

    /// The ordered queue's URL, if this queue offers ordering keys.
    pub fn ordered_queue_url(&self) -> Option<&str> {
        self.ordered.as_ref().map(|o| o.url.as_str())
    }

    /// Whether the last step left the ordered message of `invocation_id` in flight (it holds
    /// its key); forgets it. The Lambda consumer then reports the record failed, so that the
    /// event source mapping leaves the message to its visibility timeout.
    pub fn take_kept(&self, invocation_id: &str) -> bool {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(invocation_id)
    }

    /// What the SQS consumer (Lambda) does with one received message of the ordered queue
    /// before delivering it ([`work::ordered_step`] on the invocation as read): `Some` when it is
    /// the message's turn; `None` when there is nothing to deliver now: the invocation is
    /// finished or gone (the event source mapping deletes the message), or it is not due
    /// (the message is kept in flight, see [`SqsDeliveryQueue::take_kept`]).
    ///
    /// Errors: [`Error::Invalid`] for a body that is no work message.
    pub async fn admit_ordered(
        &self,
        body: &str,
        receipt_handle: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Admitted>, Error> {
        let message = parse_message(body)?;
        let invocation = self.invocations.get(&message.invocation_id).await?;
        let recheck = self.recheck();
        match message.ordered_step(invocation.as_ref(), now, recheck)? {
            OrderedStep::Deliver(item) => {
                let Some(invocation) = invocation else {
                    return Ok(None);
                };
                self.hold_ordered(&item, &invocation, receipt_handle, now);
                Ok(Some(Admitted { item, invocation }))
            }
            OrderedStep::Release => Ok(None),
            OrderedStep::Keep(time) => {
                self.keep(&message.invocation_id, &[receipt_handle.to_owned()], time)
                    .await;
                Ok(None)
            }
        }
    }

    /// After an ordered record's step: whether its message stays in flight, holding its key
    /// (the consumer reports the record failed so that the event source mapping leaves it).
    /// Work admitted but neither settled, discarded nor postponed (a step that ended early)
    /// is kept for the recheck interval rather than let go: its key must not move on.
    pub async fn keeps(&self, invocation_id: &str) -> bool {
        let unsettled = self.take_held(invocation_id).filter(|held| held.ordered);
        if let Some(held) = unsettled {
            self.keep(invocation_id, &held.handles, self.recheck())
                .await;
        }
        self.take_kept(invocation_id)
    }

    /// Makes a received ordered message visible again at once: the rest of its key that came
    /// in the same batch behind one that is kept in flight (SQS hands none of them out again
    /// before the first is deleted). Best effort: it comes back after its visibility timeout.
    pub async fn let_go(&self, receipt_handle: &str) {
        if let Some(ordered) = &self.ordered {
            self.change_visibility(&ordered.url, receipt_handle, 0)
                .await;
        }
    }

    fn recheck(&self) -> chrono::Duration {
        self.ordered
            .as_ref()
            .map_or(chrono::Duration::seconds(30), |o| o.recheck)
    }

    fn hold_ordered(
        &self,
        item: &WorkItem,
        invocation: &Invocation,
        handle: &str,
        now: DateTime<Utc>,
    ) {
        self.hold(
            &item.invocation_id,
            Held {
                attempts: item.attempts,
                recorded: Some(invocation.attempts.len()),
                handles: vec![handle.to_owned()],
                // The consumer's run (Lambda) or the claim's lease; a settle comes before.
                lease_until: now + chrono::Duration::minutes(15),
                carried: None,
                ordered: true,
            },
        );
    }

    /// Keeps ordered messages in flight for `time` (their key waits) and notes it for
    /// [`SqsDeliveryQueue::take_kept`]. A visibility change that fails brings the message
    /// back early, where it is judged again: harmless.
    async fn keep(&self, invocation_id: &str, handles: &[String], time: chrono::Duration) {
        let Some(ordered) = &self.ordered else {
            return;
        };
        let seconds = i32::try_from(
            time.num_seconds()
                .clamp(1, MAX_VISIBILITY_SECONDS - KEEP_MARGIN_SECONDS),
        )
        .unwrap_or(1);
        for handle in handles {
            self.change_visibility(&ordered.url, handle, seconds).await;
        }
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(invocation_id.to_owned());
    }

    async fn change_visibility(&self, url: &str, handle: &str, seconds: i32) {
        let result = self
            .sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(handle)
            .visibility_timeout(seconds)
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %unavailable("ChangeMessageVisibility", e),
                "ordered work message comes back at its old visibility timeout");
        }
    }

    /// Settles work of the ordered queue: records the attempt, then deletes the message when
    /// the invocation is finished (the next of its key goes) or keeps it in flight until the
    /// retry is due, or, acknowledged, until it is looked at again. No message is queued: the
    /// one message carries the invocation's whole turn.
    async fn settle_ordered(
        &self,
        invocation_id: &str,
        held: Held,
        attempt: &Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
        next: &NextStep,
    ) -> Result<Option<Invocation>, Error> {
        let settled = self
            .record_or_restore(invocation_id, Some(&held), attempt, from, transition)
            .await?;
        let step =
            work::ordered_step_after_attempt(settled.as_ref(), next, Utc::now(), self.recheck());
        self.apply_ordered(invocation_id, &held.handles, step).await;
        Ok(settled)
    }

    async fn apply_ordered(&self, invocation_id: &str, handles: &[String], step: OrderedStep) {
        match step {
            OrderedStep::Keep(time) => self.keep(invocation_id, handles, time).await,
            OrderedStep::Release | OrderedStep::Deliver(_) => {
                if let Some(ordered) = &self.ordered {
                    self.delete_from(&ordered.url, handles).await;
                }
            }
        }
    }

    /// Sends ordered work: one message group per subscription and key ([`order_group`]), in
    /// the order given; deduplicated by invocation and attempts recorded, so a message sent
    /// again within SQS's five minutes (a redelivered event) is dropped by SQS itself.
    async fn send_ordered(&self, messages: &[(WorkMessage, String)]) -> Result<(), Error> {
        if messages.is_empty() {
            return Ok(());
        }
        let Some(ordered) = &self.ordered else {
            return Err(failure("SendMessageBatch", "no ordered queue"));
        };
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, (message, group))| {
                let dedup = format!(
                    "{}.{}",
                    message.invocation_id,
                    message.recorded.unwrap_or_default()
                );
                entry(i, message, |b| {
                    b.message_group_id(group).message_deduplication_id(dedup)
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.send_entries(&ordered.url, entries).await
    }

    /// `accept` of work with an ordering key: the invocations are written first (marked unsent,
    /// as every record-first accept), then their messages sent to the ordered queue, then the
    /// marker cleared, since ordered work may wait for its turn longer than the sweep's grace
    /// period. Never leased: the work goes when its key's queue says so.
    async fn accept_ordered(
        &self,
        invocations: &[Invocation],
        not_before: DateTime<Utc>,
        leased_until: Option<DateTime<Utc>>,
    ) -> Result<Vec<WorkItem>, Error> {
        self.invocations
            .create_queued(invocations, not_before)
            .await?;
        let now = Utc::now();
        let mut keyed = Vec::new();
        let mut free = Vec::new();
        for invocation in invocations {
            let message = WorkMessage {
                invocation_id: invocation.id.clone(),
                not_before: not_before.timestamp_millis(),
                attempts: 0,
                recorded: Some(invocation.attempts.len()),
                invocation: None,
                unrecorded: false,
            };
            match &invocation.ordering_key {
                Some(key) => keyed.push((message, order_group(&invocation.subscription_id, key))),
                None => {
                    let visible_from = leased_until.map_or(not_before, |l| l.max(not_before));
                    free.push((message, delay_seconds(visible_from, now)));
                }
            }
        }
        let sent = match self.send_ordered(&keyed).await {
            Ok(()) => self.send(&free).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            if !self.keep_unsent {
                self.forget_invocations(invocations, &e).await;
            }
            return Err(e);
        }
        let ids: Vec<String> = keyed.iter().map(|(m, _)| m.invocation_id.clone()).collect();
        self.invocations.mark_sent(&ids).await;
        if let Some(lease_until) = leased_until {
            for (message, _) in &free {
                self.hold_leased(message, lease_until);
            }
        }
        keyed
            .iter()
            .map(|(m, _)| m.item())
            .chain(free.iter().map(|(m, _)| m.item()))
            .collect()
    }

    /// Receives from the ordered queue into `due`, up to `limit`: the first message of each
    /// key that is its turn is held (leased until `lease_until`) and returned; the others of
    /// its key that came with it are let go at once; finished ones are deleted and waiting
    /// ones kept in flight ([`work::ordered_step`]).
    async fn claim_ordered(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        due: &mut Vec<WorkItem>,
    ) -> Result<(), Error> {
        let Some(ordered) = self.ordered.clone() else {
            return Ok(());
        };
        let visibility = visibility_seconds(lease_until - now);
        let received = self
            .receive_from(&ordered.url, limit, visibility, true)
            .await?;
        let mut groups = HashSet::new();
        let mut candidates = Vec::new();
        for message in received {
            if !groups.insert(message.group.clone().unwrap_or_default()) {
                self.change_visibility(&ordered.url, &message.handle, 0)
                    .await;
                continue;
            }
            match parse_message(&message.body) {
                Ok(parsed) => candidates.push((parsed, message.handle)),
                // Left alone: only Triggerline writes this queue; it blocks its own group only.
                Err(e) => tracing::error!(error = %e, "unreadable ordered work message"),
            }
        }
        let reads = candidates
            .iter()
            .map(|(m, _)| self.invocations.get(&m.invocation_id));
        let invocations = futures::future::join_all(reads).await;
        for ((message, handle), invocation) in candidates.into_iter().zip(invocations) {
            let invocation = match invocation {
                Ok(invocation) => invocation,
                Err(e) => {
                    tracing::warn!(invocation = %message.invocation_id, error = %e, "ordered work message left for later");
                    continue;
                }
            };
            let step = message.ordered_step(invocation.as_ref(), now, ordered.recheck)?;
            match (step, invocation) {
                (OrderedStep::Deliver(item), Some(invocation)) => {
                    self.hold_ordered(&item, &invocation, &handle, now);
                    if let Some(held) = self
                        .held
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_mut(&item.invocation_id)
                    {
                        held.lease_until = lease_until;
                    }
                    due.push(item);
                }
                (step, _) => {
                    self.apply_ordered(&message.invocation_id, &[handle], step)
                        .await;
                    // A local claim needs no note of what it kept.
                    self.take_kept(&message.invocation_id);
                }
            }
        }
        Ok(())
    }

    /// This queue, writing every accepted invocation before its message is sent, as the local
    /// stack's queue does: for the intake of `Trigger Invocation Requested` events, whose ids
    /// are derived from the event so that a redelivered event finds them written and raises
    /// nothing twice (an unwritten invocation would be raised again).
    pub fn recording_first(mut self) -> Self {
        self.unrecorded_accepts = false;
        self
    }

    /// This queue, for an intake that delivers the work it leases itself and has no worker in
    /// its process (the Lambda intake, `signal: None`): a leased accept writes its invocations
    /// marked unsent and sends no message. The attempt's record clears the mark (and queues a
    /// retry if there is one); should the process die before that, the sweep's unsent recovery
    /// sends the work two leases later ([`DeliveryQueue::recover_unsent`]). Without it, each such
    /// accept also sent a message delayed until the lease's end, as a backstop that the consumer
    /// then received only to find it done: a request, a receive, an invocation and a read, per
    /// invocation, for the rare crash the sweep covers anyway.
    pub fn unsent_while_leased(mut self) -> Self {
        self.leased_unsent = true;
        self
    }

    /// This queue, for the consumer of the work queue whose redrive policy moves a message to the
    /// dead-letter queue at `url` after `max_receive_count` receives: a message failing on its
    /// last receive is then moved there by [`SqsDeliveryQueue::dead_letter`].
    pub fn with_dead_letters(mut self, url: String, max_receive_count: u32) -> Self {
        self.dead_letters = Some(DeadLetters {
            url,
            max_receive_count,
        });
        self
    }

    /// Whether a message received `receive_count` times (`ApproximateReceiveCount`, this receive
    /// included) is on its last receive before the redrive, so that failing it should move it to
    /// the dead-letter queue. Never without a dead-letter queue.
    pub fn is_last_receive(&self, receive_count: u32) -> bool {
        self.dead_letters
            .as_ref()
            .is_some_and(|d| receive_count >= d.max_receive_count)
    }

    /// Sends a message that failed on its last receive to the dead-letter queue as a new message
    /// (a fresh retention period there, which the redrive would not give it): its body and
    /// attributes, the reason ([`dead_letter_attribute::FAILURE`]) and, unless it carries one
    /// already, when it was first sent ([`dead_letter_attribute::FIRST_SENT`]). The caller then
    /// reports the received message processed, so that it is deleted from the work queue.
    ///
    /// Errors: [`Error::Unavailable`] when the DLQ did not take it (also without a dead-letter
    /// queue, or with more attributes than SQS's 10): the caller reports the message failed and
    /// the redrive moves it on its next receive.
    pub async fn dead_letter(&self, message: &FailedMessage) -> Result<(), Error> {
        let Some(dead_letters) = &self.dead_letters else {
            return Err(failure("SendMessageBatch", "no dead-letter queue"));
        };
        let mut attributes = message
            .attributes
            .iter()
            .map(|(name, a)| {
                let value = MessageAttributeValue::builder()
                    .data_type(&a.data_type)
                    .set_string_value(a.string_value.clone())
                    .set_binary_value(a.binary_value.clone().map(Blob::new))
                    .build()
                    .map_err(|e| failure("SendMessageBatch", e))?;
                Ok((name.clone(), value))
            })
            .collect::<Result<HashMap<_, _>, Error>>()?;
        let text = |value: String, data_type: &str| {
            MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .map_err(|e| failure("SendMessageBatch", e))
        };
        attributes.insert(
            dead_letter_attribute::FAILURE.to_owned(),
            text(truncated(&message.reason, MAX_REASON_BYTES), "String")?,
        );
        if let Some(sent) = message.sent_timestamp {
            // A message moved back from the DLQ and failing again keeps its first time.
            let first_sent = text(sent.to_string(), "Number")?;
            attributes
                .entry(dead_letter_attribute::FIRST_SENT.to_owned())
                .or_insert(first_sent);
        }
        // A batch of one: SendMessageBatch is what the queue links already (the same
        // `sqs:SendMessage` permission).
        let entry = SendMessageBatchRequestEntry::builder()
            .id("0")
            .message_body(&message.body)
            .set_message_attributes(Some(attributes))
            .build()
            .map_err(|e| failure("SendMessageBatch", e))?;
        let out = self
            .sqs
            .send_message_batch()
            .queue_url(&dead_letters.url)
            .entries(entry)
            .send()
            .await
            .map_err(|e| unavailable("SendMessageBatch", e))?;
        match out.failed.first() {
            None => Ok(()),
            Some(rejected) => Err(failure(
                "SendMessageBatch",
                format!(
                    "the dead-letter queue rejected the message: {} {}",
                    rejected.code,
                    rejected.message.as_deref().unwrap_or_default()
                ),
            )),
        }
    }

    /// This queue, leaving the invocations of an accept whose messages could not be sent
    /// written and unsent instead of withdrawing them: what a process that dies between the
    /// DynamoDB write and `SendMessageBatch` leaves behind, for the recovery tests.
    #[cfg(feature = "test-support")]
    pub fn keeping_unsent(mut self) -> Self {
        self.keep_unsent = true;
        self
    }

    /// Sends a work message for each of `unsent` still PENDING (the others moved on: their
    /// work exists or is done), due when it was; `recorded` makes a message that someone else
    /// delivered first stale. Returns the ids sent.
    /// Work with an ordering key goes to the end of its key's queue (it was accepted, but
    /// its message never sent) and its marker is cleared.
    async fn send_unsent(&self, unsent: &[Unsent]) -> Result<Vec<String>, Error> {
        let now = Utc::now();
        let mut messages: Vec<(WorkMessage, i32)> = Vec::new();
        let mut keyed: Vec<(WorkMessage, String)> = Vec::new();
        for u in unsent
            .iter()
            .filter(|u| u.state == InvocationState::Pending)
        {
            let message = WorkMessage {
                invocation_id: u.id.clone(),
                not_before: u.due.timestamp_millis(),
                // An accept's work has none; a lost retry's counts the attempts before it.
                attempts: u32::try_from(u.recorded).unwrap_or(u32::MAX),
                recorded: Some(u.recorded),
                invocation: None,
                unrecorded: false,
            };
            match (&u.ordering, &self.ordered) {
                (Some(by), Some(_)) => {
                    keyed.push((message, order_group(&by.subscription_id, &by.key)));
                }
                _ => messages.push((message, delay_seconds(u.due, now))),
            }
        }
        self.send(&messages).await?;
        self.send_ordered(&keyed).await?;
        let keyed: Vec<String> = keyed.into_iter().map(|(m, _)| m.invocation_id).collect();
        self.invocations.mark_sent(&keyed).await;
        Ok(messages
            .into_iter()
            .map(|(m, _)| m.invocation_id)
            .chain(keyed)
            .collect())
    }

    /// The work queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Puts a received item that is not due yet back on the queue, delayed by what is left (at
    /// most SQS's 15 minutes; it comes back as often as needed).
    pub async fn defer(&self, item: &WorkItem, now: DateTime<Utc>) -> Result<(), Error> {
        let held = self.take_held(&item.invocation_id);
        let message = WorkMessage {
            invocation_id: item.invocation_id.clone(),
            not_before: item.not_before.timestamp_millis(),
            attempts: item.attempts,
            recorded: held.as_ref().and_then(|h| h.recorded),
            invocation: None,
            unrecorded: false,
        };
        let handles = held.map(|h| h.handles).unwrap_or_default();
        self.defer_message(&message, &handles, now).await
    }

    /// What the SQS consumer (Lambda) does with one received message before delivering it:
    /// `None` when there is nothing to deliver (not due yet: deferred; or stale: the invocation
    /// is gone, no longer PENDING, or was delivered since). The message itself is left to the
    /// event source mapping, which deletes it when the function succeeds. A due item is
    /// remembered until it is settled, so that a retry counts its attempts. The invocation read
    /// to judge the message comes back with it, for [`Delivery::deliver_read`].
    ///
    /// Reads the invocation every time; see [`SqsDeliveryQueue::admit_received`] for the
    /// consumer's read-free path.
    ///
    /// Errors: [`Error::Invalid`] for a body that is no work message (leave it to the
    /// dead-letter queue).
    ///
    /// [`Delivery::deliver_read`]: triggerline::usecases::delivery::Delivery::deliver_read
    pub async fn admit(&self, body: &str, now: DateTime<Utc>) -> Result<Option<Admitted>, Error> {
        self.admit_received(body, now, u32::MAX).await
    }

    /// [`SqsDeliveryQueue::admit`] for a message received `receive_count` times
    /// (`ApproximateReceiveCount`). A message that carries its invocation (the first message of
    /// an accept, see [`WorkMessage::invocation`]) received for the first time is admitted
    /// without a read: whether it is still current is decided by the write that records its
    /// attempt, which is conditional on the attempts the invocation had when it was queued
    /// ([`SqsDeliveryQueue::settle`]). A copy delivered twice (SQS's at-least-once) is then a
    /// duplicate delivery that queues nothing. One past its deadline is read first (the sweep
    /// may have timed it out). A message received again (its first processing
    /// failed or was cut short: the attempt may have been made and recorded) is judged against
    /// the record as before, so that a redelivery does not repeat a recorded attempt.
    pub async fn admit_received(
        &self,
        body: &str,
        now: DateTime<Utc>,
        receive_count: u32,
    ) -> Result<Option<Admitted>, Error> {
        let message = parse_message(body)?;
        let item = message.item()?;
        if item.not_before > now {
            self.defer_message(&message, &[], now).await?;
            return Ok(None);
        }
        let carried = message.carried()?.map(|invocation| Carried {
            invocation,
            unrecorded: message.unrecorded,
        });
        let (invocation, carried) = match carried {
            // Past its deadline the sweep may have timed it out: only the record can tell.
            Some(carried)
                if receive_count <= 1 && carried.invocation.deadline.is_none_or(|d| d > now) =>
            {
                (carried.invocation.clone(), Some(carried))
            }
            carried => match self.invocations.get(&message.invocation_id).await? {
                Some(read) if message.is_stale(Some(&read)) => return Ok(None),
                Some(read) => (read, None),
                // Never written: the message is its only record, and still current.
                None => match carried.filter(|c| c.unrecorded) {
                    Some(carried) => (carried.invocation.clone(), Some(carried)),
                    None => return Ok(None),
                },
            },
        };
        self.hold(
            &item.invocation_id,
            Held {
                attempts: item.attempts,
                recorded: Some(carried.as_ref().map_or(invocation.attempts.len(), |_| {
                    message.recorded.unwrap_or_default()
                })),
                handles: Vec::new(),
                // The function's run; a settle comes before it ends or not at all.
                lease_until: now + chrono::Duration::minutes(15),
                carried,
                ordered: false,
            },
        );
        Ok(Some(Admitted { item, invocation }))
    }

    async fn defer_message(
        &self,
        message: &WorkMessage,
        handles: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        // The new message first: if the deletion fails, the received one comes back and is
        // deferred again, which is harmless; the other order could lose the work.
        let not_before = message.item()?.not_before;
        self.send(&[(message.clone(), delay_seconds(not_before, now))])
            .await?;
        self.delete(handles).await;
        Ok(())
    }

    /// `settle` for work admitted from its message alone ([`SqsDeliveryQueue::admit_received`]):
    /// one conditional write, then the retry's message, if any. The write is conditional on
    /// the attempts the invocation had when the work was queued (or, for an invocation never
    /// written, on there being none), so of two copies of the same work only the first to
    /// record queues a retry; the other was a duplicate delivery and queues nothing, so no
    /// second chain of retries starts. A retry is marked unsent by that same write, which is
    /// how a retry message lost after it (a failed send, a crash) is still sent, by the sweep
    /// ([`DeliveryQueue::recover_unsent`]).
    async fn settle_carried(
        &self,
        held: Held,
        carried: Carried,
        attempt: &Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
        next: &NextStep,
    ) -> Result<Option<Invocation>, Error> {
        let id = carried.invocation.id.clone();
        let retry_due = match next {
            NextStep::RetryAt(at) => Some(*at),
            NextStep::Done => None,
        };
        let recorded = held.recorded.unwrap_or_default();
        let written = if carried.unrecorded {
            let mut invocation = carried.invocation.clone();
            invocation.attempts.push(attempt.clone());
            if let Some(t) = transition.filter(|_| from.contains(&invocation.state)) {
                invocation.state = t.to;
                invocation.completed = t.completed;
                invocation.output = t.output.clone();
                invocation.error = t.error.clone();
            }
            match self
                .invocations
                .create_delivered(&invocation, retry_due)
                .await
            {
                Ok(()) => Recorded::Written(invocation),
                Err(Error::AlreadyExists { .. }) => {
                    Recorded::Superseded(self.invocations.get(&id).await?)
                }
                Err(e) => {
                    self.restore(&id, held, carried);
                    return Err(e);
                }
            }
        } else {
            let result = self
                .invocations
                .record_attempt_if_current(&id, attempt, recorded, from, transition, retry_due)
                .await;
            match result {
                Ok(written) => written,
                Err(e) => {
                    self.restore(&id, held, carried);
                    return Err(e);
                }
            }
        };
        let settled = match written {
            Recorded::Written(invocation) => invocation,
            Recorded::Superseded(current) => {
                tracing::info!(invocation = %id,
                    "work delivered again after another copy recorded its attempt; nothing more queued");
                self.delete(&held.handles).await;
                return Ok(current);
            }
        };
        if let Some(at) = retry_due {
            let message = WorkMessage {
                invocation_id: id.clone(),
                not_before: at.timestamp_millis(),
                attempts: held.attempts + 1,
                recorded: Some(recorded + 1),
                invocation: None,
                unrecorded: false,
            };
            if let Err(e) = self.send(&[(message, delay_seconds(at, Utc::now()))]).await {
                // Recorded and marked unsent: the sweep sends it once it is overdue.
                tracing::warn!(invocation = %id, error = %e,
                    "retry not queued; the sweep sends it once it is overdue");
            }
        }
        self.delete(&held.handles).await;
        Ok(Some(settled))
    }

    /// The invocation of a claimed message, as `claim_due`'s worker will read it. A message
    /// that is its invocation's only record (an unrecorded accept of the Lambda intake) has
    /// its invocation written here first, as a record-first accept would have: the worker
    /// delivers by id and must find it.
    async fn read_or_record(&self, message: &WorkMessage) -> Result<Option<Invocation>, Error> {
        let read = self.invocations.get(&message.invocation_id).await?;
        let Some(carried) = message.carried()?.filter(|_| message.unrecorded) else {
            return Ok(read);
        };
        if read.is_some() {
            return Ok(read);
        }
        let not_before = message.item()?.not_before;
        match self
            .invocations
            .create_queued(std::slice::from_ref(&carried), not_before)
            .await
        {
            Ok(()) => Ok(Some(carried)),
            // Another consumer wrote it first: judged as it reads now.
            Err(Error::AlreadyExists { .. }) => self.invocations.get(&message.invocation_id).await,
            Err(e) => Err(e),
        }
    }

    /// Records the attempt (DynamoDB). When that fails, `held` is held again, so that its
    /// message comes back and is delivered again rather than dropped with the failed settle.
    async fn record_or_restore(
        &self,
        invocation_id: &str,
        held: Option<&Held>,
        attempt: &Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
    ) -> Result<Option<Invocation>, Error> {
        let recorded = self
            .invocations
            .record_attempt(invocation_id, attempt, from, transition)
            .await;
        if let (Err(_), Some(held)) = (&recorded, held) {
            self.hold(invocation_id, held.clone());
        }
        recorded
    }

    /// Holds `held` again with what it carried, after a settle that wrote nothing.
    fn restore(&self, id: &str, mut held: Held, carried: Carried) {
        held.carried = Some(carried);
        self.hold(id, held);
    }

    /// Holds the work of a message just sent, leased to this process until `lease_until`
    /// (delivered in memory; the message is the safety net).
    fn hold_leased(&self, message: &WorkMessage, lease_until: DateTime<Utc>) {
        self.hold(
            &message.invocation_id,
            Held {
                attempts: message.attempts,
                recorded: message.recorded,
                handles: Vec::new(),
                lease_until,
                carried: None,
                ordered: false,
            },
        );
    }

    fn hold(&self, id: &str, held: Held) {
        let mut map = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(id) {
            // Received again (a lease that ran out): every handle may delete it.
            Some(existing) => {
                existing.handles.extend(held.handles);
                existing.attempts = held.attempts;
                existing.recorded = held.recorded;
                existing.lease_until = held.lease_until;
                existing.carried = held.carried;
                existing.ordered = held.ordered;
            }
            None => {
                map.insert(id.to_owned(), held);
            }
        }
    }

    fn take_held(&self, id: &str) -> Option<Held> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    /// Forgets items whose lease ended: SQS hands their messages out again, with new handles,
    /// and whoever held them did not settle them (they would otherwise pile up here).
    fn forget_expired(&self, now: DateTime<Utc>) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, h| h.lease_until >= now);
    }

    /// Sends messages with their delays (seconds) to the work queue ([`Self::send_entries`]).
    async fn send(&self, messages: &[(WorkMessage, i32)]) -> Result<(), Error> {
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, (message, delay))| entry(i, message, |b| b.delay_seconds(*delay)))
            .collect::<Result<Vec<_>, Error>>()?;
        self.send_entries(&self.queue_url, entries).await
    }

    /// Sends entries (with their body sizes) to `url`, at most 10 and 256 KiB per
    /// `SendMessageBatch` ([`batches`]), the batches concurrently. Entries the batch rejected
    /// for a reason of SQS's own are tried once more.
    async fn send_entries(
        &self,
        url: &str,
        entries: Vec<(usize, SendMessageBatchRequestEntry)>,
    ) -> Result<(), Error> {
        let sizes: Vec<usize> = entries.iter().map(|(size, _)| *size).collect();
        let entries: Vec<SendMessageBatchRequestEntry> =
            entries.into_iter().map(|(_, entry)| entry).collect();
        let batches = batches(&sizes)
            .into_iter()
            .map(|range| self.send_batch(url, &entries[range]));
        futures::future::join_all(batches)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, Error>>()
            .map(drop)
    }

    async fn send_batch(
        &self,
        url: &str,
        batch: &[SendMessageBatchRequestEntry],
    ) -> Result<(), Error> {
        let mut pending = batch.to_vec();
        for round in 0..2 {
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(pending.clone()))
                .send()
                .await
                .map_err(|e| unavailable("SendMessageBatch", e))?;
            if out.failed.is_empty() {
                return Ok(());
            }
            let retryable = out.failed.iter().all(|f| !f.sender_fault);
            if round == 1 || !retryable {
                let codes = out
                    .failed
                    .iter()
                    .map(|f| f.code.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(failure(
                    "SendMessageBatch",
                    format!(
                        "{} of {} messages rejected: {codes}",
                        out.failed.len(),
                        batch.len()
                    ),
                ));
            }
            let failed: HashSet<&str> = out.failed.iter().map(|f| f.id.as_str()).collect();
            pending.retain(|entry| failed.contains(entry.id()));
        }
        Ok(())
    }

    /// Deletes received messages, best effort: a message left behind comes back after its
    /// visibility timeout and is then found stale (or goes to the dead-letter queue).
    async fn delete(&self, handles: &[String]) {
        self.delete_from(&self.queue_url, handles).await;
    }

    /// [`Self::delete`] on the queue at `url`.
    async fn delete_from(&self, url: &str, handles: &[String]) {
        let batches = handles.chunks(BATCH).map(|batch| async move {
            let entries = batch
                .iter()
                .enumerate()
                .filter_map(|(i, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .ok()
                })
                .collect::<Vec<_>>();
            let result = self
                .sqs
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await;
            match result {
                Ok(out) if out.failed.is_empty() => {}
                Ok(out) => {
                    for failed in out.failed {
                        tracing::warn!(code = %failed.code, message = ?failed.message, "work message not deleted");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %unavailable("DeleteMessageBatch", e), "work messages not deleted");
                }
            }
        });
        futures::future::join_all(batches).await;
    }

    /// Undoes an accept whose messages could not all be sent, best effort, so that a failed
    /// request leaves nothing behind: the invocations are deleted while still untouched, and
    /// messages already sent find no invocation and are dropped.
    async fn forget_invocations(&self, invocations: &[Invocation], why: &Error) {
        let ids: Vec<String> = invocations.iter().map(|i| i.id.clone()).collect();
        for id in self.invocations.withdraw(&ids).await {
            tracing::error!(invocation = %id, cause = %why, "accepted invocation neither queued nor withdrawn");
        }
    }

    /// One `ReceiveMessage` of up to `max` messages from the work queue, without waiting.
    async fn receive(&self, max: usize, visibility: i32) -> Result<Vec<(String, String)>, Error> {
        let received = self
            .receive_from(&self.queue_url, max, visibility, false)
            .await?;
        Ok(received.into_iter().map(|m| (m.body, m.handle)).collect())
    }

    /// One `ReceiveMessage` of up to `max` messages from `url`, without waiting for any;
    /// `groups`: with each message's group (a FIFO queue's `MessageGroupId`).
    async fn receive_from(
        &self,
        url: &str,
        max: usize,
        visibility: i32,
        groups: bool,
    ) -> Result<Vec<Received>, Error> {
        let mut request = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(i32::try_from(max.clamp(1, BATCH)).unwrap_or(1))
            .visibility_timeout(visibility)
            .wait_time_seconds(0);
        if groups {
            request =
                request.message_system_attribute_names(MessageSystemAttributeName::MessageGroupId);
        }
        let out = request
            .send()
            .await
            .map_err(|e| unavailable("ReceiveMessage", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let group = m
                    .attributes
                    .and_then(|mut a| a.remove(&MessageSystemAttributeName::MessageGroupId));
                Some(Received {
                    body: m.body?,
                    handle: m.receipt_handle?,
                    group,
                })
            })
            .collect())
    }
}

/// A received message.
struct Received {
    body: String,
    handle: String,
    group: Option<String>,
}

#[async_trait]
impl DeliveryQueue for SqsDeliveryQueue {
    /// Writes the invocations (DynamoDB, all or none), then one message each, delayed until the
    /// item is due or, with a lease, until the lease ends: a leased item is delivered in memory
    /// by this process, and its message is the safety net that brings it back if this process
    /// dies (stale otherwise). If the messages cannot be sent, the invocations are deleted again
    /// and the call fails.
    async fn accept(
        &self,
        invocations: &[Invocation],
        not_before: DateTime<Utc>,
        leased_until: Option<DateTime<Utc>>,
    ) -> Result<Vec<WorkItem>, Error> {
        if invocations.is_empty() {
            return Ok(Vec::new());
        }
        if self.ordered.is_some() && invocations.iter().any(|i| i.ordering_key.is_some()) {
            return self
                .accept_ordered(invocations, not_before, leased_until)
                .await;
        }
        if self.leased_unsent && leased_until.is_some() {
            // The caller delivers it now; the mark is the backstop.
            self.invocations
                .create_queued(invocations, not_before)
                .await?;
            return Ok(invocations
                .iter()
                .map(|inv| WorkItem {
                    invocation_id: inv.id.clone(),
                    not_before,
                    attempts: 0,
                })
                .collect());
        }
        let now = Utc::now();
        // Nobody in this process delivers it (the Lambda intake) and it is due: the consumer
        // delivers it from the message, which then carries the invocation (no read back).
        let carry = leased_until.is_none() && not_before <= now;
        let visible_from = leased_until.map_or(not_before, |l| l.max(not_before));
        let mut messages: Vec<(WorkMessage, i32)> = Vec::with_capacity(invocations.len());
        for inv in invocations {
            let carried = carry
                .then(|| serde_json::to_value(inv))
                .transpose()
                .map_err(|e| failure("encode invocation", e))?;
            let message = WorkMessage {
                invocation_id: inv.id.clone(),
                not_before: not_before.timestamp_millis(),
                attempts: 0,
                recorded: Some(inv.attempts.len()),
                invocation: carried,
                unrecorded: false,
            };
            messages.push((message, delay_seconds(visible_from, now)));
        }
        // Each message fits SQS on its own (an input is at most 128 KiB: `triggerline::limits`);
        // should one not, every message goes without its invocation.
        if messages
            .iter()
            .any(|(m, _)| m.body().len() > SQS_MESSAGE_BYTES)
        {
            for (message, _) in &mut messages {
                message.invocation = None;
            }
        }
        let unrecorded = self.unrecorded_accepts
            && messages.iter().all(|(m, _)| m.invocation.is_some())
            && invocations.iter().all(outcome_first);
        if unrecorded {
            // The message is the durable record until the outcome is written: SQS keeps it
            // as durably as DynamoDB would, and nothing reads the invocation before then.
            for (message, _) in &mut messages {
                message.unrecorded = true;
            }
            self.send(&messages).await?;
        } else {
            // Marked unsent until the first attempt, so that if this process dies before the
            // messages are sent, the work is still found (`resend_unsent`, `recover_unsent`).
            self.invocations
                .create_queued(invocations, not_before)
                .await?;
            if let Err(e) = self.send(&messages).await {
                if !self.keep_unsent {
                    self.forget_invocations(invocations, &e).await;
                }
                return Err(e);
            }
        }
        let items = messages
            .iter()
            .map(|(m, _)| m.item())
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(lease_until) = leased_until {
            for (message, _) in &messages {
                self.hold_leased(message, lease_until);
            }
        }
        Ok(items)
    }

    /// Records the attempt (DynamoDB), then, for a retry, queues a new message (one more
    /// attempt, delayed until the retry is due, or 15 minutes and deferred from there), and
    /// deletes the held message, if any.
    ///
    /// For an item this process holds, the retry message is sent before the attempt is recorded:
    /// if recording fails, the held message comes back and is delivered again, and if sending
    /// fails, nothing was recorded, so the held message is not stale when it comes back. An item
    /// it does not hold is recorded first and counts its attempts from the invocation's.
    async fn settle(
        &self,
        invocation_id: &str,
        attempt: &Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
        next: &NextStep,
    ) -> Result<Option<Invocation>, Error> {
        let held = match self.take_held(invocation_id) {
            Some(held) if held.ordered => {
                return self
                    .settle_ordered(invocation_id, held, attempt, from, transition, next)
                    .await;
            }
            Some(mut held) => match held.carried.take() {
                Some(carried) => {
                    return self
                        .settle_carried(held, carried, attempt, from, transition, next)
                        .await;
                }
                None => Some(held),
            },
            None => None,
        };
        let retry = |attempts: u32, recorded: usize, at: &DateTime<Utc>| {
            let message = WorkMessage {
                invocation_id: invocation_id.to_owned(),
                not_before: at.timestamp_millis(),
                attempts,
                recorded: Some(recorded),
                invocation: None,
                unrecorded: false,
            };
            (message, delay_seconds(*at, Utc::now()))
        };
        let known = held
            .as_ref()
            .and_then(|h| h.recorded.map(|r| (h.attempts, r)));
        if let (NextStep::RetryAt(at), Some((attempts, recorded))) = (next, known) {
            if let Err(e) = self.send(&[retry(attempts + 1, recorded + 1, at)]).await {
                if let Some(h) = &held {
                    self.hold(invocation_id, h.clone());
                }
                return Err(e);
            }
        }
        let settled = self
            .record_or_restore(invocation_id, held.as_ref(), attempt, from, transition)
            .await?;
        if let (NextStep::RetryAt(at), None, Some(invocation)) = (next, known, &settled) {
            let recorded = invocation.attempts.len();
            let attempts = u32::try_from(recorded).unwrap_or(u32::MAX);
            self.send(&[retry(attempts, recorded, at)]).await?;
        }
        if let Some(held) = held {
            self.delete(&held.handles).await;
        }
        Ok(settled)
    }

    /// Reopens the invocation (DynamoDB), then queues a message as `accept` does. If the message
    /// cannot be sent, the invocation is failed again, so that it can be replayed once more.
    async fn replay(
        &self,
        invocation_id: &str,
        deadline: Option<DateTime<Utc>>,
        not_before: DateTime<Utc>,
        leased_until: Option<DateTime<Utc>>,
    ) -> Result<WorkItem, Error> {
        let reopened = self.invocations.reopen(invocation_id, deadline).await?;
        let now = Utc::now();
        let visible_from = leased_until.map_or(not_before, |l| l.max(not_before));
        let message = WorkMessage {
            invocation_id: invocation_id.to_owned(),
            not_before: not_before.timestamp_millis(),
            attempts: 0,
            recorded: Some(reopened.attempts.len()),
            invocation: None,
            unrecorded: false,
        };
        if let Err(e) = self
            .send(&[(message.clone(), delay_seconds(visible_from, now))])
            .await
        {
            let back = Transition {
                to: InvocationState::Failed,
                completed: Some(now),
                output: None,
                error: Some("the replay could not be queued".into()),
            };
            if let Err(undo) = self
                .invocations
                .transition(invocation_id, &[InvocationState::Pending], &back)
                .await
            {
                tracing::error!(invocation = invocation_id, error = %undo, cause = %e,
                    "replayed invocation not queued and not failed again");
            }
            return Err(e);
        }
        if let Some(lease_until) = leased_until {
            self.hold_leased(&message, lease_until);
        }
        message.item()
    }

    /// Deletes the held message, if any (one not held is found stale when it comes back).
    async fn discard(&self, invocation_id: &str) -> Result<(), Error> {
        match self.take_held(invocation_id) {
            Some(held) if held.ordered => {
                self.apply_ordered(invocation_id, &held.handles, OrderedStep::Release)
                    .await;
            }
            Some(held) => self.delete(&held.handles).await,
            None => {}
        }
        Ok(())
    }

    /// On the ordered queue (when this queue has one): work of an invocation with an ordering
    /// key goes there, one message group per subscription and key ([`work::ordered_step`]).
    fn orders_by_key(&self) -> bool {
        self.ordered.is_some()
    }

    /// Sends the held message again as it came, due at `until` (delayed by at most SQS's 15
    /// minutes, and deferred again when it comes back early), and deletes the received one.
    /// The attempt count in it stays, so a hold burns no retry. An invocation whose message
    /// was its only record is written first, so that the status API and the deadline sweep
    /// see it while it waits. One not held here is left to come back by itself.
    async fn postpone(&self, invocation_id: &str, until: DateTime<Utc>) -> Result<(), Error> {
        let Some(mut held) = self.take_held(invocation_id) else {
            return Ok(());
        };
        if held.ordered {
            // Kept in flight: its key waits with it.
            let step = OrderedStep::Keep(until - Utc::now());
            self.apply_ordered(invocation_id, &held.handles, step).await;
            return Ok(());
        }
        let recorded = match held.carried.take() {
            Some(carried) if carried.unrecorded => {
                match self
                    .invocations
                    .create_queued(std::slice::from_ref(&carried.invocation), until)
                    .await
                {
                    Ok(()) | Err(Error::AlreadyExists { .. }) => {}
                    Err(e) => {
                        self.restore(invocation_id, held, carried);
                        return Err(e);
                    }
                }
                Some(carried.invocation.attempts.len())
            }
            _ => held.recorded,
        };
        let message = WorkMessage {
            invocation_id: invocation_id.to_owned(),
            not_before: until.timestamp_millis(),
            attempts: held.attempts,
            recorded,
            invocation: None,
            unrecorded: false,
        };
        self.defer_message(&message, &held.handles, Utc::now())
            .await
    }

    /// Reads which of the invocations are still marked unsent (one `BatchGetItem`) and sends
    /// the work of those still PENDING, due when it was.
    async fn resend_unsent(&self, invocation_ids: &[String]) -> Result<usize, Error> {
        let unsent = self.invocations.unsent_among(invocation_ids).await?;
        let sent = self.send_unsent(&unsent).await?;
        for id in &sent {
            tracing::warn!(invocation = %id, "work of an accepted invocation sent again");
        }
        Ok(sent.len())
    }

    /// Sends again the work of invocations still unsent past `due_before` (the sweep gives a
    /// grace period: under a long queue backlog the first message may just be late, and a
    /// second is then stale once the first was delivered), and moves their due time to `now`,
    /// so that the next sweep waits another grace period before sending any of them again.
    async fn recover_unsent(
        &self,
        now: DateTime<Utc>,
        due_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, Error> {
        let unsent = self.invocations.unsent(due_before, limit).await?;
        let sent = self.send_unsent(&unsent).await?;
        for id in &sent {
            tracing::warn!(invocation = %id, "work of an accepted invocation was never sent; sent now");
            self.invocations.postpone_unsent(id, now).await;
        }
        Ok(sent.len())
    }
}

#[async_trait]
impl WorkSource for SqsDeliveryQueue {
    /// Receives up to `limit` messages (10 per `ReceiveMessage`, never waiting for more), hidden
    /// from other consumers until `lease_until`. Messages not due yet are deferred and stale ones
    /// deleted; neither counts towards `limit`. Oldest first within what was received (SQS
    /// itself gives no order).
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkItem>, Error> {
        self.forget_expired(now);
        let visibility = visibility_seconds(lease_until - now);
        let mut due: Vec<WorkItem> = Vec::new();
        // Bounded, so that a queue full of deferred messages cannot keep one claim going.
        let mut rounds = limit.div_ceil(BATCH) + 2;
        while due.len() < limit && rounds > 0 {
            rounds -= 1;
            let received = self.receive(limit - due.len(), visibility).await?;
            if received.is_empty() {
                break;
            }
            let mut candidates = Vec::new();
            for (body, handle) in received {
                let message = match parse_message(&body) {
                    Ok(message) => message,
                    Err(e) => {
                        // Left alone: after a few receives the redrive moves it to the DLQ,
                        // where it can be looked at.
                        tracing::warn!(error = %e, "unreadable work message");
                        continue;
                    }
                };
                let item = message.item()?;
                if item.not_before > now {
                    if let Err(e) = self.defer_message(&message, &[handle], now).await {
                        tracing::warn!(invocation = %item.invocation_id, error = %e,
                            "work message not deferred; it comes back after its lease");
                    }
                    continue;
                }
                candidates.push((message, item, handle));
            }
            let reads = candidates.iter().map(|(m, _, _)| self.read_or_record(m));
            let invocations = futures::future::join_all(reads).await;
            let mut stale = Vec::new();
            for ((message, item, handle), invocation) in candidates.into_iter().zip(invocations) {
                let invocation = match invocation {
                    Ok(invocation) => invocation,
                    Err(e) => {
                        // One invocation that cannot be read (an unreadable item, a failed
                        // read) must not stop the claim of the others: its message comes back
                        // after the lease and, after a few receives, rests in the DLQ.
                        tracing::warn!(invocation = %item.invocation_id, error = %e, "work message left for later");
                        continue;
                    }
                };
                if message.is_stale(invocation.as_ref()) {
                    stale.push(handle);
                    continue;
                }
                self.hold(
                    &item.invocation_id,
                    Held {
                        attempts: item.attempts,
                        recorded: invocation.map(|i| i.attempts.len()),
                        handles: vec![handle],
                        lease_until,
                        carried: None,
                        ordered: false,
                    },
                );
                // The same invocation twice in one claim: delivered once, either message
                // deletes on settle.
                if !due.iter().any(|d| d.invocation_id == item.invocation_id) {
                    due.push(item);
                }
            }
            self.delete(&stale).await;
        }
        if due.len() < limit {
            self.claim_ordered(now, lease_until, limit - due.len(), &mut due)
                .await?;
        }
        // Stable: equal times stay in the order SQS gave them.
        due.sort_by_key(|item| item.not_before);
        Ok(due)
    }

    /// SQS cannot tell when its next message becomes visible, so there is no answer: the local
    /// worker then polls every second, and on Lambda the event source mapping polls.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, Error> {
        Ok(None)
    }

    /// Nothing to do: a received message's visibility timeout ends by itself, and the work
    /// queue is shared with other consumers whose leases are not this process's to end.
    async fn release_all(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// Splits messages of `sizes` bytes, in order, into `SendMessageBatch` calls: at most
/// [`BATCH`] entries and [`SQS_MESSAGE_BYTES`] of bodies each (SQS's limits for one batch; a
/// message carrying its invocation can be over 100 KiB). A message over the limit by itself
/// gets a batch of its own, which SQS then refuses, naming it.
fn batches(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, size) in sizes.iter().enumerate() {
        if i > start && (i - start == BATCH || bytes + size > SQS_MESSAGE_BYTES) {
            batches.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        batches.push(start..sizes.len());
    }
    batches
}

/// Whether an invocation can go unwritten until its first attempt is recorded: nobody may
/// call back before its outcome is written, i.e. a real-time FIRE_AND_FORGET invocation, or a
/// REQUEST_RESPONSE one to a SYNC webhook (it answers within the request). An ASYNC, DYNAMIC or
/// EVENTBRIDGE subscriber may complete it through the callback as soon as it has the request,
/// and the callback must find it; a TEST invocation's secret goes to the caller at once.
fn outcome_first(invocation: &Invocation) -> bool {
    invocation.invocation_type == InvocationType::RealTime
        && matches!(invocation.response_mode, None | Some(DispatchMode::Sync))
}

/// The `SendMessageBatch` entry `i` of `message`, with its body's size (for [`batches`]);
/// `place` adds where it goes (a delay, or a FIFO group and deduplication id).
fn entry(
    i: usize,
    message: &WorkMessage,
    place: impl FnOnce(
        aws_sdk_sqs::types::builders::SendMessageBatchRequestEntryBuilder,
    ) -> aws_sdk_sqs::types::builders::SendMessageBatchRequestEntryBuilder,
) -> Result<(usize, SendMessageBatchRequestEntry), Error> {
    let body = message.body();
    let builder = SendMessageBatchRequestEntry::builder()
        .id(i.to_string())
        .message_body(&body);
    let entry = place(builder)
        .build()
        .map_err(|e| failure("SendMessageBatch", e))?;
    Ok((body.len(), entry))
}

/// Kept off SQS's 12-hour visibility limit, which counts from the receive.
const KEEP_MARGIN_SECONDS: i64 = 300;

/// The SQS message group of a subscription's work with an ordering key: a hash, since a group
/// id is at most 128 characters of a restricted set and a key is any 255 characters.
pub fn order_group(subscription_id: &str, key: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(subscription_id.as_bytes());
    // Neither part is empty, and a subscription id has no NUL: the pair is unambiguous.
    hash.update([0]);
    hash.update(key.as_bytes());
    hex::encode(hash.finalize())
}

/// A lease as a visibility timeout SQS takes: whole seconds, 1 to 12 hours.
fn visibility_seconds(lease: chrono::Duration) -> i32 {
    i32::try_from(lease.num_seconds().clamp(1, MAX_VISIBILITY_SECONDS)).unwrap_or(1)
}

/// Seconds from `now` until `at`, rounded up (never early) and clamped to what SQS takes.
fn delay_seconds(at: DateTime<Utc>, now: DateTime<Utc>) -> i32 {
    let ms = (at - now).num_milliseconds();
    let seconds = ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) > 0);
    i32::try_from(seconds.clamp(0, MAX_DELAY_SECONDS)).unwrap_or(0)
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncated(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn failure(operation: &'static str, detail: impl std::fmt::Display) -> Error {
    Error::unavailable(AwsFailure {
        operation,
        detail: detail.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_and_stay_within_what_sqs_takes() {
        let now = Utc
            .timestamp_millis_opt(1_000_000)
            .single()
            .unwrap_or_default();
        let ms = chrono::Duration::milliseconds;
        assert_eq!(delay_seconds(now - ms(5_000), now), 0);
        assert_eq!(delay_seconds(now, now), 0);
        assert_eq!(delay_seconds(now + ms(1), now), 1);
        assert_eq!(delay_seconds(now + ms(2_000), now), 2);
        assert_eq!(delay_seconds(now + ms(2_001), now), 3);
        assert_eq!(delay_seconds(now + ms(3_600_000), now), 900);
    }

    #[test]
    fn batches_hold_at_most_ten_messages_and_256_kib() {
        assert!(batches(&[]).is_empty());
        assert_eq!(batches(&[100; 25]), vec![0..10, 10..20, 20..25]);
        // Carried invocations of up to ~130 KiB: two fit one batch only while under 256 KiB.
        let big = 130 * 1024;
        assert_eq!(batches(&[big, big, big]), vec![0..1, 1..2, 2..3]);
        let half = SQS_MESSAGE_BYTES / 2;
        assert_eq!(batches(&[half, half, 1]), vec![0..2, 2..3]);
        assert_eq!(batches(&[half, 1, half]), vec![0..2, 2..3]);
        // Exactly the limit is allowed; one byte more starts a new batch.
        assert_eq!(batches(&[SQS_MESSAGE_BYTES - 10, 10, 1]), vec![0..2, 2..3]);
        // A message too large by itself is sent alone (and refused by SQS, not split).
        assert_eq!(
            batches(&[1, SQS_MESSAGE_BYTES + 1, 1]),
            vec![0..1, 1..2, 2..3]
        );
        for sizes in [vec![9_000; 40], vec![70_000; 9], vec![1; 10]] {
            for range in batches(&sizes) {
                assert!(range.len() <= BATCH);
                let bytes: usize = sizes[range].iter().sum();
                assert!(bytes <= SQS_MESSAGE_BYTES);
            }
        }
    }

    #[test]
    fn a_failure_reason_is_cut_on_a_character_boundary() {
        assert_eq!(truncated("short", 10), "short");
        assert_eq!(truncated("abcdef", 3), "abc");
        // "é" is two bytes: cutting inside it drops it whole.
        assert_eq!(truncated("aé", 2), "a");
    }

    #[test]
    fn a_message_reads_back_as_written_and_garbage_is_invalid() {
        let message = WorkMessage {
            invocation_id: "a".into(),
            not_before: 1_741_944_413_271,
            attempts: 2,
            recorded: Some(3),
            invocation: None,
            unrecorded: false,
        };
        assert_eq!(parse_message(&message.body()).ok(), Some(message.clone()));
        let item = parse_work_message(&message.body()).ok();
        assert_eq!(
            item.map(|i| (i.attempts, i.not_before.timestamp_millis())),
            Some((2, 1_741_944_413_271))
        );
        for garbage in [
            "",
            "not json",
            "{}",
            r#"{"invocationId": "", "notBefore": 1, "attempts": 0}"#,
            r#"{"invocationId": "a", "notBefore": "soon", "attempts": 0}"#,
            r#"{"invocationId": "a", "notBefore": 1, "attempts": -1}"#,
            r#"{"invocationId": "a", "notBefore": 9223372036854775807, "attempts": 0}"#,
            r#"{"invocationId": "a", "notBefore": 1, "attempts": 0, "invocation": {"id": 3}}"#,
        ] {
            assert!(
                matches!(parse_work_message(garbage), Err(Error::Invalid { .. })),
                "{garbage:?} was accepted"
            );
        }
    }

    #[test]
    fn a_key_group_is_a_fixed_length_hash_of_subscription_and_key() {
        let group = order_group("sub-1", "k");
        assert_eq!(group.len(), 64);
        assert!(group.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(group, order_group("sub-1", "k"));
        assert_ne!(group, order_group("sub-2", "k"));
        assert_ne!(group, order_group("sub-1", "K"));
        // The boundary between the two parts counts.
        assert_ne!(order_group("ab", "c"), order_group("a", "bc"));
        assert_eq!(order_group("sub-1", &"k".repeat(255)).len(), 64);
    }
}
