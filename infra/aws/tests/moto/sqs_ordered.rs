//! Ordering keys on the SQS FIFO queue, against a real moto server: work of one subscription
//! and key is claimed one at a time in acceptance order, the next only once the one before is
//! finished; a retry keeps its place; other keys and unordered work are not held back; work
//! whose message was never sent is recovered onto its key's queue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use serde_json::json;
use triggerline::model::{
    Attempt, AttemptOutcome, Invocation, InvocationState, InvocationType, TriggerType,
};
use triggerline::ports::{
    DeliveryQueue, InvocationStore, NextStep, Transition, WorkItem, WorkSource,
};
use triggerline_aws::dynamo::DynamoInvocationStore;
use triggerline_aws::sqs::{SqsDeliveryQueue, resolve_queue_url};
use triggerline_aws::testing::Moto;
use triggerline_aws::{Clients, resources};

/// How long a test waits for something SQS shows only after a real delay.
const PATIENCE: Duration = Duration::from_secs(20);
/// The recheck of acknowledged work: short, so that a completion lets the next go soon.
const RECHECK: Duration = Duration::from_secs(1);

async fn ordered_queue(moto: &Moto) -> (Clients, SqsDeliveryQueue, Arc<DynamoInvocationStore>) {
    let clients = moto.clients().await;
    let settings = moto.settings();
    resources::create_missing(&clients, &settings)
        .await
        .unwrap();
    let url = resolve_queue_url(clients.sqs(), &settings.work_queue)
        .await
        .unwrap();
    let ordered = resolve_queue_url(clients.sqs(), &settings.ordered_queue)
        .await
        .unwrap();
    assert!(ordered.ends_with(".fifo"), "{ordered}");
    let invocations = Arc::new(DynamoInvocationStore::new(
        clients.dynamodb().clone(),
        &settings.invocations_table,
    ));
    let queue = SqsDeliveryQueue::new(clients.sqs().clone(), url, invocations.clone())
        .recording_first()
        .with_ordered_queue(ordered, RECHECK);
    assert!(queue.orders_by_key());
    (clients, queue, invocations)
}

fn invocation(id: &str, subscription: &str, key: Option<&str>) -> Invocation {
    Invocation {
        heartbeat: None,
        id: id.to_owned(),
        trigger_id: "idn:access-request-pre-approval".into(),
        trigger_type: TriggerType::RequestResponse,
        subscription_id: subscription.to_owned(),
        subscription_name: "Approvals".into(),
        invocation_type: InvocationType::RealTime,
        response_mode: None,
        state: InvocationState::Pending,
        created: Utc::now().trunc_subsecs(3),
        completed: None,
        deadline: Some(Utc::now() + chrono::Duration::hours(1)),
        input: json!({"requestId": id}).into(),
        content_json: json!({}).into(),
        output: None,
        error: None,
        ordering_key: key.map(str::to_owned),
        secret_hash: "sha256:00".into(),
        attempts: vec![],
        trace: None,
    }
}

fn attempt(code: u16, outcome: AttemptOutcome) -> Attempt {
    Attempt {
        started_at: Utc::now().trunc_subsecs(3),
        target: "approvals.example.com".into(),
        status_code: Some(code),
        duration_ms: 12,
        outcome,
        error: (outcome == AttemptOutcome::Failed).then(|| code.to_string()),
    }
}

fn to(state: InvocationState) -> Transition {
    Transition {
        to: state,
        completed: (!state.is_open()).then(Utc::now),
        output: None,
        error: None,
    }
}

const OPEN: [InvocationState; 2] = [InvocationState::Pending, InvocationState::Acknowledged];

fn claimed_ids(items: &[WorkItem]) -> Vec<String> {
    let mut ids: Vec<String> = items.iter().map(|i| i.invocation_id.clone()).collect();
    ids.sort();
    ids
}

