//! Ordering keys (extension): invocations of one subscription with the same `orderingKey` reach
//! a real receiver one at a time, in the order they were accepted, each only after the one
//! before it finished; another key is not held back. On SQLite by the queue's own rule; on AWS
//! by the SQS FIFO queue (one message group per subscription and key).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::{PRE, approval, example, is};
use std::sync::Arc;

use triggerline::time::SystemClock;

use crate::helpers::{TestApp, expect_error, spawn_app, spawn_app_with};
use crate::receiver::{Answer, Receiver};

impl TestApp {
    async fn start_ordered(&self, key: &Value) -> reqwest::Response {
        self.post(
            "/trigger-invocations/v1/start",
            &json!({"triggerId": PRE, "input": example(PRE), "orderingKey": key}),
        )
        .await
    }

    async fn start_keyed_one(&self, key: &str) -> String {
        let response = self.start_ordered(&json!(key)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        body["invocations"][0]["id"].as_str().unwrap().to_owned()
    }
}

fn delivered_id(received: &crate::receiver::Received) -> String {
    received.body["_metadata"]["invocationId"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn one_key_reaches_the_receiver_one_at_a_time_in_order_and_another_key_is_not_held() {
    // On AWS an acknowledged invocation's key is looked at again every second (the default
    // is 30 s), so each completion lets the next go soon.
    let app = spawn_app_with(
        |config| config.order_recheck = std::time::Duration::from_secs(1),
        Arc::new(SystemClock),
    )
    .await;
    // ASYNC: each invocation stays open (acknowledged) until the test completes it.
    let mut receiver = Receiver::start(vec![Answer::Json(200, json!({}))]).await;
    app.subscribe(PRE, &receiver.url, "ASYNC").await;
    let first = app.start_keyed_one("order-4711").await;
    let second = app.start_keyed_one("order-4711").await;
    let third = app.start_keyed_one("order-4711").await;
    let other = app.start_keyed_one("order-4712").await;

    // The first of each key arrives; the rest of order-4711 waits for the first.
    let heads = [receiver.next().await, receiver.next().await];
    let mut arrived: Vec<String> = heads.iter().map(delivered_id).collect();
    arrived.sort();
    let mut expected = vec![first.clone(), other.clone()];
    expected.sort();
    assert_eq!(arrived, expected);
    let head = heads.iter().find(|r| delivered_id(r) == first).unwrap();
    app.status_until(&first, is("ACKNOWLEDGED")).await;
    let waiting = app.status(&second).await;
    assert_eq!(waiting["status"], "PENDING");
    assert_eq!(waiting["attempts"], json!([]), "{waiting}");

    // Each completion lets the next of the key go, and only it.
    let mut secret = head.body["_metadata"]["secret"].clone();
    for (done, next) in [(&first, &second), (&second, &third)] {
        let response = app
            .callback(done, &json!({"secret": secret, "output": approval()}))
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let got = receiver.next().await;
        assert_eq!(&delivered_id(&got), next);
        secret = got.body["_metadata"]["secret"].clone();
    }
    assert!(receiver.drain().is_empty(), "nothing else was sent");
    app.status_until(&third, is("ACKNOWLEDGED")).await;
}

#[tokio::test]
async fn an_ordering_key_of_the_wrong_type_or_length_is_a_400_naming_it() {
    let app = spawn_app().await;
    for key in [
        json!(""),
        json!("k".repeat(256)),
        json!(42),
        json!({"k": 1}),
        json!("a\u{0}b"),
    ] {
        let response = app.start_ordered(&key).await;
        expect_error(response, StatusCode::BAD_REQUEST, "orderingKey").await;
    }
}
