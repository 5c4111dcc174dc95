//! Raising invocations: `start` (real-time, extension) and `test`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use crate::delivery::ATTEMPT_TIMEOUT;
use crate::duration::IsoDuration;
use crate::idempotency::{self, IdempotencyRecord, Keyed, Raised};
use crate::jsonpath::FilterInput;
use crate::limits::{
    MAX_BATCH_INVOCATIONS, MAX_BATCH_STARTS, MAX_BATCH_WRITE_BYTES, MAX_KEPT_ATTEMPTS,
};
use crate::model::{
    DispatchMode, Invocation, InvocationState, InvocationType, LazyJson, Subscription, Target,
    TriggerType,
};
use crate::ports::{Handoff, IdempotencyStore, InvocationWatch, NextStep, WorkSignal};
use crate::secrets::hash_secret;
use crate::telemetry;
use crate::time::{IdGenerator, MAX_AHEAD_DAYS, later, max_ahead};
use crate::trace::TraceContext;
use crate::usecases::delivery::{Delivery, Settling};
use crate::wire::{StartBatch, StartInvocation, TestInvocation};
use crate::{Error, Result};

/// The usual [`DeliveryPolicy::lease`]: how long a freshly accepted or claimed item stays
/// leased to the process that delivers it. Past this, a crashed process's items are claimed
/// again by another.
///
/// [`DeliveryPolicy::lease`]: crate::usecases::delivery::DeliveryPolicy::lease
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The shortest wait limit with which a synchronous `start` delivers from the request itself:
/// one whole attempt ([`ATTEMPT_TIMEOUT`]) plus room for the writes around it. With a shorter
/// limit the worker delivers and the request only waits, so that the 542 comes at the limit.
pub const INLINE_WAIT_FLOOR: Duration = ATTEMPT_TIMEOUT.saturating_add(Duration::from_secs(5));

/// Who delivers freshly accepted work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeliveredBy {
    /// The request itself, inline (a synchronous start).
    Caller,
    /// The delivery worker (in-process when there is one, else whoever consumes the queue).
    Worker,
}

/// The intake use cases.
#[derive(Debug, Clone)]
pub struct Intake {
    pub delivery: Delivery,
    /// The in-process worker to hand fresh work to, if this process runs one (the local stack).
    /// `None`: the queue itself delivers the work (the AWS functions: SQS → dispatcher).
    pub signal: Option<Arc<dyn WorkSignal>>,
    /// When a synchronous `start` writes its invocations.
    pub sync_record: SyncRecord,
    pub ids: Arc<dyn IdGenerator>,
    /// How long a synchronous `start` waits before answering 542.
    pub sync_wait: Duration,
    /// Where `Idempotency-Key`s are remembered; `None` for an intake that takes none (the
    /// `Trigger Invocation Requested` consumer, whose event ids do that job).
    pub keys: Option<Arc<dyn IdempotencyStore>>,
    /// Whether a start due now whose subscriptions are all EVENTBRIDGE puts their events from
    /// the request itself, after the accept and before the answer, instead of queueing the
    /// work. For the Lambda intake (`signal: None`), whose queue leaves leased work unsent
    /// rather than sending a backstop message (`SqsDeliveryQueue::unsent_while_leased`): a
    /// `PutEvents` from here is cheaper than a work message, its receive and a consumer
    /// invocation, and reaches the subscriber a queue hop sooner.
    pub events_inline: bool,
}

/// A key this request claimed: under it, the invocations it raises are recorded.
#[derive(Debug, Clone)]
struct Claim {
    store: Arc<dyn IdempotencyStore>,
    key: String,
    created: DateTime<Utc>,
    /// Told when the key's record changes (raised recorded, or released), so that a repeat
    /// waiting on the key ([`Intake::claim`]) looks again at once.
    watch: Arc<dyn InvocationWatch>,
}

/// How often a repeat waiting on a key still held by its first request looks again at most,
/// where nothing tells it that the record changed (the Lambda functions' watch only paces).
const HELD_KEY_RECHECK: Duration = Duration::from_millis(250);

/// What claiming a key found.
enum Claimed {
    /// The key is this request's.
    Fresh(Claim),
    /// A request with the same key and body came first, raising these, at this time.
    Repeat {
        created: DateTime<Utc>,
        raised: Vec<Raised>,
    },
}

/// When a synchronous `start` makes its invocations durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRecord {
    /// Before the inline delivery, with a leased work item, as every other start does: a crash
    /// mid-delivery leaves work that is delivered again. Two writes per invocation (accept,
    /// outcome), so two durable commits before the answer. What the `Trigger Invocation
    /// Requested` consumer does, whose producer waits on nothing.
    BeforeDelivery,
    /// Once, after the inline delivery, with its outcome: one write per invocation. Only when
    /// every matching subscription is a SYNC-mode webhook of a REQUEST_RESPONSE trigger (those
    /// answer within the request or fail; nothing calls back), otherwise as `BeforeDelivery`.
    /// Until the write, nothing was promised: the producer has no 2xx, so a crash mid-delivery
    /// surfaces to it as a failed request it can repeat. The choice of the AWS functions, where
    /// each write is billed, and of the local stack, where each commit waits on an fsync.
    WithOutcome,
    /// While the inline delivery runs: the accept (leased to this request, as
    /// `BeforeDelivery`) is committed concurrently with the attempt, and the answer waits for
    /// both; the outcome is then written soon ([`DeliveryQueue::settle_held_soon`]), not
    /// waited for. The accept is durable before the answer, as every 2xx needs; a crash before
    /// the outcome is durable delivers again when the lease ends. The commit's fsync overlaps
    /// the subscriber's answer instead of following it, for the same cases as `WithOutcome`
    /// (otherwise as `BeforeDelivery`). The local stack's choice: one more write per start,
    /// but no fsync added to the round trip when the subscriber takes as long as one.
    DuringDelivery,
}

