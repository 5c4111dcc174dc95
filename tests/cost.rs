//! What each flow costs on AWS: the calls Triggerline's own functions make per invocation,
//! counted by an interceptor on the real SDK clients while the flows run through the Lambda
//! entry points (the dispatcher's HTTP router and SQS consumer, the callback's router) against
//! moto, with a real webhook receiver on 127.0.0.1. The SQS event source mapping's own calls
//! (receive, delete) are made here with an uncounted client and listed separately.
//!
//! It also proves the producers' other door: a `Trigger Invocation Requested` event put on
//! Triggerline's bus reaches the consumer through the intake rule and is raised exactly once.
//!
//! It asserts the budget's shape (the SYNC fast path: one write, no queue message, no event) and
//! prints the table the README's cost section is computed from:
//! `cargo test -p triggerline-local --test aws-cost -- --nocapture`.
#![allow(clippy::unwrap_used)]

#[path = "blackbox/receiver.rs"]
#[allow(dead_code)]
mod receiver;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use receiver::{Answer, Receiver};
use serde_json::{Value, json};
use tower::ServiceExt;
use triggerline::catalog::Catalog;
use triggerline::ports::InvocationScans;
use triggerline::time::{RandomIds, SystemClock};
use triggerline_aws::dynamo::DynamoSubscriptionStore;
use triggerline_aws::testing::{
    ACCOUNT, CallCounter, Moto, REGION, clients_at, counting_clients_at,
};
use triggerline_aws::{AwsBackend, AwsSettings, Clients};
use triggerline_http::ApiAuth;

const PRE: &str = "idn:access-request-pre-approval";
const CREATED: &str = "idn:identity-created";

/// One deployment's functions over fresh resources on moto.
struct Stack {
    counter: CallCounter,
    /// Uncounted: the event source mapping's side, and reading items back.
    esm: Clients,
    settings: AwsSettings,
    backend: AwsBackend,
    delivery: triggerline::usecases::delivery::Delivery,
    subscriptions: Router,
    dispatcher: Router,
    complete: Router,
    queue_url: String,
}

impl Stack {
    async fn new(moto: &Moto) -> Stack {
        let counter = CallCounter::default();
        let clients = counting_clients_at(&moto.endpoint, &counter).await;
        let settings = moto.settings();
        let backend = AwsBackend::connect(
            &clients,
            &settings,
            triggerline_aws::testing::test_credentials(),
        )
        .await
        .unwrap();
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let mut env = triggerline_lambda::FunctionEnv::from_lookup(|name| match name {
            triggerline_lambda::env::PUBLIC_URL => Some("http://127.0.0.1:9".into()),
            triggerline_lambda::env::SECRET_KEY => Some(key.clone()),
            triggerline_lambda::env::ALLOW_PRIVATE_TARGETS => Some("true".into()),
            _ => None,
        })
        .unwrap();
        env.aws = settings.clone();
        // What the functions' mains build (functions/*/src/main.rs, src/bin/*.rs).
        let client = triggerline_webhook::HttpWebhookClient::new(env.allow_private_targets);
        let delivery = triggerline_lambda::delivery(&backend, Arc::new(client), &env).unwrap();
        let esm = clients_at(&moto.endpoint).await;
        let queue_url = triggerline_aws::sqs::resolve_queue_url(esm.sqs(), &settings.work_queue)
            .await
            .unwrap();
        let stack = Stack {
            subscriptions: subscription_api::router(subscription_api::Context {
                subscriptions: Arc::new(DynamoSubscriptionStore::new(
                    clients.dynamodb().clone(),
                    &settings.subscriptions_table,
                    triggerline_aws::testing::test_credentials(),
                )),
                clock: Arc::new(SystemClock),
                ids: Arc::new(RandomIds),
                auth: ApiAuth::Upstream,
            }),
            dispatcher: dispatcher::router(dispatcher::Context::behind_api_gateway(
                delivery.clone(),
                env.sync_wait,
            )),
            complete: invocation_complete::router(triggerline_lambda::completion(&clients, &env)),
            counter,
            esm,
            settings,
            backend,
            delivery,
            queue_url,
        };
        stack.counter.take();
        stack
    }