/// Claims (leases of a minute) until something is claimed, and returns it; fails after
/// [`PATIENCE`].
async fn claim_some(queue: &SqsDeliveryQueue) -> Vec<WorkItem> {
    let started = Instant::now();
    loop {
        let now = Utc::now();
        let items = queue
            .claim_due(now, now + chrono::Duration::seconds(60), 10)
            .await
            .unwrap();
        if !items.is_empty() {
            return items;
        }
        assert!(started.elapsed() < PATIENCE, "nothing claimable in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Claims for a while longer than the recheck interval and returns everything claimed: for
/// asserting that something is held back (the message of the work ahead was looked at again
/// at least once meanwhile).
async fn claims_across_a_recheck(queue: &SqsDeliveryQueue) -> Vec<WorkItem> {
    let started = Instant::now();
    let mut all = Vec::new();
    while started.elapsed() < RECHECK * 3 {
        let now = Utc::now();
        all.extend(
            queue
                .claim_due(now, now + chrono::Duration::seconds(60), 10)
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_is_claimed_one_at_a_time_in_order_and_others_are_not_held_back() {
    let moto = Moto::start();
    let (_clients, queue, invocations) = ordered_queue(&moto).await;
    let p = uuid::Uuid::new_v4().simple().to_string();
    let id = |name: &str| format!("{p}-{name}");
    let accepted = [
        invocation(&id("a1"), "sub-1", Some("k")),
        invocation(&id("a2"), "sub-1", Some("k")),
        invocation(&id("b1"), "sub-1", Some("another key")),
        invocation(&id("c1"), "sub-2", Some("k")),
        invocation(&id("a3"), "sub-1", Some("k")),
        invocation(&id("free"), "sub-1", None),
    ];
    let now = Utc::now();
    for one in &accepted {
        queue
            .accept(std::slice::from_ref(one), now, None)
            .await
            .unwrap();
    }
    // Sent, so no longer marked for the sweep's recovery while it waits for its turn.
    let ids: Vec<String> = accepted.iter().map(|i| i.id.clone()).collect();
    assert_eq!(
        invocations
            .unsent_among(&ids)
            .await
            .unwrap()
            .iter()
            .filter(|u| u.ordering.is_some())
            .count(),
        0
    );

    let mut claimed = Vec::new();
    let started = Instant::now();
    while claimed.len() < 4 {
        assert!(started.elapsed() < PATIENCE, "only {claimed:?} came");
        claimed.extend(claim_some(&queue).await);
    }
    assert_eq!(
        claimed_ids(&claimed),
        [id("a1"), id("b1"), id("c1"), id("free")],
        "the first of each subscription and key, and the unordered one"
    );
    assert!(claimed.iter().all(|item| item.attempts == 0));

    // a1 acknowledged (ASYNC): not finished, so a2 waits, however often a1 is looked at.
    queue
        .settle(
            &id("a1"),
            &attempt(200, AttemptOutcome::Acknowledged),
            &OPEN,
            Some(&to(InvocationState::Acknowledged)),
            &NextStep::Done,
        )
        .await
        .unwrap();
    for other in ["b1", "c1", "free"] {
        queue
            .settle(
                &id(other),
                &attempt(200, AttemptOutcome::Completed),
                &OPEN,
                Some(&to(InvocationState::Completed)),
                &NextStep::Done,
            )
            .await
            .unwrap();
    }
    assert_eq!(
        claimed_ids(&claims_across_a_recheck(&queue).await),
        Vec::<String>::new(),
        "an acknowledged invocation holds its key"
    );

    // The callback completes a1: at the next look, its message goes and a2 comes.
    invocations
        .transition(&id("a1"), &OPEN, &to(InvocationState::Completed))
        .await
        .unwrap();
    assert_eq!(claimed_ids(&claim_some(&queue).await), [id("a2")]);

    // A failed attempt with a retry keeps a2's place: a3 does not overtake it.
    let retry_at = Utc::now() + chrono::Duration::seconds(1);
    queue
        .settle(
            &id("a2"),
            &attempt(503, AttemptOutcome::Failed),
            &OPEN,
            None,
            &NextStep::RetryAt(retry_at),
        )
        .await
        .unwrap();
    let again = claim_some(&queue).await;
    assert_eq!(claimed_ids(&again), [id("a2")], "the retry, not the next");
    assert_eq!(again[0].attempts, 1, "one attempt made in this round");
    assert!(Utc::now() >= retry_at, "not before the retry was due");

    // Failed for good: finished, so a3 goes.
    queue
        .settle(
            &id("a2"),
            &attempt(503, AttemptOutcome::Failed),
            &OPEN,
            Some(&to(InvocationState::Failed)),
            &NextStep::Done,
        )
        .await
        .unwrap();
    assert_eq!(claimed_ids(&claim_some(&queue).await), [id("a3")]);
    queue.discard(&id("a3")).await.unwrap();
    let a2 = invocations.get(&id("a2")).await.unwrap().unwrap();
    assert_eq!(a2.attempts.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postponed_ordered_delivery_keeps_its_place_and_burns_no_attempt() {
    let moto = Moto::start();
    let (_clients, queue, _invocations) = ordered_queue(&moto).await;
    let p = uuid::Uuid::new_v4().simple().to_string();
    let (first, second) = (format!("{p}-1"), format!("{p}-2"));
    for id in [&first, &second] {
        queue
            .accept(&[invocation(id, "sub-1", Some("k"))], Utc::now(), None)
            .await
            .unwrap();
    }
    assert_eq!(claimed_ids(&claim_some(&queue).await), [first.as_str()]);
    let until = Utc::now() + chrono::Duration::seconds(1);
    queue.postpone(&first, until).await.unwrap();
    let back = claim_some(&queue).await;
    assert_eq!(
        claimed_ids(&back),
        [first.as_str()],
        "its key waited with it"
    );
    assert_eq!(back[0].attempts, 0);
    assert!(Utc::now() >= until);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_work_whose_message_was_never_sent_is_recovered_onto_its_key() {
    let moto = Moto::start();
    let (_clients, queue, invocations) = ordered_queue(&moto).await;
    let id = format!("{}-lost", uuid::Uuid::new_v4().simple());
    let lost = invocation(&id, "sub-1", Some("k"));
    // What a process that died between the write and the send leaves behind.
    invocations
        .create_queued(std::slice::from_ref(&lost), Utc::now())
        .await
        .unwrap();
    let unsent = invocations
        .unsent_among(std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(unsent.len(), 1);
    let by = unsent[0].ordering.as_ref().expect("its key is known");
    assert_eq!(
        (by.subscription_id.as_str(), by.key.as_str()),
        ("sub-1", "k")
    );

    let now = Utc::now();
    let recovered = queue
        .recover_unsent(now, now + chrono::Duration::seconds(1), 10)
        .await
        .unwrap();
    assert_eq!(recovered, 1);
    assert!(
        invocations
            .unsent_among(std::slice::from_ref(&id))
            .await
            .unwrap()
            .is_empty(),
        "sent onto its key's queue: the sweep leaves it alone from now on"
    );
    assert_eq!(claimed_ids(&claim_some(&queue).await), [id]);
}