/// What every invocation of one `start` or `test` shares; each subscription adds the rest.
struct Raise {
    trigger_type: TriggerType,
    invocation_type: InvocationType,
    input: LazyJson,
    content: LazyJson,
    now: DateTime<Utc>,
    /// When they are first due; their deadlines run from here.
    not_before: DateTime<Utc>,
    trace: TraceContext,
    ordering_key: Option<String>,
}

/// One start, checked and matched: what [`Intake::prepare`] gives the write.
struct Prepared {
    trigger_type: TriggerType,
    now: DateTime<Utc>,
    /// When its invocations are first due.
    not_before: DateTime<Utc>,
    ordering_key: Option<String>,
    /// The bytes of its `input` and `contentJson`, as compact JSON.
    input_bytes: usize,
    /// The enabled subscriptions whose filter matched, and one invocation for each.
    subscriptions: Vec<Arc<Subscription>>,
    invocations: Vec<Invocation>,
}

/// One write of a batch: the invocations of consecutive starts due at the same time.
struct Write {
    not_before: DateTime<Utc>,
    invocations: Vec<Invocation>,
    subscriptions: Vec<Arc<Subscription>>,
    /// Whose invocations these are, in order: (the start's index in the batch, how many).
    starts: Vec<(usize, usize)>,
}

/// The batch's writes, taking each start's invocations: consecutive starts due at the same
/// time share a write up to [`TriggerType::FireAndForget`]'s fan-out limit (so no write is
/// larger than one start's may be, on any backend), and a start is never split. With
/// `one_each`, every start is a write of its own.
fn writes_of(prepared: &mut [Prepared], one_each: bool) -> Vec<Write> {
    let most = TriggerType::FireAndForget.max_subscriptions();
    let mut writes: Vec<Write> = Vec::new();
    for (index, start) in prepared.iter_mut().enumerate() {
        let count = start.invocations.len();
        if count == 0 {
            continue;
        }
        let joins = writes.last().is_some_and(|last| {
            !one_each
                && last.not_before == start.not_before
                && last.invocations.len() + count <= most
        });
        if !joins {
            writes.push(Write {
                not_before: start.not_before,
                invocations: Vec::with_capacity(count),
                subscriptions: Vec::new(),
                starts: Vec::new(),
            });
        }
        if let Some(write) = writes.last_mut() {
            write.invocations.append(&mut start.invocations);
            write
                .subscriptions
                .extend(start.subscriptions.iter().cloned());
            write.starts.push((index, count));
        }
    }
    writes
}

/// Checks that a batch's starts, matched, raise at most [`MAX_BATCH_INVOCATIONS`] invocations
/// carrying at most [`MAX_BATCH_WRITE_BYTES`] of input between them, so that one request never
/// writes more than the largest single start may.
///
/// Errors: [`Error::Invalid`] or [`Error::TooLarge`] naming `starts`, with the counts.
fn check_batch_size(prepared: &[Prepared]) -> Result<()> {
    let invocations: usize = prepared.iter().map(|p| p.invocations.len()).sum();
    if invocations > MAX_BATCH_INVOCATIONS {
        return Err(Error::invalid(
            "starts",
            format!(
                "raise {invocations} invocations between them (each start once per matching \
                 subscription); a batch raises at most {MAX_BATCH_INVOCATIONS}: send fewer \
                 starts to a request"
            ),
        ));
    }
    let bytes: usize = prepared
        .iter()
        .map(|p| p.input_bytes.saturating_mul(p.invocations.len()))
        .sum();
    if bytes > MAX_BATCH_WRITE_BYTES {
        return Err(Error::TooLarge {
            field: "starts".to_owned(),
            size: bytes,
            limit: MAX_BATCH_WRITE_BYTES,
            name: "MAX_BATCH_WRITE_BYTES",
        });
    }
    Ok(())
}

/// What `start` did.
#[derive(Debug, Clone)]
pub enum Started {
    /// Queued for delivery (or nothing matched, when empty).
    Queued(Vec<Invocation>),
    /// Synchronous, and every invocation finished in time.
    Finished(Vec<Invocation>),
    /// Synchronous, and some were still open at the wait limit.
    StillRunning {
        submitted: DateTime<Utc>,
        invocations: Vec<Invocation>,
    },
}

impl Intake {
    /// Raises a real-time invocation of `request.trigger_id` for each enabled subscription whose
    /// filter matches. Invocations and their work are durable before this returns.
    pub async fn start(&self, request: StartInvocation) -> Result<Started> {
        let began = std::time::Instant::now();
        let synchronous = request.is_synchronous.unwrap_or(false);
        let catalog = self.delivery.catalog;
        let entry = catalog.require("triggerId", &request.trigger_id)?;
        let started = self.start_known(request, None).await;
        if let (true, Ok(answer)) = (synchronous, &started) {
            let finished = !matches!(answer, Started::StillRunning { .. });
            telemetry::sync_answered(&entry.trigger.id, finished, began.elapsed());
        }
        started
    }

