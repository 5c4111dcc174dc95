//! The dispatcher's three Lambda entry points, fed real event JSON (`tests/events/*.json`) over
//! the AWS adapters on moto, delivering to real receivers on 127.0.0.1:
//! - `dispatcher` (HTTP): API Gateway v2 events through `lambda_http`'s own conversion into the
//!   router, and its response back into what the runtime returns to API Gateway;
//! - `dispatcher-queue`: SQS batches through [`queue_consumer::handle`];
//! - `dispatcher-sweep`: an EventBridge scheduled event through [`sweep::handle`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use chrono::Utc;
use dispatcher::{queue_consumer, sweep};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use triggerline::catalog::Catalog;
use triggerline::model::{Invocation, InvocationState, InvocationType, TriggerType};
use triggerline::secrets::SecretKey;
use triggerline::time::{RandomIds, SystemClock};
use triggerline::usecases::Subscriptions;
use triggerline::usecases::delivery::Delivery;
use triggerline::wire::SubscriptionPostRequest;
use triggerline_aws::testing::{Moto, fixture, invoke_http};
use triggerline_aws::{AwsBackend, Clients};
use triggerline_lambda::FunctionEnv;
use triggerline_webhook::HttpWebhookClient;

/// The invocation id the `sqs-work-batch.json` fixture's good record names.
const BATCH_INVOCATION: &str = "7d4e2f10-3c6b-4a8e-b1d2-5f6a7b8c9d0e";
/// The `messageId` of its malformed record.
const MALFORMED_MESSAGE: &str = "2e1424d4-f796-459a-8184-9c92662be6da";

/// One request a receiver got.
#[derive(Debug)]
struct Received {
    headers: HeaderMap,
    body: Value,
}

/// A real webhook receiver on 127.0.0.1 that answers every POST with `answer` (200).
struct Receiver {
    url: String,
    requests: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    async fn start(answer: Value) -> Receiver {
        let (tx, requests) = mpsc::unbounded_channel();
        let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let (tx, answer) = (tx.clone(), answer.clone());
            async move {
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = tx.send(Received { headers, body });
                (StatusCode::OK, axum::Json(answer))
            }
        });
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hook"),
            requests,
        }
    }

    /// The next request, waiting at most 10 s for it.
    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("a delivery within 10 s")
            .expect("the receiver is running")
    }
}

/// One test's stack: fresh resources on moto, and the function environment the dispatcher reads
/// (private targets allowed, as the receivers are on loopback).
struct Stack {
    _moto: Moto,
    clients: Clients,
    env: FunctionEnv,
    backend: AwsBackend,
}

impl Stack {
    async fn start() -> Stack {
        let moto = Moto::start();
        let clients = moto.clients().await;
        let settings = moto.settings();
        let backend = AwsBackend::connect(
            &clients,
            &settings,
            triggerline_aws::testing::test_credentials(),
        )
        .await
        .unwrap();
        let env = FunctionEnv {
            aws: settings,
            public_url: Some("http://127.0.0.1:8080".into()),
            secret_key: Some(SecretKey::new(vec![7; 32])),
            max_attempts: 3,
            // Long enough for the inline SYNC path (INLINE_WAIT_FLOOR): the function has no
            // queue consumer here, so a shorter wait would only ever answer 542.
            sync_wait: Duration::from_secs(25),
            allow_private_targets: true,
            ..FunctionEnv::from_lookup(|_| None).unwrap()
        };
        Stack {
            _moto: moto,
            clients,
            env,
            backend,
        }
    }

    /// The delivery `dispatcher` and `dispatcher-queue` build in `main`.
    fn delivery(&self) -> Delivery {
        triggerline_lambda::delivery(
            &self.backend,
            Arc::new(HttpWebhookClient::new(self.env.allow_private_targets)),
            &self.env,
        )
        .unwrap()
    }

    /// The router `dispatcher` serves.
    fn router(&self) -> Router {
        self.router_waiting(self.env.sync_wait)
    }

