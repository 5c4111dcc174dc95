//! The SQS delivery queue against a real moto server: queue creation, the message format,
//! deferral of work not due yet, and the `DeliveryQueue` operations over DynamoDB.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;
use triggerline::Error;
use triggerline::model::{
    Attempt, AttemptOutcome, Invocation, InvocationState, InvocationType, TriggerType,
};
use triggerline::ports::{
    DeliveryQueue, InvocationStore, NextStep, Transition, WorkItem, WorkSource,
};
use triggerline_aws::dynamo::DynamoInvocationStore;
use triggerline_aws::sqs::{
    SqsDeliveryQueue, WorkMessage, create_missing_queues, parse_message, parse_work_message,
    resolve_queue_url,
};
use triggerline_aws::testing::Moto;
use triggerline_aws::{AwsSettings, Clients, resources};

/// How long a test waits for something SQS shows only after a real delay.
const PATIENCE: Duration = Duration::from_secs(20);

/// The queue alone, over fresh queues (for what needs no DynamoDB: deferral).
async fn bare_queue(moto: &Moto) -> (Clients, AwsSettings, SqsDeliveryQueue) {
    let clients = moto.clients().await;
    let settings = moto.settings();
    create_missing_queues(
        clients.sqs(),
        &settings.work_queue,
        &settings.dead_letter_queue,
    )
    .await
    .unwrap();
    let url = resolve_queue_url(clients.sqs(), &settings.work_queue)
        .await
        .unwrap();
    let invocations = Arc::new(DynamoInvocationStore::new(
        clients.dynamodb().clone(),
        &settings.invocations_table,
    ));
    // Record-first, as the local stack's accepts are; the Lambda intake's unrecorded accepts
    // have tests of their own (`lambda_queue`).
    let queue = SqsDeliveryQueue::new(clients.sqs().clone(), url, invocations).recording_first();
    (clients, settings, queue)
}

/// The queue over every resource, and the invocation store it writes through.
async fn full_queue(moto: &Moto) -> (Clients, SqsDeliveryQueue, Arc<DynamoInvocationStore>) {
    let clients = moto.clients().await;
    let settings = moto.settings();
    resources::create_missing(&clients, &settings)
        .await
        .unwrap();
    let url = resolve_queue_url(clients.sqs(), &settings.work_queue)
        .await
        .unwrap();
    let invocations = Arc::new(DynamoInvocationStore::new(
        clients.dynamodb().clone(),
        &settings.invocations_table,
    ));
    let queue =
        SqsDeliveryQueue::new(clients.sqs().clone(), url, invocations.clone()).recording_first();
    (clients, queue, invocations)
}

fn invocation(id: &str) -> Invocation {
    Invocation {
        heartbeat: None,
        id: id.to_owned(),
        trigger_id: "idn:identity-created".into(),
        trigger_type: TriggerType::FireAndForget,
        subscription_id: "sub-1".into(),
        subscription_name: "HR".into(),
        invocation_type: InvocationType::RealTime,
        response_mode: None,
        state: InvocationState::Pending,
        created: Utc::now().trunc_subsecs(3),
        completed: None,
        deadline: None,
        input: json!({"identity": {"id": id}}).into(),
        content_json: json!({}).into(),
        output: None,
        error: None,
        ordering_key: None,
        secret_hash: "sha256:00".into(),
        attempts: vec![],
        trace: None,
    }
}

/// `n` fresh ids, in sorted order.
fn ids(n: usize) -> Vec<String> {
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    (0..n).map(|i| format!("{prefix}-{i:02}")).collect()
}

fn attempt(outcome: AttemptOutcome) -> Attempt {
    Attempt {
        started_at: Utc::now().trunc_subsecs(3),
        target: "hr.example.com".into(),
        status_code: Some(503),
        duration_ms: 12,
        outcome,
        error: (outcome == AttemptOutcome::Failed).then(|| "503".to_owned()),
    }
}

fn completed() -> Transition {
    Transition {
        to: InvocationState::Completed,
        completed: Some(Utc::now().trunc_subsecs(3)),
        output: None,
        error: None,
    }
}

fn failed() -> Transition {
    Transition {
        to: InvocationState::Failed,
        completed: Some(Utc::now().trunc_subsecs(3)),
        output: None,
        error: Some("gave up".into()),
    }
}

/// Records a delivered attempt of a PENDING `id`: COMPLETED, its work done. The invocation as
/// written (`None`: there is none).
async fn settle_completed(queue: &SqsDeliveryQueue, id: &str) -> Option<Invocation> {
    queue
        .settle(
            id,
            &attempt(AttemptOutcome::Completed),
            &[InvocationState::Pending],
            Some(&completed()),
            &NextStep::Done,
        )
        .await
        .unwrap()
}

/// Records a failed attempt of a PENDING `id`, to be made again at `at`.
async fn settle_retry(queue: &SqsDeliveryQueue, id: &str, at: DateTime<Utc>) -> Option<Invocation> {
    queue
        .settle(
            id,
            &attempt(AttemptOutcome::Failed),
            &[InvocationState::Pending],
            None,
            &NextStep::RetryAt(at),
        )
        .await
        .unwrap()
}

