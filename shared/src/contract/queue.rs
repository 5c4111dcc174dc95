//! The [`DeliveryQueue`] contract.

use std::sync::Arc;

use serde_json::json;
use tokio::task::JoinSet;

use super::fixtures::*;
use crate::Error;
use crate::error::ResourceKind;
use crate::model::{Attempt, AttemptOutcome, Invocation, InvocationState};
use crate::ports::{InvocationScans, NextStep, Transition, WorkItem, WorkSource};

/// Runs every [`DeliveryQueue`] check against `queue`, which must hold no work, with
/// `invocations` reading the same storage as this process does (for an embedded database, the
/// same handle). Invocations already in that storage are left alone.
pub async fn delivery_queue(queue: Arc<dyn WorkSource>, invocations: Arc<dyn InvocationScans>) {
    assert_no_work(
        &queue,
        "the delivery queue contract suite needs a queue without work",
    )
    .await;
    queue_accept_writes_invocations_and_due_work(&queue, &invocations).await;
    queue_accept_is_all_or_nothing(&queue, &invocations).await;
    queue_claims_oldest_first_up_to_the_limit(&queue, &invocations).await;
    queue_leased_items_come_back_when_the_lease_ends(&queue, &invocations).await;
    queue_settle_done_records_the_attempt_and_the_outcome(&queue, &invocations).await;
    queue_settle_keeps_a_state_not_in_from(&queue, &invocations).await;
    queue_settle_retry_reschedules_and_counts_attempts(&queue, &invocations).await;
    queue_settle_of_a_missing_invocation_is_none(&queue, &invocations).await;
    queue_settle_held_answers_as_a_fresh_read_would(&queue, &invocations).await;
    queue_a_settle_made_soon_is_seen_by_every_later_read(&queue, &invocations).await;
    queue_replay_reopens_only_a_failed_invocation(&queue, &invocations).await;
    queue_discard_removes_only_the_work(&queue, &invocations).await;
    queue_postpone_puts_work_back_without_an_attempt(&queue, &invocations).await;
    queue_orders_work_by_key(&queue, &invocations).await;
    queue_release_all_ends_every_lease(&queue, &invocations).await;
    queue_purge_takes_the_work_with_the_invocation(&queue, &invocations).await;
    queue_concurrent_accepts_and_settles_all_land(&queue, &invocations).await;
}

const QUEUE_SUB: (&str, &str) = ("sub-queue", "Queue listener");

/// A fresh invocation as the intake writes it: open, not yet attempted.
fn fresh(id: &str, trigger_id: &str) -> Invocation {
    Invocation {
        attempts: Vec::new(),
        ..invocation(id, trigger_id, QUEUE_SUB, 0, None)
    }
}

fn attempt(started: i64, status_code: Option<u16>, outcome: AttemptOutcome) -> Attempt {
    Attempt {
        started_at: at(started),
        target: "hooks.example.com".to_owned(),
        status_code,
        duration_ms: 120,
        outcome,
        error: status_code
            .filter(|code| *code >= 500)
            .map(|code| format!("the subscriber answered {code}")),
    }
}

fn item(id: &str, not_before: i64, attempts: u32) -> WorkItem {
    WorkItem {
        invocation_id: id.to_owned(),
        not_before: at(not_before),
        attempts,
    }
}

/// Items in invocation id order, for comparing sets of items.
fn by_invocation(mut items: Vec<WorkItem>) -> Vec<WorkItem> {
    items.sort_by(|a, b| a.invocation_id.cmp(&b.invocation_id));
    items
}

fn work_ids(items: &[WorkItem]) -> Vec<&str> {
    items.iter().map(|i| i.invocation_id.as_str()).collect()
}

const OPEN: [InvocationState; 2] = [InvocationState::Pending, InvocationState::Acknowledged];

fn completion(minutes: i64) -> Transition {
    Transition {
        to: InvocationState::Completed,
        completed: Some(at(minutes)),
        output: Some(approval()),
        error: None,
    }
}

/// Giving up after a 502 at `minutes`: the transition a delivery's last attempt asks for.
fn gave_up(minutes: i64) -> Transition {
    Transition {
        to: InvocationState::Failed,
        completed: Some(at(minutes)),
        output: None,
        error: Some("the subscriber answered 502".to_owned()),
    }
}

/// `id` accepted at `minutes`, claimed, and then completed by a callback a minute later, as a
/// delivery still in flight does not know: the invocation as the callback left it.
async fn answered_while_delivering(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
    id: &str,
    minutes: i64,
) -> Invocation {
    queue
        .accept(&[fresh(id, PRE_APPROVAL)], at(minutes), None)
        .await
        .unwrap();
    queue
        .claim_due(at(minutes), at(minutes + 10), 10)
        .await
        .unwrap();
    invocations
        .transition(id, &OPEN, &completion(minutes + 1))
        .await
        .unwrap()
}