    /// The router with another `TRIGGERLINE_SYNC_WAIT`.
    fn router_waiting(&self, sync_wait: Duration) -> Router {
        dispatcher::router(dispatcher::Context::behind_api_gateway(
            self.delivery(),
            Arc::new(triggerline_lambda::intake_queue(&self.backend, sync_wait)),
            sync_wait,
            self.backend.keys.clone(),
        ))
    }

    async fn subscribe(&self, request: Value) -> String {
        let subscriptions = Subscriptions::new(
            self.backend.subscriptions.clone(),
            Catalog::builtin(),
            std::sync::Arc::new(SystemClock),
            std::sync::Arc::new(RandomIds),
        );
        let request: SubscriptionPostRequest = serde_json::from_value(request).unwrap();
        subscriptions.create(request).await.unwrap().id
    }

    async fn invocation(&self, id: &str) -> Invocation {
        use triggerline::ports::InvocationStore;
        self.backend.invocations.get(id).await.unwrap().unwrap()
    }

    /// The next message on the work queue, polled for at most 10 s.
    async fn next_work_message(&self) -> (String, String) {
        let url =
            triggerline_aws::sqs::resolve_queue_url(self.clients.sqs(), &self.env.aws.work_queue)
                .await
                .unwrap();
        let started = Instant::now();
        loop {
            let out = self
                .clients
                .sqs()
                .receive_message()
                .queue_url(&url)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            if let Some(m) = out.messages.unwrap_or_default().into_iter().next() {
                return (m.message_id.unwrap(), m.body.unwrap());
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no work message within 10 s"
            );
        }
    }
}

fn fire_and_forget_subscription(url: &str) -> Value {
    json!({
        "name": "New identities to HR",
        "triggerId": "idn:identity-created",
        "type": "HTTP",
        "httpConfig": {"url": url, "httpDispatchMode": "SYNC"},
    })
}

fn sqs_batch() -> SqsEvent {
    serde_json::from_str(&fixture("sqs-work-batch.json")).unwrap()
}