    async fn call(router: &Router, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn subscribe(&self, body: Value) {
        let (status, created) = Self::call(
            &self.subscriptions,
            "POST",
            "/trigger-subscriptions/v1",
            &body,
        )
        .await;
        assert_eq!(status, 201, "{created}");
        self.counter.take();
    }

    async fn start(&self, trigger: &str, synchronous: bool) -> (u16, Value) {
        let input = Catalog::builtin()
            .get(trigger)
            .unwrap()
            .trigger
            .example_input
            .clone();
        Self::call(
            &self.dispatcher,
            "POST",
            "/trigger-invocations/v1/start",
            &json!({"triggerId": trigger, "input": input, "isSynchronous": synchronous}),
        )
        .await
    }

    /// Plays the SQS event source mapping once: receives what is on the work queue, hands it to
    /// the consumer as a real SQS event, deletes what the consumer did not report as failed.
    /// Returns how many messages it passed on.
    /// How many invocations the table holds.
    async fn invocation_count(&self) -> usize {
        let everything = triggerline::query::ListQuery::parse(&Default::default()).unwrap();
        let page = self.backend.invocations.list(&everything).await.unwrap();
        page.items.len()
    }

    async fn consume(&self) -> usize {
        let received = self
            .esm
            .sqs()
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        let records: Vec<Value> = received
            .iter()
            .map(|m| {
                json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
                                   "SenderId": ACCOUNT, "ApproximateFirstReceiveTimestamp": "1700000000000"},
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{}", self.settings.work_queue),
                    "awsRegion": REGION,
                })
            })
            .collect();
        let event: SqsEvent = serde_json::from_value(json!({"Records": records})).unwrap();
        let response =
            dispatcher::queue_consumer::handle(&self.delivery, &self.backend.queue, event).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        for message in &received {
            self.esm
                .sqs()
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(message.receipt_handle.as_deref().unwrap())
                .send()
                .await
                .unwrap();
        }
        received.len()
    }

    /// The invocation's item as stored, and its size as DynamoDB bills it.
    async fn item_size(&self, id: &str) -> usize {
        let item = self
            .esm
            .dynamodb()
            .scan()
            .table_name(&self.settings.invocations_table)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
            .into_iter()
            .find(|item| item.values().any(|v| v.as_s().is_ok_and(|s| s == id)))
            .unwrap_or_else(|| panic!("no item holds {id}"));
        item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
    }
}

/// DynamoDB's item size rules: names and string/binary values by their bytes, numbers by about
/// one byte per two digits plus one, lists and maps 3 bytes plus their elements.
fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        _ => 0,
    }
}

/// One flow's counts: Triggerline's calls (by operation) and its Lambda invocations.
#[derive(Debug)]
struct Flow {
    name: &'static str,
    calls: BTreeMap<String, u64>,
    lambda_invocations: u64,
    esm_messages: usize,
    item_bytes: usize,
}

