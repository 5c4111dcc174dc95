//! Delivering one invocation: build the signed request, post it (or put the event on a bus),
//! judge the answer, and settle the outcome in one write. Shared by the worker, the synchronous
//! fast path and the SQS consumer.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::Result;
use crate::catalog::Catalog;
use crate::delivery::{self, Reply, Verdict};
use crate::health::{self, Gate, HealthPolicy};
use crate::model::{
    Attempt, AttemptOutcome, HttpAuth, Invocation, InvocationState, InvocationType, Subscription,
    Target, TriggerType,
};
use crate::ports::{
    DeliveryQueue, Event, EventPublisher, Handoff, InvocationStore, NextStep, SubscriptionStore,
    Transition, WebhookClient, WebhookRequest, WorkItem,
};
use crate::secrets::{SecretKey, webhook_signatures};
use crate::telemetry;
use crate::time::{Clock, Jitter};
use crate::usecases::notify::Notifier;

/// How deliveries are made and retried.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// Base URL of the callback route (`{public_url}/trigger-invocations/v1/{id}/complete`) and
    /// of the status URLs a 542 names.
    pub public_url: String,
    /// Attempts per invocation, the first included.
    pub max_attempts: u32,
    /// `source` of the events Triggerline publishes.
    pub event_source: String,
    /// Name of the bus EVENTBRIDGE subscriptions deliver to, in the subscriber's account and
    /// region.
    pub subscriber_bus: String,
    /// How long work taken up for delivery (a freshly accepted item handed to the in-process
    /// worker, or a due item it claims) stays reserved to the process delivering it. A process
    /// that dies mid-delivery has its work delivered by another after this; it must outlast
    /// one attempt ([`delivery::ATTEMPT_TIMEOUT`]). On SQS it is the visibility timeout of a
    /// claimed message. Usually [`crate::usecases::intake::DEFAULT_LEASE`].
    pub lease: std::time::Duration,
    /// The circuit breaker and automatic disabling ([`crate::health`]).
    pub health: HealthPolicy,
}

impl DeliveryPolicy {
    /// [`DeliveryPolicy::lease`] as the stores' time arithmetic takes it, at most 12 h (SQS's
    /// longest visibility timeout; the local server refuses more), so that adding it to a time
    /// cannot overflow.
    pub fn lease_span(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.lease)
            .unwrap_or(chrono::Duration::MAX)
            .min(chrono::Duration::hours(12))
    }
}

/// When [`Delivery::settle_tried`] returns: once its write is durable, or once it is queued
/// ([`crate::ports::DeliveryQueue::settle_held_soon`]) for an outcome the producer is answered
/// with inline (whose completion event is then sent only as
/// [`crate::usecases::notify::Notifier::finished_inline`] says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settling {
    Durable,
    Soon,
}

/// One attempt, judged but not yet written.
#[derive(Debug, Clone)]
pub struct Tried {
    pub attempt: Attempt,
    /// How the invocation's state moves, if it does (a retry leaves it PENDING).
    pub transition: Option<Transition>,
    pub next: NextStep,
}

impl Tried {
    /// The invocation as it reads once this attempt is recorded (the attempt appended and the
    /// transition applied): what one write stores on the synchronous fast path.
    pub fn applied_to(&self, invocation: &Invocation) -> Invocation {
        crate::ports::settled(
            invocation.clone(),
            &self.attempt,
            &[invocation.state],
            self.transition.as_ref(),
        )
    }
}

/// Everything one delivery needs. Only the functions that send (the intake and the work
/// consumer) build one; the callback and the sweep settle invocations with
/// [`Completion`](crate::usecases::complete::Completion) and
/// [`Sweep`](crate::usecases::sweep::Sweep), which hold no subscriptions, queue or client.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub catalog: &'static Catalog,
    pub subscriptions: Arc<dyn SubscriptionStore>,
    pub invocations: Arc<dyn InvocationStore>,
    pub queue: Arc<dyn DeliveryQueue>,
    pub client: Arc<dyn WebhookClient>,
    /// Where EVENTBRIDGE subscriptions' events are put.
    pub events: Arc<dyn EventPublisher>,
    pub clock: Arc<dyn Clock>,
    /// Spreads retries (see [`delivery::next_attempt`]).
    pub jitter: Arc<dyn Jitter>,
    /// Signs requests and derives each invocation's callback secret.
    pub key: SecretKey,
    pub policy: DeliveryPolicy,
    pub notifier: Notifier,
}

