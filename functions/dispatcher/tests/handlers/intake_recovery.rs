//! Intake recovery on the AWS adapters (moto): a `Trigger Invocation Requested` event whose
//! invocations were written but whose work was never sent (the Lambda died between the
//! DynamoDB write and `SendMessageBatch`; here the send fails against a queue that does not
//! exist, and the invocations are left as a dead process leaves them) is still delivered, by
//! the redelivered event or by the sweep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::Router;
use axum::http::StatusCode;
use bytes::Bytes;
use chrono::Utc;
use dispatcher::{queue_consumer, requested, sweep};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use triggerline::catalog::Catalog;
use triggerline::model::InvocationState;
use triggerline::ports::InvocationScans;
use triggerline::query::{InvocationQuery, RawCollection};
use triggerline::secrets::SecretKey;
use triggerline::time::{ManualClock, RandomIds, SystemClock};
use triggerline::usecases::Subscriptions;
use triggerline::usecases::delivery::Delivery;
use triggerline::wire::SubscriptionPostRequest;
use triggerline_aws::sqs::{SqsDeliveryQueue, resolve_queue_url};
use triggerline_aws::testing::Moto;
use triggerline_aws::{AwsBackend, Clients};
use triggerline_lambda::FunctionEnv;
use triggerline_webhook::HttpWebhookClient;

const TRIGGER: &str = "idn:identity-created";

struct Stack {
    moto: Moto,
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
            sync_wait: Duration::from_secs(5),
            allow_private_targets: true,
            ..FunctionEnv::from_lookup(|_| None).unwrap()
        };
        Stack {
            moto,
            clients,
            env,
            backend,
        }
    }

    fn delivery(&self) -> Delivery {
        triggerline_lambda::delivery(
            &self.backend,
            Arc::new(HttpWebhookClient::new(self.env.allow_private_targets)),
            &self.env,
        )
        .unwrap()
    }

    /// The consumer's delivery and the work queue.
    fn working(&self) -> (Delivery, SqsDeliveryQueue) {
        (
            self.delivery(),
            SqsDeliveryQueue::clone(&self.backend.queue),
        )
    }

    /// The delivery of a Lambda that dies between its DynamoDB write and its SQS send: the
    /// send fails (no such queue) and the written invocations stay as they are.
    fn dying_delivery(&self) -> (Delivery, SqsDeliveryQueue) {
        let mut delivery = self.delivery();
        let nowhere = format!("{}/123456789012/no-such-queue", self.moto.endpoint);
        let queue = SqsDeliveryQueue::new(
            self.clients.sqs().clone(),
            nowhere,
            self.backend.invocations.clone(),
        )
        .keeping_unsent();
        delivery.queue = Arc::new(queue.clone());
        (delivery, queue)
    }

    async fn subscribe(&self, url: &str) {
        let subscriptions = Subscriptions::new(
            self.backend.subscriptions.clone(),
            Catalog::builtin(),
            Arc::new(SystemClock),
            Arc::new(RandomIds),
        );
        let request: SubscriptionPostRequest = serde_json::from_value(json!({
            "name": "New identities to HR",
            "triggerId": TRIGGER,
            "type": "HTTP",
            "httpConfig": {"url": url, "httpDispatchMode": "SYNC"},
        }))
        .unwrap();
        subscriptions.create(request).await.unwrap();
    }

    /// Every invocation there is.
    async fn invocations(&self) -> Vec<triggerline::model::Invocation> {
        let query = InvocationQuery::parse(&RawCollection::default()).unwrap();
        self.backend.invocations.list(&query).await.unwrap().items
    }

    /// Hands every work message on the queue to the queue consumer, as the event source
    /// mapping would, until one was processed; fails after 10 s without one.
    async fn consume_work(&self) {
        let url = resolve_queue_url(self.clients.sqs(), &self.env.aws.work_queue)
            .await
            .unwrap();
        let started = Instant::now();
        loop {
            let out = self
                .clients
                .sqs()
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let messages = out.messages.unwrap_or_default();
            if !messages.is_empty() {
                let mut batch = SqsEvent::default();
                for m in messages {
                    let mut record = SqsMessage::default();
                    record.message_id = m.message_id;
                    record.body = m.body;
                    batch.records.push(record);
                }
                let response =
                    queue_consumer::handle(&self.delivery(), &self.backend.queue, batch).await;
                assert!(response.batch_item_failures.is_empty(), "{response:?}");
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no work message within 10 s"
            );
        }
    }
}