async fn assert_no_work(queue: &Arc<dyn WorkSource>, why: &str) {
    assert_eq!(
        queue.next_due().await.unwrap(),
        None,
        "{why}: next_due must be None when the queue holds no work"
    );
}

async fn discard_all(queue: &Arc<dyn WorkSource>, ids: &[&str]) {
    for id in ids {
        queue
            .discard(id)
            .await
            .unwrap_or_else(|e| panic!("cleanup: discard {id}: {e:?}"));
    }
}

async fn queue_accept_writes_invocations_and_due_work(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    assert_eq!(
        queue.accept(&[], at(100), None).await.unwrap(),
        [],
        "accept of nothing is Ok and makes no work"
    );
    let batch = [
        fresh("queue-accept-1", IDENTITY_CREATED),
        fresh("queue-accept-2", PRE_APPROVAL),
    ];
    let items = queue.accept(&batch, at(100), None).await.unwrap();
    assert_eq!(
        by_invocation(items),
        [
            item("queue-accept-1", 100, 0),
            item("queue-accept-2", 100, 0)
        ],
        "accept returns one item per invocation, due at not_before, with no attempts"
    );
    for i in &batch {
        assert_eq!(
            invocations.get(&i.id).await.unwrap().as_ref(),
            Some(i),
            "an accepted invocation is readable through the invocation store, as given"
        );
    }
    assert_eq!(queue.next_due().await.unwrap(), Some(at(100)));

    assert_eq!(
        queue.claim_due(at(99), at(110), 10).await.unwrap(),
        [],
        "an item is not claimable before its not_before"
    );
    let claimed = queue.claim_due(at(100), at(110), 10).await.unwrap();
    assert_eq!(
        by_invocation(claimed),
        [
            item("queue-accept-1", 100, 0),
            item("queue-accept-2", 100, 0)
        ],
        "an unleased item is claimable from its not_before on (inclusive)"
    );
    assert_eq!(
        queue.claim_due(at(100), at(110), 10).await.unwrap(),
        [],
        "a claimed item is leased: a second claim at the same time gets nothing"
    );
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(110)),
        "with only leased items, next_due is the earliest lease end"
    );

    discard_all(queue, &["queue-accept-1", "queue-accept-2"]).await;
    assert_no_work(queue, "after discarding the accept check's items").await;
}

async fn queue_accept_is_all_or_nothing(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    let existing = fresh("queue-existing", IDENTITY_CREATED);
    queue
        .accept(std::slice::from_ref(&existing), at(200), None)
        .await
        .unwrap();
    let stored_only = fresh("queue-stored-only", IDENTITY_CREATED);
    invocations
        .create_all(std::slice::from_ref(&stored_only))
        .await
        .unwrap();

    let clash = [
        fresh("queue-clash-a", IDENTITY_CREATED),
        Invocation {
            subscription_name: "A clashing copy".to_owned(),
            ..existing.clone()
        },
        fresh("queue-clash-b", IDENTITY_CREATED),
    ];
    let result = queue.accept(&clash, at(150), None).await;
    assert!(
        matches!(
            &result,
            Err(Error::AlreadyExists { kind: ResourceKind::Invocation, id }) if id == "queue-existing"
        ),
        "accept with a taken id must be AlreadyExists(invocation, queue-existing), got {result:?}"
    );
    let result = queue
        .accept(
            &[
                fresh("queue-clash-c", IDENTITY_CREATED),
                stored_only.clone(),
            ],
            at(150),
            Some(at(400)),
        )
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::AlreadyExists { kind: ResourceKind::Invocation, id }) if id == "queue-stored-only"
        ),
        "accept of an id written by create_all must be AlreadyExists(invocation, \
         queue-stored-only), got {result:?}"
    );
    let twins = [
        fresh("queue-twin", IDENTITY_CREATED),
        fresh("queue-twin", PRE_APPROVAL),
    ];
    let result = queue.accept(&twins, at(150), None).await;
    assert!(
        matches!(
            &result,
            Err(Error::AlreadyExists { kind: ResourceKind::Invocation, id }) if id == "queue-twin"
        ),
        "accept with the same id twice must be AlreadyExists(invocation, queue-twin), got \
         {result:?}"
    );

    for id in [
        "queue-clash-a",
        "queue-clash-b",
        "queue-clash-c",
        "queue-twin",
    ] {
        assert_eq!(
            invocations.get(id).await.unwrap(),
            None,
            "a refused accept writes no invocation: {id}"
        );
    }
    assert_eq!(
        invocations.get("queue-existing").await.unwrap(),
        Some(existing),
        "a refused accept leaves the stored invocation untouched"
    );
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(200)),
        "a refused accept writes no work item (its items would be due at 150)"
    );
    assert_eq!(
        queue.claim_due(at(500), at(510), 10).await.unwrap(),
        [item("queue-existing", 200, 0)],
        "only the first accept's item exists, unchanged by the refused ones; create_all and a \
         refused accept give queue-stored-only no work"
    );

    discard_all(queue, &["queue-existing"]).await;
    assert_no_work(queue, "after the all-or-nothing check").await;
}

