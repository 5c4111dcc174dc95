//! DynamoDB stores: subscriptions and invocations, one table each, on-demand billing.
//!
//! # Key design
//!
//! Attribute names are short on purpose (an item's size counts every name), and are all
//! `pub const`s below, so that `template.yaml` can declare exactly this schema.
//!
//! | table | key | GSIs (keys, projection) | serves |
//! |---|---|---|---|
//! | subscriptions | `pk` (S): `sub#<id>` for a subscription, `trigger#<triggerId>` for the trigger's counter item | `byTrigger` (`tg` HASH, `id` RANGE, ALL) | `get` and `id eq` (GetItem), `triggerId eq` and `list_for_trigger` (Query, in id order), the per-trigger limit (counter item `n`, in a TransactWriteItems with the Put / Delete) |
//! | invocations | `id` (S) | `byTrigger` (`tg` HASH, `cr` RANGE, ALL) | `triggerId eq` |
//! | | | `bySubscription` (`sb` HASH, `cr` RANGE, ALL) | `subscriptionId eq` (also with `triggerId eq`, as a filter) |
//! | | | `byCreated` (`g` HASH = `INV` on every invocation, `cr` RANGE, ALL) | the status list without filters, default order newest first |
//! | | | `openByDeadline` (`os` HASH, `dl` RANGE, ALL), sparse | `overdue`: `os` holds the state only while it is open (PENDING, ACKNOWLEDGED), so only open invocations with a deadline are in it |
//! | | | `finishedByCompleted` (`fs` HASH, `cp` RANGE, KEYS_ONLY), sparse | `purge`: `fs` holds the state only once it is final (COMPLETED, FAILED, TIMED_OUT) |
//!
//! The invocations table has TTL on `x` (epoch seconds), set on a final transition (or a
//! create of a finished invocation) when the store was given a retention
//! ([`DynamoInvocationStore::with_retention`]) and removed when one is reopened. DynamoDB
//! deletes expired items only eventually (and moto never does), so `get` and `list` skip items
//! whose `x` has passed, and `purge` deletes for real instead of trusting TTL.
//!
//! # Item layout
//!
//! A subscription item holds `id`, `tg` (trigger id), `tn` (trigger name), `ty` (type), `v`
//! (version, N) and `b`: the whole model as JSON. A counter item holds `n` (N), the number of
//! subscriptions of the trigger.
//!
//! An invocation item holds its queried and mutable fields as attributes: `id`, `tg`, `sb`
//! (subscription id), `sn` (subscription name), `st` (state), `cr` / `cp` / `dl` (created,
//! completed, deadline: [`triggerline::time::format_time`] text, which sorts in time order),
//! `o` (output as JSON, absent when none), `e` (error, absent when none), `a` (attempts: a list
//! of JSON strings, appended to with `list_append`), `g`, `os`, `fs`, `x` (above), and `b`: the
//! rest of the model as deflated JSON (binary: trigger type, invocation type, response mode,
//! input, content, secret hash). Nothing is stored twice and the input is compressed, so a
//! typical invocation stays under 1 KB even with its output and first attempt (the `aws-cost`
//! test measures the synchronous one), and its one write is one write unit; every state change
//! is one `UpdateItem`, with no read.
//!
//! # What the collection parameters cost
//!
//! Subscriptions (at most 50 per trigger, over a fixed catalog, so every read is bounded):
//! `id eq` is a GetItem, `triggerId eq` a Query of `byTrigger`; any other combination (only
//! `type` filters, or none) is a Scan of the table. The result is then filtered, sorted and
//! paged in memory with [`ListQuery::apply`](triggerline::query::ListQuery::apply).
//!
//! Invocations: the index is `bySubscription` with a `subscriptionId eq` filter, else
//! `byTrigger` with a `triggerId eq` filter, else `byCreated`; other conditions become a
//! `FilterExpression`. With no sorters, or `created` / `-created` first, and without
//! `count=true`, the Query walks the index in created order and stops after `offset + limit`
//! items (plus those tied on the last created time), which then are ordered and paged in
//! memory. Any other sorter first (`triggerId`, `subscriptionName`, `completed`) or
//! `count=true` reads every matching item of that index (without filters: every invocation)
//! and sorts in memory. No invocation list uses a Scan.
//!
//! # Consistency and limits
//!
//! GetItem, transactions and conditional writes are strongly consistent; GSI queries are
//! eventually consistent (a list may miss a write of the last moments; moto is immediate).
//! `create_all` writes one invocation with a conditional PutItem and 2 to 100 with one
//! TransactWriteItems; more than 100 are refused with [`triggerline::Error::Unavailable`]
//! (DynamoDB has no atomic write beyond 100 items; a fan-out is at most 50, a trigger's
//! subscription limit). `byCreated` has one partition key value, so it takes about 1,000
//! invocation writes per second; beyond that it would need sharding.
//!
//! # moto
//!
//! moto (the test emulator) is not linearizable: a conditional write checks and applies in two
//! unlocked steps, and a cancelled transaction restores a copy of the whole table. So within
//! one process, subscription writes take turns, and so do writes to one invocation
//! (`lock.rs`). That changes nothing on DynamoDB, where the conditions alone decide, across
//! processes too; it does mean the tests' races prove the in-process path plus the conditions,
//! not DynamoDB's own atomicity. moto returns cancellation reasons and the old item of a failed
//! condition; where an emulator does not, the stores read the item instead.