    /// [`Intake::start`] with an `Idempotency-Key`: the first request with the key raises and
    /// answers as `start` does; a repeat with the same body within [`idempotency::KEEP_FOR`]
    /// raises nothing and answers the same invocations (queued: as they were answered; a
    /// synchronous one waits on them again, with the same wait limit, and answers their
    /// outcome). Errors: [`Error::IdempotencyKeyReused`] for a different body, or while the
    /// first request has not yet accepted its invocations.
    pub async fn start_keyed(&self, keyed: &Keyed, request: StartInvocation) -> Result<Started> {
        self.delivery
            .catalog
            .require("triggerId", &request.trigger_id)?;
        match self.claim(keyed).await? {
            Claimed::Fresh(claim) => {
                let began = std::time::Instant::now();
                let synchronous = request.is_synchronous.unwrap_or(false);
                let trigger_id = request.trigger_id.clone();
                let started = self.start_known(request, Some(&claim)).await;
                if let (true, Ok(answer)) = (synchronous, &started) {
                    let finished = !matches!(answer, Started::StillRunning { .. });
                    telemetry::sync_answered(&trigger_id, finished, began.elapsed());
                }
                release_on_error(&claim, started).await
            }
            Claimed::Repeat { created, raised } => {
                if raised.is_empty() {
                    return Ok(Started::Queued(Vec::new()));
                }
                if request.is_synchronous.unwrap_or(false) {
                    let ids = raised.into_iter().map(|r| r.id).collect();
                    return self.wait_ids(created, ids).await;
                }
                let input = LazyJson::from(request.input);
                let content = LazyJson::from(request.content_json.unwrap_or_else(|| json!({})));
                let answered = raised
                    .iter()
                    .map(|r| {
                        self.as_answered(
                            r,
                            &request.trigger_id,
                            InvocationType::RealTime,
                            &input,
                            &content,
                            created,
                        )
                    })
                    .collect::<Result<_>>()?;
                Ok(Started::Queued(answered))
            }
        }
    }

    /// [`Intake::test`] with an `Idempotency-Key`, as [`Intake::start_keyed`] does it: a repeat
    /// answers the same invocations (and their callback secrets) and sends nothing.
    pub async fn test_keyed(
        &self,
        keyed: &Keyed,
        request: TestInvocation,
    ) -> Result<Vec<(Invocation, String)>> {
        let entry = self
            .delivery
            .catalog
            .require("triggerId", &request.trigger_id)?;
        match self.claim(keyed).await? {
            Claimed::Fresh(claim) => {
                let tested = self.test_with(request, Some(&claim)).await;
                release_on_error(&claim, tested).await
            }
            Claimed::Repeat { created, raised } => {
                let input = LazyJson::from(
                    request
                        .input
                        .unwrap_or_else(|| entry.trigger.example_input.clone()),
                );
                let content = LazyJson::from(request.content_json.unwrap_or_else(|| json!({})));
                raised
                    .iter()
                    .map(|r| {
                        let invocation = self.as_answered(
                            r,
                            &request.trigger_id,
                            InvocationType::Test,
                            &input,
                            &content,
                            created,
                        )?;
                        let secret = self.delivery.key.callback_secret(&r.id);
                        Ok((invocation, secret))
                    })
                    .collect()
            }
        }
    }

    /// Claims `keyed`'s key, or tells what an earlier request with it left. While the first
    /// request with the same body still holds the key (it has not yet accepted its
    /// invocations), a repeat waits for it, up to the synchronous wait limit, and then answers
    /// as a repeat (or, if the first failed and gave the key back, as the first); still held
    /// then, it is refused as in progress.
    async fn claim(&self, keyed: &Keyed) -> Result<Claimed> {
        let Some(store) = &self.keys else {
            return Err(Error::invalid(
                idempotency::HEADER,
                "this intake takes no Idempotency-Key",
            ));
        };
        let keep = chrono::Duration::from_std(idempotency::KEEP_FOR).unwrap_or_default();
        let key = keyed.record_key();
        let reused = |in_progress| Error::IdempotencyKeyReused {
            key: keyed.key.as_str().to_owned(),
            in_progress,
        };
        // Counted in the waits' bounds rather than read off a clock, so that a wait ended
        // early by a change (which the next look then finds) spends its whole step.
        let mut left = self.sync_wait;
        let mut changes = None;
        loop {
            // To the millisecond, as the stores keep times, so that the record is found again
            // by it.
            let now = self.delivery.clock.now();
            let now = Utc
                .timestamp_millis_opt(now.timestamp_millis())
                .single()
                .unwrap_or(now);
            let record = IdempotencyRecord {
                key: key.clone(),
                request_hash: keyed.request_hash.clone(),
                created: now,
                expires: later(now, keep),
                raised: None,
            };
            match store.claim(&record, now).await? {
                None => {
                    return Ok(Claimed::Fresh(Claim {
                        store: Arc::clone(store),
                        key,
                        created: now,
                        watch: Arc::clone(&self.delivery.notifier.watch),
                    }));
                }
                Some(found) if found.request_hash != keyed.request_hash => {
                    return Err(reused(false));
                }
                Some(IdempotencyRecord {
                    created,
                    raised: Some(raised),
                    ..
                }) => return Ok(Claimed::Repeat { created, raised }),
                Some(_) => {
                    if left.is_zero() {
                        return Err(reused(true));
                    }
                    match &mut changes {
                        // Listen before looking again, so that a change in between wakes us.
                        None => changes = Some(self.delivery.notifier.watch.subscribe()),
                        Some(changes) => {
                            let step = left.min(HELD_KEY_RECHECK);
                            changes.wait(std::slice::from_ref(&key), step).await;
                            left = left.saturating_sub(step);
                        }
                    }
                }
            }
        }
    }

    /// Records under `claim` the invocations its request raised (now durable). A failure is
    /// logged, not returned: the invocations are accepted and this request's answer stands; a
    /// repeat then finds the key still held (and after its wait a 409) rather than raising a
    /// second set.
    async fn record_raised(&self, claim: Option<&Claim>, invocations: &[Invocation]) {
        let Some(claim) = claim else { return };
        let raised: Vec<Raised> = invocations
            .iter()
            .map(|i| Raised {
                id: i.id.clone(),
                subscription_id: i.subscription_id.clone(),
                subscription_name: i.subscription_name.clone(),
            })
            .collect();
        if let Err(e) = claim
            .store
            .record_raised(&claim.key, claim.created, &raised)
            .await
        {
            tracing::warn!(error = %e, "the invocations of an Idempotency-Key could not be recorded");
        }
        claim.watch.changed(&claim.key);
    }