async fn queue_claims_oldest_first_up_to_the_limit(
    queue: &Arc<dyn WorkSource>,
    _invocations: &Arc<dyn InvocationScans>,
) {
    for n in [3, 1, 5, 2, 4] {
        queue
            .accept(
                &[fresh(&format!("queue-order-{n}"), IDENTITY_CREATED)],
                at(300 + n),
                None,
            )
            .await
            .unwrap();
    }
    queue
        .accept(
            &[fresh("queue-order-later", IDENTITY_CREATED)],
            at(400),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(301)),
        "next_due is the earliest not_before of the unleased items"
    );

    let mut rounds = Vec::new();
    for _ in 0..4 {
        let claimed = queue.claim_due(at(310), at(320), 2).await.unwrap();
        rounds.push(
            work_ids(&claimed)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        rounds,
        [
            vec!["queue-order-1", "queue-order-2"],
            vec!["queue-order-3", "queue-order-4"],
            vec!["queue-order-5"],
            vec![],
        ],
        "claim_due leases at most `limit` due items, oldest not_before first, never one that \
         is not yet due"
    );
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(320)),
        "next_due is the earlier of the first lease end (320) and the first unleased due time \
         (400)"
    );

    discard_all(
        queue,
        &[
            "queue-order-1",
            "queue-order-2",
            "queue-order-3",
            "queue-order-4",
            "queue-order-5",
            "queue-order-later",
        ],
    )
    .await;
    assert_no_work(queue, "after the order check").await;
}

async fn queue_leased_items_come_back_when_the_lease_ends(
    queue: &Arc<dyn WorkSource>,
    _invocations: &Arc<dyn InvocationScans>,
) {
    let items = queue
        .accept(
            &[fresh("queue-handoff", IDENTITY_CREATED)],
            at(400),
            Some(at(402)),
        )
        .await
        .unwrap();
    assert_eq!(items, [item("queue-handoff", 400, 0)]);
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(402)),
        "an item accepted with a lease is next due when the lease ends"
    );
    assert_eq!(
        queue.claim_due(at(401), at(410), 10).await.unwrap(),
        [],
        "an item accepted with a lease is not claimable while the lease runs"
    );
    assert_eq!(
        queue.claim_due(at(403), at(410), 10).await.unwrap(),
        [item("queue-handoff", 400, 0)],
        "once its lease has ended the item is claimable (a crashed worker's items come back)"
    );
    assert_eq!(
        queue.claim_due(at(405), at(410), 10).await.unwrap(),
        [],
        "claiming leases the item anew, until lease_until"
    );
    assert_eq!(
        queue.claim_due(at(411), at(420), 10).await.unwrap(),
        [item("queue-handoff", 400, 0)],
        "a lease that ran out again gives the item back again; claims are not attempts"
    );

    discard_all(queue, &["queue-handoff"]).await;
    assert_no_work(queue, "after the lease check").await;
}

async fn queue_settle_done_records_the_attempt_and_the_outcome(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    let open = fresh("queue-done", PRE_APPROVAL);
    queue
        .accept(std::slice::from_ref(&open), at(500), None)
        .await
        .unwrap();
    queue.claim_due(at(500), at(501), 10).await.unwrap();

    let delivered = attempt(500, Some(200), AttemptOutcome::Completed);
    let written = queue
        .settle(
            "queue-done",
            &delivered,
            &OPEN,
            Some(&completion(500)),
            &NextStep::Done,
        )
        .await
        .unwrap();
    let expected = Invocation {
        state: InvocationState::Completed,
        completed: Some(at(500)),
        output: Some(approval()),
        error: None,
        attempts: vec![delivered],
        ..open
    };
    assert_eq!(
        written.as_ref(),
        Some(&expected),
        "settle returns the invocation as written: the attempt appended, the transition applied"
    );
    assert_eq!(
        invocations.get("queue-done").await.unwrap(),
        Some(expected),
        "the attempt and the outcome are stored"
    );
    assert_no_work(queue, "settle with Done removes the item").await;
    assert_eq!(queue.claim_due(at(600), at(610), 10).await.unwrap(), []);
}