mod codec;
mod invocations;
mod lock;
mod subscriptions;
#[cfg(feature = "create-resources")]
pub mod tables;

pub use invocations::DynamoInvocationStore;
pub use subscriptions::DynamoSubscriptionStore;

/// Subscriptions table: the partition key (`sub#<id>` or `trigger#<triggerId>`).
pub const SUB_PK: &str = "pk";
/// Subscriptions table: the subscription id (range key of [`SUB_BY_TRIGGER`]).
pub const SUB_ID: &str = "id";
/// Subscriptions table: the trigger id (hash key of [`SUB_BY_TRIGGER`]).
pub const SUB_TRIGGER: &str = "tg";
/// Subscriptions table: the trigger name.
pub const SUB_TRIGGER_NAME: &str = "tn";
/// Subscriptions table: the subscription type.
pub const SUB_TYPE: &str = "ty";
/// Subscriptions table: the version (N).
pub const SUB_VERSION: &str = "v";
/// Subscriptions table: the model as JSON.
pub const SUB_BODY: &str = "b";
/// Subscriptions table: a trigger counter's number of subscriptions (N).
pub const SUB_COUNT: &str = "n";
/// Prefix of a subscription item's partition key.
pub const SUB_PK_PREFIX: &str = "sub#";
/// Prefix of a trigger counter item's partition key.
pub const TRIGGER_PK_PREFIX: &str = "trigger#";
/// Subscriptions GSI: `tg` HASH, `id` RANGE, projection ALL.
pub const SUB_BY_TRIGGER: &str = "byTrigger";

/// Invocations table: the partition key, the invocation id.
pub const INV_ID: &str = "id";
/// Invocations table: the trigger id.
pub const INV_TRIGGER: &str = "tg";
/// Invocations table: the subscription id.
pub const INV_SUBSCRIPTION: &str = "sb";
/// Invocations table: the subscription name.
pub const INV_SUBSCRIPTION_NAME: &str = "sn";
/// Invocations table: the state.
pub const INV_STATE: &str = "st";
/// Invocations table: created time (text).
pub const INV_CREATED: &str = "cr";
/// Invocations table: completed time (text), absent while none.
pub const INV_COMPLETED: &str = "cp";
/// Invocations table: deadline (text), absent while none.
pub const INV_DEADLINE: &str = "dl";
/// Invocations table: the output as JSON, absent while none.
pub const INV_OUTPUT: &str = "o";
/// Invocations table: the error, absent while none.
pub const INV_ERROR: &str = "e";
/// Invocations table: the attempts, a list of JSON strings.
pub const INV_ATTEMPTS: &str = "a";
/// Invocations table: the rest of the model as JSON, deflated (binary).
pub const INV_BODY: &str = "b";
/// Invocations table: [`INV_GROUP_VALUE`] on every invocation (hash key of [`INV_BY_CREATED`]).
pub const INV_GROUP: &str = "g";
/// The one value of [`INV_GROUP`].
pub const INV_GROUP_VALUE: &str = "INV";
/// Invocations table: the state while open, absent otherwise (hash key of [`INV_OPEN_BY_DEADLINE`]).
pub const INV_OPEN_STATE: &str = "os";
/// Invocations table: the state once final, absent otherwise (hash key of
/// [`INV_FINISHED_BY_COMPLETED`]).
pub const INV_FINAL_STATE: &str = "fs";
/// Invocations table: the TTL attribute, epoch seconds (N).
pub const INV_EXPIRES: &str = "x";
/// Invocations GSI: `tg` HASH, `cr` RANGE, projection ALL.
pub const INV_BY_TRIGGER: &str = "byTrigger";
/// Invocations GSI: `sb` HASH, `cr` RANGE, projection ALL.
pub const INV_BY_SUBSCRIPTION: &str = "bySubscription";
/// Invocations GSI: `g` HASH, `cr` RANGE, projection ALL.
pub const INV_BY_CREATED: &str = "byCreated";
/// Invocations GSI: `os` HASH, `dl` RANGE, projection ALL (sparse).
pub const INV_OPEN_BY_DEADLINE: &str = "openByDeadline";
/// Invocations GSI: `fs` HASH, `cp` RANGE, projection KEYS_ONLY (sparse).
pub const INV_FINISHED_BY_COMPLETED: &str = "finishedByCompleted";

/// The most items DynamoDB takes in one TransactWriteItems.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
