//! Invocations in DynamoDB: one item each, whose state changes are single conditional
//! `UpdateItem`s (no read first), so that exactly one of concurrent transitions wins.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem,
};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use triggerline::Error;
use triggerline::error::ResourceKind;
use triggerline::limits::{DYNAMODB_ITEM_BYTES, DYNAMODB_TRANSACTION_BYTES};
use triggerline::model::{Attempt, Invocation, InvocationState};
use triggerline::ports::{InvocationScans, InvocationStore, Transition};
use triggerline::query::{InvocationField, InvocationQuery, MAX_REACHABLE, Op, Page, SortKey};
use triggerline::time::format_time;

use super::codec::{
    Item, MAX_TRIES, Transacted, Try, backoff, failure, get_n, get_s, n, now_epoch_seconds,
    retry_on_conflict, s, transact,
};
use super::lock::KeyedTurns;
use super::{
    INV_ATTEMPTS, INV_BODY, INV_BY_CREATED, INV_BY_SUBSCRIPTION, INV_BY_TRIGGER, INV_COMPLETED,
    INV_CREATED, INV_DEADLINE, INV_DUE, INV_ERROR, INV_EXPIRES, INV_GROUP, INV_GROUP_VALUE,
    INV_HEARTBEAT_DUE, INV_ID, INV_LAST_HEARTBEAT, INV_OPEN_BY_DEADLINE, INV_OPEN_STATE,
    INV_OPEN_VALUE, INV_ORDERING_KEY, INV_OUTPUT, INV_RESPONSE_DEADLINE, INV_STATE,
    INV_SUBSCRIPTION, INV_SUBSCRIPTION_NAME, INV_TRIGGER, INV_UNSENT, INV_UNSENT_BY_DUE,
    INV_UNSENT_VALUE, INV_WRITE_TOKEN, MAX_TRANSACTION_ITEMS, SHARDS, shard_of, sharded, unsharded,
};
use crate::error::{corrupt, unavailable};

/// How long finished invocations live before DynamoDB's TTL may delete them.
#[derive(Debug, Clone, Copy)]
struct Retention {
    succeeded: Duration,
    failed: Duration,
}

/// [`InvocationStore`] on one DynamoDB table; the SQS queue writes through it too.
#[derive(Debug, Clone)]
pub struct DynamoInvocationStore {
    client: Client,
    table: String,
    retention: Option<Retention>,
    turns: KeyedTurns,
    warned: Warned,
}

/// Ids of unreadable items already logged by this process, so that a sweep every minute that
/// skips the same bad item does not log it every minute.
#[derive(Debug, Clone, Default)]
struct Warned(Arc<Mutex<HashSet<String>>>);

impl Warned {
    /// Past this many, the set starts over (a process meeting that many bad items has a bigger
    /// problem than repeated log lines).
    const MAX: usize = 10_000;

    /// Logs `error` at WARN the first time this process skips the item `id`.
    fn skip(&self, id: &str, error: &Error) {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= Self::MAX {
            seen.clear();
        }
        if seen.insert(id.to_owned()) {
            tracing::warn!(invocation = %id, error = %error, cause = ?std::error::Error::source(error), "unreadable invocation item skipped");
        }
    }
}

/// Model fields kept as attributes of their own, not in the JSON body.
const SPLIT_FIELDS: [&str; 11] = [
    "id",
    "triggerId",
    "subscriptionId",
    "subscriptionName",
    "state",
    "created",
    "completed",
    "deadline",
    "output",
    "error",
    "attempts",
];

/// The item exists and has not expired (TTL deletes lazily; moto never does).
const LIVE: &str = "attribute_exists(#id) AND (attribute_not_exists(#x) OR #x > :now)";

fn not_found(id: &str) -> Error {
    Error::NotFound {
        kind: ResourceKind::Invocation,
        id: id.to_owned(),
    }
}

/// The error of a write to one invocation that kept losing races.
fn contended(id: &str) -> impl FnOnce() -> Error + '_ {
    move || Error::Conflict {
        kind: ResourceKind::Invocation,
        id: id.to_owned(),
    }
}

fn expired(item: &Item, now: i64) -> bool {
    get_n(item, INV_EXPIRES).is_some_and(|x| x <= now)
}

fn state_of(item: &Item) -> Result<InvocationState, Error> {
    get_s(item, INV_STATE)
        .and_then(InvocationState::parse)
        .ok_or_else(|| corrupt("read invocation", "no valid state"))
}

fn json_text(what: &'static str, value: &impl serde::Serialize) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| failure(what, e))
}

fn attempt_value(attempt: &Attempt) -> Result<AttributeValue, Error> {
    Ok(s(json_text("encode attempt", attempt)?))
}

/// How long an open invocation is kept after it was created or last moved into an open state,
/// before its TTL lets DynamoDB delete it. Nothing legitimate keeps one open and untouched that
/// long: a start waits at most a year (`delay`, `timestamp`), an acknowledgement at most its
/// response deadline (`P365D` at most, and the sweep times it out then), a FIRE_AND_FORGET
/// delivery held for a disabled subscription at most `disable_after` from its creation (366
/// days at most), its retries hours, and a lost work message the dead-letter queue's 14 days
/// and the work queue's 4. What it bounds is an invocation whose work was dead-lettered and
/// never redriven: without it, such an item (input and all) was kept for ever.
pub const OPEN_BACKSTOP: Duration = Duration::days(400);

/// The TTL of an invocation in `state` as of `since` (when it finished, or when it was created
/// or last reopened while open), if retention is on: the retention of its outcome after it
/// finished, or [`OPEN_BACKSTOP`] plus the failed retention while it is open.
fn expiry(
    retention: Option<Retention>,
    state: InvocationState,
    since: DateTime<Utc>,
) -> Option<i64> {
    let retention = retention?;
    let keep = match state {
        InvocationState::Completed => retention.succeeded,
        InvocationState::Failed | InvocationState::TimedOut => retention.failed,
        InvocationState::Pending | InvocationState::Acknowledged => OPEN_BACKSTOP
            .checked_add(&retention.failed)
            .unwrap_or(Duration::MAX),
    };
    // Saturating: a retention of a few hundred thousand years is a valid setting.
    Some(triggerline::time::later(since, keep).timestamp())
}

/// The body is stored deflated: it carries the trigger's input, most of an item's size, and an
/// item's size is what a write is billed by (one write unit per started KB). Deflate about
/// halves a typical input, which keeps a synchronous invocation's one write at one unit.
fn deflate(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    use std::io::Write;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_err(|e| failure("compress invocation", e))
}

fn inflate(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let mut text = Vec::new();
    flate2::read::DeflateDecoder::new(bytes)
        .read_to_end(&mut text)
        .map_err(|e| corrupt("read invocation", e))?;
    Ok(text)
}

fn item_of(invocation: &Invocation, retention: Option<Retention>) -> Result<Item, Error> {
    let Value::Object(mut body) =
        serde_json::to_value(invocation).map_err(|e| failure("encode invocation", e))?
    else {
        return Err(failure("encode invocation", "not a JSON object"));
    };
    for field in SPLIT_FIELDS {
        body.remove(field);
    }
    let state = invocation.state;
    let shard = shard_of(&invocation.id);
    let mut item = Item::from([
        (INV_ID.to_owned(), s(&invocation.id)),
        (
            INV_TRIGGER.to_owned(),
            s(sharded(&invocation.trigger_id, shard)),
        ),
        (
            INV_SUBSCRIPTION.to_owned(),
            s(sharded(&invocation.subscription_id, shard)),
        ),
        (
            INV_SUBSCRIPTION_NAME.to_owned(),
            s(&invocation.subscription_name),
        ),
        (INV_STATE.to_owned(), s(state.as_str())),
        (INV_CREATED.to_owned(), s(format_time(&invocation.created))),
        (INV_GROUP.to_owned(), s(sharded(INV_GROUP_VALUE, shard))),
        (
            INV_ATTEMPTS.to_owned(),
            AttributeValue::L(
                invocation
                    .attempts
                    .iter()
                    .map(attempt_value)
                    .collect::<Result<_, _>>()?,
            ),
        ),
        (
            INV_BODY.to_owned(),
            AttributeValue::B(Blob::new(deflate(
                json_text("encode invocation", &body)?.as_bytes(),
            )?)),
        ),
    ]);
    let mut optional = |name: &str, value: Option<AttributeValue>| {
        if let Some(value) = value {
            item.insert(name.to_owned(), value);
        }
    };
    optional(
        INV_COMPLETED,
        invocation.completed.as_ref().map(|t| s(format_time(t))),
    );
    let heartbeat_due = invocation.heartbeat.as_ref().and_then(|h| h.due);
    optional(
        INV_DEADLINE,
        invocation
            .deadline
            .into_iter()
            .chain(heartbeat_due)
            .min()
            .map(|t| s(format_time(&t))),
    );
    if let Some(due) = heartbeat_due {
        optional(INV_HEARTBEAT_DUE, Some(s(format_time(&due))));
        optional(
            INV_RESPONSE_DEADLINE,
            invocation.deadline.as_ref().map(|t| s(format_time(t))),
        );
    }
    optional(
        INV_LAST_HEARTBEAT,
        invocation
            .heartbeat
            .as_ref()
            .and_then(|h| h.last)
            .map(|t| s(format_time(&t))),
    );
    optional(
        INV_OUTPUT,
        invocation
            .output
            .as_ref()
            .map(|o| json_text("encode output", o))
            .transpose()?
            .map(s),
    );
    optional(INV_ERROR, invocation.error.as_ref().map(s));
    optional(
        INV_OPEN_STATE,
        state.is_open().then(|| s(sharded(INV_OPEN_VALUE, shard))),
    );
    let since = match invocation.completed {
        Some(completed) if !state.is_open() => completed,
        _ => invocation.created,
    };
    optional(INV_EXPIRES, expiry(retention, state, since).map(n));
    Ok(item)
}

