//! What only the AWS backend has to prove: an outage of the AWS APIs is a 503 with a tracking id
//! (never an SDK message) and loses no accepted invocation, and EVENTBRIDGE subscriptions put
//! their events on the subscriber's bus, from where a rule routes them to the subscriber.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use triggerline::time::SystemClock;
use triggerline_aws::testing::{ACCOUNT, Moto, REGION};

use crate::delivery::{CREATED, PRE, approval, example, is};
use crate::helpers::spawn_app_on;
use crate::receiver::{Answer, Receiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_answers_503_with_a_tracking_id_and_loses_no_accepted_invocation() {
    // An emulator of this test's own, so that freezing it stops nobody else's tests.
    let moto = Moto::spawn();
    let settings = moto.settings();
    let app = spawn_app_on(|_| {}, Arc::new(SystemClock), Some((moto, settings))).await;
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
    for id in &accepted {
        app.status_until(id, is("COMPLETED")).await;
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
        .eventbridge
        .create_event_bus()
        .name(&settings.subscriber_bus)
        .send()
        .await
        .unwrap();
    let queue_url = clients
        .sqs
        .create_queue()
        .queue_name(format!("{}inbox", settings.event_bus))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{}inbox", settings.event_bus);
    let trigger_name = triggerline::catalog::Catalog::builtin()
        .get(PRE)
        .unwrap()
        .trigger
        .name
        .clone();
    clients
        .eventbridge
        .put_rule()
        .name("to-inbox")
        .event_bus_name(&settings.subscriber_bus)
        .event_pattern(json!({"detail-type": [trigger_name]}).to_string())
        .send()
        .await
        .unwrap();
    clients
        .eventbridge
        .put_targets()
        .rule("to-inbox")
        .event_bus_name(&settings.subscriber_bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("inbox")
                .arn(&queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let app = spawn_app_on(|_| {}, Arc::new(SystemClock), Some((moto, settings))).await;
    app.create(&json!({
        "name": "approvals on the bus",
        "triggerId": PRE,
        "type": "EVENTBRIDGE",
        "eventBridgeConfig": {"awsAccount": ACCOUNT, "awsRegion": REGION},
        "responseDeadline": "PT1H",
    }))
    .await;

    let id = app.start_one(PRE).await;
    let event = receive_one(&clients.sqs, &queue_url).await;
    assert_eq!(event["detail-type"], json!(trigger_name));
    assert_eq!(event["source"], "triggerline");
    let metadata = &event["detail"]["_metadata"];
    assert_eq!(metadata["invocationId"], json!(id));
    assert_eq!(metadata["responseMode"], "async");
    app.status_until(&id, is("ACKNOWLEDGED")).await;

    // The subscriber answers through the callback, with the secret the event carried.
    let response = app
        .callback(
            &id,
            &json!({"secret": metadata["secret"], "output": approval()}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let done = app.status_until(&id, is("COMPLETED")).await;
    assert_eq!(done["output"], approval());
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