async fn queue_settle_keeps_a_state_not_in_from(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    // The callback answers before the delivery reports.
    let answered = answered_while_delivering(queue, invocations, "queue-late", 600).await;

    let failed = attempt(600, Some(502), AttemptOutcome::Failed);
    let give_up = gave_up(602);
    let written = queue
        .settle(
            "queue-late",
            &failed,
            &OPEN,
            Some(&give_up),
            &NextStep::Done,
        )
        .await
        .unwrap();
    let expected = Invocation {
        attempts: vec![failed],
        ..answered
    };
    assert_eq!(
        written.as_ref(),
        Some(&expected),
        "settle with a transition whose `from` lacks the current state keeps the state and \
         outcome, and still records the attempt"
    );
    assert_eq!(invocations.get("queue-late").await.unwrap(), Some(expected));
    assert_no_work(
        queue,
        "settle with Done removes the item even without a transition",
    )
    .await;
}

async fn queue_settle_retry_reschedules_and_counts_attempts(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    let open = fresh("queue-retry", IDENTITY_CREATED);
    queue
        .accept(std::slice::from_ref(&open), at(700), None)
        .await
        .unwrap();
    queue.claim_due(at(700), at(760), 10).await.unwrap();

    let first = attempt(700, Some(503), AttemptOutcome::Failed);
    let written = queue
        .settle(
            "queue-retry",
            &first,
            &OPEN,
            None,
            &NextStep::RetryAt(at(710)),
        )
        .await
        .unwrap();
    assert_eq!(
        written,
        Some(Invocation {
            attempts: vec![first.clone()],
            ..open.clone()
        }),
        "settle without a transition records the attempt and keeps the state"
    );
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(710)),
        "RetryAt releases the lease (which ran to 760): the item is next due at the retry time"
    );
    assert_eq!(
        queue.claim_due(at(709), at(715), 10).await.unwrap(),
        [],
        "a rescheduled item is not claimable before its retry time"
    );
    assert_eq!(
        queue.claim_due(at(710), at(715), 10).await.unwrap(),
        [item("queue-retry", 710, 1)],
        "a rescheduled item is claimable at its retry time, with its attempts counted"
    );

    let second = attempt(710, None, AttemptOutcome::Failed);
    queue
        .settle(
            "queue-retry",
            &second,
            &OPEN,
            None,
            &NextStep::RetryAt(at(720)),
        )
        .await
        .unwrap();
    assert_eq!(
        queue.claim_due(at(720), at(725), 10).await.unwrap(),
        [item("queue-retry", 720, 2)]
    );

    let third = attempt(720, Some(500), AttemptOutcome::Failed);
    let give_up = Transition {
        to: InvocationState::Failed,
        completed: Some(at(721)),
        output: None,
        error: Some("gave up after 3 attempts".to_owned()),
    };
    let written = queue
        .settle(
            "queue-retry",
            &third,
            &OPEN,
            Some(&give_up),
            &NextStep::Done,
        )
        .await
        .unwrap();
    let expected = Invocation {
        state: InvocationState::Failed,
        completed: Some(at(721)),
        error: Some("gave up after 3 attempts".to_owned()),
        attempts: vec![first, second, third],
        ..open
    };
    assert_eq!(
        written.as_ref(),
        Some(&expected),
        "attempts accumulate in order"
    );
    assert_eq!(
        invocations.get("queue-retry").await.unwrap(),
        Some(expected)
    );
    assert_no_work(queue, "after the retry check").await;
}

async fn queue_settle_of_a_missing_invocation_is_none(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    for next in [NextStep::Done, NextStep::RetryAt(at(800))] {
        let result = queue
            .settle(
                "queue-never",
                &attempt(800, Some(200), AttemptOutcome::Completed),
                &OPEN,
                Some(&completion(800)),
                &next,
            )
            .await;
        assert!(
            matches!(result, Ok(None)),
            "settle of an unknown invocation ({next:?}) must be Ok(None), got {result:?}"
        );
    }
    assert_eq!(
        invocations.get("queue-never").await.unwrap(),
        None,
        "settle never creates an invocation"
    );
    assert_no_work(queue, "settle never creates work").await;
}