/// The attribute holding the response deadline: `rd` while a heartbeat timer runs (then `dl`
/// may be the heartbeat due time), else `dl`.
fn deadline_attribute(item: &Item) -> &'static str {
    if item.contains_key(INV_HEARTBEAT_DUE) {
        INV_RESPONSE_DEADLINE
    } else {
        INV_DEADLINE
    }
}

fn from_item(item: &Item) -> Result<Invocation, Error> {
    let bad = |detail: &str| corrupt("read invocation", detail);
    let body = match item.get(INV_BODY) {
        Some(AttributeValue::B(blob)) => inflate(blob.as_ref())?,
        _ => return Err(bad("no body")),
    };
    let mut fields: Map<String, Value> =
        serde_json::from_slice(&body).map_err(|e| corrupt("read invocation", e))?;
    let text = |name: &str| get_s(item, name).map_or(Value::Null, |v| Value::String(v.to_owned()));
    for (field, name) in [
        ("triggerId", INV_TRIGGER),
        ("subscriptionId", INV_SUBSCRIPTION),
    ] {
        let value =
            get_s(item, name).map_or(Value::Null, |v| Value::String(unsharded(v).to_owned()));
        fields.insert(field.to_owned(), value);
    }
    for (field, name) in [
        ("id", INV_ID),
        ("subscriptionName", INV_SUBSCRIPTION_NAME),
        ("state", INV_STATE),
        ("created", INV_CREATED),
        ("completed", INV_COMPLETED),
        ("deadline", deadline_attribute(item)),
        ("error", INV_ERROR),
    ] {
        fields.insert(field.to_owned(), text(name));
    }
    if let Some(Value::Object(timer)) = fields.get_mut("heartbeat") {
        timer.insert("last".to_owned(), text(INV_LAST_HEARTBEAT));
        timer.insert("due".to_owned(), text(INV_HEARTBEAT_DUE));
    }
    let output = match get_s(item, INV_OUTPUT) {
        Some(o) => serde_json::from_str(o).map_err(|e| corrupt("read invocation", e))?,
        None => Value::Null,
    };
    fields.insert("output".to_owned(), output);
    let attempts = match item.get(INV_ATTEMPTS) {
        None => Vec::new(),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|a| {
                let text = a.as_s().map_err(|_| bad("an attempt is not a string"))?;
                serde_json::from_str(text).map_err(|e| corrupt("read invocation", e))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("attempts is not a list")),
    };
    fields.insert("attempts".to_owned(), Value::Array(attempts));
    serde_json::from_value(Value::Object(fields)).map_err(|e| corrupt("read invocation", e))
}

/// An `UpdateItem` under construction: `SET` and `REMOVE` clauses, a condition, and the
/// placeholders they use (every attribute name goes through one, so no reserved word bites).
#[derive(Default)]
struct Update {
    sets: Vec<String>,
    removes: Vec<String>,
    condition: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    fn set(&mut self, attribute: &str, value: AttributeValue) {
        let name = self.name(attribute);
        let placeholder = format!(":{attribute}");
        self.sets.push(format!("{name} = {placeholder}"));
        self.values.insert(placeholder, value);
    }

    fn set_or_remove(&mut self, attribute: &str, value: Option<AttributeValue>) {
        match value {
            Some(value) => self.set(attribute, value),
            None => self.remove(attribute),
        }
    }

    fn remove(&mut self, attribute: &str) {
        let name = self.name(attribute);
        // DynamoDB refuses an expression that names one path twice.
        if !self.removes.contains(&name) {
            self.removes.push(name);
        }
    }

    fn append_attempt(&mut self, attempt: &Attempt) -> Result<(), Error> {
        // An attempt means its work was sent: no longer one for the recovery to send again.
        self.remove(INV_UNSENT);
        self.remove(INV_DUE);
        self.remove(INV_ORDERING_KEY);
        let name = self.name(INV_ATTEMPTS);
        self.sets.push(format!(
            "{name} = list_append(if_not_exists({name}, :noAttempts), :attempt)"
        ));
        self.values
            .insert(":noAttempts".to_owned(), AttributeValue::L(Vec::new()));
        self.values.insert(
            ":attempt".to_owned(),
            AttributeValue::L(vec![attempt_value(attempt)?]),
        );
        Ok(())
    }

    /// Marks the invocation unsent, with work due at `due` (undoing `append_attempt`'s removal):
    /// a retry queued only after this write is found by the sweep if its message is lost.
    fn mark_unsent(&mut self, id: &str, due: &DateTime<Utc>) {
        let (us, nb) = (self.name(INV_UNSENT), self.name(INV_DUE));
        self.removes.retain(|name| *name != us && *name != nb);
        self.set(INV_UNSENT, s(sharded(INV_UNSENT_VALUE, shard_of(id))));
        self.set(INV_DUE, s(format_time(due)));
    }

    /// Requires the invocation to hold exactly `attempts` attempts.
    fn require_attempts(&mut self, attempts: usize) {
        let name = self.name(INV_ATTEMPTS);
        self.values.insert(":recorded".to_owned(), n(attempts));
        self.condition.push(format!("size({name}) = :recorded"));
    }

    /// Requires the item to exist and not to have expired.
    fn require_live(&mut self) {
        self.name(INV_ID);
        self.name(INV_EXPIRES);
        self.values
            .insert(":now".to_owned(), n(now_epoch_seconds()));
        self.condition.push(LIVE.to_owned());
    }

    /// Requires the state to be one of `states` (`negate`: none of them).
    fn require_state(&mut self, states: &[InvocationState], negate: bool) {
        let name = self.name(INV_STATE);
        let placeholders: Vec<String> = states
            .iter()
            .enumerate()
            .map(|(i, state)| {
                let placeholder = format!(":from{i}");
                self.values.insert(placeholder.clone(), s(state.as_str()));
                placeholder
            })
            .collect();
        let test = format!("{name} IN ({})", placeholders.join(", "));
        self.condition.push(if negate {
            format!("NOT ({test})")
        } else {
            test
        });
    }

    /// Sets the transition's state and outcome, and the index and TTL attributes that follow.
    fn outcome(
        &mut self,
        id: &str,
        transition: &Transition,
        retention: Option<Retention>,
    ) -> Result<(), Error> {
        let to = transition.to;
        let shard = shard_of(id);
        self.set(INV_STATE, s(to.as_str()));
        let since = match transition.completed {
            Some(completed) if !to.is_open() => completed,
            _ => Utc::now(),
        };
        if to.is_open() {
            self.set(INV_OPEN_STATE, s(sharded(INV_OPEN_VALUE, shard)));
        } else {
            self.remove(INV_OPEN_STATE);
            self.remove(INV_UNSENT);
            self.remove(INV_DUE);
            self.remove(INV_ORDERING_KEY);
        }
        self.set_or_remove(INV_EXPIRES, expiry(retention, to, since).map(n));
        self.set_or_remove(
            INV_COMPLETED,
            transition.completed.as_ref().map(|t| s(format_time(t))),
        );
        let output = transition
            .output
            .as_ref()
            .map(|o| json_text("encode output", o))
            .transpose()?;
        self.set_or_remove(INV_OUTPUT, output.map(s));
        self.set_or_remove(INV_ERROR, transition.error.as_ref().map(s));
        Ok(())
    }

    fn expression(&self) -> String {
        let mut expression = String::new();
        if !self.sets.is_empty() {
            expression.push_str("SET ");
            expression.push_str(&self.sets.join(", "));
        }
        if !self.removes.is_empty() {
            expression.push_str(" REMOVE ");
            expression.push_str(&self.removes.join(", "));
        }
        expression
    }
}

/// What a conditional update came to.
enum Updated {
    /// Written; the item as it is now.
    Written(Item),
    /// The condition failed; the item as it was (`None`: there is none).
    Refused(Option<Item>),
}

