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
//! | invocations | `id` (S) | `byTrigger` (`tg` HASH = `<triggerId>#<shard>`, `cr` RANGE, INCLUDE `sb`, `sn`) | `triggerId eq` |
//! | | | `bySubscription` (`sb` HASH = `<subscriptionId>#<shard>`, `cr` RANGE, INCLUDE `tg`, `sn`) | `subscriptionId eq` (also with `triggerId eq`, as a filter) |
//! | | | `byCreated` (`g` HASH = `INV#<shard>`, `cr` RANGE, INCLUDE `tg`, `sb`, `sn`) | the status list without filters, default order newest first; `purge` (oldest first) |
//! | | | `openByDeadline` (`os` HASH = `OPEN#<shard>`, `dl` RANGE, KEYS_ONLY), sparse | `overdue`: `os` is set only while the invocation is open (PENDING, ACKNOWLEDGED), so only open invocations with a deadline are in it |
//! | | | `unsentByDue` (`us` HASH = `UNSENT#<shard>`, `nb` RANGE, KEYS_ONLY), sparse | intake recovery: `us` and `nb` (when the work is due) are set when the SQS queue accepts an invocation and removed with its first recorded attempt (or final state), so the index holds the invocations whose work may never have been sent |
//!
//! # What the indexes carry, and what that costs
//!
//! DynamoDB bills a write to a GSI entry like a table write: an item entering or leaving an
//! index is one write unit, a changed index key two, a changed projected attribute one. With
//! every attribute projected, each state change of an open invocation rewrote the entries of
//! all five indexes it was in (an ASYNC invocation: 15 index writes in its life). So the list
//! indexes carry only what a list filters and sorts by that never changes after the create
//! ([`INV_LIST_PROJECTION`]: trigger, subscription, subscription name), and the sweep's indexes
//! only keys: every invocation costs one entry per list index, written with its create, and an
//! open one `openByDeadline`'s entry (in, out) and `unsentByDue`'s (in, out). The `aws-cost`
//! test counts them per flow from the table's description (3 for FIRE_AND_FORGET and SYNC, 7
//! for ASYNC and EVENTBRIDGE). The readers pay instead, in reads (a tenth of a write's price):
//! a status list reads the entries, then the state, completed time and TTL of each entry's
//! item (a `BatchGetItem` of a few attributes, per 100), since what changes is not in the
//! index; the sweep reads each overdue entry's item. The purge has no index of its own: a
//! deployed stack deletes by TTL, and the local server's purge reads `byCreated` oldest first
//! (what completed before a cutoff was created before it).
//!
//! # Write sharding
//!
//! Every invocation writes an entry in each index it has keys in, and one partition of an index
//! takes about 1,000 write units per second. With one `g` value for every invocation,
//! `byCreated` would cap the whole system there; so would `openByDeadline` with one value, and
//! `byTrigger` one trigger (the catalog has 24).
//!
//! So every index hash key carries a shard: `shard = fnv1a(id) % SHARDS` ([`shard_of`]), fixed
//! by the invocation id, so that an item keeps its shard through every update, and the same in
//! every process and version (FNV-1a over the id's bytes, not `std`'s randomized hasher). The
//! shard is a suffix of the values (`idn:identity-created#7`, `INV#7`), not new attributes,
//! and an item grows by a few bytes; `from_item` strips it ([`unsharded`]).
//!
//! Arithmetic, with [`SHARDS`] = 16. An index entry is under 1 KB, so one write unit; each
//! list index takes one per invocation, `openByDeadline` two per open one:
//!
//! | | one partition | 16 shards |
//! |---|---|---|
//! | `byCreated`, `openByDeadline`: invocations/s | ~500 to 1,000 | ~8,000 to 16,000 |
//! | one trigger or one subscription (`byTrigger`, `bySubscription`): invocations/s | ~1,000 | ~16,000 |
//! | writes/s on one index partition at 1,000 invocations/s | 1,000 to 2,000 (throttled) | ~63 to 125 |
//!
//! Beyond that, raise [`SHARDS`] (a migration: items keep the shard they were written with, so
//! readers must query the old count's shards too until those items expired; retention is 1 to 2
//! days). The base table itself is keyed by id and scales by itself. (The table of an earlier
//! version, `InvocationsTable`, also held items from before sharding; `InvocationsTableV2` was
//! sharded from its first item, so readers query the 16 shards and nothing else.)
//!
//! Reads pay for it: a status list queries all 16 shards of its index concurrently and merges
//! them (a k-way merge on `(created, id)`, `Merge` in `invocations.rs`), and a sweep reads 16
//! partitions instead of 1. A list page needs the first `offset + limit` (at most 2,000,
//! [`triggerline::query::MAX_REACHABLE`]) matching items in created order; each shard is read
//! lazily, a page of about `1.5 * (offset + limit) / 16` entries at a time and only while the
//! merge needs its head, so the reads total about `offset + limit` plus one page per shard. The
//! entries are read in chunks of up to 100 in merge order, and each chunk's items with one
//! `BatchGetItem` of their id, completed time and TTL (gone or expired ones are left out), so
//! a row holds what the list sorts and filters by (~150 bytes, so 2,000 rows are ~300 KB of
//! memory whatever the inputs' sizes); then the page's items are fetched whole. A default page
//! (limit 250, offset 0) reads ~250 entries plus ≤ 16 short pages (~10 read units, billed by
//! entry size, eventually consistent), ~125 units for the rows' items and ~125 for the page's;
//! the 16 queries run concurrently, so the latency is about one query's plus three
//! BatchGetItems'. A sort by another field than `created`, or `count=true`, reads the window of
//! the 2,000 newest matching items (that many rows at most) and sorts it in memory: the total
//! is that window's size, at most 2,000.
//!
//! The invocations table has TTL on `x` (epoch seconds), written when the store was given a
//! retention ([`DynamoInvocationStore::with_retention`]): on a final transition (or a create
//! of a finished invocation) the retention of its outcome after it finished; on a create or a
//! transition into an open state (PENDING, ACKNOWLEDGED: a reopen, an acknowledgement, a
//! retry) a backstop, [`OPEN_BACKSTOP`] (400 days) plus the failed retention, so that an
//! invocation whose work was lost for good (dead-lettered and never redriven) does not stay
//! for ever. DynamoDB
//! deletes expired items only eventually (and moto never does), so `get` and `list` skip items
//! whose `x` has passed, and `purge` (the local server's, on its timer) deletes for real
//! instead of trusting TTL.
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
//! of JSON strings, appended to with `list_append`), `g`, `os`, `us`, `nb`, `x` (above), and `b`: the
//! rest of the model as deflated JSON (binary: trigger type, invocation type, response mode,
//! input, content, secret hash, heartbeat timeout). An invocation whose heartbeat timer runs
//! also holds `hd` (heartbeat due), `lh` (last heartbeat) and `rd` (its response deadline),
//! and then its `dl` is the earlier of `hd` and `rd`: the sweep's `openByDeadline` index finds
//! it by whichever comes first, with no index of its own (no table change on deploy). Nothing is stored twice and the input is compressed, so a
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
//! `byTrigger` with a `triggerId eq` filter, else `byCreated`; a `triggerId eq` beside a
//! `subscriptionId eq` becomes a `FilterExpression`. With no sorters, or `created` /
//! `-created` first, and without `count=true`, the Query walks the index in created order and
//! stops after `offset + limit` live items (plus those tied on the last created time), which
//! then are ordered and paged in memory. Any other sorter first (`triggerId`,
//! `subscriptionName`, `completed`) or `count=true` reads the window of the 2,000 newest
//! matching items and sorts it in memory. No invocation list uses a Scan.
//!
//! # Consistency and limits
//!
//! GetItem, transactions and conditional writes are strongly consistent; GSI queries are
//! eventually consistent (a list may miss a write of the last moments; moto is immediate).
//! `create_all` writes one invocation with a conditional PutItem and 2 to 100 with
//! TransactWriteItems; more than 100 are refused with [`triggerline::Error::Unavailable`]
//! (DynamoDB has no atomic write beyond 100 items; a fan-out is at most 50, a trigger's
//! subscription limit). One transaction takes at most 4 MB: the use cases bound an input to
//! 128 KiB ([`triggerline::limits`]), so a 50-way fan-out can reach ~6.5 MB, and the store
//! splits it into transactions of at most 3.6 MiB (3.77 MB: a tenth spare for what its size estimate
//! does not count). Those are not one atomic step: if one fails, the ones already written are
//! deleted again (nobody else knows their ids yet), and only a process dying between two of
//! them leaves a part written (the intake event's redelivery then finds that part and makes
//! sure its work is sent, see below; the rest of that fan-out is lost, a gap that only a
//! fan-out over 4 MB has). An item over 400 KB is refused as [`triggerline::Error::TooLarge`].
//!
//! # Intake recovery
//!
//! The SQS queue's `accept` writes the invocations (one step) and then sends their work
//! messages (another); a process that dies in between used to lose the work for good. So the
//! queue writes each invocation marked unsent (`us`, `nb`, index `unsentByDue`) until its first
//! attempt is recorded (that same `UpdateItem` removes the marker: no extra write, two small
//! index writes). A redelivered intake event that finds its invocations written sends the work
//! of those still marked (`resend_unsent`: one BatchGetItem of the event's ids), and the
//! sweep sends the work of those marked whose work was due more than two leases ago
//! (`recover_unsent`: 16 queries of a KEYS_ONLY index, empty in normal running), then moves
//! their due time to now so that it does not send them again every minute. A message sent
//! twice is stale the second time once the first was delivered (it records an attempt), or
//! at worst a duplicate delivery, which at-least-once allows.
//!
//! # moto
//!
//! moto (the test emulator) is not linearizable: a conditional write checks and applies in two
//! unlocked steps, and a cancelled transaction restores a copy of the whole table. So in builds
//! that may face an emulator (feature `create-resources`: the tests, the local server), within
//! one process, subscription writes take turns, and so do writes to one invocation
//! (`lock.rs`, which says why DynamoDB needs no such thing). The Lambda packages are built
//! without it and take no turns: the conditions alone decide, across processes too. It does
//! mean the tests' races prove the in-process path plus the conditions, not DynamoDB's own
//! atomicity. moto returns cancellation reasons and the old item of a failed condition; where
//! an emulator does not, the stores read the item instead.
//!
//! A write that loses a race (a TransactionConflict, or a condition whose subject changed under
//! it) comes back as `codec::Try::Again` and is tried again by one loop,
//! `codec::retry_on_conflict`; a cancelled transaction's reasons are read in one place,
//! `codec::Cancellation`.