/// A real webhook receiver on 127.0.0.1 that answers 200.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().fallback(move |body: Bytes| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
            (StatusCode::OK, axum::Json(json!({})))
        }
    });
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

async fn delivered(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a delivery within 10 s")
        .expect("the receiver is running")
}

/// The body of the SQS message the intake rule makes of a `Trigger Invocation Requested` event.
fn requested_event(event_id: &str) -> String {
    let input = &Catalog::builtin()
        .get(TRIGGER)
        .unwrap()
        .trigger
        .example_input;
    json!({
        "version": "0", "id": event_id, "detail-type": requested::DETAIL_TYPE,
        "source": "com.example.idn", "account": "123456789012",
        "time": "2026-11-23T12:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"triggerId": TRIGGER, "input": input}
    })
    .to_string()
}

async fn raise(
    (delivery, queue): &(Delivery, SqsDeliveryQueue),
    event_id: &str,
) -> triggerline::Result<()> {
    let parsed = requested::parse(&requested_event(event_id))
        .unwrap()
        .unwrap();
    requested::start(delivery, queue, parsed).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_sends_the_work_its_first_arrival_never_sent() {
    let stack = Stack::start().await;
    let (url, mut rx) = receiver().await;
    stack.subscribe(&url).await;

    let first = raise(&stack.dying_delivery(), "evt-lost-work").await;
    assert!(first.is_err(), "the first arrival fails: {first:?}");
    let written = stack.invocations().await;
    assert_eq!(written.len(), 1, "its invocation was written");
    assert_eq!(written[0].state, InvocationState::Pending);

    // SQS hands the event out again; its invocation exists, its work does not.
    raise(&stack.working(), "evt-lost-work").await.unwrap();
    stack.consume_work().await;

    let body = delivered(&mut rx).await;
    assert_eq!(body["_metadata"]["invocationId"], written[0].id.as_str());
    let after = stack.invocations().await;
    assert_eq!(after.len(), 1, "no second invocation");
    assert_eq!(after[0].state, InvocationState::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_sends_the_work_of_an_invocation_left_unsent_past_its_grace() {
    let stack = Stack::start().await;
    let (url, mut rx) = receiver().await;
    stack.subscribe(&url).await;
    let _ = raise(&stack.dying_delivery(), "evt-never-redelivered").await;
    let written = stack.invocations().await;
    assert_eq!(written.len(), 1);

    let sweep_event = || -> EventBridgeEvent {
        serde_json::from_value(json!({
            "version": "0", "id": "sweep", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": "2026-11-23T12:00:00Z",
            "region": "us-east-1", "resources": [], "detail": {}
        }))
        .unwrap()
    };
    // The sweep function's own wiring (no webhooks, the work queue to send to).
    let queue = triggerline_lambda::recovery_queue(&stack.clients, &stack.env)
        .await
        .unwrap();
    let mut sweeper = sweep::Sweeper::new(
        triggerline_lambda::sweep(&stack.clients, &stack.env),
        Arc::new(queue),
    );
    // Within the grace period (two leases) the work may just be late: left alone.
    let swept = sweep::handle(&sweeper, sweep_event()).await.unwrap();
    assert_eq!(swept.recovered, 0);

    let lease = chrono::Duration::from_std(sweeper.lease).unwrap();
    sweeper.sweep.clock = Arc::new(ManualClock::new(
        Utc::now() + lease * 2 + chrono::Duration::seconds(5),
    ));
    let later = &sweeper;
    let swept = sweep::handle(later, sweep_event()).await.unwrap();
    assert_eq!(swept.recovered, 1);
    let again = sweep::handle(later, sweep_event()).await.unwrap();
    assert_eq!(
        again.recovered, 0,
        "sent once per grace period, not every sweep"
    );

    stack.consume_work().await;
    let body = delivered(&mut rx).await;
    assert_eq!(body["_metadata"]["invocationId"], written[0].id.as_str());
    assert_eq!(
        stack.invocations().await[0].state,
        InvocationState::Completed
    );
}

/// The intake event carries a `start` body, and is held to the same bounds: a `timestamp` in
/// microseconds or a `delay` over a year is refused before anything is written. The consumer
/// reports such a record failed like any record that is not work (a warning each time), and it
/// reaches the dead-letter queue on its last receive, where it can be looked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_event_with_a_time_past_the_bounds_is_refused_and_writes_nothing() {
    let stack = Stack::start().await;
    let (url, _rx) = receiver().await;
    stack.subscribe(&url).await;
    let micros = Utc::now().timestamp_millis() * 1000;
    for (field, extra) in [
        ("timestamp", json!({"timestamp": micros})),
        ("delay", json!({"delay": "P96000000D"})),
    ] {
        let mut event: Value = serde_json::from_str(&requested_event("evt-bounds")).unwrap();
        event["detail"]
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let parsed = requested::parse(&event.to_string()).unwrap().unwrap();
        let refused = requested::start(&stack.delivery(), &stack.backend.queue, parsed).await;
        assert!(
            matches!(&refused, Err(triggerline::Error::Invalid { field: f, .. }) if f == field),
            "{refused:?}"
        );
    }
    assert!(stack.invocations().await.is_empty(), "nothing was written");
}

/// A real receiver on 127.0.0.1 that answers 200 and hands on each request's `traceparent`.
async fn traced_receiver() -> (String, mpsc::UnboundedReceiver<Option<String>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let tx = tx.clone();
        async move {
            let parent = headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let _ = tx.send(parent);
            (StatusCode::OK, axum::Json(json!({})))
        }
    });
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

/// The trace id a delivery's `traceparent` carried.
async fn delivered_trace_id(rx: &mut mpsc::UnboundedReceiver<Option<String>>) -> String {
    let parent = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a delivery within 10 s")
        .expect("the receiver is running")
        .expect("a traceparent header");
    triggerline::trace::TraceContext::parse(Some(&parent), &[])
        .expect("a valid traceparent")
        .trace_id()
        .to_owned()
}

/// An intake event's detail may carry `traceparent` and `tracestate`, as a `start`'s headers do:
/// the invocations keep them, through the work message, to the subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_event_with_a_traceparent_delivers_within_its_trace() {
    let stack = Stack::start().await;
    let (url, mut rx) = traced_receiver().await;
    stack.subscribe(&url).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut event: Value = serde_json::from_str(&requested_event("evt-traced")).unwrap();
    event["detail"]["traceparent"] = json!(parent);
    event["detail"]["tracestate"] = json!("congo=t61rcWkgMzE");

    let parsed = requested::parse(&event.to_string()).unwrap().unwrap();
    requested::start(&stack.delivery(), &stack.backend.queue, parsed)
        .await
        .unwrap();
    stack.consume_work().await;

    assert_eq!(
        delivered_trace_id(&mut rx).await,
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let stored = stack.invocations().await.remove(0);
    let trace = stored.trace.expect("the trace is stored");
    assert_eq!(trace.traceparent, parent);
    assert_eq!(trace.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
}

/// Without one, the event starts a trace derived from its id: a redelivered event (its first
/// arrival died before sending the work) delivers within the trace its invocation was stored
/// with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_event_without_a_traceparent_starts_a_trace_its_redelivery_keeps() {
    let stack = Stack::start().await;
    let (url, mut rx) = traced_receiver().await;
    stack.subscribe(&url).await;

    let _ = raise(&stack.dying_delivery(), "evt-untraced").await;
    raise(&stack.working(), "evt-untraced").await.unwrap();
    stack.consume_work().await;

    let stored = stack.invocations().await.remove(0);
    let trace = stored.trace.expect("a trace was started");
    assert_eq!(trace.flags(), "01");
    assert_eq!(delivered_trace_id(&mut rx).await, trace.trace_id());
}
