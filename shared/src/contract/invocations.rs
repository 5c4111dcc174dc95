//! The [`InvocationStore`](crate::ports::InvocationStore) contract.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;
use tokio::task::JoinSet;

use super::fixtures::*;
use crate::Error;
use crate::error::ResourceKind;
use crate::model::{Invocation, InvocationState};
use crate::ports::{InvocationScans, Judge, Judged, Transition};

use crate::query::Page;
/// Runs every [`InvocationStore`] check against `store`, which must be fresh and empty.
pub async fn invocation_store(store: Arc<dyn InvocationScans>) {
    invocations_start_empty(&store).await;
    invocation_lists(&store).await;
    invocation_create_all_is_all_or_nothing(&store).await;
    invocation_transition_completes_an_open_invocation_once(&store).await;
    invocation_transition_moves_through_acknowledged(&store).await;
    invocation_transition_of_an_unknown_id_is_not_found(&store).await;
    invocation_transition_has_one_winner_under_concurrency(&store).await;
    invocation_transition_held_answers_as_a_fresh_read_would(&store).await;
    invocation_transition_judged_writes_what_the_judge_decides_of_the_stored_copy(&store).await;
    invocation_transition_judged_has_one_winner_under_concurrency(&store).await;
    invocation_overdue_lists_open_invocations_past_their_deadline(&store).await;
    invocation_purge_deletes_finished_invocations_past_their_retention(&store).await;
    invocation_keep_alive_moves_the_heartbeat_due_time_of_an_open_invocation(&store).await;
}

async fn invocations_start_empty(store: &Arc<dyn InvocationScans>) {
    let page = store
        .list(&q(&[("count", "true")]))
        .await
        .expect("list on an empty store");
    assert_eq!(
        (page.items.len(), page.total),
        (0, Some(0)),
        "the invocation contract suite needs a fresh, empty store"
    );
}

const AUDIT: (&str, &str) = ("sub-audit", "Audit log");
const APPROVER: (&str, &str) = ("sub-approver", "Approver");
const CRM: (&str, &str) = ("sub-crm", "CRM sync");

/// Six invocations with ties on `created` (inv-3, inv-4) and open ones without `completed`.
fn invocation_list_seed() -> Vec<Invocation> {
    vec![
        invocation("inv-1", IDENTITY_CREATED, AUDIT, 0, Some(1)),
        invocation("inv-2", PRE_APPROVAL, APPROVER, 1, None),
        invocation("inv-3", IDENTITY_CREATED, CRM, 2, Some(5)),
        invocation("inv-4", IDENTITY_CREATED, AUDIT, 2, Some(3)),
        invocation("inv-5", PRE_APPROVAL, APPROVER, 4, Some(4)),
        invocation("inv-6", IDENTITY_CREATED, CRM, 5, None),
    ]
}