impl Delivery {
    /// The callback URL of one invocation.
    pub fn callback_url(&self, invocation_id: &str) -> String {
        format!(
            "{}/trigger-invocations/v1/{invocation_id}/complete",
            self.policy.public_url.trim_end_matches('/')
        )
    }

    /// Where a producer reads (and waits for) one invocation's outcome: the 542 answer names it
    /// for each invocation still running.
    pub fn status_url(&self, invocation_id: &str) -> String {
        format!(
            "{}/trigger-invocations/v1/{invocation_id}/status",
            self.policy.public_url.trim_end_matches('/')
        )
    }

    /// Makes one attempt at a queued work item. Returns the invocation as settled, or `None`
    /// when there was nothing (left) to deliver.
    pub async fn deliver(&self, item: &WorkItem) -> Result<Option<Invocation>> {
        let Some(invocation) = self.invocations.get(&item.invocation_id).await? else {
            self.queue.discard(&item.invocation_id).await?;
            return Ok(None);
        };
        self.deliver_read(item, invocation).await
    }

    /// [`Delivery::deliver`] with the invocation already read, by a caller that had to read it
    /// anyway (the SQS consumer judges each message against it), so it is not read twice.
    pub async fn deliver_read(
        &self,
        item: &WorkItem,
        invocation: Invocation,
    ) -> Result<Option<Invocation>> {
        // Only a PENDING invocation is delivered: an acknowledged one waits for its callback,
        // a finished one is done (e.g. completed by a callback before the worker got here).
        if invocation.state != InvocationState::Pending {
            self.queue.discard(&item.invocation_id).await?;
            return Ok(None);
        }
        let subscription = self.subscriptions.get(&invocation.subscription_id).await?;
        self.attempt(invocation, subscription.map(Arc::new), item.attempts)
            .await
            .map(Some)
    }

    /// Delivers freshly handed-off work, reading only what the hand-off lacks.
    ///
    /// A hand-off whose lease no longer covers a whole attempt (it waited behind a saturated
    /// worker) is left alone: the queue hands the item out again when the lease ends, and
    /// whoever claims it then reads the invocation's current state. Sending it from here as
    /// well would deliver it twice, the second time from a stale copy.
    pub async fn deliver_handoff(&self, work: Handoff) -> Result<Option<Invocation>> {
        let attempt_span =
            chrono::Duration::from_std(delivery::ATTEMPT_TIMEOUT).unwrap_or(chrono::Duration::MAX);
        if self.clock.now() >= crate::time::earlier(work.leased_until, attempt_span) {
            tracing::debug!(invocation = %work.item.invocation_id,
                "hand-off outlived its lease; left to the queue");
            return Ok(None);
        }
        match work.subscription {
            Some(subscription) => self
                .attempt(work.invocation, Some(subscription), work.item.attempts)
                .await
                .map(Some),
            None => self.deliver(&work.item).await,
        }
    }

    /// Makes one attempt with the invocation and subscription already in hand (the fast path),
    /// and settles it.
    ///
    /// A delivery its subscription's health holds back (the circuit is open, or the
    /// subscription is disabled) is put back on the queue without an attempt, and the
    /// invocation comes back as it was. Test invocations are never held back.
    pub async fn attempt(
        &self,
        invocation: Invocation,
        subscription: Option<Arc<Subscription>>,
        attempts_before: u32,
    ) -> Result<Invocation> {
        let subscription = match subscription {
            Some(s) if invocation.invocation_type != InvocationType::Test => {
                match self.admit(s).await {
                    Admission::Send(s) => Some(s),
                    Admission::Hold(until, s) => return self.hold(invocation, &s, until).await,
                }
            }
            other => other,
        };
        let tried = self
            .try_once(&invocation, subscription.as_deref(), attempts_before)
            .await;
        self.settle_tried(
            invocation,
            subscription.as_deref(),
            &tried,
            Settling::Durable,
        )
        .await
    }