impl DynamoInvocationStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoInvocationStore {
            client,
            table: table.to_owned(),
            retention: None,
            turns: KeyedTurns::default(),
            warned: Warned::default(),
        }
    }

    /// Sets the TTL attribute on every final transition: `succeeded` after completion for
    /// COMPLETED, `failed` for FAILED and TIMED_OUT. Without it nothing expires by itself and
    /// only `purge` deletes.
    pub fn with_retention(mut self, succeeded: Duration, failed: Duration) -> Self {
        self.retention = Some(Retention { succeeded, failed });
        self
    }

    async fn get_item(&self, id: &str) -> Result<Option<Item>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(INV_ID, s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem invocation", e))?;
        Ok(out.item)
    }

    /// Runs `update` on the invocation, returning the new item, or the old one when the
    /// condition failed.
    async fn update(&self, id: &str, update: Update) -> Result<Updated, Error> {
        let condition = update.condition.join(" AND ");
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(INV_ID, s(id))
            .update_expression(update.expression())
            .set_condition_expression((!condition.is_empty()).then_some(condition))
            .set_expression_attribute_names((!update.names.is_empty()).then_some(update.names))
            .set_expression_attribute_values((!update.values.is_empty()).then_some(update.values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Updated::Written(out.attributes.unwrap_or_default())),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    // DynamoDB returns the old item with the failure; an emulator may not, and
                    // then a consistent read tells (the item may have changed since, which the
                    // callers' retry loops allow for).
                    let old = match failed.item() {
                        Some(item) => Some(item.clone()),
                        None => self.get_item(id).await?,
                    };
                    Ok(Updated::Refused(old))
                }
                _ => Err(unavailable("UpdateItem invocation", err)),
            },
        }
    }

    /// The queue's half of `settle`, in one conditional write: appends `attempt`, and applies
    /// `transition` when the state is one of `from` (otherwise leaves the state as it is).
    /// Returns the invocation as written, `None` when it no longer exists.
    ///
    /// The common case (state in `from`, or no transition) is one `UpdateItem`; when the state
    /// is not in `from`, a second one appends the attempt alone, conditional on the state still
    /// not being in `from`.
    pub async fn record_attempt(
        &self,
        id: &str,
        attempt: &Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
    ) -> Result<Option<Invocation>, Error> {
        let transition = transition.filter(|_| !from.is_empty());
        let _turn = self.turns.turn(id).await;
        retry_on_conflict(
            &self.client,
            || self.try_record_attempt(id, attempt, from, transition),
            contended(id),
        )
        .await
    }

    /// One try of [`DynamoInvocationStore::record_attempt`].
    async fn try_record_attempt(
        &self,
        id: &str,
        attempt: &Attempt,
        from: &[InvocationState],
        transition: Option<&Transition>,
    ) -> Result<Try<Option<Invocation>>, Error> {
        let written = |item: Item| from_item(&item).map(|i| Try::Done(Some(i)));
        if let Some(transition) = transition {
            let mut update = Update::default();
            update.append_attempt(attempt)?;
            update.outcome(id, transition, self.retention)?;
            update.require_live();
            update.require_state(from, false);
            match self.update(id, update).await? {
                Updated::Written(item) => return written(item),
                Updated::Refused(None) => return Ok(Try::Done(None)),
                Updated::Refused(Some(old)) => {
                    if expired(&old, now_epoch_seconds()) {
                        return Ok(Try::Done(None));
                    }
                    if from.contains(&state_of(&old)?) {
                        return Ok(Try::Again);
                    }
                }
            }
        }
        let mut update = Update::default();
        update.append_attempt(attempt)?;
        update.require_live();
        if transition.is_some() {
            update.require_state(from, true);
        }
        match self.update(id, update).await? {
            Updated::Written(item) => written(item),
            Updated::Refused(None) => Ok(Try::Done(None)),
            Updated::Refused(Some(old)) if expired(&old, now_epoch_seconds()) => {
                Ok(Try::Done(None))
            }
            // The state moved into `from` in between: the transition applies after all.
            Updated::Refused(Some(_)) => Ok(Try::Again),
        }
    }

    /// Records an attempt made from work queued when the invocation had `expected` attempts,
    /// only if it still has that many, in one conditional write with no read: the attempt, the
    /// transition when the state is one of `from`, and, with `retry_due`, the unsent marker of
    /// the retry its caller queues next ([`DynamoInvocationStore::unsent`] finds it if that
    /// message is lost). Work delivered from the message alone (the SQS consumer's first
    /// attempt) is judged by this write instead of by a read before delivery.
    ///
    /// Returns [`Recorded::Superseded`] when the invocation holds another number of attempts (a
    /// copy of the same work recorded its attempt first: this one was a duplicate, and must
    /// queue nothing) or is gone.
    pub async fn record_attempt_if_current(
        &self,
        id: &str,
        attempt: &Attempt,
        expected: usize,
        from: &[InvocationState],
        transition: Option<&Transition>,
        retry_due: Option<DateTime<Utc>>,
    ) -> Result<Recorded, Error> {
        let transition = transition.filter(|_| !from.is_empty());
        let refused = {
            let _turn = self.turns.turn(id).await;
            let mut update = Update::default();
            update.append_attempt(attempt)?;
            if let Some(transition) = transition {
                update.outcome(id, transition, self.retention)?;
                update.require_state(from, false);
            }
            if let Some(due) = &retry_due {
                update.mark_unsent(id, due);
            }
            update.require_live();
            update.require_attempts(expected);
            match self.update(id, update).await? {
                Updated::Written(item) => return from_item(&item).map(Recorded::Written),
                Updated::Refused(old) => old,
            }
        };
        let Some(old) = refused.filter(|item| !expired(item, now_epoch_seconds())) else {
            return Ok(Recorded::Superseded(None));
        };
        let attempts = match old.get(INV_ATTEMPTS) {
            Some(AttributeValue::L(list)) => list.len(),
            _ => 0,
        };
        if attempts != expected {
            return from_item(&old).map(|i| Recorded::Superseded(Some(i)));
        }
        // Current, but its state left `from` (the sweep timed it out): the attempt alone.
        match self.record_attempt(id, attempt, from, transition).await? {
            Some(invocation) => Ok(Recorded::Written(invocation)),
            None => Ok(Recorded::Superseded(None)),
        }
    }

    /// Writes an invocation delivered from its work message alone (never written before),
    /// with its first attempt recorded, and with `retry_due` marked unsent until the retry's
    /// attempt (see [`DynamoInvocationStore::record_attempt_if_current`]): one conditional
    /// `PutItem`.
    ///
    /// Errors: [`Error::AlreadyExists`] when a copy of the same work wrote it first;
    /// [`Error::TooLarge`] over DynamoDB's item limit.
    pub async fn create_delivered(
        &self,
        invocation: &Invocation,
        retry_due: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        self.create(std::slice::from_ref(invocation), retry_due)
            .await
    }

    /// Deletes invocations that were accepted but could not be queued, each only while it is
    /// still PENDING with no attempt, so that a request that failed leaves nothing behind and
    /// nothing that was delivered is lost. Best effort: returns the ids it could not delete.
    pub async fn withdraw(&self, ids: &[String]) -> Vec<String> {
        let deletes = ids.iter().map(|id| async move {
            let _turn = self.turns.turn(id).await;
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(INV_ID, s(id))
                .condition_expression("#st = :pending AND size(#a) = :none")
                .expression_attribute_names("#st", INV_STATE)
                .expression_attribute_names("#a", INV_ATTEMPTS)
                .expression_attribute_values(":pending", s(InvocationState::Pending.as_str()))
                .expression_attribute_values(":none", n(0))
                .send()
                .await;
            match result {
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(invocation = %id, error = %unavailable("DeleteItem invocation", e), "not withdrawn");
                    Some(id.clone())
                }
            }
        });
        futures::future::join_all(deletes)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// The queue's half of `replay`: FAILED back to PENDING (clearing `completed`, `output` and
    /// `error`, setting `deadline`, keeping the attempts), as one conditional write.
    ///
    /// Errors: [`Error::NotFound`]; [`Error::NotOpen`] with the current state when not FAILED.
    pub async fn reopen(
        &self,
        id: &str,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Invocation, Error> {
        let _turn = self.turns.turn(id).await;
        retry_on_conflict(
            &self.client,
            || self.try_reopen(id, deadline),
            contended(id),
        )
        .await
    }

    /// One try of [`DynamoInvocationStore::reopen`].
    async fn try_reopen(
        &self,
        id: &str,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Try<Invocation>, Error> {
        let mut update = Update::default();
        update.outcome(
            id,
            &Transition {
                to: InvocationState::Pending,
                completed: None,
                output: None,
                error: None,
            },
            self.retention,
        )?;
        update.set_or_remove(INV_DEADLINE, deadline.as_ref().map(|t| s(format_time(t))));
        // A new round: the heartbeat timer starts again at the next acknowledgement.
        update.remove(INV_HEARTBEAT_DUE);
        update.remove(INV_RESPONSE_DEADLINE);
        update.remove(INV_LAST_HEARTBEAT);
        update.require_live();
        update.require_state(&[InvocationState::Failed], false);
        let old = match self.update(id, update).await? {
            Updated::Written(item) => return from_item(&item).map(Try::Done),
            Updated::Refused(old) => old,
        };
        let Some(old) = old.filter(|item| !expired(item, now_epoch_seconds())) else {
            return Err(not_found(id));
        };
        let status = state_of(&old)?;
        if status != InvocationState::Failed {
            return Err(Error::NotOpen {
                id: id.to_owned(),
                status,
            });
        }
        // Only reachable when an emulator's read came after another change.
        Ok(Try::Again)
    }

    /// One try of [`InvocationStore::keep_alive`]: reads the item for its response deadline,
    /// then writes the timer conditional on the state being open and `dl` unchanged (a reopen
    /// or another heartbeat in between makes it try again).
    async fn try_keep_alive(
        &self,
        id: &str,
        due: &str,
        heartbeat: Option<&str>,
    ) -> Result<Try<Invocation>, Error> {
        let Some(old) = self
            .get_item(id)
            .await?
            .filter(|item| !expired(item, now_epoch_seconds()))
        else {
            return Err(not_found(id));
        };
        let status = state_of(&old)?;
        if !status.is_open() {
            return Err(Error::NotOpen {
                id: id.to_owned(),
                status,
            });
        }
        let deadline = get_s(&old, deadline_attribute(&old)).map(str::to_owned);
        let mut update = Update::default();
        update.set(INV_HEARTBEAT_DUE, s(due));
        // Times are text that sorts in time order, so the earlier is the lesser.
        let sweep_at = deadline
            .as_deref()
            .map_or(due, |deadline| deadline.min(due));
        let dl = update.name(INV_DEADLINE);
        match get_s(&old, INV_DEADLINE) {
            Some(seen) => {
                update.values.insert(":seenDl".to_owned(), s(seen));
                update.condition.push(format!("{dl} = :seenDl"));
            }
            None => update.condition.push(format!("attribute_not_exists({dl})")),
        }
        update.set(INV_DEADLINE, s(sweep_at));
        update.set_or_remove(INV_RESPONSE_DEADLINE, deadline.map(s));
        if let Some(heartbeat) = heartbeat {
            update.set(INV_LAST_HEARTBEAT, s(heartbeat));
        }
        update.require_live();
        update.require_state(InvocationState::OPEN, false);
        match self.update(id, update).await? {
            Updated::Written(item) => from_item(&item).map(Try::Done),
            // Changed since the read (or gone): read it again.
            Updated::Refused(_) => Ok(Try::Again),
        }
    }

    /// One try of [`InvocationStore::transition`], writing `token` with the outcome.
    async fn try_transition(
        &self,
        id: &str,
        from: &[InvocationState],
        transition: &Transition,
        token: &str,
    ) -> Result<Try<Invocation>, Error> {
        let old = if from.is_empty() {
            self.get_item(id).await?
        } else {
            let mut update = Update::default();
            update.outcome(id, transition, self.retention)?;
            update.set(INV_WRITE_TOKEN, s(token));
            update.require_live();
            update.require_state(from, false);
            match self.update(id, update).await? {
                Updated::Written(item) => return from_item(&item).map(Try::Done),
                // Refused by our own write, retried by the SDK after its answer was lost.
                Updated::Refused(Some(old)) if get_s(&old, INV_WRITE_TOKEN) == Some(token) => {
                    return from_item(&old).map(Try::Done);
                }
                Updated::Refused(old) => old,
            }
        };
        let Some(old) = old.filter(|item| !expired(item, now_epoch_seconds())) else {
            return Err(not_found(id));
        };
        let status = state_of(&old)?;
        if !from.contains(&status) {
            return Err(Error::NotOpen {
                id: id.to_owned(),
                status,
            });
        }
        // Only reachable when an emulator's read came after another change.
        Ok(Try::Again)
    }

    /// One try of writing 2 to 100 invocations in one transaction.
    async fn try_create_many(&self, items: &[Item], ids: &[&str]) -> Result<Try<()>, Error> {
        let mut request = self.client.transact_write_items();
        for item in items {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(#id)")
                .expression_attribute_names("#id", INV_ID)
                .build()
                .map_err(|e| failure("build create transaction", e))?;
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        let cancelled = match transact(request, "TransactWriteItems create invocations").await? {
            Transacted::Written => return Ok(Try::Done(())),
            Transacted::Cancelled(cancelled) => cancelled,
        };
        let taken = |index: usize| Error::AlreadyExists {
            kind: ResourceKind::Invocation,
            id: ids.get(index).copied().unwrap_or_default().to_owned(),
        };
        if let Some(index) = cancelled.first_condition_failed() {
            return Err(taken(index));
        }
        if cancelled.unexplained() {
            // An emulator that names no reasons: look for the taken id.
            for (index, id) in ids.iter().enumerate() {
                if self.get_item(id).await?.is_some() {
                    return Err(taken(index));
                }
            }
        }
        Ok(Try::Again)
    }

    /// One page of `query` on `shard`: the items and where the next page starts.
    async fn query_shard(
        &self,
        query: &ShardedQuery,
        shard: u32,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), Error> {
        let mut names = query.names.clone();
        let mut values = query.values.clone();
        names.insert("#hash".to_owned(), query.hash.0.to_owned());
        for (placeholder, base) in &query.sharded_values {
            values.insert(placeholder.clone(), s(sharded(base, shard)));
        }
        let hash = sharded(&query.hash.1, shard);
        values.insert(":hash".to_owned(), s(hash));
        let key = match &query.range {
            Some(range) => format!("#hash = :hash AND {range}"),
            None => "#hash = :hash".to_owned(),
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(query.index)
            .key_condition_expression(key)
            .set_filter_expression((!query.filter.is_empty()).then(|| query.filter.join(" AND ")))
            .set_projection_expression(query.projection.clone())
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(query.forward)
            .limit(query.page)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| unavailable("Query invocations", e))?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }

    /// Writes invocations the SQS queue is about to send work for (see
    /// [`SqsDeliveryQueue::accept`](crate::sqs::SqsDeliveryQueue)): as `create_all`, each marked
    /// unsent and due at `not_before` until its first attempt is recorded, so that if the work
    /// never gets sent (the process died first), a redelivered event or the sweep finds it
    /// ([`DynamoInvocationStore::unsent`]).
    pub async fn create_queued(
        &self,
        invocations: &[Invocation],
        not_before: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.create(invocations, Some(not_before)).await
    }

    async fn create(
        &self,
        invocations: &[Invocation],
        unsent_due: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        let mut seen = HashSet::new();
        if let Some(twin) = invocations.iter().find(|i| !seen.insert(i.id.as_str())) {
            return Err(Error::AlreadyExists {
                kind: ResourceKind::Invocation,
                id: twin.id.clone(),
            });
        }
        // A fan-out is at most 50 (a trigger's subscription limit); more in one call is a
        // caller's mistake, refused whole as one transaction would refuse it.
        if invocations.len() > MAX_TRANSACTION_ITEMS {
            return Err(failure(
                "create invocations",
                format!(
                    "{} invocations exceed one transaction ({MAX_TRANSACTION_ITEMS})",
                    invocations.len()
                ),
            ));
        }
        let mut items = Vec::with_capacity(invocations.len());
        for invocation in invocations {
            let mut item = item_of(invocation, self.retention)?;
            if let Some(due) = &unsent_due {
                let shard = shard_of(&invocation.id);
                item.insert(INV_UNSENT.to_owned(), s(sharded(INV_UNSENT_VALUE, shard)));
                item.insert(INV_DUE.to_owned(), s(format_time(due)));
                if let Some(key) = &invocation.ordering_key {
                    item.insert(INV_ORDERING_KEY.to_owned(), s(key));
                }
            }
            // The use cases bound inputs and outputs (`triggerline::limits`) well under this;
            // a refusal here names the limit rather than failing as unavailable.
            let size = item_bytes(&item);
            if size > DYNAMODB_ITEM_BYTES {
                return Err(Error::TooLarge {
                    field: "input".to_owned(),
                    size,
                    limit: DYNAMODB_ITEM_BYTES,
                    name: "DYNAMODB_ITEM_BYTES",
                });
            }
            items.push((invocation.id.as_str(), item, size));
        }
        let chunks = transactions(&items);
        let mut written: Vec<String> = Vec::new();
        for chunk in chunks {
            if let Err(e) = self.create_chunk(chunk).await {
                // Several transactions are not one: undo the ones already written (nobody
                // else knows their ids yet), so that the call stays all or none.
                if !written.is_empty() {
                    for id in self.delete_fresh(&written).await {
                        tracing::error!(invocation = %id, cause = %e, "part of a failed fan-out left behind");
                    }
                }
                return Err(e);
            }
            written.extend(chunk.iter().map(|(id, _, _)| (*id).to_owned()));
        }
        Ok(())
    }

    /// Writes one transaction's worth of items (a plain conditional put for one).
    async fn create_chunk(&self, chunk: &[(&str, Item, usize)]) -> Result<(), Error> {
        match chunk {
            [] => Ok(()),
            // One invocation: a plain conditional put costs half a transaction.
            [(id, item, _)] => {
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item.clone()))
                    .condition_expression("attribute_not_exists(#id)")
                    .expression_attribute_names("#id", INV_ID)
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(err)
                        if matches!(
                            err.as_service_error(),
                            Some(PutItemError::ConditionalCheckFailedException(_))
                        ) =>
                    {
                        Err(Error::AlreadyExists {
                            kind: ResourceKind::Invocation,
                            id: (*id).to_owned(),
                        })
                    }
                    Err(err) => Err(unavailable("PutItem invocation", err)),
                }
            }
            _ => {
                let ids: Vec<&str> = chunk.iter().map(|(id, _, _)| *id).collect();
                let items: Vec<Item> = chunk.iter().map(|(_, item, _)| item.clone()).collect();
                retry_on_conflict(
                    &self.client,
                    || self.try_create_many(&items, &ids),
                    || failure("create invocations", "the transaction kept conflicting"),
                )
                .await
            }
        }
    }

    /// Deletes items this process has just written; returns the ids it could not delete.
    async fn delete_fresh(&self, ids: &[String]) -> Vec<String> {
        let deletes = ids.iter().map(|id| async move {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key(INV_ID, s(id))
                .send()
                .await
                .err()
                .map(|_| id.clone())
        });
        futures::future::join_all(deletes)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Invocations marked unsent ([`DynamoInvocationStore::create_queued`]) that were due
    /// before `due_before`, earliest first, at most `limit`: with their due time, state and
    /// attempts recorded, for a work message. Unreadable ones are logged once and skipped.
    pub async fn unsent(
        &self,
        due_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Unsent>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let query = ShardedQuery {
            index: INV_UNSENT_BY_DUE,
            hash: (INV_UNSENT, INV_UNSENT_VALUE.to_owned()),
            sort: INV_DUE,
            range: Some("#nb < :before".to_owned()),
            filter: Vec::new(),
            names: HashMap::from([("#nb".to_owned(), INV_DUE.to_owned())]),
            values: HashMap::from([(":before".to_owned(), s(format_time(&due_before)))]),
            sharded_values: Vec::new(),
            projection: None,
            forward: true,
            page: page_size(limit),
        };
        let ids = Merge::new(self, &query).ids(limit).await?;
        self.unsent_among(&ids).await
    }

    /// Those of `ids` that exist and are still marked unsent, as [`DynamoInvocationStore::unsent`]
    /// gives them (one `BatchGetItem` per 100 ids, of a few attributes).
    pub async fn unsent_among(&self, ids: &[String]) -> Result<Vec<Unsent>, Error> {
        let projection = [
            INV_ID,
            INV_STATE,
            INV_UNSENT,
            INV_DUE,
            INV_ATTEMPTS,
            INV_SUBSCRIPTION,
            INV_ORDERING_KEY,
        ];
        let found = self.batch_get(ids, Some(&projection)).await?;
        let mut unsent = Vec::new();
        for id in ids {
            let Some(item) = found.get(id) else { continue };
            if !item.contains_key(INV_UNSENT) {
                continue;
            }
            let due = get_s(item, INV_DUE).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            let (Some(due), Ok(state)) = (due, state_of(item)) else {
                self.warned
                    .skip(id, &corrupt("read invocation", "unreadable unsent marker"));
                continue;
            };
            let recorded = match item.get(INV_ATTEMPTS) {
                Some(AttributeValue::L(list)) => list.len(),
                _ => 0,
            };
            let ordering = get_s(item, INV_ORDERING_KEY).map(|key| OrderedBy {
                subscription_id: get_s(item, INV_SUBSCRIPTION)
                    .map(|s| unsharded(s).to_owned())
                    .unwrap_or_default(),
                key: key.to_owned(),
            });
            unsent.push(Unsent {
                id: id.clone(),
                due: due.with_timezone(&Utc),
                state,
                recorded,
                ordering,
            });
        }
        Ok(unsent)
    }

    /// Clears the unsent marker of invocations whose work was sent and stays queued until its
    /// turn (ordered work: its first attempt may be hours away, and the sweep must not send it
    /// again meanwhile). Best effort: a marker left behind makes the sweep send a second
    /// message, which finds the work done or in hand and is dropped.
    pub async fn mark_sent(&self, ids: &[String]) {
        let writes = ids.iter().map(|id| async move {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(INV_ID, s(id))
                .update_expression("REMOVE #us, #nb, #ok")
                .condition_expression("attribute_exists(#us)")
                .expression_attribute_names("#us", INV_UNSENT)
                .expression_attribute_names("#nb", INV_DUE)
                .expression_attribute_names("#ok", INV_ORDERING_KEY)
                .send()
                .await;
            warn_unless_gone(id, result, "sent work still marked unsent");
        });
        futures::future::join_all(writes).await;
    }

    /// Moves an unsent invocation's due time to `due` (after its work was sent again, so that
    /// the next sweep leaves it alone for another grace period). Best effort.
    pub async fn postpone_unsent(&self, id: &str, due: DateTime<Utc>) {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(INV_ID, s(id))
            .update_expression("SET #nb = :due")
            .condition_expression("attribute_exists(#us)")
            .expression_attribute_names("#nb", INV_DUE)
            .expression_attribute_names("#us", INV_UNSENT)
            .expression_attribute_values(":due", s(format_time(&due)))
            .send()
            .await;
        warn_unless_gone(id, result, "unsent invocation not postponed");
    }

    /// The items of `ids` that exist (with only `projection`'s attributes, if given), by id:
    /// `BatchGetItem`s of 100 keys, unprocessed keys tried again.
    async fn batch_get(
        &self,
        ids: &[String],
        projection: Option<&[&str]>,
    ) -> Result<HashMap<String, Item>, Error> {
        let mut found: HashMap<String, Item> = HashMap::new();
        let unique: Vec<&String> = {
            let mut seen = HashSet::new();
            ids.iter().filter(|id| seen.insert(id.as_str())).collect()
        };
        for chunk in unique.chunks(BATCH_GET) {
            let mut keys: Vec<Item> = chunk
                .iter()
                .map(|id| Item::from([(INV_ID.to_owned(), s(*id))]))
                .collect();
            for tries in 0..MAX_TRIES {
                if keys.is_empty() {
                    break;
                }
                let mut request =
                    KeysAndAttributes::builder().set_keys(Some(std::mem::take(&mut keys)));
                if let Some(attributes) = projection {
                    let mut names = Vec::new();
                    for (i, attribute) in attributes.iter().enumerate() {
                        request = request.expression_attribute_names(format!("#p{i}"), *attribute);
                        names.push(format!("#p{i}"));
                    }
                    request = request.projection_expression(names.join(", "));
                }
                let request = request
                    .build()
                    .map_err(|e| failure("build BatchGetItem", e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchGetItem invocations", e))?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    if let Some(id) = get_s(&item, INV_ID) {
                        found.insert(id.to_owned(), item);
                    }
                }
                keys = out
                    .unprocessed_keys
                    .unwrap_or_default()
                    .remove(&self.table)
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    backoff(&self.client, tries).await;
                }
            }
            if !keys.is_empty() {
                return Err(failure("BatchGetItem invocations", "keys left unprocessed"));
            }
        }
        Ok(found)
    }

    /// The full items of `ids`, in that order, leaving out those gone (purged or expired since
    /// the index was read) and those that do not read back (logged once and skipped).
    async fn fetch_page(&self, ids: &[String]) -> Result<Vec<Invocation>, Error> {
        let found = self.batch_get(ids, None).await?;
        let now = now_epoch_seconds();
        Ok(ids
            .iter()
            .filter_map(|id| {
                found
                    .get(id)
                    .filter(|item| !expired(item, now))
                    .map(|item| (id, item))
            })
            .filter_map(|(id, item)| match from_item(item) {
                Ok(invocation) => Some(invocation),
                Err(e) => {
                    self.warned.skip(id, &e);
                    None
                }
            })
            .collect())
    }

    /// Deletes `id` if it is still `state` and completed before `before`; whether it did.
    /// Conditional, because the item may have changed since it was read (reopened).
    async fn delete_finished(
        &self,
        id: &str,
        state: InvocationState,
        before: &str,
    ) -> Result<bool, Error> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(INV_ID, s(id))
            .condition_expression("#st = :st AND #cp < :before")
            .expression_attribute_names("#st", INV_STATE)
            .expression_attribute_names("#cp", INV_COMPLETED)
            .expression_attribute_values(":st", s(state.as_str()))
            .expression_attribute_values(":before", s(before))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(unavailable("DeleteItem invocation", err)),
        }
    }
}

