//! What only the AWS backend has to prove: an outage of the AWS APIs is a 503 with a tracking id
//! (never an SDK message) and loses no accepted invocation, and EVENTBRIDGE subscriptions put
//! their events on the subscriber's bus, from where a rule routes them to the subscriber.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use triggerline::duration::IsoDuration;
use triggerline::time::SystemClock;
use triggerline_aws::testing::{ACCOUNT, Moto, REGION};
use triggerline_local::Config;

use crate::delivery::{CREATED, PRE, approval, example, is};
use crate::helpers::spawn_app_on;
use crate::receiver::{Answer, Receiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_answers_503_with_a_tracking_id_and_loses_no_accepted_invocation() {
    // An emulator of this test's own, so that freezing it stops nobody else's tests.
    let moto = Moto::spawn();
    let settings = moto.settings();
    // A short lease: work claimed just as the outage began comes back after it, not after 60 s.
    let lease = |config: &mut Config| {
        config.delivery_lease = IsoDuration::parse("lease", "PT15S").unwrap();
    };
    let app = spawn_app_on(lease, Arc::new(SystemClock), Some((moto, settings))).await;
    let mut receiver = Receiver::start(vec![Answer::Empty(204); 3]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;
    // Accepted now, due once the outage has begun.
    let mut accepted = Vec::new();
    for _ in 0..3 {
        let response = app
            .post(
                "/trigger-invocations/v1/start",
                &json!({"triggerId": CREATED, "input": example(CREATED), "delay": "PT2S"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        accepted.push(body["invocations"][0]["id"].as_str().unwrap().to_owned());
    }

    app.moto.as_ref().unwrap().pause();
    for response in [
        app.get("/trigger-subscriptions/v1").await,
        app.get(&format!("/trigger-invocations/v1/{}/status", accepted[0]))
            .await,
    ] {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        let tracking_id = body["trackingId"].as_str().unwrap();
        assert!(!tracking_id.is_empty(), "{body}");
        assert_eq!(
            body["messages"][0]["text"],
            "The service is temporarily unavailable; retry later."
        );
        for leak in ["dispatch", "timeout", "Dynamo", "127.0.0.1", "sdk"] {
            assert!(!text.contains(leak), "`{leak}` leaked into {text}");
        }
    }
    app.moto.as_ref().unwrap().resume();

    // The same API answers again, and every invocation accepted before the outage is delivered.
    assert_eq!(
        app.get("/trigger-subscriptions/v1").await.status(),
        StatusCode::OK
    );
    // A receive the emulator answered after the worker had given up on it hides its messages
    // until their visibility timeout (the worker's lease) ends, as SQS would: allow for it.
    for id in &accepted {
        app.status_within(id, is("COMPLETED"), Duration::from_secs(45))
            .await;
    }
    let mut delivered: Vec<String> = Vec::new();
    for _ in 0..3 {
        delivered.push(
            receiver.next().await.headers["webhook-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    delivered.sort();
    accepted.sort();
    assert_eq!(delivered, accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eventbridge_subscription_reaches_the_subscriber_through_its_rule_and_is_completed() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let mut settings = moto.settings();
    // The subscriber's own bus (in moto's one account), with a rule routing this trigger's
    // events to a queue the subscriber reads.
    settings.subscriber_bus = format!("{}subscriber", settings.event_bus);
    clients
        .eventbridge()
        .create_event_bus()
        .name(&settings.subscriber_bus)
        .send()
        .await
        .unwrap();
    let trigger_name = triggerline::catalog::Catalog::builtin()
        .get(PRE)
        .unwrap()
        .trigger
        .name
        .clone();
    let queue_url = route_to_queue(
        &clients,
        &settings.subscriber_bus,
        json!({"detail-type": [trigger_name]}),
        &format!("{}inbox", settings.event_bus),
    )
    .await;
    // Triggerline's own bus exists once the app has created its resources; create it first
    // here so the rule can be put on it.
    triggerline_aws::eventbridge::create_missing_bus(clients.eventbridge(), &settings.event_bus)
        .await
        .unwrap();
    let completions_url = route_to_queue(
        &clients,
        &settings.event_bus,
        json!({"detail-type": ["Trigger Invocation Completed"]}),
        &format!("{}done", settings.event_bus),
    )
    .await;
    let app = spawn_app_on(|_| {}, Arc::new(SystemClock), Some((moto, settings))).await;
    app.create(&json!({
        "name": "approvals on the bus",
        "triggerId": PRE,
        "type": "EVENTBRIDGE",
        "eventBridgeConfig": {"awsAccount": ACCOUNT, "awsRegion": REGION},
        "responseDeadline": "PT1H",
    }))
    .await;

    let id = app
        .start_traced(PRE, &[("traceparent", crate::trace::PARENT)])
        .await
        .remove(0);
    let acknowledged = app.status_until(&id, |s| s["status"] != "PENDING").await;
    assert_eq!(acknowledged["status"], "ACKNOWLEDGED", "{acknowledged}");
    let event = receive_one(clients.sqs(), &queue_url).await;
    assert_eq!(event["detail-type"], json!(trigger_name));
    assert_eq!(event["source"], "triggerline");
    let metadata = &event["detail"]["_metadata"];
    assert_eq!(metadata["invocationId"], json!(id));
    assert_eq!(metadata["responseMode"], "async");
    // The start's trace, in a span of the delivery's own.
    let traced = triggerline::trace::TraceContext::parse(metadata["traceparent"].as_str(), &[]);
    assert_eq!(
        traced.as_ref().map(|t| t.trace_id()),
        Some(crate::trace::TRACE_ID),
        "{metadata}"
    );

    // The subscriber answers through the callback, with the secret the event carried.
    let response = app
        .callback(
            &id,
            &json!({"secret": metadata["secret"], "output": approval()}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let done = app.status_until(&id, is("COMPLETED")).await;
    assert_eq!(done["completeInvocationInput"]["output"], approval());

    // Its completion is announced on Triggerline's own bus, where a rule routes it on.
    let completed = receive_one(clients.sqs(), &completions_url).await;
    assert_eq!(completed["detail-type"], "Trigger Invocation Completed");
    assert_eq!(completed["detail"]["invocationId"], json!(id));
    assert_eq!(completed["detail"]["status"], "COMPLETED");
}

/// A receiver's 410 disables its subscription, announced as `Subscription Health Changed` on
/// Triggerline's own bus, where a rule routes it on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_transition_is_published_on_triggerlines_bus() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    triggerline_aws::eventbridge::create_missing_bus(clients.eventbridge(), &settings.event_bus)
        .await
        .unwrap();
    let health_url = route_to_queue(
        &clients,
        &settings.event_bus,
        json!({"detail-type": ["Subscription Health Changed"]}),
        &format!("{}health", settings.event_bus),
    )
    .await;
    let app = spawn_app_on(|_| {}, Arc::new(SystemClock), Some((moto, settings))).await;
    let mut receiver = Receiver::start(vec![Answer::Empty(410)]).await;
    let created = app.subscribe(CREATED, &receiver.url, "SYNC").await;
    app.start_one(CREATED).await;
    receiver.next().await;

    let event = receive_one(clients.sqs(), &health_url).await;
    assert_eq!(event["source"], "triggerline");
    assert_eq!(event["detail"]["subscriptionId"], created["id"]);
    assert_eq!(event["detail"]["transition"], "DISABLED");
    assert_eq!(event["detail"]["reason"], "the receiver answered 410 Gone");
    assert_eq!(event["detail"]["enabled"], false);
}

/// Creates queue `queue` and a rule on `bus` sending events that match `pattern` to it, and
/// returns the queue's URL.
async fn route_to_queue(
    clients: &triggerline_aws::Clients,
    bus: &str,
    pattern: Value,
    queue: &str,
) -> String {
    let queue_url = clients
        .sqs()
        .create_queue()
        .queue_name(queue)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let rule = format!("to-{queue}");
    clients
        .eventbridge()
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .unwrap();
    clients
        .eventbridge()
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    queue_url
}

/// The body of the first message on `queue_url`, polled until one arrives (at most 20 s).
async fn receive_one(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(message) = received.messages.unwrap_or_default().into_iter().next() {
            return serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event reached the subscriber's queue"
        );
    }
}