/// Visible, in flight and delayed messages of the queue (moto keeps these exact).
async fn counts(clients: &Clients, url: &str) -> (u64, u64, u64) {
    let attributes = clients
        .sqs()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let n = |name: QueueAttributeName| -> u64 { attributes[&name].parse().unwrap() };
    (
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        n(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    )
}

/// Claims with a short lease until `until` returns true for what was claimed.
async fn claim_until(
    queue: &SqsDeliveryQueue,
    lease: chrono::Duration,
    until: impl Fn(&[WorkItem]) -> bool,
) -> Vec<WorkItem> {
    let started = Instant::now();
    loop {
        let now = Utc::now();
        let items = queue.claim_due(now, now + lease, 50).await.unwrap();
        if until(&items) {
            return items;
        }
        assert!(started.elapsed() < PATIENCE, "nothing claimable in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_created_once_with_a_redrive_to_the_dead_letter_queue() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    for _ in 0..2 {
        create_missing_queues(
            clients.sqs(),
            &settings.work_queue,
            &settings.dead_letter_queue,
        )
        .await
        .unwrap();
    }
    let url = resolve_queue_url(clients.sqs(), &settings.work_queue)
        .await
        .unwrap();
    assert!(
        url.starts_with("http") && url.ends_with(&settings.work_queue),
        "{url}"
    );
    assert_eq!(resolve_queue_url(clients.sqs(), &url).await.unwrap(), url);

    let dlq_url = resolve_queue_url(clients.sqs(), &settings.dead_letter_queue)
        .await
        .unwrap();
    let arn_of = |url: String| {
        let sqs = clients.sqs().clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap()[&QueueAttributeName::QueueArn]
                .clone()
        }
    };
    let policy = clients
        .sqs()
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::RedrivePolicy]
        .clone();
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    assert_eq!(policy["deadLetterTargetArn"], json!(arn_of(dlq_url).await));
    assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_queue_name_is_unavailable() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let err = resolve_queue_url(clients.sqs(), "no-such-queue-7f3a")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
}