/// Keys per `BatchGetItem`.
const BATCH_GET: usize = 100;

/// What [`DynamoInvocationStore::record_attempt_if_current`] came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// The attempt is recorded; the invocation as written.
    Written(Invocation),
    /// Another copy of the work recorded first (or the invocation is gone): as it reads now.
    Superseded(Option<Invocation>),
}

/// An invocation whose work may never have been sent ([`DynamoInvocationStore::unsent`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Unsent {
    pub id: String,
    /// When its work was (or is) due.
    pub due: DateTime<Utc>,
    pub state: InvocationState,
    /// Attempts it has recorded.
    pub recorded: usize,
    /// Its subscription and ordering key, when it has one: its work goes to the key's queue.
    pub ordering: Option<OrderedBy>,
}

/// A subscription and an ordering key: one ordered queue (SQS message group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderedBy {
    pub subscription_id: String,
    pub key: String,
}

/// Logs a best-effort write on an unsent marker that failed, unless its condition failed: the
/// marker is gone because the work moved on (attempted or finished), which is no failure.
fn warn_unless_gone<T>(
    id: &str,
    result: Result<T, aws_sdk_dynamodb::error::SdkError<UpdateItemError>>,
    what: &str,
) {
    if let Err(e) = result {
        if !e
            .as_service_error()
            .is_some_and(|e| e.is_conditional_check_failed_exception())
        {
            tracing::warn!(invocation = %id, error = %unavailable("UpdateItem invocation", e), "{what}");
        }
    }
}