    /// Records a judged attempt of a PENDING invocation (as [`Delivery::attempt`] does after
    /// its try) and does what follows: the heartbeat timer of an acknowledgement, the
    /// subscription's health, the telemetry and the notices of a transition.
    pub async fn settle_tried(
        &self,
        invocation: Invocation,
        subscription: Option<&Subscription>,
        tried: &Tried,
        settling: Settling,
    ) -> Result<Invocation> {
        let writing = Instant::now();
        let from = [InvocationState::Pending];
        let (attempt, transition, next) = (&tried.attempt, tried.transition.as_ref(), &tried.next);
        let mut settled = match settling {
            Settling::Durable => {
                let queue = &self.queue;
                queue.settle_held(invocation, attempt, &from, transition, next)
            }
            Settling::Soon => {
                let queue = &self.queue;
                queue.settle_held_soon(invocation, attempt, &from, transition, next)
            }
        }
        .await?;
        let operation = match settling {
            Settling::Durable => "settle",
            // The time to queue it: what the caller waited for.
            Settling::Soon => "settle_soon",
        };
        telemetry::store_write(operation, writing.elapsed());
        if settled.state == InvocationState::Acknowledged
            && tried
                .transition
                .as_ref()
                .is_some_and(|t| t.to == InvocationState::Acknowledged)
        {
            settled = self.start_heartbeat(settled).await;
        }
        if let Some(s) = subscription {
            self.record_health(s, &tried.attempt).await;
        }
        if let Some(t) = &tried.transition {
            // The write applies the transition only to a PENDING invocation: one a callback or
            // the sweep settled meanwhile keeps its state, and this delivery changed nothing.
            // Whoever settled it announced it then (a second `Trigger Invocation Completed`
            // would reach every consumer twice). The same state with another completion time
            // is such a case too: a callback that completed it before this answer was read.
            let same_ms = |a: Option<DateTime<Utc>>| a.map(|a| a.timestamp_millis());
            let applied =
                settled.state == t.to && same_ms(settled.completed) == same_ms(t.completed);
            if !applied {
                return Ok(settled);
            }
            telemetry::delivered(&settled);
            telemetry::transitioned(&settled, InvocationState::Pending);
            match settling {
                Settling::Durable => self.notifier.finished(&settled).await,
                // Made soon only for an outcome its producer is answered with.
                Settling::Soon => self.notifier.finished_inline(&settled).await,
            }
        }
        Ok(settled)
    }

    /// Whether a delivery to `subscription` may go now, by its health. When the cool-down of
    /// an open circuit is over, the delivery that claims the probe (one conditional write of
    /// the subscription) goes; the others wait for the probe's outcome.
    async fn admit(&self, subscription: Arc<Subscription>) -> Admission {
        let now = self.clock.now();
        let policy = &self.policy.health;
        match health::gate(&subscription, now, policy) {
            Gate::Send => return Admission::Send(subscription),
            Gate::HoldUntil(until) => return Admission::Hold(until, subscription),
            Gate::Probe => {}
        }
        let claimed = health::claim_probe(&subscription, now, policy);
        if self
            .subscriptions
            .replace(&claimed, subscription.version)
            .await
            .is_ok()
        {
            tracing::info!(subscription = %subscription.id, "circuit half-open: sending a probe");
            return Admission::Send(Arc::new(claimed));
        }
        // Another delivery claimed the probe, or the subscription changed: judged as it reads
        // now (a failed write empties the cache, so this read is fresh).
        let retry_soon = crate::time::later(now, chrono::Duration::seconds(1));
        match self.subscriptions.get(&subscription.id).await {
            Ok(Some(fresh)) => match health::gate(&fresh, now, policy) {
                Gate::Send => Admission::Send(Arc::new(fresh)),
                Gate::HoldUntil(until) => Admission::Hold(until, Arc::new(fresh)),
                Gate::Probe => Admission::Hold(retry_soon, Arc::new(fresh)),
            },
            // Deleted: the next look fails the invocation as a delivery to a deleted one does.
            Ok(None) => Admission::Hold(retry_soon, subscription),
            Err(e) => {
                tracing::warn!(subscription = %subscription.id, error = %e,
                    "cannot read the subscription's health; the delivery waits");
                Admission::Hold(retry_soon, subscription)
            }
        }
    }

