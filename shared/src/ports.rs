//! The ports: what the use cases need from the outside world, as traits the adapters implement
//! (`infra/embedded` on SQLite, `infra/aws` on DynamoDB). Conditional writes are part of each
//! contract; `crate::contract` (feature `test-support`) holds the suite every adapter must pass.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::Error;
use crate::idempotency::{IdempotencyRecord, Raised};
use crate::model::{Invocation, InvocationState, Subscription};
use crate::query::{InvocationQuery, Page, SubscriptionQuery};

/// What delivering needs of the subscriptions: read them (one, or a trigger's), and write one
/// back (its endpoint health). A port of its own, apart from [`SubscriptionAdmin`], because the
/// functions that deliver link only what they call: a trait object carries every method of its
/// trait, so a delivering Lambda holding the whole store would carry the subscription API's
/// create, list and delete too.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + std::fmt::Debug {
    /// The subscription with this id, if any.
    async fn get(&self, id: &str) -> Result<Option<Subscription>, Error>;

    /// Every subscription of one trigger, enabled or not (the dispatcher's fan-out), in no
    /// particular order. Shared (`Arc`): a cache hands out its entries without copying them,
    /// and a fan-out's invocations hold them as they are.
    async fn list_for_trigger(&self, trigger_id: &str) -> Result<Vec<Arc<Subscription>>, Error>;

    /// Replaces the stored subscription if its stored `version` is still `expected_version`.
    ///
    /// Errors: [`Error::NotFound`] when it is gone; [`Error::Conflict`] when another write came
    /// first.
    async fn replace(
        &self,
        subscription: &Subscription,
        expected_version: u64,
    ) -> Result<(), Error>;
}

/// Where subscriptions are managed (the subscription API): create, query, delete.
#[async_trait]
pub trait SubscriptionAdmin: SubscriptionStore {
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

    /// One page of subscriptions matching `query`. Ties in the sort order are broken by id,
    /// and without sorters the order is by id, so pages never overlap.
    async fn list(&self, query: &SubscriptionQuery) -> Result<Page<Subscription>, Error>;

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

impl Transition {
    /// Sets the state and outcome this transition writes.
    pub fn apply_to(&self, invocation: &mut Invocation) {
        invocation.state = self.to;
        invocation.completed = self.completed;
        invocation.output.clone_from(&self.output);
        invocation.error.clone_from(&self.error);
    }
}

/// `invocation` as [`DeliveryQueue::settle`] writes it: `attempt` appended, and `transition`
/// applied when its state is one of `from`.
pub fn settled(
    mut invocation: Invocation,
    attempt: &crate::model::Attempt,
    from: &[InvocationState],
    transition: Option<&Transition>,
) -> Invocation {
    invocation.attempts.push(attempt.clone());
    if let Some(t) = transition.filter(|_| from.contains(&invocation.state)) {
        t.apply_to(&mut invocation);
    }
    invocation
}

/// What [`InvocationStore::transition_judged`] asks of the caller: the transition to make of
/// the invocation as stored, or why none may be made. Called with the store's copy at the moment
/// of the write, possibly more than once (a store may retry a write), so it must not have side
/// effects.
pub type Judge = Arc<dyn Fn(&Invocation) -> Result<Transition, Error> + Send + Sync>;

/// How [`InvocationStore::transition_judged`] ended.
#[derive(Debug)]
pub enum Judged {
    /// No invocation has this id (or its row could not be read, and was set aside).
    Missing,
    /// The judge refused, with this error; nothing was written. The invocation as it was read.
    Refused(Box<Invocation>, Error),
    /// Written: the state it was in before (`was`), and the invocation as written.
    Written {
        was: InvocationState,
        invocation: Box<Invocation>,
    },
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

    /// [`InvocationStore::transition`] for a caller holding the invocation as it read it
    /// (`held`). A store may answer with `held` itself, the transition applied, when its row had
    /// not changed since (same state, same number of attempts), rather than read it back.
    async fn transition_held(
        &self,
        held: Invocation,
        from: &[InvocationState],
        transition: &Transition,
    ) -> Result<Invocation, Error> {
        self.transition(&held.id, from, transition).await
    }