/// Bytes of an item as DynamoDB counts them (names and values), near enough to keep under
/// its limits: nested lists and maps are counted with a few bytes of overhead each.
fn item_bytes(item: &Item) -> usize {
    fn value_bytes(value: &AttributeValue) -> usize {
        match value {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_bytes(v)).sum::<usize>(),
            AttributeValue::M(map) => {
                3 + map
                    .iter()
                    .map(|(k, v)| 1 + k.len() + value_bytes(v))
                    .sum::<usize>()
            }
            _ => 64,
        }
    }
    item.iter().map(|(k, v)| k.len() + value_bytes(v)).sum()
}

/// Splits items into transactions of at most [`MAX_TRANSACTION_ITEMS`] and, with a tenth to
/// spare for what [`item_bytes`] does not count, [`DYNAMODB_TRANSACTION_BYTES`]: a 50-way
/// fan-out of 128 KiB inputs is ~6.5 MB, two or three transactions.
fn transactions<T>(items: &[(T, Item, usize)]) -> Vec<&[(T, Item, usize)]> {
    let budget = DYNAMODB_TRANSACTION_BYTES / 10 * 9;
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, _, size)) in items.iter().enumerate() {
        if i > start && (i - start >= MAX_TRANSACTION_ITEMS || bytes + size > budget) {
            chunks.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}

/// One index query spread over the shards: `#hash = :hash`, and `range` if any, where `:hash`
/// and every `sharded_values` placeholder take their shard's value.
struct ShardedQuery {
    index: &'static str,
    /// The hash key attribute and its value before the shard suffix.
    hash: (&'static str, String),
    /// The range key attribute, by which the merge orders (then by id).
    sort: &'static str,
    range: Option<String>,
    filter: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    sharded_values: Vec<(String, String)>,
    projection: Option<String>,
    forward: bool,
    /// Items per query page.
    page: i32,
}

impl ShardedQuery {
    /// The merge order: the range key in the query's direction, then id.
    fn order(&self, a: &Item, b: &Item) -> Ordering {
        let (ka, kb) = (get_s(a, self.sort), get_s(b, self.sort));
        let by_key = if self.forward {
            ka.cmp(&kb)
        } else {
            kb.cmp(&ka)
        };
        by_key.then_with(|| get_s(a, INV_ID).cmp(&get_s(b, INV_ID)))
    }
}

/// Where the merge is in one shard.
#[derive(Default)]
struct Cursor {
    /// Read and not yet taken, in the merge order.
    buffer: VecDeque<Item>,
    start: Option<Item>,
    done: bool,
}

impl Cursor {
    /// Whether the merge must read this shard's next page before it may take from it. A
    /// shard's first item is its next only once the shard holds an item after it in the order
    /// (`sort` is the range key): items tied on the range key come in no order within a shard,
    /// and a tie may go on in the next page.
    fn needs_page(&self, sort: &str) -> bool {
        !self.done
            && match (self.buffer.front(), self.buffer.back()) {
                (Some(first), Some(last)) => get_s(first, sort) == get_s(last, sort),
                _ => true,
            }
    }
}

/// The items of a [`ShardedQuery`] across every shard, in its order (the query's direction on
/// its range key, then id): a k-way merge of the shards, each read one page at a time and only
/// while the merge needs its next item, so a reader that stops early reads little more than
/// it took.
struct Merge<'a> {
    store: &'a DynamoInvocationStore,
    query: &'a ShardedQuery,
    shards: Vec<Cursor>,
}

impl<'a> Merge<'a> {
    fn new(store: &'a DynamoInvocationStore, query: &'a ShardedQuery) -> Self {
        Merge {
            store,
            query,
            shards: (0..SHARDS).map(|_| Cursor::default()).collect(),
        }
    }

    /// The next item; `None` once the index is read.
    async fn next(&mut self) -> Result<Option<Item>, Error> {
        let query = self.query;
        let order = |a: &Item, b: &Item| query.order(a, b);
        loop {
            let needy: Vec<u32> = (0..SHARDS)
                .filter(|&i| self.shards[i as usize].needs_page(query.sort))
                .collect();
            if needy.is_empty() {
                let next = next_shard(&self.shards, order);
                return Ok(next.and_then(|i| self.shards[i].buffer.pop_front()));
            }
            let store = self.store;
            let starts: Vec<(u32, Option<Item>)> = needy
                .iter()
                .map(|&i| (i, self.shards[i as usize].start.take()))
                .collect();
            let pages = starts
                .into_iter()
                .map(|(i, start)| store.query_shard(query, i, start));
            let pages = futures::future::join_all(pages).await;
            for (i, page) in needy.into_iter().zip(pages) {
                let (items, next) = page?;
                let cursor = &mut self.shards[i as usize];
                cursor.buffer.extend(items);
                cursor.buffer.make_contiguous().sort_by(order);
                cursor.done = next.is_none();
                cursor.start = next;
            }
        }
    }

    /// The ids of the next `n` items (fewer once the index is read): for the readers whose
    /// index holds keys only, and which read the items themselves.
    async fn ids(&mut self, n: usize) -> Result<Vec<String>, Error> {
        let mut ids = Vec::with_capacity(n.min(BATCH_GET));
        while ids.len() < n {
            let Some(key) = self.next().await? else {
                break;
            };
            ids.extend(get_s(&key, INV_ID).map(str::to_owned));
        }
        Ok(ids)
    }
}

/// The shard whose first item comes next in `order`; `None` once every buffer is empty.
fn next_shard(shards: &[Cursor], order: impl Fn(&Item, &Item) -> Ordering) -> Option<usize> {
    shards
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.buffer.front().map(|item| (i, item)))
        .min_by(|(_, a), (_, b)| order(a, b))
        .map(|(i, _)| i)
}