async fn invocation_lists(store: &Arc<dyn InvocationScans>) {
    let seed = invocation_list_seed();
    store
        .create_all(&seed)
        .await
        .expect("create_all of the list seed");
    for i in &seed {
        assert_eq!(
            store.get(&i.id).await.unwrap().as_ref(),
            Some(i),
            "get must return the invocation exactly as created"
        );
    }
    assert_eq!(
        store.get("no-such-invocation").await.unwrap(),
        None,
        "get of an unknown id must be Ok(None)"
    );

    let newest_first: &[&str] = &["inv-6", "inv-5", "inv-3", "inv-4", "inv-2", "inv-1"];
    let cases: &[ListCase] = &[
        (&[], newest_first),
        (&[("sorters", "-created")], newest_first),
        (
            &[("sorters", "created")],
            &["inv-1", "inv-2", "inv-3", "inv-4", "inv-5", "inv-6"],
        ),
        (
            &[("sorters", "completed")],
            &["inv-2", "inv-6", "inv-1", "inv-4", "inv-5", "inv-3"],
        ),
        (
            &[("sorters", "-completed")],
            &["inv-3", "inv-5", "inv-4", "inv-1", "inv-2", "inv-6"],
        ),
        (
            &[("sorters", "triggerId")],
            &["inv-2", "inv-5", "inv-1", "inv-3", "inv-4", "inv-6"],
        ),
        (
            &[("sorters", "-triggerId")],
            &["inv-1", "inv-3", "inv-4", "inv-6", "inv-2", "inv-5"],
        ),
        (
            &[("sorters", "subscriptionName")],
            &["inv-2", "inv-5", "inv-1", "inv-4", "inv-3", "inv-6"],
        ),
        (
            &[("sorters", "-subscriptionName")],
            &["inv-3", "inv-6", "inv-1", "inv-4", "inv-2", "inv-5"],
        ),
        (
            &[("sorters", "triggerId,-created")],
            &["inv-5", "inv-2", "inv-6", "inv-3", "inv-4", "inv-1"],
        ),
        (
            &[("filters", &format!(r#"triggerId eq "{IDENTITY_CREATED}""#))],
            &["inv-6", "inv-3", "inv-4", "inv-1"],
        ),
        (
            &[("filters", r#"subscriptionId eq "sub-audit""#)],
            &["inv-4", "inv-1"],
        ),
        (
            &[(
                "filters",
                &format!(r#"triggerId eq "{IDENTITY_CREATED}" and subscriptionId eq "sub-crm""#),
            )],
            &["inv-6", "inv-3"],
        ),
        (
            &[
                ("filters", r#"subscriptionId eq "sub-audit""#),
                ("sorters", "completed"),
            ],
            &["inv-1", "inv-4"],
        ),
        (&[("filters", r#"triggerId eq "idn:source-deleted""#)], &[]),
    ];
    for (params, expected) in cases {
        let page = store
            .list(&q(params))
            .await
            .unwrap_or_else(|e| panic!("list {params:?}: {e:?}"));
        assert_eq!(
            invocation_ids(&page),
            *expected,
            "list {params:?}: wrong items or order (default newest first; ties by id \
             ascending; open invocations have no completed time, which sorts first ascending)"
        );
        assert_eq!(
            page.total, None,
            "list {params:?}: no total unless count=true"
        );
    }

    let page = store
        .list(&q(&[("filters", r#"subscriptionId eq "sub-approver""#)]))
        .await
        .unwrap();
    assert_eq!(
        page.items,
        [seed[4].clone(), seed[1].clone()],
        "listed invocations must be the whole stored models"
    );

    let mut seen = Vec::new();
    for offset in ["0", "2", "4", "6"] {
        let page = store
            .list(&q(&[("limit", "2"), ("offset", offset), ("count", "true")]))
            .await
            .unwrap();
        assert_eq!(
            page.total,
            Some(6),
            "count=true must give the unpaged total (offset {offset})"
        );
        seen.extend(invocation_ids(&page).into_iter().map(str::to_owned));
    }
    assert_eq!(
        seen, newest_first,
        "pages of 2 must cover the list once, without overlap or gap"
    );
    let page = store
        .list(&q(&[
            ("filters", &format!(r#"triggerId eq "{PRE_APPROVAL}""#)),
            ("count", "true"),
            ("limit", "1"),
        ]))
        .await
        .unwrap();
    assert_eq!(
        (invocation_ids(&page), page.total),
        (vec!["inv-5"], Some(2)),
        "count=true gives the filtered, unpaged total"
    );
}

async fn invocation_create_all_is_all_or_nothing(store: &Arc<dyn InvocationScans>) {
    store
        .create_all(&[])
        .await
        .expect("create_all of nothing is Ok");

    let existing = invocation("batch-existing", IDENTITY_CREATED, AUDIT, 10, None);
    store
        .create_all(std::slice::from_ref(&existing))
        .await
        .unwrap();

    let batch = [
        invocation("batch-a", IDENTITY_CREATED, AUDIT, 11, None),
        invocation("batch-b", IDENTITY_CREATED, CRM, 11, None),
        Invocation {
            subscription_name: "A clashing copy".to_owned(),
            ..existing.clone()
        },
        invocation("batch-c", PRE_APPROVAL, APPROVER, 11, None),
    ];
    let result = store.create_all(&batch).await;
    assert!(
        matches!(
            &result,
            Err(Error::AlreadyExists { kind: ResourceKind::Invocation, id }) if id == "batch-existing"
        ),
        "create_all with a taken id must be AlreadyExists(invocation, batch-existing), got \
         {result:?}"
    );
    for id in ["batch-a", "batch-b", "batch-c"] {
        assert_eq!(
            store.get(id).await.unwrap(),
            None,
            "create_all is all or nothing: {id} must not be written when another id clashes"
        );
    }
    assert_eq!(
        store.get("batch-existing").await.unwrap(),
        Some(existing),
        "a refused create_all must leave the stored invocation untouched"
    );

    let twins = [
        invocation("batch-twin", IDENTITY_CREATED, AUDIT, 12, None),
        invocation("batch-twin", IDENTITY_CREATED, CRM, 12, None),
    ];
    let result = store.create_all(&twins).await;
    assert!(
        matches!(
            &result,
            Err(Error::AlreadyExists { kind: ResourceKind::Invocation, id }) if id == "batch-twin"
        ),
        "create_all with the same id twice must be AlreadyExists(invocation, batch-twin), got \
         {result:?}"
    );
    assert_eq!(
        store.get("batch-twin").await.unwrap(),
        None,
        "create_all with a duplicate id must write nothing"
    );

    let fan_out: Vec<Invocation> = (0..30)
        .map(|i| {
            invocation(
                &format!("batch-fan-{i:02}"),
                IDENTITY_CREATED,
                (&format!("sub-fan-{i:02}"), "Fan-out listener"),
                13,
                None,
            )
        })
        .collect();
    store
        .create_all(&fan_out)
        .await
        .expect("create_all of a 30-subscription fan-out");
    for i in &fan_out {
        assert_eq!(store.get(&i.id).await.unwrap().as_ref(), Some(i));
    }
}

async fn invocation_transition_completes_an_open_invocation_once(store: &Arc<dyn InvocationScans>) {
    let sub = ("sub-transition", "Transition approver");
    let open = invocation("transition-1", PRE_APPROVAL, sub, 20, None);
    let neighbour = invocation("transition-2", PRE_APPROVAL, sub, 21, None);
    store
        .create_all(&[open.clone(), neighbour.clone()])
        .await
        .unwrap();

    let completion = Transition {
        to: InvocationState::Completed,
        completed: Some(at(22)),
        output: Some(approval()),
        error: None,
    };
    let open_states = [InvocationState::Pending, InvocationState::Acknowledged];
    let written = store
        .transition("transition-1", &open_states, &completion)
        .await
        .expect("Pending -> Completed");
    let expected = Invocation {
        state: InvocationState::Completed,
        completed: Some(at(22)),
        output: Some(approval()),
        error: None,
        ..open.clone()
    };
    assert_eq!(
        written, expected,
        "transition must return the invocation as written: state, completed, output and error \
         from the transition, everything else kept"
    );
    assert_eq!(
        store.get("transition-1").await.unwrap(),
        Some(expected.clone()),
        "get after transition"
    );
    assert_eq!(
        store.get("transition-2").await.unwrap(),
        Some(neighbour),
        "a transition must touch only its invocation"
    );
    let page = store
        .list(&q(&[
            ("filters", r#"subscriptionId eq "sub-transition""#),
            ("sorters", "completed"),
        ]))
        .await
        .unwrap();
    assert_eq!(
        invocation_ids(&page),
        ["transition-2", "transition-1"],
        "sorting by completed must see the transition's completion time"
    );

    let late = Transition {
        to: InvocationState::TimedOut,
        completed: Some(at(80)),
        output: None,
        error: Some("the response deadline passed".to_owned()),
    };
    let result = store.transition("transition-1", &open_states, &late).await;
    assert!(
        matches!(
            &result,
            Err(Error::NotOpen { id, status: InvocationState::Completed }) if id == "transition-1"
        ),
        "a second transition from the open states must be NotOpen(transition-1, COMPLETED), got \
         {result:?}"
    );
    assert_eq!(
        store.get("transition-1").await.unwrap(),
        Some(expected),
        "a refused transition must change nothing"
    );
}

async fn invocation_transition_moves_through_acknowledged(store: &Arc<dyn InvocationScans>) {
    let open = invocation(
        "ack-1",
        PRE_APPROVAL,
        ("sub-ack", "Async approver"),
        30,
        None,
    );
    store.create_all(std::slice::from_ref(&open)).await.unwrap();

    let fail = Transition {
        to: InvocationState::Failed,
        completed: Some(at(31)),
        output: None,
        error: Some("subscriber answered 500 five times".to_owned()),
    };
    let result = store
        .transition("ack-1", &[InvocationState::Acknowledged], &fail)
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::NotOpen { id, status: InvocationState::Pending }) if id == "ack-1"
        ),
        "a transition whose `from` lacks the current state must be NotOpen(ack-1, PENDING), got \
         {result:?}"
    );

    let acknowledge = Transition {
        to: InvocationState::Acknowledged,
        completed: None,
        output: None,
        error: None,
    };
    let acknowledged = store
        .transition("ack-1", &[InvocationState::Pending], &acknowledge)
        .await
        .expect("Pending -> Acknowledged");
    assert_eq!(acknowledged.state, InvocationState::Acknowledged);
    assert_eq!(
        acknowledged.completed, None,
        "a non-final state has no completed time"
    );

    let failed = store
        .transition("ack-1", &[InvocationState::Acknowledged], &fail)
        .await
        .expect("Acknowledged -> Failed");
    assert_eq!(
        failed,
        Invocation {
            state: InvocationState::Failed,
            completed: Some(at(31)),
            error: Some("subscriber answered 500 five times".to_owned()),
            ..open
        }
    );
    assert_eq!(store.get("ack-1").await.unwrap(), Some(failed));
}

async fn invocation_transition_held_answers_as_a_fresh_read_would(
    store: &Arc<dyn InvocationScans>,
) {
    let open = invocation("held-1", PRE_APPROVAL, ("sub-held", "Held"), 40, None);
    store.create_all(std::slice::from_ref(&open)).await.unwrap();
    let acknowledge = Transition {
        to: InvocationState::Acknowledged,
        completed: None,
        output: None,
        error: None,
    };
    let held = store.get("held-1").await.unwrap().unwrap();
    let acknowledged = store
        .transition_held(held, &[InvocationState::Pending], &acknowledge)
        .await
        .unwrap();
    assert_eq!(
        Some(&acknowledged),
        store.get("held-1").await.unwrap().as_ref(),
        "a held copy as stored comes back with the transition applied"
    );
    assert_eq!(acknowledged.state, InvocationState::Acknowledged);

    // `open` is stale now (PENDING): the answer is the row as written.
    let complete = Transition {
        to: InvocationState::Completed,
        completed: Some(at(41)),
        output: Some(approval()),
        error: None,
    };
    let completed = store
        .transition_held(open.clone(), InvocationState::OPEN, &complete)
        .await
        .unwrap();
    assert_eq!(
        Some(&completed),
        store.get("held-1").await.unwrap().as_ref()
    );
    assert_eq!(completed.state, InvocationState::Completed);

    let again = store
        .transition_held(open, InvocationState::OPEN, &complete)
        .await;
    assert!(
        finished_first(&again),
        "a finished invocation is NotOpen for a held copy too, got {again:?}"
    );
}

/// Whether a write was refused because the invocation was already COMPLETED.
fn finished_first<T>(result: &Result<T, Error>) -> bool {
    matches!(
        result,
        Err(Error::NotOpen {
            status: InvocationState::Completed,
            ..
        })
    )
}

fn completion(minute: i64) -> Transition {
    Transition {
        to: InvocationState::Completed,
        completed: Some(at(minute)),
        output: Some(approval()),
        error: None,
    }
}

/// The judge sees the invocation as stored; a refusal writes nothing; a transition is written
/// and answered as a fresh read would show it; an unknown id is `Missing`, never created.
async fn invocation_transition_judged_writes_what_the_judge_decides_of_the_stored_copy(
    store: &Arc<dyn InvocationScans>,
) {
    let open = invocation("judged-1", PRE_APPROVAL, ("sub-judged", "Judged"), 60, None);
    store.create_all(std::slice::from_ref(&open)).await.unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));

    let refuse: Judge = {
        let seen = Arc::clone(&seen);
        Arc::new(move |i: &Invocation| {
            seen.lock().unwrap().push(i.clone());
            Err(Error::Unauthenticated)
        })
    };
    let refused = store
        .transition_judged("judged-1", InvocationState::OPEN, refuse)
        .await
        .unwrap();
    match refused {
        Judged::Refused(read, Error::Unauthenticated) => assert_eq!(*read, open),
        other => panic!("a refusal must be Refused with the judge's error, got {other:?}"),
    }
    assert_eq!(
        store.get("judged-1").await.unwrap().as_ref(),
        Some(&open),
        "a refused judgement writes nothing"
    );

    let complete: Judge = {
        let seen = Arc::clone(&seen);
        Arc::new(move |i: &Invocation| {
            seen.lock().unwrap().push(i.clone());
            Ok(completion(61))
        })
    };
    let written = store
        .transition_judged("judged-1", InvocationState::OPEN, Arc::clone(&complete))
        .await
        .unwrap();
    let Judged::Written { was, invocation } = written else {
        panic!("an accepted judgement must be Written, got {written:?}");
    };
    assert_eq!(was, InvocationState::Pending);
    assert_eq!(invocation.state, InvocationState::Completed);
    assert_eq!(
        Some(&*invocation),
        store.get("judged-1").await.unwrap().as_ref(),
        "the answer is the invocation as written"
    );
    assert!(
        seen.lock().unwrap().iter().all(|i| i == &open),
        "the judge is shown the stored invocation"
    );

    // Finished now: the judge is shown it finished, and a transition it allows anyway is not
    // written (the state is no longer one of `from`).
    seen.lock().unwrap().clear();
    let again = store
        .transition_judged("judged-1", InvocationState::OPEN, complete)
        .await;
    assert!(
        finished_first(&again),
        "a judged transition from a state not in `from` must be NotOpen, got {again:?}"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|i| i.state == InvocationState::Completed),
        "the judge is shown the current state"
    );
    assert_eq!(store.get("judged-1").await.unwrap(), Some(*invocation));

    let never: Judge = Arc::new(|_: &Invocation| Ok(completion(62)));
    let missing = store
        .transition_judged("never-judged", InvocationState::OPEN, never)
        .await
        .unwrap();
    assert!(
        matches!(missing, Judged::Missing),
        "an unknown id must be Missing, got {missing:?}"
    );
    assert_eq!(store.get("never-judged").await.unwrap(), None);
}

/// Of concurrent judged transitions whose judge allows any state, exactly one is written; the
/// others are NotOpen, and the stored outcome is the winner's.
async fn invocation_transition_judged_has_one_winner_under_concurrency(
    store: &Arc<dyn InvocationScans>,
) {
    let open = invocation("judged-race", PRE_APPROVAL, ("sub-race", "Racer"), 70, None);
    store.create_all(&[open]).await.unwrap();
    let mut racers = JoinSet::new();
    for n in 0..30 {
        let store = Arc::clone(store);
        racers.spawn(async move {
            let judge: Judge = Arc::new(move |_: &Invocation| {
                Ok(Transition {
                    output: Some(json!({"racer": n})),
                    ..completion(71)
                })
            });
            let result = store
                .transition_judged("judged-race", InvocationState::OPEN, judge)
                .await;
            (n, result)
        });
    }
    let results = racers.join_all().await;
    let winners: Vec<i32> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(Judged::Written { .. })))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one of 30 may win: {results:?}");
    assert!(
        results
            .iter()
            .all(|(n, r)| *n == winners[0] || finished_first(r)),
        "every loser must be NotOpen(COMPLETED): {results:?}"
    );
    let stored = store.get("judged-race").await.unwrap().unwrap();
    assert_eq!(stored.output, Some(json!({"racer": winners[0]})));
}

async fn invocation_transition_of_an_unknown_id_is_not_found(store: &Arc<dyn InvocationScans>) {
    let result = store
        .transition(
            "never-invoked",
            &[InvocationState::Pending],
            &Transition {
                to: InvocationState::Completed,
                completed: Some(at(40)),
                output: None,
                error: None,
            },
        )
        .await;
    assert!(
        matches!(
            &result,
            Err(Error::NotFound { kind: ResourceKind::Invocation, id }) if id == "never-invoked"
        ),
        "transition of an unknown id must be NotFound(invocation, never-invoked), got {result:?}"
    );
    assert_eq!(
        store.get("never-invoked").await.unwrap(),
        None,
        "transition must never create"
    );
}

async fn invocation_transition_has_one_winner_under_concurrency(store: &Arc<dyn InvocationScans>) {
    let open = invocation("race-1", PRE_APPROVAL, ("sub-race", "Racer"), 50, None);
    store.create_all(&[open]).await.unwrap();

    let mut racers = JoinSet::new();
    for n in 0..30 {
        let store = Arc::clone(store);
        racers.spawn(async move {
            let transition = Transition {
                to: InvocationState::Completed,
                completed: Some(at(51)),
                output: Some(json!({"racer": n})),
                error: None,
            };
            let result = store
                .transition(
                    "race-1",
                    &[InvocationState::Pending, InvocationState::Acknowledged],
                    &transition,
                )
                .await;
            (n, result)
        });
    }
    let results = racers.join_all().await;
    let winners: Vec<i32> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 30 concurrent transitions may win: {results:?}"
    );
    for (n, result) in &results {
        if *n == winners[0] {
            continue;
        }
        assert!(
            finished_first(result),
            "a losing transition ({n}) must be NotOpen(COMPLETED), got {result:?}"
        );
    }
    let stored = store.get("race-1").await.unwrap().unwrap();
    assert_eq!(
        stored.output,
        Some(json!({"racer": winners[0]})),
        "the stored outcome must be the winner's"
    );
    let distinct: BTreeSet<_> = results.iter().map(|(n, _)| *n).collect();
    assert_eq!(distinct.len(), 30, "every racer reported");
}

/// An open invocation of a REQUEST_RESPONSE trigger with this deadline (minutes from [`at`]).
fn waiting(id: &str, state: InvocationState, deadline: Option<i64>) -> Invocation {
    Invocation {
        state,
        deadline: deadline.map(at),
        ..invocation(
            id,
            PRE_APPROVAL,
            ("sub-sweep", "Sweep approver"),
            SWEEP - 60,
            None,
        )
    }
}

/// A finished invocation: `COMPLETED` with an output, or `FAILED`/`TIMED_OUT` with an error.
fn finished(id: &str, state: InvocationState, completed: i64) -> Invocation {
    let succeeded = state == InvocationState::Completed;
    Invocation {
        state,
        output: if succeeded { Some(approval()) } else { None },
        error: (!succeeded).then(|| "no answer before the deadline".to_owned()),
        ..invocation(
            id,
            PRE_APPROVAL,
            ("sub-retention", "Retention approver"),
            completed - 5,
            Some(completed),
        )
    }
}

async fn invocation_overdue_lists_open_invocations_past_their_deadline(
    store: &Arc<dyn InvocationScans>,
) {
    let seed = [
        waiting("overdue-late", InvocationState::Pending, Some(SWEEP + 5)),
        waiting(
            "overdue-acked",
            InvocationState::Acknowledged,
            Some(SWEEP + 1),
        ),
        waiting("overdue-mid", InvocationState::Pending, Some(SWEEP + 3)),
        waiting("overdue-edge", InvocationState::Pending, Some(SWEEP + 10)),
        waiting("overdue-future", InvocationState::Pending, Some(SWEEP + 20)),
        waiting("overdue-no-deadline", InvocationState::Pending, None),
        Invocation {
            deadline: Some(at(SWEEP + 2)),
            ..finished("overdue-completed", InvocationState::Completed, SWEEP + 1)
        },
        Invocation {
            deadline: Some(at(SWEEP + 2)),
            ..finished("overdue-timed-out", InvocationState::TimedOut, SWEEP + 4)
        },
    ];
    store.create_all(&seed).await.unwrap();
    let by_id = |id: &str| seed.iter().find(|i| i.id == id).unwrap().clone();

    let overdue = store.overdue(at(SWEEP + 10), 10).await.unwrap();
    assert_eq!(
        overdue,
        [
            by_id("overdue-acked"),
            by_id("overdue-mid"),
            by_id("overdue-late")
        ],
        "overdue must list the open invocations (PENDING, ACKNOWLEDGED) whose deadline is \
         before now, earliest deadline first, as whole models: not finished ones, not those \
         without a deadline, not those whose deadline is now or later"
    );
    let first_two = store.overdue(at(SWEEP + 10), 2).await.unwrap();
    assert_eq!(
        invocation_ids(&Page {
            items: first_two,
            total: None
        }),
        ["overdue-acked", "overdue-mid"],
        "overdue must return at most `limit`, the earliest deadlines"
    );
    assert_eq!(
        store.overdue(at(SWEEP + 1), 10).await.unwrap(),
        [],
        "a deadline equal to now is not past"
    );

    store
        .transition(
            "overdue-acked",
            &[InvocationState::Acknowledged],
            &Transition {
                to: InvocationState::TimedOut,
                completed: Some(at(SWEEP + 10)),
                output: None,
                error: Some("the response deadline passed".to_owned()),
            },
        )
        .await
        .unwrap();
    let after = store.overdue(at(SWEEP + 10), 10).await.unwrap();
    assert_eq!(
        invocation_ids(&Page {
            items: after,
            total: None
        }),
        ["overdue-mid", "overdue-late"],
        "an invocation that timed out is no longer overdue"
    );
}

async fn invocation_purge_deletes_finished_invocations_past_their_retention(
    store: &Arc<dyn InvocationScans>,
) {
    const P: i64 = 2 * SWEEP;
    let seed = [
        finished("purge-completed-old", InvocationState::Completed, P),
        finished("purge-completed-edge", InvocationState::Completed, P + 5),
        finished("purge-completed-new", InvocationState::Completed, P + 10),
        finished("purge-failed-old", InvocationState::Failed, P + 1),
        finished("purge-timed-out-old", InvocationState::TimedOut, P + 2),
        finished("purge-failed-new", InvocationState::Failed, P + 20),
        Invocation {
            created: at(P - 100),
            ..waiting("purge-pending", InvocationState::Pending, Some(P - 40))
        },
        Invocation {
            created: at(P - 100),
            ..waiting("purge-acked", InvocationState::Acknowledged, Some(P - 40))
        },
    ];
    store.create_all(&seed).await.unwrap();
    async fn present(store: &Arc<dyn InvocationScans>, ids: &[&str]) -> Vec<String> {
        let mut kept = Vec::new();
        for id in ids {
            if store.get(id).await.unwrap().is_some() {
                kept.push((*id).to_owned());
            }
        }
        kept
    }
    let all: Vec<&str> = seed.iter().map(|i| i.id.as_str()).collect();

    // COMPLETED before P+5; FAILED and TIMED_OUT before P+15.
    let (succeeded_before, failed_before) = (at(P + 5), at(P + 15));
    let mut counts = Vec::new();
    for _ in 0..3 {
        counts.push(
            store
                .purge(succeeded_before, failed_before, 2)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        counts,
        [2, 1, 0],
        "purge must delete at most `limit` per call and say how many it deleted"
    );
    assert_eq!(
        present(store, &all).await,
        [
            "purge-completed-edge",
            "purge-completed-new",
            "purge-failed-new",
            "purge-pending",
            "purge-acked"
        ],
        "purge must delete COMPLETED invocations completed before `succeeded_before` and \
         FAILED/TIMED_OUT ones completed before `failed_before` (strictly), nothing open, and \
         must not use one state's cutoff for the other"
    );

    assert_eq!(
        store.purge(at(P + 30), at(P), 10).await.unwrap(),
        2,
        "a late `succeeded_before` takes the remaining COMPLETED ones and no FAILED one"
    );
    assert_eq!(
        store.purge(at(P), at(P + 21), 10).await.unwrap(),
        1,
        "a late `failed_before` takes the remaining FAILED one"
    );
    assert_eq!(
        present(store, &all).await,
        ["purge-pending", "purge-acked"],
        "open invocations are never purged"
    );
    assert_eq!(
        store.get("purge-acked").await.unwrap().as_ref(),
        Some(&seed[7]),
        "purge leaves what it keeps untouched"
    );
}

/// An open invocation with a heartbeat timer of five minutes, not started, and a deadline an
/// hour after [`HEARTBEATS`].
fn beating(id: &str, state: InvocationState) -> Invocation {
    Invocation {
        state,
        deadline: Some(at(HEARTBEATS + 60)),
        heartbeat: Some(crate::model::Heartbeat {
            timeout: crate::duration::IsoDuration::parse("heartbeatTimeout", "PT5M")
                .expect("a duration"),
            last: None,
            due: None,
        }),
        ..invocation(
            id,
            PRE_APPROVAL,
            ("sub-heartbeat", "Heartbeat approver"),
            HEARTBEATS,
            None,
        )
    }
}

/// Far after every other case's times, so their open invocations are left out by id.
const HEARTBEATS: i64 = 100_000;

async fn invocation_keep_alive_moves_the_heartbeat_due_time_of_an_open_invocation(
    store: &Arc<dyn InvocationScans>,
) {
    let open = beating("hb-open", InvocationState::Acknowledged);
    let pending = beating("hb-pending", InvocationState::Pending);
    let done = Invocation {
        state: InvocationState::Completed,
        completed: Some(at(HEARTBEATS + 1)),
        ..beating("hb-done", InvocationState::Pending)
    };
    store
        .create_all(&[open.clone(), pending.clone(), done.clone()])
        .await
        .unwrap();
    let overdue = |now: i64| {
        let store = Arc::clone(store);
        async move {
            store
                .overdue(at(now), 100)
                .await
                .unwrap()
                .into_iter()
                .filter(|i| i.id.starts_with("hb-"))
                .map(|i| i.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        overdue(HEARTBEATS + 30).await,
        Vec::<String>::new(),
        "a timer not started keeps an invocation out of overdue until its deadline"
    );

    let started = store
        .keep_alive("hb-open", at(HEARTBEATS + 10), None)
        .await
        .unwrap();
    let mut expected = open.clone();
    if let Some(timer) = expected.heartbeat.as_mut() {
        timer.due = Some(at(HEARTBEATS + 10));
    }
    assert_eq!(
        started, expected,
        "keep_alive sets the due time (and no last heartbeat when none is given) and returns the \
         invocation as written"
    );
    assert_eq!(
        store.get("hb-open").await.unwrap().as_ref(),
        Some(&expected)
    );
    assert_eq!(
        overdue(HEARTBEATS + 10).await,
        Vec::<String>::new(),
        "a due time equal to now is not past"
    );
    assert_eq!(
        overdue(HEARTBEATS + 11).await,
        ["hb-open"],
        "past its heartbeat due time, an open invocation is overdue before its deadline"
    );

    let beaten = store
        .keep_alive("hb-open", at(HEARTBEATS + 20), Some(at(HEARTBEATS + 15)))
        .await
        .unwrap();
    let timer = beaten.heartbeat.clone().unwrap();
    assert_eq!(
        (timer.last, timer.due),
        (Some(at(HEARTBEATS + 15)), Some(at(HEARTBEATS + 20))),
        "a heartbeat sets the last heartbeat and moves the due time"
    );
    assert_eq!(overdue(HEARTBEATS + 11).await, Vec::<String>::new());
    let moved = store
        .keep_alive("hb-open", at(HEARTBEATS + 25), None)
        .await
        .unwrap();
    assert_eq!(
        moved.heartbeat.and_then(|t| t.last),
        Some(at(HEARTBEATS + 15)),
        "without a heartbeat time the last heartbeat stays"
    );
    store
        .keep_alive("hb-pending", at(HEARTBEATS + 22), Some(at(HEARTBEATS + 21)))
        .await
        .unwrap();
    assert_eq!(
        overdue(HEARTBEATS + 30).await,
        ["hb-pending", "hb-open"],
        "overdue lists by the earlier of deadline and heartbeat due time, earliest first"
    );
    assert_eq!(
        overdue(HEARTBEATS + 61).await,
        ["hb-pending", "hb-open"],
        "once the deadline passed too, each is listed once"
    );

    let result = store.keep_alive("hb-done", at(HEARTBEATS + 30), None).await;
    assert!(
        matches!(&result, Err(Error::NotOpen { id, status: InvocationState::Completed }) if id == "hb-done"),
        "keep_alive of a finished invocation must be NotOpen(hb-done, COMPLETED), got {result:?}"
    );
    assert_eq!(store.get("hb-done").await.unwrap().as_ref(), Some(&done));
    let result = store
        .keep_alive("hb-never", at(HEARTBEATS + 30), None)
        .await;
    assert!(
        matches!(&result, Err(Error::NotFound { kind: ResourceKind::Invocation, id }) if id == "hb-never"),
        "keep_alive of an unknown invocation must be NotFound, got {result:?}"
    );

    store
        .transition(
            "hb-open",
            &[InvocationState::Acknowledged],
            &Transition {
                to: InvocationState::TimedOut,
                completed: Some(at(HEARTBEATS + 26)),
                output: None,
                error: Some("no heartbeat for PT5M".to_owned()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        overdue(HEARTBEATS + 30).await,
        ["hb-pending"],
        "a finished invocation leaves overdue, whatever its heartbeat due time"
    );
    let finished = store.get("hb-open").await.unwrap().unwrap();
    assert_eq!(
        finished.heartbeat.and_then(|t| t.last),
        Some(at(HEARTBEATS + 15)),
        "the last heartbeat stays visible after the end"
    );
}