    /// Reads invocation `id`, asks `judge` what to make of it, and makes that transition if
    /// its state is still one of `from`: the callback's read, check and write as one step. A
    /// store with a single writer does all of it there, on the writer's own copy, instead of
    /// reading through a second connection first. The default reads, judges, then writes with
    /// [`InvocationStore::transition_held`].
    ///
    /// Errors: [`Error::NotOpen`] (with the current state) when the state is no longer in `from`
    /// at the write (another writer came first); the judge's own refusals are
    /// [`Judged::Refused`], not errors.
    async fn transition_judged(
        &self,
        id: &str,
        from: &[InvocationState],
        judge: Judge,
    ) -> Result<Judged, Error> {
        let Some(invocation) = self.get(id).await? else {
            return Ok(Judged::Missing);
        };
        let transition = match judge(&invocation) {
            Ok(transition) => transition,
            Err(refusal) => return Ok(Judged::Refused(Box::new(invocation), refusal)),
        };
        let was = invocation.state;
        let invocation = self.transition_held(invocation, from, &transition).await?;
        Ok(Judged::Written {
            was,
            invocation: Box::new(invocation),
        })
    }

    /// Open invocations (`PENDING`, `ACKNOWLEDGED`) whose deadline or heartbeat due time
    /// ([`Invocation::due`]) is before `now`, earliest first, at most `limit` (the deadline
    /// sweep).
    async fn overdue(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Invocation>, Error>;

    /// Moves the heartbeat due time of an open invocation with a heartbeat timer to `due`
    /// (which the caller keeps at or before the deadline), and sets its last heartbeat to
    /// `heartbeat` when given (`None` leaves it), in one write conditional on the state being
    /// open; returns the invocation as written. From then on [`InvocationStore::overdue`]
    /// returns it once `due` has passed, not before; a later transition or replay ends the
    /// timer (a replay clears it).
    ///
    /// Errors: [`Error::NotFound`] when there is none; [`Error::NotOpen`] (with the current
    /// state) when it is not open.
    async fn keep_alive(
        &self,
        id: &str,
        due: DateTime<Utc>,
        heartbeat: Option<DateTime<Utc>>,
    ) -> Result<Invocation, Error>;
}

/// What reads or deletes across many invocations: the status list and retention. A port of its
/// own because only the status query and the local stack's retention need it: a function that
/// delivers links none of this code (on DynamoDB, a merge over the sharded indexes, a batched
/// read, sharded deletes), which keeps its Lambda package under budget. (On AWS, retention is
/// DynamoDB's TTL.)
#[async_trait]
pub trait InvocationScans: InvocationStore {
    /// One page of invocations matching `query`. Ties in the sort order are broken by id; with
    /// no sorters the newest come first.
    async fn list(&self, query: &InvocationQuery) -> Result<Page<Invocation>, Error>;

    /// Deletes up to `limit` finished invocations: `COMPLETED` ones completed before
    /// `succeeded_before`, `FAILED` and `TIMED_OUT` ones completed before `failed_before`.
    /// Returns how many were deleted (retention runs it in batches until it returns less than
    /// `limit`).
    async fn purge(
        &self,
        succeeded_before: DateTime<Utc>,
        failed_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, Error>;
}

/// One unit of delivery work: deliver this invocation no earlier than `not_before`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkItem {
    pub invocation_id: String,
    pub not_before: DateTime<Utc>,
    /// Attempts made so far.
    pub attempts: u32,
}

/// What happens to a work item after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum NextStep {
    /// Nothing more to deliver: remove the item.
    Done,
    /// Try again at this time (the item's lease is released).
    RetryAt(DateTime<Utc>),
}

/// The durable queue of delivery work, written together with the invocations it delivers.
#[async_trait]
pub trait DeliveryQueue: Send + Sync + std::fmt::Debug {
    /// Writes `invocations` and one work item each in one atomic, durable step (all or none).
    /// With `leased_until`, the items are leased to the caller, who delivers them itself (the
    /// in-process hand-off and the synchronous fast path); [`WorkSource::claim_due`] returns
    /// them only once that lease has run out, which is how a crashed worker's items come back.
    ///
    /// Errors: [`Error::AlreadyExists`] when an id is taken; then nothing is written.
    async fn accept(
        &self,
        invocations: &[Invocation],
        not_before: DateTime<Utc>,
        leased_until: Option<DateTime<Utc>>,
    ) -> Result<Vec<WorkItem>, Error>;