    /// An invocation as the first answer showed it: just raised, PENDING.
    fn as_answered(
        &self,
        raised: &Raised,
        trigger_id: &str,
        invocation_type: InvocationType,
        input: &LazyJson,
        content: &LazyJson,
        created: DateTime<Utc>,
    ) -> Result<Invocation> {
        let entry = self.delivery.catalog.require("triggerId", trigger_id)?;
        Ok(Invocation {
            id: raised.id.clone(),
            trigger_id: entry.trigger.id.clone(),
            trigger_type: entry.trigger.trigger_type,
            subscription_id: raised.subscription_id.clone(),
            subscription_name: raised.subscription_name.clone(),
            invocation_type,
            response_mode: None,
            state: InvocationState::Pending,
            created,
            completed: None,
            deadline: None,
            input: input.clone(),
            content_json: content.clone(),
            output: None,
            error: None,
            ordering_key: None,
            secret_hash: String::new(),
            attempts: vec![],
            // The answer shows neither; the stored invocation keeps both.
            heartbeat: None,
            trace: None,
        })
    }

    /// Raises the invocations of several queued starts (extension: `/start-batch`), in order:
    /// every start is checked and matched before anything is written, so a batch with one bad
    /// start raises nothing (the error names it: `starts[2].input`). The invocations are then
    /// accepted in writes of whole starts ([`writes_of`]: consecutive starts due at the same
    /// time together, up to one start's largest fan-out), each all or none, the writes side by
    /// side; a write that fails can leave the ones before it accepted (the answer is the error,
    /// as for one start whose answer is lost). With an `orderingKey` anywhere in the batch, each
    /// start is a write of its own, made one after the other in the batch's order. Returns each
    /// start's invocations, in the batch's order.
    pub async fn start_batch(&self, batch: StartBatch) -> Result<Vec<Vec<Invocation>>> {
        let count = batch.starts.len();
        if count == 0 || count > MAX_BATCH_STARTS {
            return Err(Error::invalid(
                "starts",
                format!("holds {count} starts; a batch holds 1 to {MAX_BATCH_STARTS}"),
            ));
        }
        // One moment for the whole batch: its starts due now are due together, and written so.
        let now = self.delivery.clock.now();
        let mut prepared = Vec::with_capacity(count);
        for (i, start) in batch.starts.into_iter().enumerate() {
            let at = |e: Error| e.within(&format!("starts[{i}]"));
            if start.is_synchronous == Some(true) {
                return Err(at(Error::invalid(
                    "isSynchronous",
                    "a batch is queued; send a synchronous start on its own to /start",
                )));
            }
            prepared.push(self.prepare(start, now).await.map_err(at)?);
        }
        check_batch_size(&prepared)?;
        // Ordered starts are written one after the other, so that a key keeps the batch's order.
        let ordered = prepared.iter().any(|p| p.ordering_key.is_some());
        let mut writes = writes_of(&mut prepared, ordered);
        if ordered {
            for write in &writes {
                self.accept_write(write).await?;
            }
        } else {
            let accepts = writes.iter().map(|write| self.accept_write(write));
            for accepted in futures_join_all(accepts).await {
                accepted?;
            }
        }
        // Each start's invocations back to it, in order.
        for write in &mut writes {
            let mut written = std::mem::take(&mut write.invocations).into_iter();
            for &(start, count) in &write.starts {
                prepared[start].invocations = written.by_ref().take(count).collect();
            }
        }
        Ok(prepared.into_iter().map(|p| p.invocations).collect())
    }

    /// Writes one group of a batch's invocations for the worker (or queue) to deliver.
    async fn accept_write(&self, write: &Write) -> Result<()> {
        self.accept(
            &write.invocations,
            &write.subscriptions,
            write.not_before,
            DeliveredBy::Worker,
        )
        .await
    }

    /// Checks one start made at `now` and builds its invocations, one per enabled subscription
    /// whose filter matches; writes nothing.
    async fn prepare(&self, request: StartInvocation, now: DateTime<Utc>) -> Result<Prepared> {
        let catalog = self.delivery.catalog;
        let entry = catalog.require("triggerId", &request.trigger_id)?;
        let input_bytes =
            crate::limits::check_input(&request.input, request.content_json.as_ref())?;
        entry.check_input("input", &request.input)?;
        let not_before = scheduled_at(now, request.delay.as_deref(), request.timestamp)?;
        let ordering_key = ordering_key(request.ordering_key)?;
        if ordering_key.is_some() && !self.delivery.queue.orders_by_key() {
            return Err(Error::invalid(
                "orderingKey",
                "not supported by this backend (its delivery queue keeps no order)",
            ));
        }
        // Prepared (and measured) once for every subscription's filter: the walk is linear in
        // the input.
        let subject = FilterInput::new(request.input);
        let subscriptions: Vec<Arc<Subscription>> = self
            .delivery
            .subscriptions
            .list_for_trigger(&entry.trigger.id)
            .await?
            .into_iter()
            .filter(|s| s.enabled && s.filter.as_ref().is_none_or(|f| f.matches_in(&subject)))
            .collect();
        let invocations = self.invocations(
            &subscriptions,
            &Raise {
                trigger_type: entry.trigger.trigger_type,
                invocation_type: InvocationType::RealTime,
                input: LazyJson::from(subject.into_input()),
                content: LazyJson::from(request.content_json.unwrap_or_else(|| json!({}))),
                now,
                not_before,
                trace: self.trace(request.trace),
                ordering_key: ordering_key.clone(),
            },
        );
        Ok(Prepared {
            trigger_type: entry.trigger.trigger_type,
            now,
            not_before,
            ordering_key,
            input_bytes,
            subscriptions,
            invocations,
        })
    }