    /// Puts held work back until `until`. Work for a disabled subscription whose invocation has
    /// no deadline (FIRE_AND_FORGET) is not held for ever: once it is older than the
    /// disabling period it fails with a note instead of an attempt.
    async fn hold(
        &self,
        invocation: Invocation,
        subscription: &Subscription,
        until: DateTime<Utc>,
    ) -> Result<Invocation> {
        let now = self.clock.now();
        let gave_up = !subscription.enabled
            && invocation.deadline.is_none()
            && now >= crate::time::later(invocation.created, self.policy.health.disable_after);
        if !gave_up {
            tracing::debug!(invocation = %invocation.id, subscription = %subscription.id,
                until = %crate::time::format_time(&until), "delivery held by the subscription's health");
            self.queue.postpone(&invocation.id, until).await?;
            return Ok(invocation);
        }
        let why = subscription.health.disabled.as_ref().map_or_else(
            || "the subscription is disabled".to_owned(),
            |d| format!("the subscription is disabled ({})", d.reason),
        );
        let attempt = Attempt {
            started_at: now,
            target: "(not sent)".to_owned(),
            status_code: None,
            duration_ms: 0,
            outcome: AttemptOutcome::Failed,
            error: Some(format!("not sent: {why}")),
        };
        let failed = Transition {
            to: InvocationState::Failed,
            completed: Some(now),
            output: None,
            error: Some(format!("not delivered: {why}")),
        };
        let settled = self
            .queue
            .settle(
                &invocation.id,
                &attempt,
                &[InvocationState::Pending],
                Some(&failed),
                &NextStep::Done,
            )
            .await?
            .unwrap_or(invocation);
        if settled.state == InvocationState::Failed {
            telemetry::transitioned(&settled, InvocationState::Pending);
        }
        self.notifier.finished(&settled).await;
        Ok(settled)
    }

    /// Records what an attempt says about its subscription's receiver ([`health::after_attempt`]):
    /// nothing to write for a success of a healthy subscription; otherwise one write
    /// conditional on the subscription's version, made again on a fresh read when another
    /// write came first. A transition is published as `Subscription Health Changed`. Health
    /// is bookkeeping: a failure to record it is logged and the delivery stands.
    pub async fn record_health(&self, subscription: &Subscription, attempt: &Attempt) {
        let outcome = match attempt.outcome {
            AttemptOutcome::Completed | AttemptOutcome::Acknowledged => health::Outcome::Succeeded,
            AttemptOutcome::Failed if attempt.status_code == Some(410) => health::Outcome::Gone,
            AttemptOutcome::Failed => health::Outcome::Failed,
        };
        let now = self.clock.now();
        let mut current = std::borrow::Cow::Borrowed(subscription);
        for _ in 0..HEALTH_WRITE_TRIES {
            let Some((updated, change)) =
                health::after_attempt(&current, outcome, now, &self.policy.health)
            else {
                return;
            };
            match self.subscriptions.replace(&updated, current.version).await {
                Ok(()) => {
                    if let Some(change) = change {
                        self.health_changed(&updated, &change).await;
                    }
                    return;
                }
                Err(crate::Error::Conflict { .. }) => {
                    match self.subscriptions.get(&subscription.id).await {
                        Ok(Some(fresh)) => current = std::borrow::Cow::Owned(fresh),
                        _ => return,
                    }
                }
                Err(crate::Error::NotFound { .. }) => return,
                Err(e) => {
                    tracing::warn!(subscription = %subscription.id, error = %e,
                        "subscription health not recorded");
                    return;
                }
            }
        }
    }

    async fn health_changed(&self, subscription: &Subscription, change: &health::Change) {
        tracing::info!(subscription = %subscription.id, transition = change.name(),
            "subscription health changed");
        let event = health::changed_event(&self.policy.event_source, subscription, change);
        if let Err(e) = self.events.publish(&[event]).await {
            tracing::warn!(subscription = %subscription.id, error = %e,
                "health event not published");
        }
    }