async fn queue_settle_held_answers_as_a_fresh_read_would(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    let open = fresh("queue-held", PRE_APPROVAL);
    queue
        .accept(std::slice::from_ref(&open), at(850), None)
        .await
        .unwrap();
    queue.claim_due(at(850), at(851), 10).await.unwrap();

    let failed = attempt(850, Some(503), AttemptOutcome::Failed);
    let written = queue
        .settle_held(
            open.clone(),
            &failed,
            &OPEN,
            None,
            &NextStep::RetryAt(at(852)),
        )
        .await
        .unwrap();
    assert_eq!(
        Some(&written),
        invocations.get("queue-held").await.unwrap().as_ref(),
        "a held copy as stored comes back with the attempt appended"
    );
    assert_eq!(written.attempts, std::slice::from_ref(&failed));

    // The caller's copy is now stale (it lacks the first attempt): the answer is the row.
    let delivered = attempt(852, Some(200), AttemptOutcome::Completed);
    let written = queue
        .settle_held(
            open,
            &delivered,
            &OPEN,
            Some(&completion(852)),
            &NextStep::Done,
        )
        .await
        .unwrap();
    assert_eq!(
        Some(&written),
        invocations.get("queue-held").await.unwrap().as_ref(),
        "a stale held copy gets the invocation as written, not itself settled"
    );
    assert_eq!(written.attempts, [failed, delivered]);
    assert_eq!(written.state, InvocationState::Completed);
    assert_no_work(queue, "settle_held with Done removes the item").await;

    let never = fresh("queue-held-never", PRE_APPROVAL);
    let written = queue
        .settle_held(
            never.clone(),
            &attempt(853, Some(200), AttemptOutcome::Completed),
            &OPEN,
            Some(&completion(853)),
            &NextStep::Done,
        )
        .await
        .unwrap();
    assert_eq!(
        written, never,
        "a missing invocation: the held copy, unchanged"
    );
    assert_eq!(invocations.get("queue-held-never").await.unwrap(), None);

    // A copy held since the accept, with no attempt, while a callback settled the row: the
    // row's state stands, the attempt is appended, and the answer is the row.
    let answered = answered_while_delivering(queue, invocations, "queue-held-answered", 854).await;
    let open = fresh("queue-held-answered", PRE_APPROVAL);
    let failed = attempt(855, Some(502), AttemptOutcome::Failed);
    let give_up = gave_up(856);
    let written = queue
        .settle_held(open, &failed, &OPEN, Some(&give_up), &NextStep::Done)
        .await
        .unwrap();
    assert_eq!(
        written,
        Invocation {
            attempts: vec![failed],
            ..answered
        },
        "a held copy whose row was settled meanwhile gets the row, its state kept"
    );
    assert_eq!(
        Some(&written),
        invocations
            .get("queue-held-answered")
            .await
            .unwrap()
            .as_ref()
    );
}