    /// Records one attempt in one atomic step: appends `attempt` to the invocation, applies
    /// `transition` when the invocation's state is one of `from` (otherwise leaves the state as
    /// it is), and removes or reschedules the work item. Returns the invocation as written,
    /// `None` when it no longer exists.
    async fn settle(
        &self,
        invocation_id: &str,
        attempt: &crate::model::Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
        next: &NextStep,
    ) -> Result<Option<Invocation>, Error>;

    /// [`DeliveryQueue::settle`] for a caller holding the invocation as it read before this
    /// attempt (`held`): returns the invocation as written, or `held` unchanged when it no
    /// longer exists. A store may answer with `held` itself, settled as [`settled`] says, when
    /// its row had not changed since (same state, same number of attempts), rather than read
    /// the row back; an invocation's input is all but the whole of its row.
    async fn settle_held(
        &self,
        held: Invocation,
        attempt: &crate::model::Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
        next: &NextStep,
    ) -> Result<Invocation, Error> {
        Ok(self
            .settle(&held.id, attempt, from, transition, next)
            .await?
            .unwrap_or(held))
    }

    /// [`DeliveryQueue::settle_held`] for a caller that answers before the write is durable:
    /// the synchronous fast path, whose invocation this caller accepted (durable, its work
    /// leased to it) just before. Returns the invocation as it will read, once the write is
    /// queued. The write becomes durable shortly after, and every read of this store begun
    /// after this returns sees it (of a store several processes share, every read of this
    /// process). A crash in between loses only the outcome: the invocation
    /// is still PENDING with its work leased, and is delivered again when the lease ends (at
    /// least once). By default, and on stores that bill each write, it is `settle_held`:
    /// durable before it returns.
    async fn settle_held_soon(
        &self,
        held: Invocation,
        attempt: &crate::model::Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
        next: &NextStep,
    ) -> Result<Invocation, Error> {
        self.settle_held(held, attempt, from, transition, next)
            .await
    }

    /// Replays a FAILED invocation: in one atomic step, moves it back to PENDING (clearing
    /// `completed`, `output`, `error` and the heartbeat timer's `last` and `due`, setting
    /// `deadline`, keeping its attempts) and queues a
    /// work item due at `not_before`, leased until `leased_until`.
    ///
    /// Errors: [`Error::NotFound`] when there is none; [`Error::NotOpen`] with the current state
    /// when it is not FAILED.
    async fn replay(
        &self,
        invocation_id: &str,
        deadline: Option<DateTime<Utc>>,
        not_before: DateTime<Utc>,
        leased_until: Option<DateTime<Utc>>,
    ) -> Result<WorkItem, Error>;

    /// Whether this queue keeps the ordering-key promise: work of an invocation with an
    /// ordering key is claimable only once every invocation of the same subscription and key
    /// accepted before it is finished (not PENDING or ACKNOWLEDGED); accepted in one step, such
    /// work is not leased to the caller. Queues that do not (default) get no ordered work: the
    /// intake refuses `orderingKey`.
    fn orders_by_key(&self) -> bool {
        false
    }

    /// Removes a work item without an attempt (its invocation is gone or no longer open).
    async fn discard(&self, invocation_id: &str) -> Result<(), Error>;

    /// Puts taken-up work back, due at `until`, without an attempt: its attempt count stays and
    /// its lease ends (its subscription's circuit is open, or the subscription is disabled).
    /// Work that is gone is left gone.
    async fn postpone(&self, invocation_id: &str, until: DateTime<Utc>) -> Result<(), Error>;