    /// [`Intake::start`] of a trigger the catalog knows.
    async fn start_known(
        &self,
        request: StartInvocation,
        claim: Option<&Claim>,
    ) -> Result<Started> {
        let synchronous = request.is_synchronous.unwrap_or(false);
        let Prepared {
            trigger_type,
            now,
            not_before,
            ordering_key,
            subscriptions,
            invocations,
            ..
        } = self.prepare(request, self.delivery.clock.now()).await?;
        if invocations.is_empty() {
            self.record_raised(claim, &invocations).await;
            return Ok(Started::Queued(invocations));
        }
        let due_now = not_before <= now;
        // Delivering from the request holds it for up to one whole attempt; that is only done
        // when the wait limit leaves room for it, so that the caller gets its 542 at the limit
        // and not when a slow attempt ends. Otherwise the worker (or queue) delivers, and the
        // request waits on the outcome with the limit.
        // Ordered work waits its turn in the queue, so it is never delivered from here.
        // So is a delivery the health may hold back: its invocation is queued first, and the
        // queue holds it (leased to this request, it would only come back when the lease ends;
        // on AWS, when the sweep finds it unsent).
        let sendable = subscriptions.iter().all(|s| {
            crate::health::gate(s, now, &self.delivery.policy.health) == crate::health::Gate::Send
        });
        let inline = synchronous
            && due_now
            && self.sync_wait >= INLINE_WAIT_FLOOR
            && ordering_key.is_none()
            && sendable;
        if !synchronous
            && due_now
            && ordering_key.is_none()
            && sendable
            && self.events_inline
            && subscriptions
                .iter()
                .all(|s| matches!(s.target, Target::EventBridge(_)))
        {
            self.accept(
                &invocations,
                &subscriptions,
                not_before,
                DeliveredBy::Caller,
            )
            .await?;
            self.record_raised(claim, &invocations).await;
            // Accepted and durable: what the answer promises. An attempt that could not be
            // recorded leaves its invocation marked unsent, for the sweep.
            self.deliver_inline(&invocations, &subscriptions).await;
            return Ok(Started::Queued(invocations));
        }
        if inline && answers_within_the_request(trigger_type, &subscriptions) {
            match self.sync_record {
                SyncRecord::WithOutcome => {
                    return self
                        .deliver_then_record(now, invocations, &subscriptions, claim)
                        .await;
                }
                SyncRecord::DuringDelivery => {
                    return self
                        .deliver_while_accepting(now, invocations, &subscriptions, claim)
                        .await;
                }
                SyncRecord::BeforeDelivery => {}
            }
        }
        let by = if inline {
            DeliveredBy::Caller
        } else {
            DeliveredBy::Worker
        };
        self.accept(&invocations, &subscriptions, not_before, by)
            .await?;
        self.record_raised(claim, &invocations).await;
        if !synchronous {
            return Ok(Started::Queued(invocations));
        }
        if inline {
            let settled = self.deliver_inline(&invocations, &subscriptions).await;
            // The common SYNC case: every attempt settled as final, so the answer is in hand
            // and durable; no need to read it back.
            if let Some(finished) = settled.filter(|all| all.iter().all(|i| !i.state.is_open())) {
                return Ok(Started::Finished(finished));
            }
        }
        self.wait(now, invocations).await
    }

    /// Sends a test invocation to every subscription of the trigger (enabled or not), or to
    /// `subscriptionIds`. Returns the invocations with their callback secrets.
    pub async fn test(&self, request: TestInvocation) -> Result<Vec<(Invocation, String)>> {
        self.test_with(request, None).await
    }

    /// [`Intake::test`], recording what it raised under `claim`.
    async fn test_with(
        &self,
        request: TestInvocation,
        claim: Option<&Claim>,
    ) -> Result<Vec<(Invocation, String)>> {
        let catalog = self.delivery.catalog;
        let entry = catalog.require("triggerId", &request.trigger_id)?;
        let input = request
            .input
            .unwrap_or_else(|| entry.trigger.example_input.clone());
        crate::limits::check_input(&input, request.content_json.as_ref())?;
        entry.check_input("input", &input)?;
        let mut subscriptions: Vec<Arc<Subscription>> = self
            .delivery
            .subscriptions
            .list_for_trigger(&entry.trigger.id)
            .await?;
        if let Some(ids) = &request.subscription_ids {
            if let Some(unknown) = ids
                .iter()
                .find(|id| !subscriptions.iter().any(|s| &s.id == *id))
            {
                return Err(Error::invalid(
                    "subscriptionIds",
                    format!("`{unknown}` is not a subscription of {}", entry.trigger.id),
                ));
            }
            subscriptions.retain(|s| ids.contains(&s.id));
        }
        let now = self.delivery.clock.now();
        let invocations = self.invocations(
            &subscriptions,
            &Raise {
                trigger_type: entry.trigger.trigger_type,
                invocation_type: InvocationType::Test,
                input: LazyJson::from(input),
                content: LazyJson::from(request.content_json.unwrap_or_else(|| json!({}))),
                now,
                not_before: now,
                trace: self.trace(request.trace),
                ordering_key: None,
            },
        );
        if !invocations.is_empty() {
            self.accept(&invocations, &subscriptions, now, DeliveredBy::Worker)
                .await?;
        }
        self.record_raised(claim, &invocations).await;
        Ok(invocations
            .into_iter()
            .map(|i| {
                let secret = self.delivery.key.callback_secret(&i.id);
                (i, secret)
            })
            .collect())
    }