impl Flow {
    fn count(&self, prefix: &str, ops: &[&str]) -> u64 {
        self.calls
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(prefix)
                    .is_some_and(|op| ops.iter().any(|o| op.trim_start_matches('.') == *o))
            })
            .map(|(_, n)| n)
            .sum()
    }
    fn writes(&self) -> u64 {
        self.count(
            "DynamoDB",
            &[
                "PutItem",
                "UpdateItem",
                "DeleteItem",
                "TransactWriteItems",
                "BatchWriteItem",
            ],
        )
    }
    fn reads(&self) -> u64 {
        self.count("DynamoDB", &["GetItem", "Query", "Scan", "BatchGetItem"])
    }
    fn sqs(&self) -> u64 {
        self.count(
            "SQS",
            &[
                "SendMessage",
                "SendMessageBatch",
                "ReceiveMessage",
                "DeleteMessage",
                "ChangeMessageVisibility",
            ],
        )
    }
    fn events(&self) -> u64 {
        self.count("EventBridge", &["PutEvents"])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_calls_per_invocation_by_flow() {
    let moto = Moto::start();
    let mut flows = Vec::new();

    // FIRE_AND_FORGET: start (queued), then the queue consumer delivers.
    let stack = Stack::new(&moto).await;
    let mut receiver = Receiver::start(vec![Answer::Empty(204)]).await;
    stack.subscribe(http(CREATED, &receiver.url, "SYNC")).await;
    let (status, body) = stack.start(CREATED, false).await;
    assert_eq!(status, 202, "{body}");
    let id = body["invocations"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(stack.consume().await, 1);
    receiver.next().await;
    let queued = Flow {
        name: "FIRE_AND_FORGET (queued, webhook)",
        calls: stack.counter.take(),
        lambda_invocations: 2,
        esm_messages: 1,
        item_bytes: stack.item_size(&id).await,
    };
    assert_eq!(
        queued.count("DynamoDB", &["GetItem"]),
        2,
        "the consumer reads the invocation once and the subscription once: {:?}",
        queued.calls
    );
    flows.push(queued);

    // SYNC REQUEST_RESPONSE, synchronous start: the fast path.
    let stack = Stack::new(&moto).await;
    let mut receiver = Receiver::start(vec![Answer::Json(200, approval())]).await;
    stack.subscribe(http(PRE, &receiver.url, "SYNC")).await;
    let (status, body) = stack.start(PRE, true).await;
    assert_eq!(status, 200, "{body}");
    let id = body["invocations"][0]["id"].as_str().unwrap().to_owned();
    receiver.next().await;
    let sync = Flow {
        name: "SYNC REQUEST_RESPONSE (synchronous start)",
        calls: stack.counter.take(),
        lambda_invocations: 1,
        esm_messages: 0,
        item_bytes: stack.item_size(&id).await,
    };
    assert_eq!(
        sync.writes(),
        1,
        "the fast path writes once: {:?}",
        sync.calls
    );
    assert_eq!(
        sync.sqs(),
        0,
        "the fast path sends no message: {:?}",
        sync.calls
    );
    assert_eq!(
        sync.events(),
        0,
        "the producer holds the answer: {:?}",
        sync.calls
    );
    flows.push(sync);

    // ASYNC REQUEST_RESPONSE: start (queued), consumer delivers (acknowledged), callback.
    let stack = Stack::new(&moto).await;
    let mut receiver = Receiver::start(vec![Answer::Json(200, json!({}))]).await;
    stack.subscribe(http(PRE, &receiver.url, "ASYNC")).await;
    let (status, body) = stack.start(PRE, false).await;
    assert_eq!(status, 202, "{body}");
    let id = body["invocations"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(stack.consume().await, 1);
    let delivered = receiver.next().await;
    let secret = delivered.body["_metadata"]["secret"].clone();
    let (status, body) = Stack::call(
        &stack.complete,
        "POST",
        &format!("/trigger-invocations/v1/{id}/complete"),
        &json!({"secret": secret, "output": approval()}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    flows.push(Flow {
        name: "ASYNC REQUEST_RESPONSE (queued, webhook, callback)",
        calls: stack.counter.take(),
        lambda_invocations: 3,
        esm_messages: 1,
        item_bytes: stack.item_size(&id).await,
    });

    // EVENTBRIDGE subscription: start (queued), consumer puts the event, callback.
    let stack = Stack::new(&moto).await;
    stack
        .subscribe(json!({
            "name": "on the bus", "triggerId": PRE, "type": "EVENTBRIDGE",
            "eventBridgeConfig": {"awsAccount": ACCOUNT, "awsRegion": REGION},
            "responseDeadline": "PT1H",
        }))
        .await;
    let (status, body) = stack.start(PRE, false).await;
    assert_eq!(status, 202, "{body}");
    let id = body["invocations"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(stack.consume().await, 1);
    let secret = stack.delivery.key.callback_secret(&id);
    let (status, body) = Stack::call(
        &stack.complete,
        "POST",
        &format!("/trigger-invocations/v1/{id}/complete"),
        &json!({"secret": secret, "output": approval()}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    flows.push(Flow {
        name: "EVENTBRIDGE REQUEST_RESPONSE (queued, PutEvents, callback)",
        calls: stack.counter.take(),
        lambda_invocations: 3,
        esm_messages: 1,
        item_bytes: stack.item_size(&id).await,
    });

    println!(
        "\n| flow | Lambda invocations | DynamoDB reads | DynamoDB writes | SQS (ours) | SQS messages via the event source mapping | EventBridge PutEvents | invocation item |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for flow in &flows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} B |",
            flow.name,
            flow.lambda_invocations,
            flow.reads(),
            flow.writes(),
            flow.sqs(),
            flow.esm_messages,
            flow.events(),
            flow.item_bytes
        );
    }
    for flow in &flows {
        println!("{}: {:?}", flow.name, flow.calls);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_event_on_the_bus_is_raised_once_and_delivered() {
    let moto = Moto::start();
    let stack = Stack::new(&moto).await;
    let mut receiver = Receiver::start(vec![Answer::Empty(204)]).await;
    stack.subscribe(http(CREATED, &receiver.url, "SYNC")).await;
    // The template's intake rule: this detail-type on Triggerline's bus goes to the work queue.
    let esm = &stack.esm;
    esm.eventbridge()
        .put_rule()
        .name("intake")
        .event_bus_name(&stack.settings.event_bus)
        .event_pattern(json!({"detail-type": ["Trigger Invocation Requested"]}).to_string())
        .send()
        .await
        .unwrap();
    esm.eventbridge()
        .put_targets()
        .rule("intake")
        .event_bus_name(&stack.settings.event_bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("work")
                .arn(format!(
                    "arn:aws:sqs:{REGION}:{ACCOUNT}:{}",
                    stack.settings.work_queue
                ))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let input = Catalog::builtin()
        .get(CREATED)
        .unwrap()
        .trigger
        .example_input
        .clone();
    let put = esm
        .eventbridge()
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(&stack.settings.event_bus)
                .source("com.example.identities")
                .detail_type("Trigger Invocation Requested")
                .detail(json!({"triggerId": CREATED, "input": input}).to_string())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.failed_entry_count, 0);

    // The event reaches the consumer through the work queue, which raises the invocation; the
    // work message that raising queued is consumed next and delivers it.
    let mut passed = 0;
    while receiver.drain().is_empty() {
        passed += stack.consume().await;
        assert!(passed <= 3, "the event raised more work than one delivery");
    }
    assert_eq!(
        stack.invocation_count().await,
        1,
        "one invocation for one event"
    );

    // SQS may hand the same event over twice: the second time raises nothing new.
    let again = json!({"id": "redelivered", "detail-type": "Trigger Invocation Requested",
                       "detail": {"triggerId": CREATED, "input": input}})
    .to_string();
    for _ in 0..2 {
        let requested = dispatcher::requested::parse(&again).unwrap().unwrap();
        dispatcher::requested::start(&stack.delivery, requested)
            .await
            .unwrap();
    }
    assert_eq!(
        stack.invocation_count().await,
        2,
        "the redelivered event was raised once"
    );
}

fn http(trigger: &str, url: &str, mode: &str) -> Value {
    json!({
        "name": format!("{trigger} via {mode}"),
        "triggerId": trigger,
        "type": "HTTP",
        "responseDeadline": "PT1H",
        "httpConfig": {"url": url, "httpDispatchMode": mode, "httpAuthenticationType": "NO_AUTH"},
        "enabled": true
    })
}

fn approval() -> Value {
    json!({"approved": true, "comment": "looks fine", "approver": "policy-bot"})
}