/// What the synchronous fast path relies on when it answers before its outcome is durable: a
/// read begun after `settle_held_soon` returned (a status lookup, a list, the queue's own
/// next-due) already sees the outcome, and the work is gone.
async fn queue_a_settle_made_soon_is_seen_by_every_later_read(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    let open = fresh("queue-soon", PRE_APPROVAL);
    // As the intake accepts it: leased to the request that delivers it.
    queue
        .accept(std::slice::from_ref(&open), at(860), Some(at(870)))
        .await
        .unwrap();
    let delivered = attempt(860, Some(200), AttemptOutcome::Completed);

    let answered = queue
        .settle_held_soon(
            open,
            &delivered,
            &OPEN,
            Some(&completion(860)),
            &NextStep::Done,
        )
        .await
        .unwrap();

    assert_eq!(answered.state, InvocationState::Completed);
    assert_eq!(answered.attempts, std::slice::from_ref(&delivered));
    assert_eq!(
        invocations.get("queue-soon").await.unwrap().as_ref(),
        Some(&answered),
        "a lookup right after sees the outcome the caller answered"
    );
    let listed = invocations
        .list(&q(&[("filters", r#"subscriptionId eq "sub-queue""#)]))
        .await
        .unwrap();
    assert!(
        listed.items.contains(&answered),
        "so does a list: {:?}",
        listed
            .items
            .iter()
            .map(|i| (&i.id, i.state))
            .collect::<Vec<_>>()
    );
    assert_no_work(queue, "a settle made soon with Done removes the item").await;
}

async fn queue_replay_reopens_only_a_failed_invocation(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    // The new deadline lies before every other open invocation's, so that `overdue` can show
    // that the replay moved it.
    const NEW_DEADLINE: i64 = 4 * SWEEP;
    let result = queue
        .replay("queue-never", Some(at(NEW_DEADLINE)), at(850), None)
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::NotFound { kind: ResourceKind::Invocation, id }) if id == "queue-never"
        ),
        "replay of an unknown invocation must be NotFound(invocation, queue-never), got \
         {result:?}"
    );

    let open = Invocation {
        heartbeat: Some(crate::model::Heartbeat {
            timeout: crate::duration::IsoDuration::parse("heartbeatTimeout", "PT5M").unwrap(),
            last: None,
            due: None,
        }),
        ..fresh("queue-replay", PRE_APPROVAL)
    };
    queue
        .accept(std::slice::from_ref(&open), at(850), None)
        .await
        .unwrap();
    // A heartbeat timer that ran before the failure ends with it: the replay clears it.
    invocations
        .keep_alive("queue-replay", at(853), Some(at(850)))
        .await
        .unwrap();
    let result = queue
        .replay("queue-replay", Some(at(NEW_DEADLINE)), at(851), None)
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::NotOpen { id, status: InvocationState::Pending }) if id == "queue-replay"
        ),
        "replay of an open invocation must be NotOpen(queue-replay, PENDING), got {result:?}"
    );
    assert_eq!(
        queue.claim_due(at(850), at(855), 10).await.unwrap(),
        [item("queue-replay", 850, 0)],
        "a refused replay leaves the work item as it was"
    );
    let failed = attempt(850, Some(500), AttemptOutcome::Failed);
    let give_up = Transition {
        to: InvocationState::Failed,
        completed: Some(at(851)),
        output: None,
        error: Some("the subscriber answered 500".to_owned()),
    };
    queue
        .settle(
            "queue-replay",
            &failed,
            &OPEN,
            Some(&give_up),
            &NextStep::Done,
        )
        .await
        .unwrap();

    let replayed = queue
        .replay(
            "queue-replay",
            Some(at(NEW_DEADLINE)),
            at(860),
            Some(at(862)),
        )
        .await
        .unwrap();
    assert_eq!(
        replayed,
        item("queue-replay", 860, 0),
        "replay returns the new work item, due at not_before, with no attempts in this round"
    );
    let expected = Invocation {
        deadline: Some(at(NEW_DEADLINE)),
        attempts: vec![failed],
        ..open
    };
    assert_eq!(
        invocations.get("queue-replay").await.unwrap().as_ref(),
        Some(&expected),
        "replay makes the invocation PENDING again: no completed, output or error, no \
         heartbeat timer running, the new deadline, the attempts kept"
    );
    assert_eq!(
        invocations.overdue(at(NEW_DEADLINE + 1), 10).await.unwrap(),
        std::slice::from_ref(&expected),
        "a replayed invocation is open again, under its new deadline"
    );
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(862)),
        "the replayed item is leased until leased_until"
    );
    assert_eq!(queue.claim_due(at(861), at(870), 10).await.unwrap(), []);
    assert_eq!(
        queue.claim_due(at(863), at(870), 10).await.unwrap(),
        [item("queue-replay", 860, 0)]
    );

    let completed = queue
        .settle(
            "queue-replay",
            &attempt(863, Some(200), AttemptOutcome::Completed),
            &OPEN,
            Some(&completion(863)),
            &NextStep::Done,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(completed.attempts.len(), 2);
    let result = queue
        .replay("queue-replay", Some(at(NEW_DEADLINE)), at(870), None)
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::NotOpen { id, status: InvocationState::Completed }) if id == "queue-replay"
        ),
        "only a FAILED invocation can be replayed: NotOpen(queue-replay, COMPLETED), got \
         {result:?}"
    );
    assert_eq!(
        invocations.get("queue-replay").await.unwrap(),
        Some(completed),
        "a refused replay changes nothing"
    );
    assert_no_work(queue, "a refused replay queues nothing").await;
}

async fn queue_discard_removes_only_the_work(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    let open = fresh("queue-discard", IDENTITY_CREATED);
    queue
        .accept(std::slice::from_ref(&open), at(900), Some(at(905)))
        .await
        .unwrap();
    queue.discard("queue-discard").await.unwrap();
    assert_no_work(queue, "discard removes the item, leased or not").await;
    assert_eq!(queue.claim_due(at(1000), at(1010), 10).await.unwrap(), []);
    assert_eq!(
        invocations.get("queue-discard").await.unwrap(),
        Some(open),
        "discard leaves the invocation as it was"
    );
    queue
        .discard("queue-discard")
        .await
        .expect("discarding again is Ok");
    queue
        .discard("queue-never")
        .await
        .expect("discarding an unknown item is Ok");
}