mod codec;
mod idempotency;
mod invocations;
mod lock;
mod subscriptions;
#[cfg(feature = "create-resources")]
pub mod tables;

pub use idempotency::DynamoIdempotencyStore;
pub use invocations::{DynamoInvocationStore, OPEN_BACKSTOP, OrderedBy, Recorded, Unsent};
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
/// Invocations table: the heartbeat due time (text), absent until the invocation's heartbeat
/// timer starts. While it is set, [`INV_DEADLINE`] holds the earlier of it and the response
/// deadline (what `openByDeadline` sorts the sweep by) and [`INV_RESPONSE_DEADLINE`] the
/// response deadline.
pub const INV_HEARTBEAT_DUE: &str = "hd";
/// Invocations table: the response deadline (text) while [`INV_HEARTBEAT_DUE`] is set (absent
/// when the invocation has none).
pub const INV_RESPONSE_DEADLINE: &str = "rd";
/// Invocations table: the last heartbeat (text), absent before the first.
pub const INV_LAST_HEARTBEAT: &str = "lh";
/// Invocations table: the output as JSON, absent while none.
pub const INV_OUTPUT: &str = "o";
/// Invocations table: the error, absent while none.
pub const INV_ERROR: &str = "e";
/// Invocations table: the attempts, a list of JSON strings.
pub const INV_ATTEMPTS: &str = "a";
/// Invocations table: the rest of the model as JSON, deflated (binary).
pub const INV_BODY: &str = "b";
/// Invocations table: `INV#<shard>` on every invocation (hash key of [`INV_BY_CREATED`]).
pub const INV_GROUP: &str = "g";
/// [`INV_GROUP`]'s value before its shard suffix.
pub const INV_GROUP_VALUE: &str = "INV";
/// Invocations table: `OPEN#<shard>` while open, absent otherwise (hash key of
/// [`INV_OPEN_BY_DEADLINE`]).
pub const INV_OPEN_STATE: &str = "os";
/// [`INV_OPEN_STATE`]'s value before its shard suffix.
pub const INV_OPEN_VALUE: &str = "OPEN";
/// Invocations table: `UNSENT#<shard>` from the accept until the first attempt is recorded,
/// absent otherwise (hash key of [`INV_UNSENT_BY_DUE`]).
pub const INV_UNSENT: &str = "us";
/// [`INV_UNSENT`]'s value before its shard suffix.
pub const INV_UNSENT_VALUE: &str = "UNSENT";
/// Invocations table: while [`INV_UNSENT`] is set, when the work is due (text).
pub const INV_DUE: &str = "nb";
/// Invocations table: the invocation's ordering key, only while [`INV_UNSENT`] is set, so that
/// the recovery of unsent work finds the key's queue (message group) with the few attributes
/// it reads (the key is also in the body).
pub const INV_ORDERING_KEY: &str = "ok";
/// Invocations table: the TTL attribute, epoch seconds (N).
pub const INV_EXPIRES: &str = "x";
/// The token of the transition that last finished the invocation: a random value per call of
/// `transition`, so that a call whose write landed but whose answer was lost (the SDK timed the
/// attempt out and retried it, and the retry failed its condition on that very write) still
/// knows the write was its own, and one callback of many answers 204, not none.
pub const INV_WRITE_TOKEN: &str = "wt";
/// Invocations GSI: `tg` HASH, `cr` RANGE, projecting [`INV_LIST_PROJECTION`].
pub const INV_BY_TRIGGER: &str = "byTrigger";
/// Invocations GSI: `sb` HASH, `cr` RANGE, projecting [`INV_LIST_PROJECTION`].
pub const INV_BY_SUBSCRIPTION: &str = "bySubscription";
/// Invocations GSI: `g` HASH, `cr` RANGE, projecting [`INV_LIST_PROJECTION`].
pub const INV_BY_CREATED: &str = "byCreated";
/// Invocations GSI: `os` HASH, `dl` RANGE, projection KEYS_ONLY (sparse).
pub const INV_OPEN_BY_DEADLINE: &str = "openByDeadline";
/// What the status list indexes ([`INV_BY_TRIGGER`], [`INV_BY_SUBSCRIPTION`],
/// [`INV_BY_CREATED`]) project besides their keys: what a list filters and sorts by that never
/// changes after the create (each index leaves out its own hash key, which it has anyway). An
/// entry is then written once, when the item is created, and no later write of the item
/// rewrites it.
pub const INV_LIST_PROJECTION: [&str; 3] = [INV_TRIGGER, INV_SUBSCRIPTION, INV_SUBSCRIPTION_NAME];

/// Invocations GSI: `us` HASH, `nb` RANGE, projection KEYS_ONLY (sparse).
pub const INV_UNSENT_BY_DUE: &str = "unsentByDue";

/// The most items DynamoDB takes in one TransactWriteItems.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// How many shards every invocation index hash key is spread over (see the module doc). Fixed:
/// items keep the shard they were written with.
pub const SHARDS: u32 = 16;

/// The shard of an invocation: FNV-1a of its id, modulo [`SHARDS`]; the same in every process.
pub fn shard_of(id: &str) -> u32 {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    // The remainder is below SHARDS, so it fits.
    u32::try_from(hash % u64::from(SHARDS)).unwrap_or(0)
}

/// `value` as an index hash key of shard `shard`: `value#shard`.
pub fn sharded(value: &str, shard: u32) -> String {
    format!("{value}#{shard}")
}

/// The value of a sharded key without its shard (a value written before sharding has none).
pub fn unsharded(value: &str) -> &str {
    match value.rsplit_once('#') {
        Some((base, shard)) if !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => value,
    }
}