    /// Starts the heartbeat timer of a freshly acknowledged invocation that has one and whose
    /// subscriber has not sent a heartbeat yet: a second, small write after the settle. Should
    /// it fail, the invocation keeps its response deadline, which the sweep still enforces.
    async fn start_heartbeat(&self, acknowledged: Invocation) -> Invocation {
        let Some(timer) = acknowledged.heartbeat.as_ref().filter(|t| t.due.is_none()) else {
            return acknowledged;
        };
        let due = timer.due_after(self.clock.now(), acknowledged.deadline);
        match self
            .invocations
            .keep_alive(&acknowledged.id, due, None)
            .await
        {
            Ok(written) => written,
            Err(e) => {
                if !matches!(
                    e,
                    crate::Error::NotOpen { .. } | crate::Error::NotFound { .. }
                ) {
                    tracing::warn!(invocation = %acknowledged.id, error = %e,
                        "could not start the heartbeat timer; the response deadline still holds");
                }
                acknowledged
            }
        }
    }

    /// Makes one attempt and judges it, without writing anything: what to record, how the
    /// invocation moves on, and what happens to its work.
    pub async fn try_once(
        &self,
        invocation: &Invocation,
        subscription: Option<&Subscription>,
        attempts_before: u32,
    ) -> Tried {
        let started_at = self.clock.now();
        let clock_start = Instant::now();
        let in_flight = telemetry::InFlight::start();
        let (target, reply) = match &subscription {
            None => (
                "(deleted)".to_owned(),
                Reply::Blocked("the subscription was deleted".into()),
            ),
            Some(s) => self.send(invocation, s, attempts_before).await,
        };
        drop(in_flight);
        let verdict = match self.catalog.get(&invocation.trigger_id) {
            Some(entry) => delivery::judge(entry, invocation, &reply),
            None => Verdict::Failed {
                error: format!(
                    "trigger {} is no longer in the catalog",
                    invocation.trigger_id
                ),
                retry: false,
                retry_after: None,
            },
        };
        let attempt = Attempt {
            started_at,
            target,
            status_code: match &reply {
                Reply::Answered { status, .. } => Some(*status),
                _ => None,
            },
            duration_ms: u64::try_from(clock_start.elapsed().as_millis()).unwrap_or(u64::MAX),
            outcome: match &verdict {
                Verdict::Completed { .. } => crate::model::AttemptOutcome::Completed,
                Verdict::Acknowledged => crate::model::AttemptOutcome::Acknowledged,
                Verdict::Failed { .. } => crate::model::AttemptOutcome::Failed,
            },
            error: match &verdict {
                Verdict::Failed { error, .. } => Some(error.clone()),
                _ => None,
            },
        };
        telemetry::attempted(
            &invocation.trigger_id,
            attempt.outcome,
            clock_start.elapsed(),
        );
        let now = self.clock.now();
        let (transition, next) = self.outcome(invocation, &verdict, attempts_before + 1, now);
        Tried {
            attempt,
            transition,
            next,
        }
    }

    /// What a verdict does to the invocation and its work item.
    fn outcome(
        &self,
        invocation: &Invocation,
        verdict: &Verdict,
        attempts: u32,
        now: DateTime<Utc>,
    ) -> (Option<Transition>, NextStep) {
        match verdict {
            Verdict::Completed { output } => (
                Some(Transition {
                    to: InvocationState::Completed,
                    completed: Some(now),
                    output: output.clone(),
                    error: None,
                }),
                NextStep::Done,
            ),
            Verdict::Acknowledged => (
                Some(Transition {
                    to: InvocationState::Acknowledged,
                    completed: None,
                    output: None,
                    error: None,
                }),
                NextStep::Done,
            ),
            Verdict::Failed {
                error,
                retry,
                retry_after,
            } => {
                let next = (*retry && delivery::retries(invocation))
                    .then(|| {
                        delivery::next_attempt(
                            now,
                            attempts,
                            self.policy.max_attempts,
                            *retry_after,
                            invocation.deadline,
                            self.jitter.fraction(),
                        )
                    })
                    .flatten();
                match next {
                    Some(at) => (None, NextStep::RetryAt(at)),
                    None => (
                        Some(Transition {
                            to: InvocationState::Failed,
                            completed: Some(now),
                            output: None,
                            error: Some(error.clone()),
                        }),
                        NextStep::Done,
                    ),
                }
            }
        }
    }