async fn queue_postpone_puts_work_back_without_an_attempt(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    let open = fresh("queue-postpone", IDENTITY_CREATED);
    queue
        .accept(std::slice::from_ref(&open), at(1100), None)
        .await
        .unwrap();
    queue.claim_due(at(1100), at(1160), 10).await.unwrap();
    let failed = attempt(1100, Some(503), AttemptOutcome::Failed);
    queue
        .settle(
            "queue-postpone",
            &failed,
            &OPEN,
            None,
            &NextStep::RetryAt(at(1110)),
        )
        .await
        .unwrap();
    assert_eq!(
        queue.claim_due(at(1110), at(1170), 10).await.unwrap(),
        [item("queue-postpone", 1110, 1)]
    );
    queue.postpone("queue-postpone", at(1130)).await.unwrap();
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(1130)),
        "postpone ends the lease (to 1170): the item is next due at the hold's end"
    );
    assert_eq!(
        queue.claim_due(at(1129), at(1190), 10).await.unwrap(),
        [],
        "a postponed item is not claimable before the hold's end"
    );
    assert_eq!(
        queue.claim_due(at(1130), at(1190), 10).await.unwrap(),
        [item("queue-postpone", 1130, 1)],
        "claimable at the hold's end with its attempts as they were: a hold burns no retry"
    );
    assert_eq!(
        invocations.get("queue-postpone").await.unwrap(),
        Some(Invocation {
            attempts: vec![failed],
            ..open
        }),
        "postpone records no attempt"
    );
    discard_all(queue, &["queue-postpone"]).await;
    queue
        .postpone("queue-never", at(1200))
        .await
        .expect("postponing unknown work is Ok");
    assert_no_work(queue, "postponing unknown work queues nothing").await;
}

/// Work of an invocation with an ordering key is claimable only once every invocation of its
/// subscription and key accepted before it is finished; other keys, other subscriptions and
/// unordered work are not held back. (Only for queues that keep this promise.)
async fn queue_orders_work_by_key(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    if !queue.orders_by_key() {
        return;
    }
    let ordered = |id: &str, key: Option<&str>| Invocation {
        ordering_key: key.map(str::to_owned),
        ..fresh(id, IDENTITY_CREATED)
    };
    let other_subscription = Invocation {
        subscription_id: "sub-queue-other".to_owned(),
        ..ordered("queue-order-c1", Some("k"))
    };
    let accepted = [
        ordered("queue-order-a1", Some("k")),
        ordered("queue-order-a2", Some("k")),
        ordered("queue-order-b1", Some("another key")),
        other_subscription,
        ordered("queue-order-a3", Some("k")),
        ordered("queue-order-free", None),
    ];
    // One accept each, as separate starts make them, each asking for a lease.
    for invocation in &accepted {
        queue
            .accept(std::slice::from_ref(invocation), at(1300), Some(at(1360)))
            .await
            .unwrap();
    }
    let claimed = by_invocation(queue.claim_due(at(1300), at(1360), 10).await.unwrap());
    assert_eq!(
        work_ids(&claimed),
        ["queue-order-a1", "queue-order-b1", "queue-order-c1"],
        "the first of each subscription and key, not leased at accept; the unordered one was"
    );
    let acknowledged = Transition {
        to: InvocationState::Acknowledged,
        completed: None,
        output: None,
        error: None,
    };
    queue
        .settle(
            "queue-order-a1",
            &attempt(1300, Some(200), AttemptOutcome::Acknowledged),
            &OPEN,
            Some(&acknowledged),
            &NextStep::Done,
        )
        .await
        .unwrap();
    assert_eq!(
        queue.claim_due(at(1301), at(1361), 10).await.unwrap(),
        [],
        "an acknowledged invocation is not finished: the next of its key waits"
    );
    invocations
        .transition("queue-order-a1", &OPEN, &completion(1302))
        .await
        .unwrap();
    assert_eq!(
        work_ids(&queue.claim_due(at(1302), at(1362), 10).await.unwrap()),
        ["queue-order-a2"],
        "completed (by the callback): the next of its key is claimable"
    );
    let gave_up = Transition {
        to: InvocationState::Failed,
        completed: Some(at(1303)),
        output: None,
        error: Some("gave up".to_owned()),
    };
    queue
        .settle(
            "queue-order-a2",
            &attempt(1303, Some(500), AttemptOutcome::Failed),
            &OPEN,
            Some(&gave_up),
            &NextStep::Done,
        )
        .await
        .unwrap();
    assert_eq!(
        work_ids(&queue.claim_due(at(1303), at(1363), 10).await.unwrap()),
        ["queue-order-a3"],
        "failed for good: the next of its key is claimable"
    );
    discard_all(
        queue,
        &[
            "queue-order-a3",
            "queue-order-b1",
            "queue-order-c1",
            "queue-order-free",
        ],
    )
    .await;
}