    /// Makes sure the work of `invocation_ids` exists: queues it again for those of them
    /// that were accepted but never attempted and may have no work (a queue whose invocation
    /// write and work are two steps, where a process can die in between: a redelivered event
    /// whose invocations are already written calls this). At least once: work may be sent
    /// twice. Returns how many it queued; a queue that writes both in one step has nothing to do.
    async fn resend_unsent(&self, invocation_ids: &[String]) -> Result<usize, Error> {
        let _ = invocation_ids;
        Ok(0)
    }

    /// The sweep's half of [`DeliveryQueue::resend_unsent`]: queues again the work of up to
    /// `limit` invocations accepted but never attempted whose work was due before
    /// `due_before`, and counts them as due at `now` from then on (so that they wait another
    /// grace period before being sent again). Returns how many it queued.
    async fn recover_unsent(
        &self,
        now: DateTime<Utc>,
        due_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, Error> {
        let _ = (now, due_before, limit);
        Ok(0)
    }
}

/// Where a polling worker takes its work from: the local stack's worker (on SQLite, or on SQS
/// with `--backend aws`). Apart from [`DeliveryQueue`] because nothing else polls: on Lambda the
/// event source mapping hands work over, so the functions' packages leave claiming (and its SQS
/// `ReceiveMessage`) out.
#[async_trait]
pub trait WorkSource: DeliveryQueue {
    /// Leases up to `limit` items that are due (`not_before <= now`) and not leased (or whose
    /// lease ended before `now`) until `lease_until`, oldest first, and returns them.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkItem>, Error>;

    /// The earliest time an unleased item becomes due, or a leased one's lease ends.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, Error>;

    /// Ends every lease (a local process owns its database, so at start nothing is in flight).
    async fn release_all(&self) -> Result<(), Error>;
}

/// A freshly accepted work item with what delivering it needs, so that an in-process worker
/// does not read back what the intake just wrote.
#[derive(Debug, Clone)]
pub struct Handoff {
    pub item: WorkItem,
    /// Until when the item is reserved to this process. Past it the queue hands the item out
    /// again, so a hand-off that waited that long behind a busy worker is no longer its own.
    pub leased_until: DateTime<Utc>,
    pub invocation: Invocation,
    /// `None` when the caller does not have it at hand (the worker reads it).
    pub subscription: Option<Arc<Subscription>>,
}

/// Tells the in-process worker to look at the queue now: work it was not handed became
/// claimable (an ordered invocation's turn came). On AWS the queue needs no such nudge.
pub trait WorkPoke: Send + Sync + std::fmt::Debug {
    fn poke(&self);
}

/// Wakes the delivery worker for new work (locally: an in-process channel; on AWS the queue
/// itself does).
#[async_trait]
pub trait WorkSignal: Send + Sync + std::fmt::Debug {
    /// Hands freshly accepted work to the worker. Waits when the worker is saturated, so
    /// producers feel backpressure instead of growing a queue in memory.
    async fn wake(&self, work: Vec<Handoff>);
}

/// One outbound HTTP delivery. `Debug` shows no credential: the URL's userinfo is redacted
/// and the `Authorization` header's value left out.
#[derive(Clone)]
pub struct WebhookRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let value = if name.eq_ignore_ascii_case("authorization") {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (name.as_str(), value)
            })
            .collect();
        f.debug_struct("WebhookRequest")
            .field("url", &crate::secrets::redacted_url(&self.url))
            .field("headers", &headers)
            .field("body", &self.body.len())
            .finish()
    }
}

/// Posts webhooks: one pooled client, a timeout per attempt, size-capped answers.
#[async_trait]
pub trait WebhookClient: Send + Sync + std::fmt::Debug {
    async fn post(&self, request: WebhookRequest) -> crate::delivery::Reply;

    /// The host of `url`, as an attempt records its target (empty when it has none). A client
    /// that keeps its parsed targets answers from them, sparing a parse per attempt.
    fn host_of(&self, url: &str) -> String {
        crate::delivery::url_host(url)
    }
}