    async fn send(
        &self,
        invocation: &Invocation,
        subscription: &Subscription,
        attempts_before: u32,
    ) -> (String, Reply) {
        // The payload of a subscriber that cannot call back carries neither the callback URL nor
        // the secret, so neither is derived for it (an HMAC and a format on every attempt).
        let (callback_url, secret) = if delivery::calls_back(invocation) {
            (
                self.callback_url(&invocation.id),
                self.key.callback_secret(&invocation.id),
            )
        } else {
            (String::new(), String::new())
        };
        // Each attempt is a span of its own in the invocation's trace: numbered by the attempts
        // recorded and the attempts its work counts (a replay restarts the latter).
        let span = (u64::from(attempts_before) << 32) | invocation.attempts.len() as u64;
        let trace = invocation.trace.as_ref().map(|t| {
            let state = t.tracestate.clone();
            (t.for_attempt(&invocation.id, span), state)
        });
        match &subscription.target {
            Target::Http(http) => {
                let bytes = delivery::payload_json(invocation, &callback_url, &secret);
                let now = self.clock.now();
                let timestamp = now.timestamp();
                let mut headers = vec![
                    ("webhook-id".to_owned(), invocation.id.clone()),
                    ("webhook-timestamp".to_owned(), timestamp.to_string()),
                    (
                        "webhook-signature".to_owned(),
                        webhook_signatures(
                            subscription.signing_secrets(now),
                            &invocation.id,
                            timestamp,
                            &bytes,
                        ),
                    ),
                ];
                if let Some((traceparent, tracestate)) = trace {
                    headers.push(("traceparent".to_owned(), traceparent));
                    headers.extend(tracestate.map(|state| ("tracestate".to_owned(), state)));
                }
                match &http.auth {
                    HttpAuth::None => {}
                    HttpAuth::Basic {
                        user_name,
                        password,
                    } => {
                        use base64::Engine;
                        let token = base64::engine::general_purpose::STANDARD
                            .encode(format!("{user_name}:{}", password.expose()));
                        headers.push(("Authorization".into(), format!("Basic {token}")));
                    }
                    HttpAuth::Bearer { token } => {
                        headers
                            .push(("Authorization".into(), format!("Bearer {}", token.expose())));
                    }
                }
                let host = self.client.host_of(&http.url);
                let reply = self
                    .client
                    .post(WebhookRequest {
                        url: http.url.clone(),
                        headers,
                        body: bytes,
                    })
                    .await;
                (host, reply)
            }
            Target::EventBridge(bus) => {
                let target = format!("eventbridge:{}:{}", bus.aws_region, bus.aws_account);
                let mut body = delivery::payload(invocation, &callback_url, &secret);
                // An event has no headers: the trace context rides in `_metadata`.
                if let (Some((traceparent, tracestate)), Some(metadata)) =
                    (trace, body.get_mut("_metadata"))
                {
                    metadata["traceparent"] = traceparent.into();
                    if let Some(state) = tracestate {
                        metadata["tracestate"] = state.into();
                    }
                }
                let detail_type = self
                    .catalog
                    .get(&invocation.trigger_id)
                    .map_or(invocation.trigger_id.as_str(), |e| e.trigger.name.as_str());
                let event = Event::new(
                    Some(subscriber_bus_arn(bus, &self.policy.subscriber_bus)),
                    &self.policy.event_source,
                    detail_type,
                    &body,
                );
                let reply = match self.events.publish(&[event]).await {
                    // EventBridge subscriptions are ASYNC: a put event is an acknowledgement.
                    Ok(()) => Reply::Answered {
                        status: if invocation.trigger_type == TriggerType::RequestResponse {
                            202
                        } else {
                            200
                        },
                        body: b"{}".to_vec(),
                        retry_after: None,
                    },
                    Err(e) => Reply::Unreachable(e.to_string()),
                };
                (target, reply)
            }
        }
    }
}

/// How many times a health write is made again after another write to the subscription came
/// first (many deliveries of one subscription failing at once).
const HEALTH_WRITE_TRIES: usize = 4;

/// What a subscription's health says about a delivery to it.
enum Admission {
    /// Send it (to this subscription, as it reads after a probe's claim).
    Send(Arc<Subscription>),
    /// Hold it until then.
    Hold(DateTime<Utc>, Arc<Subscription>),
}

/// The ARN of the bus an EVENTBRIDGE subscription delivers to.
pub fn subscriber_bus_arn(target: &crate::model::EventBridgeTarget, bus_name: &str) -> String {
    format!(
        "arn:aws:events:{}:{}:event-bus/{bus_name}",
        target.aws_region, target.aws_account
    )
}