    /// Replays a FAILED invocation (extension): back to PENDING with a fresh deadline of the same
    /// length, delivered again at once.
    pub async fn retry(&self, id: &str) -> Result<Invocation> {
        crate::usecases::invocations::require_invocation_id(id)?;
        let invocation =
            self.delivery
                .invocations
                .get(id)
                .await?
                .ok_or_else(|| Error::NotFound {
                    kind: crate::error::ResourceKind::Invocation,
                    id: id.to_owned(),
                })?;
        if invocation.state != InvocationState::Failed {
            return Err(Error::invalid(
                "id",
                format!(
                    "only FAILED invocations can be retried; {id} is {}",
                    invocation.state
                ),
            ));
        }
        let kept = invocation.attempts.len();
        let round = self.delivery.policy.max_attempts as usize;
        if kept + round > MAX_KEPT_ATTEMPTS {
            return Err(Error::invalid(
                "id",
                format!(
                    "{id} has had {kept} delivery attempts, and another round of up to {round} \
                     could pass the {MAX_KEPT_ATTEMPTS} an invocation keeps; start a new \
                     invocation with its input instead"
                ),
            ));
        }
        let now = self.delivery.clock.now();
        // The same length as before, from now; stored times are bounded, and `later` keeps a
        // row written before the bounds from overflowing.
        let deadline = invocation
            .deadline
            .map(|d| later(now, d.signed_duration_since(invocation.created)));
        let lease_end = later(now, self.delivery.policy.lease_span());
        let leased_until = self.signal.is_some().then_some(lease_end);
        let writing = std::time::Instant::now();
        let item = match self
            .delivery
            .queue
            .replay(id, deadline, now, leased_until)
            .await
        {
            Err(Error::NotOpen { status, .. }) => {
                return Err(Error::invalid(
                    "id",
                    format!("only FAILED invocations can be retried; {id} is {status}"),
                ));
            }
            other => other?,
        };
        telemetry::store_write("replay", writing.elapsed());
        let invocation = Invocation {
            state: InvocationState::Pending,
            completed: None,
            output: None,
            error: None,
            deadline,
            heartbeat: invocation.heartbeat.map(|timer| crate::model::Heartbeat {
                last: None,
                due: None,
                ..timer
            }),
            ..invocation
        };
        telemetry::transitioned(&invocation, InvocationState::Failed);
        let handoff = Handoff {
            item,
            leased_until: lease_end,
            invocation: invocation.clone(),
            subscription: None,
        };
        if let Some(signal) = &self.signal {
            signal.wake(vec![handoff]).await;
        }
        Ok(invocation)
    }

    /// The trace every invocation of one request joins: the request's own, or a new one. Its
    /// id goes on the request's log span (`trace_id`), where the edge declared the field.
    fn trace(&self, requested: Option<TraceContext>) -> TraceContext {
        let trace = requested.unwrap_or_else(|| TraceContext::start(&*self.ids));
        telemetry::traced(&trace);
        trace
    }

    /// One invocation per subscription, in the subscriptions' order.
    fn invocations(&self, subscriptions: &[Arc<Subscription>], raise: &Raise) -> Vec<Invocation> {
        subscriptions
            .iter()
            .map(|s| self.invocation(s, raise))
            .collect()
    }

    fn invocation(&self, subscription: &Subscription, raise: &Raise) -> Invocation {
        let id = self.ids.id();
        let trigger_type = raise.trigger_type;
        let response_mode = match (trigger_type, &subscription.target) {
            (TriggerType::FireAndForget, _) => None,
            (TriggerType::RequestResponse, Target::Http(h)) => Some(h.mode),
            (TriggerType::RequestResponse, Target::EventBridge(_)) => Some(DispatchMode::Async),
        };
        // A subscription saved before `responseDeadline` was bounded may hold a longer one; it
        // is held to the bound here rather than made to fail every start of its trigger.
        let deadline = (trigger_type == TriggerType::RequestResponse).then(|| {
            later(
                raise.not_before,
                subscription.response_deadline.as_chrono().min(max_ahead()),
            )
        });
        let mut invocation = Invocation {
            ordering_key: raise.ordering_key.clone(),
            secret_hash: String::new(),
            id,
            trigger_id: subscription.trigger_id.clone(),
            trigger_type,
            subscription_id: subscription.id.clone(),
            subscription_name: subscription.name.clone(),
            invocation_type: raise.invocation_type,
            response_mode,
            state: InvocationState::Pending,
            created: raise.now,
            completed: None,
            input: raise.input.clone(),
            content_json: raise.content.clone(),
            output: None,
            error: None,
            attempts: vec![],
            trace: Some(raise.trace.clone()),
            // Copied, so that editing the subscription leaves open invocations as they were.
            heartbeat: subscription
                .heartbeat_timeout
                .clone()
                .filter(|_| deadline.is_some())
                .map(|timeout| crate::model::Heartbeat {
                    timeout,
                    last: None,
                    due: None,
                }),
            deadline,
        };
        // Only a subscriber sent the callback secret (ASYNC, DYNAMIC; EventBridge is ASYNC) or
        // the caller of a test, answered with it, can ever present one. The others keep no
        // hash, which no secret matches, and the HMAC, the hash and its hex are spared.
        if invocation.invocation_type == InvocationType::Test
            || crate::delivery::calls_back(&invocation)
        {
            invocation.secret_hash =
                hash_secret(&self.delivery.key.callback_secret(&invocation.id));
        }
        invocation
    }

    /// Writes the invocations and their work durably. Work that is due now is leased to whoever
    /// delivers it in this process (the caller's inline delivery, or the in-process worker, which
    /// is woken), so that the queue hands it out again only if this process dies. Without an
    /// in-process worker, the queue delivers it unleased.
    async fn accept(
        &self,
        invocations: &[Invocation],
        subscriptions: &[Arc<Subscription>],
        not_before: DateTime<Utc>,
        by: DeliveredBy,
    ) -> Result<()> {
        let now = self.delivery.clock.now();
        let in_process = match by {
            DeliveredBy::Caller => true,
            DeliveredBy::Worker => self.signal.is_some(),
        };
        // Ordered work is claimed from the queue in its turn, never handed over.
        let ordered = invocations.iter().any(|i| i.ordering_key.is_some());
        let leased_until = (in_process && not_before <= now && !ordered)
            .then(|| later(now, self.delivery.policy.lease_span()));
        let writing = std::time::Instant::now();
        let items = self
            .delivery
            .queue
            .accept(invocations, not_before, leased_until)
            .await?;
        telemetry::store_write("accept", writing.elapsed());
        invocations.iter().for_each(telemetry::created);
        if let (DeliveredBy::Worker, Some(signal), Some(until)) = (by, &self.signal, leased_until) {
            let work = items
                .into_iter()
                .zip(invocations)
                .map(|(item, invocation)| Handoff {
                    item,
                    leased_until: until,
                    invocation: invocation.clone(),
                    subscription: subscriptions
                        .iter()
                        .find(|s| s.id == invocation.subscription_id)
                        .cloned(),
                })
                .collect();
            signal.wake(work).await;
        }
        if ordered {
            self.delivery.notifier.poke_worker();
        }
        Ok(())
    }