/// A query page for a merge that will take about `wanted` items in all: a share of them per
/// shard with room for an uneven spread, so that most shards are read in one page.
fn page_size(wanted: usize) -> i32 {
    let share = (wanted.div_ceil(SHARDS as usize) * 3).div_ceil(2) + 4;
    i32::try_from(share.clamp(8, 1000).min(wanted.max(1))).unwrap_or(1000)
}

/// What a status list sorts and filters by: what the list indexes carry of each item
/// ([`LISTED_ATTRIBUTES`]), and its completed time, read from the item.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    created: String,
    completed: Option<String>,
    trigger_id: String,
    subscription_id: String,
    subscription_name: String,
}

/// What a status list reads of each index entry: the keys and the attributes every list index
/// projects (`super::INV_LIST_PROJECTION`), none of which changes after the create.
const LISTED_ATTRIBUTES: [&str; 5] = [
    INV_ID,
    INV_CREATED,
    INV_TRIGGER,
    INV_SUBSCRIPTION,
    INV_SUBSCRIPTION_NAME,
];

/// What a status list reads of each item it takes from an index: whether it is still there and
/// live, and when it completed.
const LIVE_ATTRIBUTES: [&str; 3] = [INV_ID, INV_COMPLETED, INV_EXPIRES];

fn checked_time(name: &str, value: &str) -> Result<(), Error> {
    DateTime::parse_from_rfc3339(value)
        .map(drop)
        .map_err(|e| corrupt("read invocation", format!("{name}: {e}")))
}

impl Row {
    /// The row of an index entry; its completed time comes later ([`Row::complete`]).
    fn read(entry: &Item) -> Result<Row, Error> {
        let text = |name: &str| {
            get_s(entry, name)
                .map(str::to_owned)
                .ok_or_else(|| corrupt("read invocation", format!("no {name}")))
        };
        let created = text(INV_CREATED)?;
        checked_time(INV_CREATED, &created)?;
        Ok(Row {
            id: text(INV_ID)?,
            created,
            completed: None,
            trigger_id: unsharded(&text(INV_TRIGGER)?).to_owned(),
            subscription_id: unsharded(&text(INV_SUBSCRIPTION)?).to_owned(),
            subscription_name: text(INV_SUBSCRIPTION_NAME)?,
        })
    }

    /// Takes the completed time of `item` (its [`LIVE_ATTRIBUTES`]).
    fn complete(&mut self, item: &Item) -> Result<(), Error> {
        self.completed = get_s(item, INV_COMPLETED).map(str::to_owned);
        if let Some(completed) = &self.completed {
            checked_time(INV_COMPLETED, completed)?;
        }
        Ok(())
    }

    fn field(&self, field: InvocationField) -> Option<String> {
        match field {
            InvocationField::TriggerId => Some(self.trigger_id.clone()),
            InvocationField::SubscriptionId => Some(self.subscription_id.clone()),
            InvocationField::SubscriptionName => Some(self.subscription_name.clone()),
            InvocationField::Created => Some(self.created.clone()),
            InvocationField::Completed => self.completed.clone(),
        }
    }
}

/// The index a status list reads: `bySubscription` for a `subscriptionId eq`, else
/// `byTrigger` for a `triggerId eq`, else `byCreated`.
#[derive(Debug, PartialEq)]
struct IndexChoice {
    index: &'static str,
    /// The hash key attribute and its value before the shard suffix.
    hash: (&'static str, String),
    /// The condition the hash key answers (its position in the query), if any.
    answered: Option<usize>,
}

fn choose_index(query: &InvocationQuery) -> IndexChoice {
    let eq = |field| {
        query
            .conditions
            .iter()
            .position(|c| c.field == field && c.op == Op::Eq)
    };
    let answered = eq(InvocationField::SubscriptionId).or_else(|| eq(InvocationField::TriggerId));
    let (index, hash) = match answered.and_then(|k| query.conditions.get(k)) {
        Some(c) if c.field == InvocationField::SubscriptionId => {
            (INV_BY_SUBSCRIPTION, (INV_SUBSCRIPTION, c.value.clone()))
        }
        Some(c) => (INV_BY_TRIGGER, (INV_TRIGGER, c.value.clone())),
        None => (INV_BY_CREATED, (INV_GROUP, INV_GROUP_VALUE.to_owned())),
    };
    IndexChoice {
        index,
        hash,
        answered,
    }
}

/// A status list's `FilterExpression`, in `filter`'s condition, names and values: every
/// condition the hash key does not answer (a `triggerId eq` on `bySubscription`) on what the
/// index carries. The list indexes carry only what never changes after the create (see the
/// module doc), so whether an item has expired, and conditions on its completed time, are
/// checked on the item, after the index. The trigger and
/// subscription attributes carry their shard, so an equality on them compares with a value
/// each shard fills in (the returned placeholders and values before the shard); their other
/// operators are left to the rows (which check every condition again).
fn list_filter(
    query: &InvocationQuery,
    answered: Option<usize>,
    filter: &mut Update,
) -> Vec<(String, String)> {
    let mut sharded_values = Vec::new();
    for (i, c) in query.conditions.iter().enumerate() {
        let attribute = field_attribute(c.field);
        let is_sharded = attribute == INV_TRIGGER || attribute == INV_SUBSCRIPTION;
        let in_index = LISTED_ATTRIBUTES.contains(&attribute);
        if Some(i) == answered || (is_sharded && c.op != Op::Eq) || !in_index {
            continue;
        }
        let name = filter.name(attribute);
        let placeholder = format!(":c{i}");
        if is_sharded {
            sharded_values.push((placeholder.clone(), c.value.clone()));
        } else {
            filter.values.insert(placeholder.clone(), s(&c.value));
        }
        let op = match c.op {
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Le => "<=",
        };
        filter.condition.push(format!("{name} {op} {placeholder}"));
    }
    sharded_values
}

/// The index query of a status list: [`choose_index`]'s index, [`list_filter`]'s filter, the
/// [`Row`] attributes only, in `window`'s direction on created.
fn list_query(query: &InvocationQuery, window: &Window) -> ShardedQuery {
    let IndexChoice {
        index,
        hash,
        answered,
    } = choose_index(query);
    let mut filter = Update::default();
    let sharded_values = list_filter(query, answered, &mut filter);
    let projection = LISTED_ATTRIBUTES
        .iter()
        .map(|a| filter.name(a))
        .collect::<Vec<_>>()
        .join(", ");
    ShardedQuery {
        index,
        hash,
        sort: INV_CREATED,
        range: None,
        filter: filter.condition,
        names: filter.names,
        values: filter.values,
        sharded_values,
        projection: Some(projection),
        forward: window.forward,
        page: page_size(window.stop),
    }
}

/// How much of the index a status list reads (see the module doc): sorted by created, the
/// first `offset + limit` in that order; sorted otherwise, or counted, the window of the
/// [`MAX_REACHABLE`] first in created order. Newest first unless `created` ascending leads.
#[derive(Debug, PartialEq)]
struct Window {
    forward: bool,
    /// Rows to collect (0: none, nothing to read).
    stop: usize,
    /// Whether the rows tied on created with the last one come along too: with more sorters
    /// after `created`, they may sort before it.
    with_ties: bool,
}

impl Window {
    fn of(query: &InvocationQuery) -> Window {
        let created_first = query
            .sorters
            .first()
            .is_none_or(|k| k.field == InvocationField::Created);
        let forward = created_first && query.sorters.first().is_some_and(|k| !k.descending);
        let (stop, with_ties) = if created_first && !query.count {
            (
                query.offset.saturating_add(query.limit).min(MAX_REACHABLE),
                query.sorters.len() > 1,
            )
        } else {
            (MAX_REACHABLE, false)
        };
        Window {
            forward,
            stop,
            with_ties,
        }
    }