/// An event for other systems (`Trigger Invocation Completed`).
#[derive(Debug, Clone)]
pub struct Event {
    /// The bus to put it on: `None` for Triggerline's own bus, or the ARN of a subscriber's bus
    /// (EVENTBRIDGE subscriptions).
    pub bus: Option<String>,
    pub source: String,
    pub detail_type: String,
    /// The detail as JSON text: every publisher sends text (`PutEvents` takes a string, the
    /// local bus writes a line), so it is serialized once, straight from what it describes,
    /// instead of being copied into a `Value` tree first.
    pub detail: Box<RawValue>,
}

impl Event {
    /// An event whose detail is `detail` serialized.
    pub fn new(
        bus: Option<String>,
        source: &str,
        detail_type: &str,
        detail: &impl serde::Serialize,
    ) -> Event {
        Event {
            bus,
            source: source.to_owned(),
            detail_type: detail_type.to_owned(),
            // Details are structs of strings, times and JSON values, and maps with string
            // keys: nothing serde_json can refuse to serialize.
            detail: serde_json::value::to_raw_value(detail)
                .expect("an event's detail always serializes"),
        }
    }

    /// The detail parsed, for a reader that looks inside.
    pub fn detail_value(&self) -> Value {
        serde_json::from_str(self.detail.get()).expect("a detail is JSON text")
    }
}

impl PartialEq for Event {
    /// Equal when they go to the same place with the same detail text.
    fn eq(&self, other: &Event) -> bool {
        self.bus == other.bus
            && self.source == other.source
            && self.detail_type == other.detail_type
            && self.detail.get() == other.detail.get()
    }
}

/// Publishes events (EventBridge on AWS; an append-only JSONL file locally).
#[async_trait]
pub trait EventPublisher: Send + Sync + std::fmt::Debug {
    async fn publish(&self, events: &[Event]) -> Result<(), Error>;
}

/// Lets a caller that waits on invocations learn when one of them changed.
pub trait InvocationWatch: Send + Sync + std::fmt::Debug {
    /// Says that `invocation_id` changed state.
    fn changed(&self, invocation_id: &str);
    /// Starts listening. Subscribe *before* reading the state you wait on, so that a change
    /// between the read and the wait is not missed.
    fn subscribe(&self) -> Box<dyn WatchSubscription>;
}

/// A listener of [`InvocationWatch`].
#[async_trait]
pub trait WatchSubscription: Send {
    /// Returns when one of `ids` may have changed since the subscription began or the last
    /// return, or after `timeout`.
    async fn wait(&mut self, ids: &[String], timeout: std::time::Duration);
}

/// Where `Idempotency-Key`s of `start` and `test` are remembered ([`crate::idempotency`]).
#[async_trait]
pub trait IdempotencyStore: Send + Sync + std::fmt::Debug {
    /// Writes `record` unless a record of its key exists that expires after `now` (an expired
    /// one is replaced), as one conditional write: of several concurrent claims of one key,
    /// exactly one is written. Returns `None` when `record` was written, else the record that
    /// is there.
    async fn claim(
        &self,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, Error>;

    /// Sets `raised` on the record of `key` claimed at `created` (to the millisecond); does
    /// nothing when there is none (it expired and was claimed again, or was released).
    async fn record_raised(
        &self,
        key: &str,
        created: DateTime<Utc>,
        raised: &[Raised],
    ) -> Result<(), Error>;

    /// Deletes the record of `key` claimed at `created` if nothing was raised under it yet
    /// (its request failed before accepting anything, so that a repeat may try again); leaves
    /// any other record alone.
    async fn release(&self, key: &str, created: DateTime<Utc>) -> Result<(), Error>;

    /// Deletes up to `limit` records that expired before `now`; returns how many. The local
    /// retention timer runs it; DynamoDB's TTL does the same by itself, hence the default.
    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        let _ = (now, limit);
        Ok(0)
    }
}