    /// The synchronous fast path: deliver every invocation from here, concurrently, and return
    /// them as settled (`None` if any could not be settled: that one is left to the queue, whose
    /// work row stays until its lease runs out).
    async fn deliver_inline(
        &self,
        invocations: &[Invocation],
        subscriptions: &[Arc<Subscription>],
    ) -> Option<Vec<Invocation>> {
        let attempts = invocations.iter().map(|inv| {
            let sub = subscriptions
                .iter()
                .find(|s| s.id == inv.subscription_id)
                .cloned();
            self.delivery.attempt(inv.clone(), sub, 0)
        });
        let mut settled = Some(Vec::with_capacity(invocations.len()));
        for result in futures_join_all(attempts).await {
            match result {
                Ok(invocation) => settled
                    .iter_mut()
                    .for_each(|all| all.push(invocation.clone())),
                Err(e) => {
                    tracing_warn(&e);
                    settled = None;
                }
            }
        }
        settled
    }

    /// [`SyncRecord::WithOutcome`]: delivers every invocation inline first, then writes each
    /// once, with its outcome. An outcome that is not final (a retry) is queued as usual.
    async fn deliver_then_record(
        &self,
        submitted: DateTime<Utc>,
        invocations: Vec<Invocation>,
        subscriptions: &[Arc<Subscription>],
        claim: Option<&Claim>,
    ) -> Result<Started> {
        let tries = invocations.iter().map(|inv| {
            let sub = subscriptions.iter().find(|s| s.id == inv.subscription_id);
            self.delivery.try_once(inv, sub.map(|s| &**s), 0)
        });
        let tried = futures_join_all(tries).await;
        let mut recorded = Vec::with_capacity(invocations.len());
        let mut retrying = Vec::new();
        for (invocation, tried) in invocations.iter().zip(&tried) {
            let written = tried.applied_to(invocation);
            match tried.next {
                NextStep::RetryAt(at) => retrying.push((written, at)),
                NextStep::Done => recorded.push(written),
            }
        }
        if !recorded.is_empty() {
            let writing = std::time::Instant::now();
            self.delivery.invocations.create_all(&recorded).await?;
            telemetry::store_write("record", writing.elapsed());
        }
        for (invocation, at) in &retrying {
            let writing = std::time::Instant::now();
            self.delivery
                .queue
                .accept(std::slice::from_ref(invocation), *at, None)
                .await?;
            telemetry::store_write("accept", writing.elapsed());
            telemetry::created(invocation);
        }
        for (invocation, tried) in invocations.iter().zip(&tried) {
            if let Some(s) = subscriptions
                .iter()
                .find(|s| s.id == invocation.subscription_id)
            {
                self.delivery.record_health(s, &tried.attempt).await;
            }
        }
        for invocation in &recorded {
            // Written once, already settled: raised and delivered in the one write.
            telemetry::created(invocation);
            telemetry::delivered(invocation);
            telemetry::transitioned(invocation, InvocationState::Pending);
            self.delivery.notifier.finished_inline(invocation).await;
        }
        if claim.is_some() {
            let raised: Vec<Invocation> = recorded
                .iter()
                .chain(retrying.iter().map(|(i, _)| i))
                .cloned()
                .collect();
            self.record_raised(claim, &raised).await;
        }
        if retrying.is_empty() && recorded.iter().all(|i| !i.state.is_open()) {
            return Ok(Started::Finished(recorded));
        }
        recorded.extend(retrying.into_iter().map(|(i, _)| i));
        self.wait(submitted, recorded).await
    }

    /// [`SyncRecord::DuringDelivery`]: accepts the invocations while trying each once, then
    /// settles each with its attempt, written soon, and answers. A SYNC subscriber's attempt is
    /// final (never retried, never acknowledged); an outcome that could not be queued is left
    /// to the queue and waited on, as on the other paths.
    async fn deliver_while_accepting(
        &self,
        submitted: DateTime<Utc>,
        invocations: Vec<Invocation>,
        subscriptions: &[Arc<Subscription>],
        claim: Option<&Claim>,
    ) -> Result<Started> {
        let subscription_of = |invocation: &Invocation| {
            subscriptions
                .iter()
                .find(|s| s.id == invocation.subscription_id)
                .map(|s| &**s)
        };
        let accepting = async {
            self.accept(&invocations, subscriptions, submitted, DeliveredBy::Caller)
                .await?;
            // Recorded once accepted, not once answered: a repeat of this request then waits
            // on these invocations' outcome rather than on the key.
            self.record_raised(claim, &invocations).await;
            Ok::<(), Error>(())
        };
        let tries = futures_join_all(
            invocations
                .iter()
                .map(|inv| self.delivery.try_once(inv, subscription_of(inv), 0)),
        );
        let (accepted, tried) = futures::join!(accepting, tries);
        // Delivered but not accepted: the producer gets the error and may start again, which
        // at least once allows.
        accepted?;
        let ids: Vec<String> = invocations.iter().map(|i| i.id.clone()).collect();
        let mut settled = Vec::with_capacity(invocations.len());
        for (invocation, tried) in invocations.into_iter().zip(&tried) {
            let subscription = subscription_of(&invocation);
            let written = self
                .delivery
                .settle_tried(invocation, subscription, tried, Settling::Soon)
                .await;
            match written {
                Ok(invocation) => settled.push(invocation),
                // Left to the queue, whose leased work comes back when its lease ends.
                Err(e) => tracing_warn(&e),
            }
        }
        if settled.len() == ids.len() && settled.iter().all(|i| !i.state.is_open()) {
            return Ok(Started::Finished(settled));
        }
        self.wait_ids(submitted, ids).await
    }