    /// Whether `row`, the next matching one in the index order, joins `rows`; once not, the
    /// read stops.
    fn admits(&self, rows: &[Row], row: &Row) -> bool {
        rows.len() < self.stop
            || (self.with_ties
                && rows.len() < MAX_REACHABLE
                && rows.last().is_some_and(|last| last.created == row.created))
    }
}

/// The requested page of `rows`: ordered by the query's sorters (newest first when it has
/// none), id breaking ties, then offset and limit.
fn page_of(query: &InvocationQuery, mut rows: Vec<Row>) -> Page<Row> {
    // `apply` sorts stably, so ordering by id first makes id the final tie-break.
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    if query.sorters.is_empty() {
        let newest_first = InvocationQuery {
            sorters: vec![SortKey {
                field: InvocationField::Created,
                descending: true,
            }],
            ..query.clone()
        };
        return newest_first.apply(&rows, Row::field);
    }
    query.apply(&rows, Row::field)
}

fn field_attribute(field: InvocationField) -> &'static str {
    match field {
        InvocationField::TriggerId => INV_TRIGGER,
        InvocationField::SubscriptionId => INV_SUBSCRIPTION,
        InvocationField::SubscriptionName => INV_SUBSCRIPTION_NAME,
        InvocationField::Created => INV_CREATED,
        InvocationField::Completed => INV_COMPLETED,
    }
}

#[async_trait]
impl InvocationStore for DynamoInvocationStore {
    async fn create_all(&self, invocations: &[Invocation]) -> Result<(), Error> {
        self.create(invocations, None).await
    }

    async fn get(&self, id: &str) -> Result<Option<Invocation>, Error> {
        match self.get_item(id).await? {
            Some(item) if !expired(&item, now_epoch_seconds()) => from_item(&item).map(Some),
            _ => Ok(None),
        }
    }

    async fn transition(
        &self,
        id: &str,
        from: &[InvocationState],
        transition: &Transition,
    ) -> Result<Invocation, Error> {
        let _turn = self.turns.turn(id).await;
        let token = uuid::Uuid::new_v4().to_string();
        retry_on_conflict(
            &self.client,
            || self.try_transition(id, from, transition, &token),
            contended(id),
        )
        .await
    }

    async fn overdue(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Invocation>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now_text = format_time(&now);
        let query = ShardedQuery {
            index: INV_OPEN_BY_DEADLINE,
            hash: (INV_OPEN_STATE, INV_OPEN_VALUE.to_owned()),
            sort: INV_DEADLINE,
            range: Some("#dl < :now".to_owned()),
            filter: Vec::new(),
            names: HashMap::from([("#dl".to_owned(), INV_DEADLINE.to_owned())]),
            values: HashMap::from([(":now".to_owned(), s(now_text.clone()))]),
            sharded_values: Vec::new(),
            projection: None,
            forward: true,
            page: page_size(limit),
        };
        // The index holds keys only (so an acknowledgement does not rewrite it): its entries
        // say which items to read, in deadline order, and the items say what they are now.
        let mut merge = Merge::new(self, &query);
        let mut found = Vec::new();
        loop {
            let ids = merge.ids(limit - found.len()).await?;
            if ids.is_empty() {
                return Ok(found);
            }
            let items = self.batch_get(&ids, None).await?;
            for id in &ids {
                // Gone, or no longer open or overdue since the index was written (it lags).
                let Some(item) = items.get(id).filter(|item| {
                    item.contains_key(INV_OPEN_STATE)
                        && get_s(item, INV_DEADLINE).is_some_and(|dl| dl < now_text.as_str())
                }) else {
                    continue;
                };
                match from_item(item) {
                    Ok(invocation) => found.push(invocation),
                    // One bad item must not stop the sweep for every other invocation.
                    Err(e) => self.warned.skip(id, &e),
                }
            }
            if found.len() >= limit {
                return Ok(found);
            }
        }
    }

    async fn keep_alive(
        &self,
        id: &str,
        due: DateTime<Utc>,
        heartbeat: Option<DateTime<Utc>>,
    ) -> Result<Invocation, Error> {
        let _turn = self.turns.turn(id).await;
        let due = format_time(&due);
        let heartbeat = heartbeat.as_ref().map(format_time);
        retry_on_conflict(
            &self.client,
            || self.try_keep_alive(id, &due, heartbeat.as_deref()),
            contended(id),
        )
        .await
    }
}