async fn queue_release_all_ends_every_lease(
    queue: &Arc<dyn WorkSource>,
    _invocations: &Arc<dyn InvocationScans>,
) {
    queue
        .accept(
            &[fresh("queue-release-handoff", IDENTITY_CREATED)],
            at(1000),
            Some(at(1100)),
        )
        .await
        .unwrap();
    queue
        .accept(
            &[fresh("queue-release-claimed", IDENTITY_CREATED)],
            at(1000),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        queue.claim_due(at(1000), at(1100), 10).await.unwrap(),
        [item("queue-release-claimed", 1000, 0)]
    );
    queue
        .accept(
            &[fresh("queue-release-later", IDENTITY_CREATED)],
            at(1200),
            None,
        )
        .await
        .unwrap();
    assert_eq!(queue.claim_due(at(1001), at(1100), 10).await.unwrap(), []);

    queue.release_all().await.unwrap();
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(at(1000)),
        "after release_all the leased items are next due at their not_before"
    );
    let claimed = queue.claim_due(at(1001), at(1010), 10).await.unwrap();
    assert_eq!(
        by_invocation(claimed),
        [
            item("queue-release-claimed", 1000, 0),
            item("queue-release-handoff", 1000, 0)
        ],
        "release_all makes every leased item claimable (accepted with a lease or claimed), and \
         no item that is not yet due"
    );
    queue.release_all().await.expect("release_all is Ok again");

    discard_all(
        queue,
        &[
            "queue-release-handoff",
            "queue-release-claimed",
            "queue-release-later",
        ],
    )
    .await;
    assert_no_work(queue, "after the release check").await;
}

async fn queue_purge_takes_the_work_with_the_invocation(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    // Far older than any invocation the other suites finish, so this purge deletes only it.
    const LONG_AGO: i64 = 3 * SWEEP;
    queue
        .accept(
            &[fresh("queue-purged", IDENTITY_CREATED)],
            at(1100),
            Some(at(1110)),
        )
        .await
        .unwrap();
    invocations
        .transition("queue-purged", &OPEN, &completion(LONG_AGO))
        .await
        .unwrap();

    let purged = invocations
        .purge(at(LONG_AGO + 1), at(LONG_AGO + 1), 10)
        .await
        .unwrap();
    assert_eq!(purged, 1, "purge counts the invocations it deleted");
    assert_eq!(invocations.get("queue-purged").await.unwrap(), None);
    assert_no_work(queue, "purging an invocation removes its work item").await;
    assert_eq!(queue.claim_due(at(1200), at(1210), 10).await.unwrap(), []);
}

async fn queue_concurrent_accepts_and_settles_all_land(
    queue: &Arc<dyn WorkSource>,
    invocations: &Arc<dyn InvocationScans>,
) {
    const N: usize = 200;
    let id = |n: usize| format!("queue-burst-{n:03}");

    let mut accepts = JoinSet::new();
    for n in 0..N {
        let queue = Arc::clone(queue);
        let invocation = fresh(&id(n), PRE_APPROVAL);
        accepts.spawn(async move { queue.accept(&[invocation], at(1200), None).await });
    }
    for result in accepts.join_all().await {
        result.expect("every concurrent accept resolves Ok");
    }
    let claimed = queue.claim_due(at(1200), at(1210), 2 * N).await.unwrap();
    assert_eq!(
        claimed.len(),
        N,
        "every concurrently accepted item is claimable"
    );

    let mut settles = JoinSet::new();
    for n in 0..N {
        let queue = Arc::clone(queue);
        let id = id(n);
        settles.spawn(async move {
            let transition = Transition {
                output: Some(json!({"approved": true, "n": n})),
                ..completion(1201)
            };
            let written = queue
                .settle(
                    &id,
                    &attempt(1200, Some(200), AttemptOutcome::Completed),
                    &OPEN,
                    Some(&transition),
                    &NextStep::Done,
                )
                .await;
            (n, written)
        });
    }
    for (n, written) in settles.join_all().await {
        let written = written
            .unwrap_or_else(|e| panic!("concurrent settle {n}: {e:?}"))
            .unwrap_or_else(|| panic!("concurrent settle {n} found no invocation"));
        assert_eq!(
            (written.state, written.attempts.len()),
            (InvocationState::Completed, 1),
            "concurrent settle {n}"
        );
    }
    for n in 0..N {
        let stored = invocations.get(&id(n)).await.unwrap().unwrap();
        assert_eq!(
            (stored.state, stored.output, stored.attempts),
            (
                InvocationState::Completed,
                Some(json!({"approved": true, "n": n})),
                vec![attempt(1200, Some(200), AttemptOutcome::Completed)]
            ),
            "every one of {N} concurrent settles lands on its own invocation ({})",
            id(n)
        );
    }
    assert_no_work(queue, "every settled item is removed").await;
}
