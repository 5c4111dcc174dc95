//! Retries, deadlines and delays, on a manual clock: the test moves time instead of waiting.

use std::sync::Arc;

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use triggerline::time::ManualClock;

use crate::delivery::{CREATED, PRE, approval, example, is, status_codes};
use crate::helpers::{TestApp, spawn_app_with};
use crate::receiver::{Answer, Receiver};

async fn app_on(clock: &Arc<ManualClock>) -> TestApp {
    spawn_app_with(|_| {}, clock.clone()).await
}

fn attempts(status: &Value) -> usize {
    status["attempts"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_receiver_failing_twice_then_succeeding_gets_three_attempts_on_the_schedule() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = app_on(&clock).await;
    let mut receiver = Receiver::start(vec![
        Answer::Empty(503),
        Answer::Empty(500),
        Answer::Empty(200),
    ])
    .await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let id = app.start_one(CREATED).await;
    receiver.next().await;
    app.status_until(&id, |s| attempts(s) == 1).await;

    clock.advance(Duration::seconds(7)); // first backoff: 5 s ± 20 %
    app.app.poke.notify_one();
    receiver.next().await;
    app.status_until(&id, |s| attempts(s) == 2).await;
    clock.advance(Duration::seconds(37)); // second backoff: 30 s ± 20 %
    app.app.poke.notify_one();
    receiver.next().await;

    let status = app.status_until(&id, is("COMPLETED")).await;
    assert_eq!(status_codes(&status), [json!(503), json!(500), json!(200)]);
    let started: Vec<_> = [0, 1, 2]
        .iter()
        .map(|i| status["attempts"][i]["startedAt"].clone())
        .collect();
    assert!(started[0] != started[1] && started[1] != started[2]);
}

#[tokio::test]
async fn an_unanswered_async_invocation_times_out_at_its_deadline() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = app_on(&clock).await;
    let mut receiver = Receiver::start(vec![Answer::Json(200, json!({}))]).await;
    let mut body = crate::helpers::http_subscription(PRE, &receiver.url, "ASYNC");
    body["responseDeadline"] = json!("PT5M");
    app.create(&body).await;
    let id = app.start_one(PRE).await;
    let secret = receiver.next().await.body["_metadata"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    app.status_until(&id, is("ACKNOWLEDGED")).await;

    clock.advance(Duration::minutes(6));

    let status = app.status_until(&id, is("TIMED_OUT")).await;
    assert!(status["completed"].is_string());
    let message = status["completeInvocationInput"]["localizedError"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("deadline"), "{message}");
    let late = app
        .callback(&id, &json!({"secret": secret, "output": approval()}))
        .await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_delayed_start_is_delivered_no_earlier_than_asked() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = app_on(&clock).await;
    let mut receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;

    let response = app
        .post(
            "/trigger-invocations/v1/start",
            &json!({"triggerId": CREATED, "input": example(CREATED), "delay": "PT10M"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    let id = body["invocations"][0]["id"].as_str().unwrap().to_owned();

    // Nine minutes on, the worker looks at the queue and finds nothing due.
    clock.advance(Duration::minutes(9));
    app.app.poke.notify_one();
    let due = app.app.work.next_due().await.unwrap().unwrap();
    assert!(due > clock_now(&clock), "not due yet");
    assert!(receiver.drain().is_empty());
    assert_eq!(attempts(&app.status(&id).await), 0);

    clock.advance(Duration::minutes(2));
    app.app.poke.notify_one();
    receiver.next().await;
    app.status_until(&id, is("COMPLETED")).await;
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<Utc> {
    use triggerline::time::Clock;
    clock.now()
}