#[test]
fn work_messages_parse_and_garbage_is_rejected() {
    let item = parse_work_message(
        r#"{"invocationId": "inv-1", "notBefore": 1741944413271, "attempts": 3}"#,
    )
    .unwrap();
    assert_eq!(item.invocation_id, "inv-1");
    assert_eq!(item.not_before.timestamp_millis(), 1_741_944_413_271);
    assert_eq!(item.attempts, 3);
    let full =
        parse_message(r#"{"invocationId": "inv-1", "notBefore": 1, "attempts": 0, "recorded": 2}"#)
            .unwrap();
    assert_eq!(full.recorded, Some(2));
    for garbage in [
        "",
        "[]",
        "null",
        r#"{"invocationId": "inv-1"}"#,
        r#"{"invocationId": 7, "notBefore": 1, "attempts": 0}"#,
        r#"{"invocationId": "inv-1", "notBefore": 1.5e300, "attempts": 0}"#,
    ] {
        let err = parse_work_message(garbage).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{garbage:?}: {err:?}");
    }
}

/// A message received before its `notBefore` goes back, delayed by what is left, and only that
/// new message remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_not_due_yet_is_deferred_until_it_is() {
    let moto = Moto::start();
    let (clients, _settings, queue) = bare_queue(&moto).await;
    let not_before = Utc::now().trunc_subsecs(3) + chrono::Duration::seconds(2);
    let far = Utc::now().trunc_subsecs(3) + chrono::Duration::hours(3);
    for (id, at) in [("soon", not_before), ("later", far)] {
        let body = WorkMessage {
            invocation_id: id.into(),
            not_before: at.timestamp_millis(),
            attempts: 4,
            recorded: Some(4),
            invocation: None,
            unrecorded: false,
        };
        clients
            .sqs()
            .send_message()
            .queue_url(queue.queue_url())
            .message_body(serde_json::to_string(&body).unwrap())
            .send()
            .await
            .unwrap();
    }

    let now = Utc::now();
    let claimed = queue
        .claim_due(now, now + chrono::Duration::seconds(30), 10)
        .await
        .unwrap();
    assert!(claimed.is_empty(), "claimed before due: {claimed:?}");
    // Both were received and sent again delayed: nothing visible, nothing held in flight.
    assert_eq!(counts(&clients, queue.queue_url()).await, (0, 0, 2));

    let started = Instant::now();
    let message = loop {
        let out = clients
            .sqs()
            .receive_message()
            .queue_url(queue.queue_url())
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if let Some(m) = out.messages.unwrap_or_default().into_iter().next() {
            break m;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the deferred message never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(Utc::now() >= not_before, "it came back early");
    let back = parse_message(message.body().unwrap()).unwrap();
    assert_eq!(
        back,
        WorkMessage {
            invocation_id: "soon".into(),
            not_before: not_before.timestamp_millis(),
            attempts: 4,
            recorded: Some(4),
            invocation: None,
            unrecorded: false,
        }
    );
    // The one three hours out waits its first 15 minutes.
    assert_eq!(counts(&clients, queue.queue_url()).await, (0, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defer_sends_the_item_again_and_deletes_the_held_message() {
    let moto = Moto::start();
    let (clients, _settings, queue) = bare_queue(&moto).await;
    let item = WorkItem {
        invocation_id: "inv".into(),
        not_before: Utc::now().trunc_subsecs(3) + chrono::Duration::minutes(40),
        attempts: 2,
    };
    queue.defer(&item, Utc::now()).await.unwrap();
    assert_eq!(counts(&clients, queue.queue_url()).await, (0, 0, 1));
}

// ---------------------------------------------------------------------------------------------
// Over DynamoDB

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_work_is_claimed_once_and_in_order() {
    let moto = Moto::start();
    let (clients, queue, store) = full_queue(&moto).await;
    let ids = ids(23);
    let invocations: Vec<Invocation> = ids.iter().map(|id| invocation(id)).collect();
    let not_before = Utc::now() - chrono::Duration::seconds(1);
    let items = queue.accept(&invocations, not_before, None).await.unwrap();
    assert_eq!(items.len(), 23);
    assert!(items.iter().all(|i| i.attempts == 0));
    assert_eq!(items[0].not_before, not_before.trunc_subsecs(3));
    for id in &ids {
        assert_eq!(
            store.get(id).await.unwrap().unwrap().state,
            InvocationState::Pending
        );
    }

    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(60);
    let mut claimed = queue.claim_due(now, lease, 15).await.unwrap();
    assert_eq!(claimed.len(), 15);
    claimed.extend(queue.claim_due(now, lease, 15).await.unwrap());
    assert!(queue.claim_due(now, lease, 15).await.unwrap().is_empty());
    let mut got: Vec<String> = claimed.iter().map(|i| i.invocation_id.clone()).collect();
    got.sort();
    assert_eq!(got, ids, "each accepted item once");
    assert!(claimed.iter().all(|i| items.contains(i)));
    assert_eq!(counts(&clients, queue.queue_url()).await, (0, 23, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_id_writes_nothing_and_sends_nothing() {
    let moto = Moto::start();
    let (clients, queue, _store) = full_queue(&moto).await;
    let ids = ids(2);
    queue
        .accept(&[invocation(&ids[0])], Utc::now(), None)
        .await
        .unwrap();
    let err = queue
        .accept(
            &[invocation(&ids[1]), invocation(&ids[0])],
            Utc::now(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(counts(&clients, queue.queue_url()).await, (1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_cannot_be_sent_to_fails_the_accept_and_leaves_nothing_open() {
    let moto = Moto::start();
    let (clients, _queue, store) = full_queue(&moto).await;
    let gone = format!("{}/123456789012/no-such-queue", moto.endpoint);
    let queue = SqsDeliveryQueue::new(clients.sqs().clone(), gone, store.clone()).recording_first();
    let id = &ids(1)[0];
    let err = queue
        .accept(&[invocation(id)], Utc::now(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    let left = store.get(id).await.unwrap();
    assert!(
        left.as_ref().is_none_or(|i| !i.state.is_open()),
        "an open invocation without work: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_is_not_claimable_before_it_is_due() {
    let moto = Moto::start();
    let (_clients, queue, _store) = full_queue(&moto).await;
    let id = &ids(1)[0];
    let not_before = Utc::now() + chrono::Duration::seconds(2);
    queue
        .accept(&[invocation(id)], not_before, None)
        .await
        .unwrap();
    let now = Utc::now();
    assert!(
        queue
            .claim_due(now, now + chrono::Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = claim_until(&queue, chrono::Duration::seconds(30), |i| !i.is_empty()).await;
    assert!(Utc::now() >= not_before, "claimed early");
    assert_eq!(claimed.len(), 1);
    assert_eq!(&claimed[0].invocation_id, id);
}

/// Settling `Done` deletes the message: it does not come back when its visibility timeout
/// (the lease) ends, while an unsettled one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_work_is_gone_and_unsettled_work_comes_back_after_its_lease() {
    let moto = Moto::start();
    let (clients, queue, store) = full_queue(&moto).await;
    let ids = ids(2);
    let invocations: Vec<Invocation> = ids.iter().map(|id| invocation(id)).collect();
    queue.accept(&invocations, Utc::now(), None).await.unwrap();
    let now = Utc::now();
    let claimed = queue
        .claim_due(now, now + chrono::Duration::seconds(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);

    let settled = settle_completed(&queue, &ids[0]).await.unwrap();
    assert_eq!(settled.state, InvocationState::Completed);
    assert_eq!(settled.attempts.len(), 1);
    assert_eq!(store.get(&ids[0]).await.unwrap().unwrap(), settled);
    assert_eq!(counts(&clients, queue.queue_url()).await, (0, 1, 0));

    let back = claim_until(&queue, chrono::Duration::seconds(30), |i| !i.is_empty()).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].invocation_id, ids[1]);
    assert_eq!(counts(&clients, queue.queue_url()).await, (0, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_is_a_new_message_with_one_more_attempt() {
    let moto = Moto::start();
    let (clients, queue, store) = full_queue(&moto).await;
    let id = &ids(1)[0];
    queue
        .accept(&[invocation(id)], Utc::now(), None)
        .await
        .unwrap();
    let now = Utc::now();
    let claimed = queue
        .claim_due(now, now + chrono::Duration::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed[0].attempts, 0);

    let retry_at = Utc::now().trunc_subsecs(3) + chrono::Duration::seconds(1);
    let settled = settle_retry(&queue, id, retry_at).await.unwrap();
    assert_eq!(settled.state, InvocationState::Pending);
    assert_eq!(store.get(id).await.unwrap().unwrap().attempts.len(), 1);
    // The claimed message is deleted, the retry waits for its time.
    let (visible, in_flight, _) = counts(&clients, queue.queue_url()).await;
    assert_eq!((visible, in_flight), (0, 0));

    let again = claim_until(&queue, chrono::Duration::seconds(60), |i| !i.is_empty()).await;
    assert!(Utc::now() >= retry_at, "retried early");
    assert_eq!(
        again,
        vec![WorkItem {
            invocation_id: id.clone(),
            not_before: retry_at,
            attempts: 1,
        }]
    );

    // The second failure counts on from there.
    let final_retry = Utc::now().trunc_subsecs(3);
    settle_retry(&queue, id, final_retry).await;
    let third = claim_until(&queue, chrono::Duration::seconds(60), |i| !i.is_empty()).await;
    assert_eq!(third[0].attempts, 2);
}

/// A leased item is delivered in memory; its message is only the safety net. Once the in-memory
/// delivery has recorded an attempt, the safety net is dropped when it comes back, so a retry
/// runs once, not twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_net_of_a_delivered_lease_is_dropped() {
    let moto = Moto::start();
    let (clients, queue, _store) = full_queue(&moto).await;
    let ids = ids(3);
    let invocations: Vec<Invocation> = ids.iter().map(|id| invocation(id)).collect();
    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(1);
    queue.accept(&invocations, now, Some(lease)).await.unwrap();
    assert!(
        queue
            .claim_due(now, now + chrono::Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased items are not claimable"
    );
    // ids[0] completes in memory, ids[1] fails and retries, ids[2]'s process "dies".
    settle_completed(&queue, &ids[0]).await;
    settle_retry(&queue, &ids[1], Utc::now()).await;

    let mut seen: Vec<WorkItem> = Vec::new();
    let started = Instant::now();
    while Utc::now() < lease + chrono::Duration::seconds(2) || seen.len() < 2 {
        assert!(started.elapsed() < PATIENCE, "only {seen:?} came back");
        let now = Utc::now();
        seen.extend(
            queue
                .claim_due(now, now + chrono::Duration::seconds(60), 10)
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen.sort_by(|a, b| a.invocation_id.cmp(&b.invocation_id));
    let got: Vec<(&str, u32)> = seen
        .iter()
        .map(|i| (i.invocation_id.as_str(), i.attempts))
        .collect();
    assert_eq!(got, vec![(ids[1].as_str(), 1), (ids[2].as_str(), 0)]);
    // The two dropped safety nets are deleted; the two claimed are in flight.
    assert_eq!(counts(&clients, queue.queue_url()).await, (0, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_deletes_the_claimed_message() {
    let moto = Moto::start();
    let (clients, queue, _store) = full_queue(&moto).await;
    let id = &ids(1)[0];
    queue
        .accept(&[invocation(id)], Utc::now(), None)
        .await
        .unwrap();
    let now = Utc::now();
    assert_eq!(
        queue
            .claim_due(now, now + chrono::Duration::seconds(60), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    queue.discard(id).await.unwrap();
    queue.discard("never-held").await.unwrap();
    assert_eq!(counts(&clients, queue.queue_url()).await, (0, 0, 0));
    assert_eq!(queue.next_due().await.unwrap(), None);
    queue.release_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_invocation_is_replayed_with_a_fresh_retry_budget() {
    let moto = Moto::start();
    let (_clients, queue, store) = full_queue(&moto).await;
    let id = &ids(1)[0];
    queue
        .accept(&[invocation(id)], Utc::now(), None)
        .await
        .unwrap();
    let err = queue.replay(id, None, Utc::now(), None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotOpen {
                status: InvocationState::Pending,
                ..
            }
        ),
        "{err:?}"
    );
    let now = Utc::now();
    queue
        .claim_due(now, now + chrono::Duration::seconds(60), 10)
        .await
        .unwrap();
    queue
        .settle(
            id,
            &attempt(AttemptOutcome::Failed),
            &[InvocationState::Pending],
            Some(&failed()),
            &NextStep::Done,
        )
        .await
        .unwrap();

    let deadline = Some(Utc::now().trunc_subsecs(3) + chrono::Duration::hours(1));
    let not_before = Utc::now().trunc_subsecs(3);
    let item = queue.replay(id, deadline, not_before, None).await.unwrap();
    assert_eq!(item.attempts, 0);
    let reopened = store.get(id).await.unwrap().unwrap();
    assert_eq!(reopened.state, InvocationState::Pending);
    assert_eq!(reopened.deadline, deadline);
    assert_eq!(reopened.attempts.len(), 1, "attempts are kept");

    let claimed = claim_until(&queue, chrono::Duration::seconds(60), |i| !i.is_empty()).await;
    assert_eq!(claimed, vec![item]);

    let missing = queue.replay("no-such-id", None, Utc::now(), None).await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_a_missing_invocation_is_none() {
    let moto = Moto::start();
    let (_clients, queue, _store) = full_queue(&moto).await;
    let settled = settle_retry(&queue, "no-such-id", Utc::now()).await;
    assert_eq!(settled, None);
    let now = Utc::now();
    assert!(
        queue
            .claim_due(now, now + chrono::Duration::seconds(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "no retry for an invocation that is gone"
    );
}

/// What the Lambda consumer does per message: due and current work is admitted, the rest not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_admits_only_due_and_current_work() {
    let moto = Moto::start();
    let (clients, queue, _store) = full_queue(&moto).await;
    let id = &ids(1)[0];
    queue
        .accept(&[invocation(id)], Utc::now(), None)
        .await
        .unwrap();
    let body = |not_before: DateTime<Utc>, recorded: usize| {
        serde_json::to_string(&WorkMessage {
            invocation_id: id.clone(),
            not_before: not_before.timestamp_millis(),
            attempts: 0,
            recorded: Some(recorded),
            invocation: None,
            unrecorded: false,
        })
        .unwrap()
    };
    let now = Utc::now();
    let admitted = queue.admit(&body(now, 0), now).await.unwrap();
    let admitted = admitted.unwrap();
    assert_eq!(admitted.item.invocation_id, *id);
    assert_eq!(
        admitted.invocation.id, *id,
        "the invocation read to judge the message comes back with it"
    );

    let (_, _, delayed_before) = counts(&clients, queue.queue_url()).await;
    let later = now + chrono::Duration::minutes(30);
    assert_eq!(queue.admit(&body(later, 0), now).await.unwrap(), None);
    let (_, _, delayed_after) = counts(&clients, queue.queue_url()).await;
    assert_eq!(delayed_after, delayed_before + 1, "deferred");

    settle_retry(&queue, id, later).await;
    assert_eq!(
        queue.admit(&body(now, 0), now).await.unwrap(),
        None,
        "stale"
    );
    assert!(queue.admit(&body(now, 1), now).await.unwrap().is_some());
    assert!(matches!(
        queue.admit("garbage", now).await,
        Err(Error::Invalid { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_whose_messages_cannot_be_sent_leaves_no_invocation_behind() {
    let moto = Moto::start();
    let (clients, _, invocations) = full_queue(&moto).await;
    // A queue URL that names no queue: the DynamoDB write succeeds, the send fails.
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint);
    let queue = SqsDeliveryQueue::new(clients.sqs().clone(), missing, invocations.clone())
        .recording_first();

    let result = queue
        .accept(&[invocation("never-queued")], Utc::now(), None)
        .await;
    assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
    assert_eq!(
        invocations.get("never-queued").await.unwrap(),
        None,
        "the failed request withdrew what it had written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_skips_an_invocation_it_cannot_read_and_claims_the_rest() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    resources::create_missing(&clients, &settings)
        .await
        .unwrap();
    let url = resolve_queue_url(clients.sqs(), &settings.work_queue)
        .await
        .unwrap();
    let invocations = Arc::new(DynamoInvocationStore::new(
        clients.dynamodb().clone(),
        &settings.invocations_table,
    ));
    let queue = SqsDeliveryQueue::new(clients.sqs().clone(), url, invocations).recording_first();
    let ids = ids(3);
    let now = Utc::now();
    let accepted: Vec<Invocation> = ids.iter().map(|id| invocation(id)).collect();
    queue.accept(&accepted, now, None).await.unwrap();
    // One of them no longer reads back (a hand edit, a schema drift).
    clients
        .dynamodb()
        .update_item()
        .table_name(&settings.invocations_table)
        .key(
            triggerline_aws::dynamo::INV_ID,
            aws_sdk_dynamodb::types::AttributeValue::S(ids[1].clone()),
        )
        .update_expression("SET b = :b")
        .expression_attribute_values(
            ":b",
            aws_sdk_dynamodb::types::AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
                b"not deflate".to_vec(),
            )),
        )
        .send()
        .await
        .unwrap();

    let mut claimed = Vec::new();
    let started = Instant::now();
    while claimed.len() < 2 && started.elapsed() < PATIENCE {
        let items = queue
            .claim_due(Utc::now(), Utc::now() + chrono::Duration::seconds(60), 10)
            .await
            .expect("one unreadable invocation does not fail the claim");
        claimed.extend(items.into_iter().map(|i| i.invocation_id));
    }
    claimed.sort();
    assert_eq!(claimed, [ids[0].clone(), ids[2].clone()]);
}

/// The queue as the Lambda functions build it: accepts that nobody in the process delivers may
/// leave an invocation unwritten until its outcome.
async fn lambda_queue(moto: &Moto) -> (Clients, SqsDeliveryQueue, Arc<DynamoInvocationStore>) {
    let clients = moto.clients().await;
    let settings = moto.settings();
    resources::create_missing(&clients, &settings)
        .await
        .unwrap();
    let url = resolve_queue_url(clients.sqs(), &settings.work_queue)
        .await
        .unwrap();
    let invocations = Arc::new(DynamoInvocationStore::new(
        clients.dynamodb().clone(),
        &settings.invocations_table,
    ));
    let queue = SqsDeliveryQueue::new(clients.sqs().clone(), url, invocations.clone());
    (clients, queue, invocations)
}

/// Every message visible on the queue now, received (and so hidden for a while).
async fn receive_all(clients: &Clients, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let out = clients
            .sqs()
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .unwrap();
        let got = out.messages.unwrap_or_default();
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

fn asynchronous(id: &str) -> Invocation {
    Invocation {
        trigger_id: "idn:access-request-pre-approval".into(),
        trigger_type: TriggerType::RequestResponse,
        response_mode: Some(triggerline::model::DispatchMode::Async),
        deadline: Some(Utc::now().trunc_subsecs(3) + chrono::Duration::hours(1)),
        ..invocation(id)
    }
}

fn acknowledged() -> Transition {
    Transition {
        to: InvocationState::Acknowledged,
        completed: None,
        output: None,
        error: None,
    }
}

/// A FIRE_AND_FORGET accept of the Lambda intake writes nothing: its message carries the
/// invocation, the consumer delivers it unread, and the outcome is its one write. A second copy
/// of the message (SQS delivers at least once) finds the outcome written and queues nothing;
/// received again after a failure, it is judged against the record and dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecorded_accept_is_written_once_with_its_outcome() {
    let moto = Moto::start();
    let (clients, queue, store) = lambda_queue(&moto).await;
    let id = &ids(1)[0];
    let now = Utc::now();
    queue.accept(&[invocation(id)], now, None).await.unwrap();
    assert_eq!(
        store.get(id).await.unwrap(),
        None,
        "nothing written at accept"
    );
    let received = receive_all(&clients, queue.queue_url()).await;
    assert_eq!(received.len(), 1);
    let body = received[0].body().unwrap().to_owned();
    let message = parse_message(&body).unwrap();
    assert!(message.unrecorded);
    assert_eq!(
        message.carried().unwrap().unwrap().input,
        invocation(id).input
    );

    let admitted = queue.admit_received(&body, now, 1).await.unwrap().unwrap();
    assert_eq!(admitted.invocation.id, *id);
    let settled = settle_completed(&queue, id).await.unwrap();
    assert_eq!(settled.state, InvocationState::Completed);
    let stored = store.get(id).await.unwrap().unwrap();
    assert_eq!(stored.state, InvocationState::Completed);
    assert_eq!(stored.attempts.len(), 1);
    assert_eq!(stored.input, invocation(id).input);

    // A duplicate copy, first receive: delivered unread, then refused by the write.
    assert!(queue.admit_received(&body, now, 1).await.unwrap().is_some());
    let again = settle_retry(&queue, id, now).await.unwrap();
    assert_eq!(again.attempts.len(), 1, "the first outcome stands");
    assert!(
        receive_all(&clients, queue.queue_url()).await.is_empty(),
        "a duplicate queues no retry"
    );
    // Received again: judged against the record.
    assert_eq!(queue.admit_received(&body, now, 2).await.unwrap(), None);
}

/// A failed first attempt of an unrecorded accept writes the invocation with its retry marked
/// unsent (so that the sweep sends a retry whose message was lost) and queues one retry; a
/// duplicate copy queues none; the retry's attempt clears the marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carried_retry_is_queued_once_and_marked_until_attempted() {
    let moto = Moto::start();
    let (clients, queue, store) = lambda_queue(&moto).await;
    let id = &ids(1)[0];
    let now = Utc::now().trunc_subsecs(3);
    queue.accept(&[invocation(id)], now, None).await.unwrap();
    let body = receive_all(&clients, queue.queue_url()).await[0]
        .body()
        .unwrap()
        .to_owned();
    for copy in 0..2 {
        assert!(queue.admit_received(&body, now, 1).await.unwrap().is_some());
        let settled = settle_retry(&queue, id, now).await.unwrap();
        assert_eq!(settled.attempts.len(), 1, "copy {copy}");
    }
    let retries = receive_all(&clients, queue.queue_url()).await;
    assert_eq!(retries.len(), 1, "one retry for two copies");
    let retry = parse_message(retries[0].body().unwrap()).unwrap();
    assert_eq!((retry.attempts, retry.recorded), (1, Some(1)));
    assert!(retry.invocation.is_none() && !retry.unrecorded);
    let unsent = store
        .unsent(now + chrono::Duration::seconds(1), 10)
        .await
        .unwrap();
    assert_eq!(
        unsent.len(),
        1,
        "marked for the sweep until the retry is attempted"
    );
    assert_eq!((unsent[0].recorded, unsent[0].due), (1, now));

    let admitted = queue
        .admit_received(retries[0].body().unwrap(), now, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admitted.item.attempts, 1);
    settle_completed(&queue, id).await;
    let stored = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.attempts.len()),
        (InvocationState::Completed, 2)
    );
    assert!(
        store
            .unsent(now + chrono::Duration::hours(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// An ASYNC invocation is written before its work is sent (its subscriber may call back at
/// once), and its message carries it too: the consumer reads nothing, and its acknowledgement is
/// a write conditional on the attempts the invocation had, which a duplicate copy fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_accept_is_delivered_unread_and_settled_by_a_conditional_write() {
    let moto = Moto::start();
    let (clients, queue, store) = lambda_queue(&moto).await;
    let id = &ids(1)[0];
    let now = Utc::now();
    queue.accept(&[asynchronous(id)], now, None).await.unwrap();
    assert_eq!(
        store.get(id).await.unwrap().map(|i| i.state),
        Some(InvocationState::Pending),
        "written before its work is sent"
    );
    let body = receive_all(&clients, queue.queue_url()).await[0]
        .body()
        .unwrap()
        .to_owned();
    let message = parse_message(&body).unwrap();
    assert!(message.invocation.is_some() && !message.unrecorded);
    for copy in 0..2 {
        assert!(queue.admit_received(&body, now, 1).await.unwrap().is_some());
        let settled = queue
            .settle(
                id,
                &attempt(AttemptOutcome::Acknowledged),
                &[InvocationState::Pending],
                Some(&acknowledged()),
                &NextStep::Done,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (settled.state, settled.attempts.len()),
            (InvocationState::Acknowledged, 1),
            "copy {copy}"
        );
    }
    // A deadline sweep that came first: the attempt is recorded, the state stays.
    let other = &ids(1)[0];
    queue
        .accept(&[asynchronous(other)], now, None)
        .await
        .unwrap();
    let body = receive_all(&clients, queue.queue_url()).await[0]
        .body()
        .unwrap()
        .to_owned();
    let timed_out = Transition {
        to: InvocationState::TimedOut,
        completed: Some(Utc::now().trunc_subsecs(3)),
        output: None,
        error: None,
    };
    store
        .transition(other, InvocationState::OPEN, &timed_out)
        .await
        .unwrap();
    assert!(queue.admit_received(&body, now, 1).await.unwrap().is_some());
    let settled = queue
        .settle(
            other,
            &attempt(AttemptOutcome::Acknowledged),
            &[InvocationState::Pending],
            Some(&acknowledged()),
            &NextStep::Done,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (settled.state, settled.attempts.len()),
        (InvocationState::TimedOut, 1)
    );

    // Past its deadline, a carried invocation is read first: one the sweep timed out is not
    // delivered at all.
    let late = &ids(1)[0];
    let overdue = Invocation {
        deadline: Some(Utc::now().trunc_subsecs(3) - chrono::Duration::seconds(1)),
        ..asynchronous(late)
    };
    queue.accept(&[overdue], now, None).await.unwrap();
    let body = receive_all(&clients, queue.queue_url()).await[0]
        .body()
        .unwrap()
        .to_owned();
    store
        .transition(late, InvocationState::OPEN, &timed_out)
        .await
        .unwrap();
    assert_eq!(
        queue.admit_received(&body, Utc::now(), 1).await.unwrap(),
        None
    );
}

/// SQS takes at most 256 KiB per message and per `SendMessageBatch`: a fan-out of invocations
/// carrying the largest input (`MAX_INPUT_BYTES`) is sent in batches under both limits, each
/// message with its invocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_carrying_the_largest_inputs_fit_sqs() {
    let moto = Moto::start();
    let (clients, queue, _store) = lambda_queue(&moto).await;
    let filler = "x".repeat(triggerline::limits::MAX_INPUT_BYTES - 64);
    let fan_out: Vec<Invocation> = ids(5)
        .iter()
        .map(|id| Invocation {
            input: json!({"blob": filler}).into(),
            ..invocation(id)
        })
        .collect();
    for invocation in &fan_out {
        triggerline::limits::check_input(&invocation.input, Some(&invocation.content_json))
            .unwrap();
    }
    queue.accept(&fan_out, Utc::now(), None).await.unwrap();
    let received = receive_all(&clients, queue.queue_url()).await;
    assert_eq!(received.len(), 5);
    for message in &received {
        let body = message.body().unwrap();
        assert!(
            body.len() <= triggerline::limits::SQS_MESSAGE_BYTES,
            "{}",
            body.len()
        );
        assert!(body.len() > 128 * 1000, "it carries the input");
        assert!(parse_message(body).unwrap().unrecorded);
    }
}

/// A worker that claims by id (the local server on the AWS backend) finds an unrecorded
/// message's invocation: the claim writes it first, as a record-first accept would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_writes_the_invocation_an_unrecorded_message_carries() {
    let moto = Moto::start();
    let (_clients, queue, store) = lambda_queue(&moto).await;
    let id = &ids(1)[0];
    queue
        .accept(&[invocation(id)], Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(store.get(id).await.unwrap(), None);
    let claimed = claim_until(&queue, chrono::Duration::seconds(30), |items| {
        !items.is_empty()
    })
    .await;
    assert_eq!(claimed.len(), 1);
    let written = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (written.state, written.attempts.len()),
        (InvocationState::Pending, 0)
    );
    let settled = settle_completed(&queue, id).await.unwrap();
    assert_eq!(settled.state, InvocationState::Completed);
}

/// A carried retry whose message is lost after its attempt was recorded (the send failed, the
/// function died) is sent by the sweep's recovery, with the attempts already made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_sends_a_carried_retry_whose_message_was_lost() {
    let moto = Moto::start();
    let (clients, queue, store) = lambda_queue(&moto).await;
    let id = &ids(1)[0];
    let now = Utc::now().trunc_subsecs(3);
    queue.accept(&[invocation(id)], now, None).await.unwrap();
    let body = receive_all(&clients, queue.queue_url()).await[0]
        .body()
        .unwrap()
        .to_owned();
    queue.admit_received(&body, now, 1).await.unwrap().unwrap();
    settle_retry(&queue, id, now).await;
    // Lost: received and deleted unprocessed.
    for lost in receive_all(&clients, queue.queue_url()).await {
        clients
            .sqs()
            .delete_message()
            .queue_url(queue.queue_url())
            .receipt_handle(lost.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    let later = Utc::now();
    let sent = queue
        .recover_unsent(later, now + chrono::Duration::milliseconds(1), 10)
        .await
        .unwrap();
    assert_eq!(sent, 1);
    let resent = receive_all(&clients, queue.queue_url()).await;
    assert_eq!(resent.len(), 1);
    let message = parse_message(resent[0].body().unwrap()).unwrap();
    assert_eq!((message.attempts, message.recorded), (1, Some(1)));
    let admitted = queue
        .admit_received(resent[0].body().unwrap(), later, 1)
        .await
        .unwrap()
        .expect("current: the record holds the one attempt it was sent after");
    assert_eq!(admitted.item.attempts, 1);
    settle_completed(&queue, id).await;
    let stored = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.attempts.len()),
        (InvocationState::Completed, 2)
    );
}

/// A postponed item (its subscription's circuit is open) goes back on the queue as a new
/// message due at the hold's end, with its attempt count as it was; an invocation its message
/// was the only record of is written first, so that the status API and the sweep see it while
/// it waits. (Held until now here, so that the new message is visible at once: SQS's delay of a
/// later hold is `defer`'s, tested above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postponed_item_goes_back_with_no_attempt_spent_and_its_invocation_written() {
    let moto = Moto::start();
    let (clients, queue, store) = lambda_queue(&moto).await;
    let id = &ids(1)[0];
    let now = Utc::now().trunc_subsecs(3);
    queue.accept(&[invocation(id)], now, None).await.unwrap();
    let received = receive_all(&clients, queue.queue_url()).await;
    let body = received[0].body().unwrap().to_owned();
    assert!(parse_message(&body).unwrap().unrecorded);
    queue.admit_received(&body, now, 1).await.unwrap().unwrap();

    queue.postpone(id, now).await.unwrap();
    let written = store
        .get(id)
        .await
        .unwrap()
        .expect("written while it waits");
    assert_eq!(written.state, InvocationState::Pending);
    assert!(written.attempts.is_empty());
    let again = receive_all(&clients, queue.queue_url()).await;
    assert_eq!(again.len(), 1, "one message put back");
    let message = parse_message(again[0].body().unwrap()).unwrap();
    assert_eq!(message.not_before, now.timestamp_millis());
    assert_eq!((message.attempts, message.recorded), (0, Some(0)));
    assert!(message.invocation.is_none() && !message.unrecorded);
    let admitted = queue
        .admit_received(again[0].body().unwrap(), now, 1)
        .await
        .unwrap()
        .expect("still current: delivered when it comes back");
    assert_eq!(admitted.item.attempts, 0);
    queue.postpone("never-held", now).await.unwrap();
}

/// The Lambda intake's queue (`unsent_while_leased`): work it leases to itself, to deliver from
/// the request, is written marked unsent and sends no message. Settling it clears the mark
/// and sends only a retry; work whose process died before the settle is left marked, and the
/// sweep's unsent recovery sends it once it is past the grace the sweep gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_work_of_the_lambda_intake_sends_nothing_and_is_recovered_if_never_settled() {
    let moto = Moto::start();
    let (clients, queue, store) = lambda_queue(&moto).await;
    let queue = queue.unsent_while_leased();
    let ids = ids(3);
    let invocations: Vec<Invocation> = ids.iter().map(|id| invocation(id)).collect();
    let now = Utc::now().trunc_subsecs(3);
    let items = queue
        .accept(&invocations, now, Some(now + chrono::Duration::seconds(60)))
        .await
        .unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        counts(&clients, queue.queue_url()).await,
        (0, 0, 0),
        "no message"
    );
    let far = now + chrono::Duration::days(1);
    let mut unsent: Vec<String> = store
        .unsent(far, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    unsent.sort();
    assert_eq!(unsent, ids, "each written and marked unsent");

    // ids[0] is delivered, ids[1] fails and retries, ids[2]'s process dies.
    settle_completed(&queue, &ids[0]).await;
    settle_retry(&queue, &ids[1], now).await;
    let retry = receive_all(&clients, queue.queue_url()).await;
    assert_eq!(retry.len(), 1, "only the retry is sent");
    let message = parse_message(retry[0].body().unwrap()).unwrap();
    assert_eq!(message.invocation_id, ids[1]);
    assert_eq!((message.attempts, message.recorded), (1, Some(1)));

    let recovered = queue.recover_unsent(Utc::now(), far, 10).await.unwrap();
    assert_eq!(recovered, 1, "only the one never settled");
    let sent = receive_all(&clients, queue.queue_url()).await;
    let message = parse_message(sent[0].body().unwrap()).unwrap();
    assert_eq!(message.invocation_id, ids[2]);
    assert_eq!(
        store.get(&ids[0]).await.unwrap().unwrap().state,
        InvocationState::Completed
    );
}