#[async_trait]
impl InvocationScans for DynamoInvocationStore {
    async fn list(&self, query: &InvocationQuery) -> Result<Page<Invocation>, Error> {
        let window = Window::of(query);
        if window.stop == 0 {
            return Ok(Page {
                items: Vec::new(),
                total: None,
            });
        }
        let index_query = list_query(query, &window);
        let mut merge = Merge::new(self, &index_query);
        let now = now_epoch_seconds();
        let mut rows: Vec<Row> = Vec::new();
        // Index entries in created order, in chunks: each chunk's items are read (a
        // BatchGetItem of a few attributes) for whether they are live and when they completed.
        'read: loop {
            let wanted = window.stop.saturating_sub(rows.len()).clamp(8, BATCH_GET);
            let mut chunk = Vec::with_capacity(wanted);
            while chunk.len() < wanted {
                let Some(entry) = merge.next().await? else {
                    break;
                };
                match Row::read(&entry) {
                    Ok(row) => chunk.push(row),
                    Err(e) => self
                        .warned
                        .skip(get_s(&entry, INV_ID).unwrap_or_default(), &e),
                }
            }
            let read_all = chunk.len() < wanted;
            let ids: Vec<String> = chunk.iter().map(|row| row.id.clone()).collect();
            let items = self.batch_get(&ids, Some(&LIVE_ATTRIBUTES)).await?;
            for mut row in chunk {
                let Some(item) = items.get(&row.id).filter(|item| !expired(item, now)) else {
                    continue;
                };
                if let Err(e) = row.complete(item) {
                    self.warned.skip(&row.id, &e);
                    continue;
                }
                if !query.accepts(&row, Row::field) {
                    continue;
                }
                if !window.admits(&rows, &row) {
                    break 'read;
                }
                rows.push(row);
            }
            if read_all {
                break;
            }
        }
        let page = page_of(query, rows);
        let ids: Vec<String> = page.items.into_iter().map(|row| row.id).collect();
        Ok(Page {
            items: self.fetch_page(&ids).await?,
            total: page.total,
        })
    }

    async fn purge(
        &self,
        succeeded_before: DateTime<Utc>,
        failed_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, Error> {
        if limit == 0 {
            return Ok(0);
        }
        let succeeded_before = format_time(&succeeded_before);
        let failed_before = format_time(&failed_before);
        // An invocation completed before a cutoff was created before it: `byCreated`, oldest
        // first, up to the later cutoff, holds every candidate. What it reads beyond those
        // deleted is what retention keeps (failed ones between the cutoffs, long-open ones).
        let latest = succeeded_before.clone().max(failed_before.clone());
        let query = ShardedQuery {
            index: INV_BY_CREATED,
            hash: (INV_GROUP, INV_GROUP_VALUE.to_owned()),
            sort: INV_CREATED,
            range: Some("#cr < :latest".to_owned()),
            filter: Vec::new(),
            names: HashMap::from([
                ("#cr".to_owned(), INV_CREATED.to_owned()),
                ("#id".to_owned(), INV_ID.to_owned()),
            ]),
            values: HashMap::from([(":latest".to_owned(), s(latest))]),
            sharded_values: Vec::new(),
            projection: Some("#id, #cr".to_owned()),
            forward: true,
            page: page_size(limit),
        };
        let mut merge = Merge::new(self, &query);
        let mut deleted = 0;
        loop {
            let ids = merge.ids(BATCH_GET).await?;
            if ids.is_empty() {
                return Ok(deleted);
            }
            let items = self
                .batch_get(&ids, Some(&[INV_ID, INV_STATE, INV_COMPLETED]))
                .await?;
            for id in &ids {
                let Some(item) = items.get(id) else { continue };
                let (Ok(state), Some(completed)) = (state_of(item), get_s(item, INV_COMPLETED))
                else {
                    continue;
                };
                let before = match state {
                    InvocationState::Completed => &succeeded_before,
                    InvocationState::Failed | InvocationState::TimedOut => &failed_before,
                    InvocationState::Pending | InvocationState::Acknowledged => continue,
                };
                if completed < before.as_str() && self.delete_finished(id, state, before).await? {
                    deleted += 1;
                    if deleted >= limit {
                        return Ok(deleted);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InvocationField::{Completed, Created, SubscriptionId, SubscriptionName, TriggerId};

    /// A retention as long as the variables take (any positive ISO-8601 duration) puts the TTL
    /// past the last time chrono can hold: it is then that last time, an item that never
    /// expires, where `+` panicked on every finished invocation's write.
    #[test]
    fn a_retention_past_chrono_s_years_never_expires_and_does_not_panic() {
        let far = Duration::days(99_999_999);
        let retention = Some(Retention {
            succeeded: far,
            failed: Duration::hours(48),
        });
        let now = Utc::now();
        let last = DateTime::<Utc>::MAX_UTC.timestamp();
        let ttl = |state| expiry(retention, state, now);
        assert_eq!(ttl(InvocationState::Completed), Some(last));
        assert_eq!(
            ttl(InvocationState::Failed),
            Some((now + Duration::hours(48)).timestamp())
        );
        assert_eq!(
            ttl(InvocationState::Pending),
            Some((now + OPEN_BACKSTOP + Duration::hours(48)).timestamp()),
            "an open invocation expires after the backstop and the failed retention"
        );
        assert_eq!(expiry(None, InvocationState::Completed, now), None);
    }

    fn sized(n: usize, size: usize) -> Vec<(usize, Item, usize)> {
        (0..n).map(|i| (i, Item::new(), size)).collect()
    }

    #[test]
    fn a_fan_out_over_four_megabytes_is_split_into_transactions_under_it() {
        let lengths = |items: &[(usize, Item, usize)]| -> Vec<usize> {
            transactions(items).iter().map(|c| c.len()).collect()
        };
        // 50 items of 130 KB: 6.5 MB, at most 28 (3.64 MB) per transaction.
        let big = sized(50, 130 * 1024);
        assert_eq!(lengths(&big), [28, 22]);
        for chunk in transactions(&big) {
            let bytes: usize = chunk.iter().map(|(_, _, size)| size).sum();
            assert!(bytes <= DYNAMODB_TRANSACTION_BYTES);
        }
        assert_eq!(
            lengths(&sized(50, 1024)),
            [50],
            "a usual fan-out is one transaction"
        );
        assert_eq!(lengths(&sized(100, 1024)), [100]);
        assert_eq!(lengths(&sized(1, 400 * 1024)), [1]);
        assert!(lengths(&sized(0, 1)).is_empty());
    }

    fn query(
        conditions: &[(InvocationField, Op, &str)],
        sorters: &[(InvocationField, bool)],
    ) -> InvocationQuery {
        InvocationQuery {
            conditions: conditions
                .iter()
                .map(|&(field, op, value)| triggerline::query::Condition {
                    field,
                    op,
                    value: value.to_owned(),
                })
                .collect(),
            sorters: sorters
                .iter()
                .map(|&(field, descending)| SortKey { field, descending })
                .collect(),
            limit: 10,
            offset: 0,
            count: false,
        }
    }

    fn row(id: &str, created: &str) -> Row {
        Row {
            id: id.to_owned(),
            created: created.to_owned(),
            completed: None,
            trigger_id: "t".to_owned(),
            subscription_id: "s".to_owned(),
            subscription_name: "n".to_owned(),
        }
    }

    #[test]
    fn a_list_reads_the_index_of_its_subscription_else_trigger_else_created() {
        let by_subscription = choose_index(&query(
            &[(TriggerId, Op::Eq, "t1"), (SubscriptionId, Op::Eq, "s1")],
            &[],
        ));
        assert_eq!(
            by_subscription,
            IndexChoice {
                index: INV_BY_SUBSCRIPTION,
                hash: (INV_SUBSCRIPTION, "s1".to_owned()),
                answered: Some(1),
            }
        );
        let by_trigger = choose_index(&query(
            &[(SubscriptionId, Op::Ge, "s"), (TriggerId, Op::Eq, "t1")],
            &[],
        ));
        assert_eq!(by_trigger.index, INV_BY_TRIGGER);
        assert_eq!(by_trigger.hash, (INV_TRIGGER, "t1".to_owned()));
        assert_eq!(by_trigger.answered, Some(1));
        let by_created = choose_index(&query(&[(Created, Op::Ge, "2026")], &[]));
        assert_eq!(by_created.index, INV_BY_CREATED);
        assert_eq!(by_created.hash, (INV_GROUP, INV_GROUP_VALUE.to_owned()));
        assert_eq!(by_created.answered, None);
    }

    #[test]
    fn the_filter_holds_what_the_index_has_and_the_key_does_not_answer() {
        let q = query(
            &[
                (TriggerId, Op::Eq, "t1"),
                (SubscriptionId, Op::Eq, "s1"),
                (TriggerId, Op::Ge, "a"),
                (Completed, Op::Le, "2026-01-02T00:00:00Z"),
            ],
            &[],
        );
        let mut filter = Update::default();
        let sharded = list_filter(&q, Some(1), &mut filter);
        assert_eq!(filter.condition, ["#tg = :c0"]);
        // The trigger's equality compares with each shard's value; its range, and the
        // completed time (not in the index), are left to the rows.
        assert_eq!(sharded, [(":c0".to_owned(), "t1".to_owned())]);
        assert!(!filter.values.contains_key(":c0"));
        assert!(!filter.values.contains_key(":c3"));
    }

    #[test]
    fn the_list_query_projects_the_row_in_the_window_direction() {
        let q = query(&[(SubscriptionName, Op::Eq, "n")], &[(Created, false)]);
        let window = Window::of(&q);
        let plan = list_query(&q, &window);
        assert_eq!(plan.index, INV_BY_CREATED);
        assert!(plan.forward);
        assert_eq!(plan.projection.as_deref(), Some("#id, #cr, #tg, #sb, #sn"));
        assert_eq!(
            plan.names.get("#sn").map(String::as_str),
            Some(INV_SUBSCRIPTION_NAME)
        );
    }

    #[test]
    fn the_window_reads_the_page_in_created_order_or_the_reachable_window() {
        let mut newest = query(&[], &[]);
        newest.offset = 5;
        assert_eq!(
            Window::of(&newest),
            Window {
                forward: false,
                stop: 15,
                with_ties: false
            }
        );
        let oldest_then_name = query(&[], &[(Created, false), (SubscriptionName, false)]);
        assert_eq!(
            Window::of(&oldest_then_name),
            Window {
                forward: true,
                stop: 10,
                with_ties: true
            }
        );
        let by_name = query(&[], &[(SubscriptionName, false)]);
        assert_eq!(
            Window::of(&by_name),
            Window {
                forward: false,
                stop: MAX_REACHABLE,
                with_ties: false
            }
        );
        let mut counted = query(&[], &[]);
        counted.count = true;
        assert_eq!(Window::of(&counted).stop, MAX_REACHABLE);
        let mut empty = query(&[], &[]);
        empty.limit = 0;
        assert_eq!(Window::of(&empty).stop, 0);
    }

    #[test]
    fn a_full_window_admits_only_ties_on_created_when_more_sorters_follow() {
        let full = [row("a", "1"), row("b", "2")];
        let plain = Window {
            forward: true,
            stop: 2,
            with_ties: false,
        };
        assert!(plain.admits(&full[..1], &row("b", "2")));
        assert!(!plain.admits(&full, &row("c", "2")));
        let ties = Window {
            with_ties: true,
            ..plain
        };
        assert!(ties.admits(&full, &row("c", "2")));
        assert!(!ties.admits(&full, &row("c", "3")));
    }

    #[test]
    fn a_page_is_newest_first_by_default_with_id_breaking_ties() {
        let rows = vec![row("b", "1"), row("c", "2"), row("a", "1"), row("d", "3")];
        let mut q = query(&[], &[]);
        q.offset = 1;
        q.limit = 2;
        let ids = |page: Page<Row>| page.items.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(page_of(&q, rows.clone())), ["c", "a"]);
        let oldest = query(&[], &[(Created, false)]);
        assert_eq!(ids(page_of(&oldest, rows)), ["a", "b", "c", "d"]);
    }

    fn keyed(id: &str, created: &str) -> Item {
        Item::from([
            (INV_ID.to_owned(), s(id)),
            (INV_CREATED.to_owned(), s(created)),
        ])
    }

    fn cursor(items: &[(&str, &str)], done: bool) -> Cursor {
        Cursor {
            buffer: items
                .iter()
                .map(|(id, created)| keyed(id, created))
                .collect(),
            start: None,
            done,
        }
    }

    #[test]
    fn a_shard_is_read_on_until_it_holds_an_item_past_its_first() {
        assert!(cursor(&[], false).needs_page(INV_CREATED));
        assert!(!cursor(&[], true).needs_page(INV_CREATED));
        assert!(cursor(&[("a", "1"), ("b", "1")], false).needs_page(INV_CREATED));
        assert!(!cursor(&[("a", "1"), ("b", "2")], false).needs_page(INV_CREATED));
        assert!(!cursor(&[("a", "1")], true).needs_page(INV_CREATED));
    }

    #[test]
    fn the_merge_takes_the_first_head_in_the_query_order_then_by_id() {
        let oldest = query(&[], &[(Created, false)]);
        let mut plan = list_query(&oldest, &Window::of(&oldest));
        let shards = [
            cursor(&[("b", "2")], true),
            cursor(&[], true),
            cursor(&[("a", "2"), ("z", "3")], false),
            cursor(&[("c", "3")], true),
        ];
        assert_eq!(next_shard(&shards, |a, b| plan.order(a, b)), Some(2));
        plan.forward = false;
        assert_eq!(next_shard(&shards, |a, b| plan.order(a, b)), Some(3));
        assert_eq!(
            next_shard(&[cursor(&[], true)], |a, b| plan.order(a, b)),
            None
        );
    }

    #[test]
    fn item_bytes_counts_names_and_values() {
        let item = Item::from([
            ("id".to_owned(), s("abc")),
            ("a".to_owned(), AttributeValue::L(vec![s("xy")])),
        ]);
        assert_eq!(item_bytes(&item), 2 + 3 + 1 + 3 + 1 + 2);
    }
}