    /// Holds until every invocation is finished or the wait limit passes.
    async fn wait(
        &self,
        submitted: DateTime<Utc>,
        invocations: Vec<Invocation>,
    ) -> Result<Started> {
        let ids: Vec<String> = invocations.iter().map(|i| i.id.clone()).collect();
        self.wait_ids(submitted, ids).await
    }

    /// [`Intake::wait`] on invocations known by id (a repeated keyed start re-attaching to
    /// those of the first).
    async fn wait_ids(&self, submitted: DateTime<Utc>, ids: Vec<String>) -> Result<Started> {
        let started = std::time::Instant::now();
        let mut changes = self.delivery.notifier.watch.subscribe();
        loop {
            let mut current = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(i) = self.delivery.invocations.get(id).await? {
                    current.push(i);
                }
            }
            if current.iter().all(|i| !i.state.is_open()) {
                return Ok(Started::Finished(current));
            }
            let left = self.sync_wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Ok(Started::StillRunning {
                    submitted,
                    invocations: current,
                });
            }
            let open: Vec<String> = current
                .iter()
                .filter(|i| i.state.is_open())
                .map(|i| i.id.clone())
                .collect();
            changes.wait(&open, left).await;
        }
    }
}

/// Gives `claim`'s key back when its request failed (before accepting anything: the store
/// keeps a key under which invocations were recorded), so that a repeat may try again.
async fn release_on_error<T>(claim: &Claim, result: Result<T>) -> Result<T> {
    if result.is_err() {
        if let Err(e) = claim.store.release(&claim.key, claim.created).await {
            tracing::warn!(error = %e, "an Idempotency-Key could not be released");
        }
        claim.watch.changed(&claim.key);
    }
    result
}

/// When a `start` is due: `delay` after now, at `timestamp` (epoch milliseconds), or now. A time
/// in the past means now; one more than [`max_ahead`] away is refused, naming the field, so that
/// no stored time leaves the range the stores sort and parse.
fn scheduled_at(
    now: DateTime<Utc>,
    delay: Option<&str>,
    timestamp: Option<i64>,
) -> Result<DateTime<Utc>> {
    match (delay, timestamp) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "delay",
            "give either delay or timestamp, not both",
        )),
        (Some(delay), None) => match IsoDuration::parse_bounded("delay", delay) {
            Ok(delay) => Ok(later(now, delay.as_chrono())),
            // A zero delay (`PT0S`) is "now", as a timestamp in the past is.
            Err(refused) => match IsoDuration::parse_millis_or_zero("delay", delay) {
                Ok(0) => Ok(now),
                _ => Err(refused),
            },
        },
        (None, Some(ms)) => {
            let latest = later(now, max_ahead());
            if ms > latest.timestamp_millis() {
                return Err(Error::invalid(
                    "timestamp",
                    format!(
                        "`{ms}` is more than {MAX_AHEAD_DAYS} days ahead; give epoch milliseconds \
                         (now is {})",
                        now.timestamp_millis()
                    ),
                ));
            }
            // A future time in epoch seconds reads as a moment of 1970 in milliseconds, which
            // would be "now": delivered at once instead of when the caller meant. Milliseconds
            // below `SECONDS_BELOW` are before March 1973, so no caller means them as such.
            if ms > now.timestamp() && ms < SECONDS_BELOW {
                return Err(Error::invalid(
                    "timestamp",
                    format!(
                        "`{ms}` reads as epoch seconds (as milliseconds it is in 1970); give epoch \
                         milliseconds (now is {})",
                        now.timestamp_millis()
                    ),
                ));
            }
            // Below the bound, only times before chrono's earliest fail to convert: the past.
            Ok(Utc
                .timestamp_millis_opt(ms)
                .single()
                .map_or(now, |at| at.max(now)))
        }
        (None, None) => Ok(now),
    }
}

/// Epoch milliseconds of 1973-03-03: a `timestamp` below it that is a future time in epoch
/// seconds was sent in seconds ([`scheduled_at`]).
const SECONDS_BELOW: i64 = 100_000_000_000;

/// A start's `orderingKey`: 1 to 255 characters, none of them a control character.
fn ordering_key(key: Option<String>) -> Result<Option<String>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let length = key.chars().count();
    if length == 0 || length > MAX_ORDERING_KEY_CHARS {
        return Err(Error::invalid(
            "orderingKey",
            format!("must be 1 to {MAX_ORDERING_KEY_CHARS} characters, not {length}"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid(
            "orderingKey",
            "must not contain control characters",
        ));
    }
    Ok(Some(key))
}

/// The longest `orderingKey`, in characters.
pub const MAX_ORDERING_KEY_CHARS: usize = 255;

/// Whether every subscription answers within the request itself (a SYNC-mode webhook of a
/// REQUEST_RESPONSE trigger): then nothing can call back before the outcome is written.
fn answers_within_the_request(
    trigger_type: TriggerType,
    subscriptions: &[Arc<Subscription>],
) -> bool {
    trigger_type == TriggerType::RequestResponse
        && subscriptions
            .iter()
            .all(|s| matches!(&s.target, Target::Http(h) if h.mode == DispatchMode::Sync))
}

async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    futures::future::join_all(futures).await
}

fn tracing_warn(e: &Error) {
    tracing::warn!(error = %e, "inline delivery could not be settled; the queue will retry it");
}