/// A stored invocation of `subscription`, as the intake writes one.
fn invocation(id: &str, trigger: &str, subscription: &str, state: InvocationState) -> Invocation {
    let entry = Catalog::builtin().get(trigger).unwrap();
    let now = Utc::now();
    Invocation {
        heartbeat: None,
        id: id.into(),
        trigger_id: trigger.into(),
        trigger_type: entry.trigger.trigger_type,
        subscription_id: subscription.into(),
        subscription_name: "test subscription".into(),
        invocation_type: InvocationType::RealTime,
        response_mode: None,
        state,
        created: now,
        completed: None,
        deadline: (entry.trigger.trigger_type == TriggerType::RequestResponse)
            .then(|| now + chrono::Duration::hours(1)),
        input: entry.trigger.example_input.clone().into(),
        content_json: json!({}).into(),
        output: None,
        error: None,
        ordering_key: None,
        secret_hash: String::new(),
        attempts: vec![],
        trace: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_event_is_queued_and_the_queue_consumer_delivers_it() {
    let stack = Stack::start().await;
    let mut receiver = Receiver::start(json!({})).await;
    let subscription = stack
        .subscribe(fire_and_forget_subscription(&receiver.url))
        .await;

    let answer = invoke_http(stack.router(), &fixture("apigw-v2-start-invocation.json")).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let invocation_id = answer.body["invocations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        answer.body["invocations"][0]["subscriptionId"],
        subscription
    );
    assert_eq!(answer.headers["content-type"], "application/json");

    // What SQS hands the consumer: the message the intake sent, in a real batch envelope.
    let (message_id, body) = stack.next_work_message().await;
    let mut batch = sqs_batch();
    batch.records.truncate(1);
    batch.records[0].message_id = Some(message_id);
    batch.records[0].body = Some(body);
    let response = queue_consumer::handle(&stack.delivery(), &stack.backend.queue, batch).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let delivered = receiver.next().await;
    assert_eq!(delivered.headers["webhook-id"], invocation_id.as_str());
    assert_eq!(delivered.body["identity"]["name"], "Michael Michaels");
    assert_eq!(
        delivered.body["_metadata"]["triggerId"],
        "idn:identity-created"
    );
    assert_eq!(
        stack.invocation(&invocation_id).await.state,
        InvocationState::Completed
    );
}

/// A start whose subscriptions are all EVENTBRIDGE puts the event from the request: when the
/// 202 comes, the event is on the subscriber's bus, the invocation has its attempt, and the
/// work queue holds nothing for the consumer (the cost test counts what that saves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_to_a_bus_puts_its_event_from_the_request_and_queues_nothing() {
    let stack = Stack::start().await;
    let sqs = stack.clients.sqs();
    let events = stack.clients.eventbridge();
    // What reaches the subscriber's bus goes to a queue we can read (a rule, as a subscriber
    // would have one). The bus is the account's `default`, which other tests, and earlier runs
    // on a reused emulator, put to as well: the queue and the rule are this test's own, and
    // only events naming this invocation are counted.
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let (queue_name, rule) = (format!("seen-{unique}"), format!("seen-{}", &unique[..12]));
    let seen = sqs
        .create_queue()
        .queue_name(&queue_name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&stack.env.aws.subscriber_bus)
        .event_pattern(json!({"source": [stack.env.aws.event_source]}).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&stack.env.aws.subscriber_bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(format!("arn:aws:sqs:us-east-1:123456789012:{queue_name}"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    stack
        .subscribe(json!({
            "name": "New identities on our bus",
            "triggerId": "idn:identity-created",
            "type": "EVENTBRIDGE",
            "eventBridgeConfig": {"awsAccount": "123456789012", "awsRegion": "us-east-1"},
        }))
        .await;

    let answer = invoke_http(stack.router(), &fixture("apigw-v2-start-invocation.json")).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let id = answer.body["invocations"][0]["id"].as_str().unwrap();

    let stored = stack.invocation(id).await;
    assert_eq!(stored.state, InvocationState::Completed, "put: delivered");
    assert_eq!(stored.attempts.len(), 1);
    let put: Vec<Value> = sqs
        .receive_message()
        .queue_url(&seen)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .filter(|event: &Value| event["detail"]["_metadata"]["invocationId"] == id)
        .collect();
    assert_eq!(put.len(), 1, "one event on the subscriber's bus: {put:?}");
    let work = triggerline_aws::sqs::resolve_queue_url(sqs, &stack.env.aws.work_queue)
        .await
        .unwrap();
    let queued = sqs
        .receive_message()
        .queue_url(&work)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(queued.is_empty(), "nothing for the consumer: {queued:?}");
    let unsent = stack
        .backend
        .invocations
        .unsent(Utc::now() + chrono::Duration::days(1), 10)
        .await
        .unwrap();
    assert!(unsent.is_empty(), "the attempt cleared the unsent mark");
}

/// With a wait too short to deliver inline, a synchronous start waits for the consumer by
/// reading its invocation: it is written first, so the answer names it (a 542, as nothing
/// consumes the queue here) rather than an empty list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_start_with_a_short_wait_answers_with_its_written_invocation() {
    let stack = Stack::start().await;
    let receiver = Receiver::start(json!({})).await;
    stack
        .subscribe(fire_and_forget_subscription(&receiver.url))
        .await;
    let mut event: Value =
        serde_json::from_str(&fixture("apigw-v2-start-invocation.json")).unwrap();
    let mut body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    body["isSynchronous"] = json!(true);
    event["body"] = json!(body.to_string());
    let event = event.to_string();
    let answer = invoke_http(stack.router_waiting(Duration::from_secs(1)), &event).await;
    assert_eq!(answer.status, 542, "{:?}", answer.body);
    let id = answer.body["invocations"][0]["id"].as_str().unwrap();
    assert_eq!(stack.invocation(id).await.state, InvocationState::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_start_event_delivers_inline_and_answers_with_the_output() {
    let stack = Stack::start().await;
    let decision = json!({"approved": true, "comment": "policy says yes", "approver": "bot"});
    let mut receiver = Receiver::start(decision.clone()).await;
    stack
        .subscribe(json!({
            "name": "Pre-approval bot",
            "triggerId": "idn:access-request-pre-approval",
            "type": "HTTP",
            "httpConfig": {"url": receiver.url, "httpDispatchMode": "SYNC"},
        }))
        .await;

    let answer = invoke_http(stack.router(), &fixture("apigw-v2-start-synchronous.json")).await;

    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let started = &answer.body["invocations"][0];
    assert_eq!(started["status"], "COMPLETED");
    assert_eq!(started["output"], decision);
    let delivered = receiver.next().await;
    assert_eq!(
        delivered.headers["webhook-id"],
        started["id"].as_str().unwrap()
    );
    assert_eq!(
        delivered.body["accessRequestId"],
        "2c91808b6ef1d43e016efba0ce470904"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_reports_exactly_its_malformed_record() {
    let stack = Stack::start().await;
    let mut receiver = Receiver::start(json!({})).await;
    let subscription = stack
        .subscribe(fire_and_forget_subscription(&receiver.url))
        .await;
    use triggerline::ports::InvocationStore;
    stack
        .backend
        .invocations
        .create_all(&[invocation(
            BATCH_INVOCATION,
            "idn:identity-created",
            &subscription,
            InvocationState::Pending,
        )])
        .await
        .unwrap();

    let response =
        queue_consumer::handle(&stack.delivery(), &stack.backend.queue, sqs_batch()).await;

    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, [MALFORMED_MESSAGE]);
    // What Lambda reads back: the documented shape of a partial batch response.
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": MALFORMED_MESSAGE}]})
    );
    assert_eq!(
        receiver.next().await.headers["webhook-id"],
        BATCH_INVOCATION
    );
    assert_eq!(
        stack.invocation(BATCH_INVOCATION).await.state,
        InvocationState::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_not_yet_due_goes_back_on_the_queue_undelivered() {
    let stack = Stack::start().await;
    let mut receiver = Receiver::start(json!({})).await;
    let subscription = stack
        .subscribe(fire_and_forget_subscription(&receiver.url))
        .await;
    use triggerline::ports::InvocationStore;
    stack
        .backend
        .invocations
        .create_all(&[invocation(
            BATCH_INVOCATION,
            "idn:identity-created",
            &subscription,
            InvocationState::Pending,
        )])
        .await
        .unwrap();
    let mut batch = sqs_batch();
    batch.records.truncate(1);
    let due = Utc::now() + chrono::Duration::seconds(2);
    let body = json!({
        "invocationId": BATCH_INVOCATION,
        "notBefore": due.timestamp_millis(),
        "attempts": 0,
        "recorded": 0,
    });
    batch.records[0].body = Some(body.to_string());

    let response = queue_consumer::handle(&stack.delivery(), &stack.backend.queue, batch).await;

    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert!(
        receiver.requests.try_recv().is_err(),
        "delivered before it was due"
    );
    let (_, body) = stack.next_work_message().await;
    let deferred: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(deferred["invocationId"], BATCH_INVOCATION);
    assert_eq!(deferred["notBefore"], due.timestamp_millis());
    assert_eq!(
        stack.invocation(BATCH_INVOCATION).await.state,
        InvocationState::Pending
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_record_is_dropped_without_a_second_delivery() {
    let stack = Stack::start().await;
    let mut receiver = Receiver::start(json!({})).await;
    let subscription = stack
        .subscribe(fire_and_forget_subscription(&receiver.url))
        .await;
    // Attempted once since the fixture's message was queued (`"recorded": 0`): someone else
    // delivered it and queued its own follow-up.
    let attempted = Invocation {
        attempts: vec![triggerline::model::Attempt {
            started_at: Utc::now(),
            target: "127.0.0.1".into(),
            status_code: Some(503),
            duration_ms: 3,
            outcome: triggerline::model::AttemptOutcome::Failed,
            error: Some("subscriber answered 503".into()),
        }],
        ..invocation(
            BATCH_INVOCATION,
            "idn:identity-created",
            &subscription,
            InvocationState::Pending,
        )
    };
    use triggerline::ports::InvocationStore;
    stack
        .backend
        .invocations
        .create_all(&[attempted])
        .await
        .unwrap();
    let mut batch = sqs_batch();
    batch.records.truncate(1);

    let response = queue_consumer::handle(&stack.delivery(), &stack.backend.queue, batch).await;

    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert!(
        receiver.requests.try_recv().is_err(),
        "delivered a stale message"
    );
    assert_eq!(stack.invocation(BATCH_INVOCATION).await.attempts.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_sweep_times_out_overdue_invocations_only() {
    let stack = Stack::start().await;
    let trigger = "idn:access-request-pre-approval";
    let overdue = Invocation {
        deadline: Some(Utc::now() - chrono::Duration::minutes(1)),
        ..invocation(
            "5b0e7f3a-8c1d-4e2f-a3b4-c5d6e7f80912",
            trigger,
            "sub-1",
            InvocationState::Acknowledged,
        )
    };
    let in_time = invocation(
        "6c1f8a4b-9d2e-4f30-b4c5-d6e7f8091a23",
        trigger,
        "sub-1",
        InvocationState::Acknowledged,
    );
    use triggerline::ports::InvocationStore;
    stack
        .backend
        .invocations
        .create_all(&[overdue.clone(), in_time.clone()])
        .await
        .unwrap();
    let event: EventBridgeEvent =
        serde_json::from_str(&fixture("eventbridge-scheduled-sweep.json")).unwrap();
    assert_eq!(event.detail_type, "Scheduled Event");

    // The sweep's own context, as `dispatcher-sweep` builds it: no key, no webhook client.
    let queue = triggerline_lambda::recovery_queue(&stack.clients, &stack.env)
        .await
        .unwrap();
    let sweeper = sweep::Sweeper::new(
        triggerline_lambda::sweep(&stack.clients, &stack.env),
        Arc::new(queue),
    );
    let swept = sweep::handle(&sweeper, event).await.unwrap();

    assert_eq!(swept.timed_out, 1);
    let timed_out = stack.invocation(&overdue.id).await;
    assert_eq!(timed_out.state, InvocationState::TimedOut);
    assert!(timed_out.error.unwrap().contains("response deadline"));
    assert_eq!(
        stack.invocation(&in_time.id).await.state,
        InvocationState::Acknowledged
    );
}

/// Starts an invocation of `trigger` with `orderingKey` through the dispatcher's router, as API
/// Gateway hands it over; returns its id.
async fn start_ordered(stack: &Stack, trigger: &str, key: &str) -> String {
    let mut event: Value =
        serde_json::from_str(&fixture("apigw-v2-start-invocation.json")).unwrap();
    let input = Catalog::builtin()
        .get(trigger)
        .unwrap()
        .trigger
        .example_input
        .clone();
    event["body"] =
        json!(json!({"triggerId": trigger, "input": input, "orderingKey": key}).to_string());
    let answer = invoke_http(stack.router(), &event.to_string()).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    answer.body["invocations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// What the event source mapping hands the consumer from the ordered (FIFO) queue: polled for
/// at most 10 s until at least `at_least` messages came, with the attributes Lambda passes.
async fn ordered_batch(stack: &Stack, at_least: usize) -> SqsEvent {
    let url = stack.backend.queue.ordered_queue_url().unwrap().to_owned();
    let mut batch = sqs_batch();
    let template = batch.records[0].clone();
    batch.records.clear();
    let started = Instant::now();
    while batch.records.len() < at_least {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "only {} ordered messages within 10 s",
            batch.records.len()
        );
        let out = stack
            .clients
            .sqs()
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            let mut record = template.clone();
            record.message_id = m.message_id;
            record.receipt_handle = m.receipt_handle;
            record.body = m.body;
            record.attributes = m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect();
            batch.records.push(record);
        }
    }
    batch
}

fn failed_ids(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// Two starts with one key to a SYNC receiver, in one FIFO batch: the first finishes with its
/// delivery, so the second goes right after it, in order, and both records are done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_batch_of_one_key_is_delivered_in_order() {
    let stack = Stack::start().await;
    let mut receiver = Receiver::start(json!({})).await;
    stack
        .subscribe(fire_and_forget_subscription(&receiver.url))
        .await;
    let first = start_ordered(&stack, "idn:identity-created", "hr-42").await;
    let second = start_ordered(&stack, "idn:identity-created", "hr-42").await;

    let batch = ordered_batch(&stack, 2).await;
    assert!(
        batch.records[0].attributes.contains_key("MessageGroupId"),
        "{:?}",
        batch.records[0].attributes
    );
    let response = queue_consumer::handle(&stack.delivery(), &stack.backend.queue, batch).await;
    assert_eq!(failed_ids(&response), Vec::<String>::new());
    for expected in [&first, &second] {
        let got = receiver.next().await;
        assert_eq!(&got.headers["webhook-id"], expected.as_str());
        assert_eq!(
            stack.invocation(expected).await.state,
            InvocationState::Completed
        );
    }
}

/// An ASYNC receiver acknowledges the first: it is not finished, so its record stays in
/// flight (reported failed) and the second, behind it in the batch, is let go undelivered.
/// Once the first is completed, the next look releases it and the second goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_head_holds_its_key_until_it_is_finished() {
    let mut stack = Stack::start().await;
    stack.env.aws.order_recheck = Duration::from_secs(1);
    stack.backend = AwsBackend::connect(
        &stack.clients,
        &stack.env.aws,
        triggerline_aws::testing::test_credentials(),
    )
    .await
    .unwrap();
    let mut receiver = Receiver::start(json!({})).await;
    stack
        .subscribe(json!({
            "name": "Approvers",
            "triggerId": "idn:access-request-pre-approval",
            "type": "HTTP",
            "httpConfig": {"url": receiver.url, "httpDispatchMode": "ASYNC"},
        }))
        .await;
    let first = start_ordered(&stack, "idn:access-request-pre-approval", "req-7").await;
    let second = start_ordered(&stack, "idn:access-request-pre-approval", "req-7").await;

    let batch = ordered_batch(&stack, 2).await;
    let ids: Vec<String> = batch
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    let response = queue_consumer::handle(&stack.delivery(), &stack.backend.queue, batch).await;
    assert_eq!(failed_ids(&response), ids, "both left on the queue");
    let got = receiver.next().await;
    assert_eq!(&got.headers["webhook-id"], first.as_str());
    assert_eq!(
        stack.invocation(&first).await.state,
        InvocationState::Acknowledged
    );
    let waiting = stack.invocation(&second).await;
    assert_eq!(waiting.state, InvocationState::Pending);
    assert!(waiting.attempts.is_empty());

    // The callback completes the first.
    use triggerline::ports::InvocationStore;
    let done = triggerline::ports::Transition {
        to: InvocationState::Completed,
        completed: Some(Utc::now()),
        output: Some(json!({"approved": true})),
        error: None,
    };
    stack
        .backend
        .invocations
        .transition(
            &first,
            &[InvocationState::Pending, InvocationState::Acknowledged],
            &done,
        )
        .await
        .unwrap();
    // Its message comes back after the recheck and is released; the second follows.
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the second never went"
        );
        let batch = ordered_batch(&stack, 1).await;
        let _ = queue_consumer::handle(&stack.delivery(), &stack.backend.queue, batch).await;
        if stack.invocation(&second).await.state == InvocationState::Acknowledged {
            break;
        }
    }
    let got = receiver.next().await;
    assert_eq!(&got.headers["webhook-id"], second.as_str());
}
