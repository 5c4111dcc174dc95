//! The callback's errors and its one-winner guarantee.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::{PRE, approval, is};
use crate::helpers::{TestApp, expect_error, spawn_app};
use crate::receiver::{Answer, Receiver};

/// An acknowledged ASYNC invocation and its secret.
async fn acknowledged(app: &TestApp) -> (String, String, Receiver) {
    let mut receiver = Receiver::start(vec![Answer::Json(200, json!({}))]).await;
    app.subscribe(PRE, &receiver.url, "ASYNC").await;
    let id = app.start_one(PRE).await;
    let got = receiver.next().await;
    app.status_until(&id, is("ACKNOWLEDGED")).await;
    let secret = got.body["_metadata"]["secret"].as_str().unwrap().to_owned();
    (id, secret, receiver)
}

#[tokio::test]
async fn wrong_secret_and_unknown_id_get_the_same_401() {
    let app = spawn_app().await;
    let (id, _, _r) = acknowledged(&app).await;

    let wrong = app
        .callback(&id, &json!({"secret": "guess", "output": approval()}))
        .await;
    let unknown = app
        .callback(
            "no-such-id",
            &json!({"secret": "guess", "output": approval()}),
        )
        .await;

    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown);
    assert_eq!(app.status(&id).await["status"], "ACKNOWLEDGED");
}

#[tokio::test]
async fn an_invalid_output_is_refused_and_the_invocation_stays_open() {
    let app = spawn_app().await;
    let (id, secret, _r) = acknowledged(&app).await;

    let response = app
        .callback(&id, &json!({"secret": secret, "output": {"approved": 1}}))
        .await;

    expect_error(response, StatusCode::BAD_REQUEST, "output").await;
    assert_eq!(app.status(&id).await["status"], "ACKNOWLEDGED");
}

#[tokio::test]
async fn an_error_completes_the_invocation_as_failed() {
    let app = spawn_app().await;
    let (id, secret, _r) = acknowledged(&app).await;

    let response = app
        .callback(
            &id,
            &json!({"secret": secret, "output": {}, "error": "approver system down"}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let status = app.status(&id).await;
    assert_eq!(status["status"], "FAILED");
    assert_eq!(
        status["completeInvocationInput"]["localizedError"]["message"],
        "approver system down"
    );
    assert_eq!(
        status["completeInvocationInput"]["localizedError"]["locale"],
        "en-US"
    );
}

#[tokio::test]
async fn the_sdks_authorization_header_is_ignored() {
    let app = spawn_app().await;
    let (id, secret, _r) = acknowledged(&app).await;

    let response = app
        .client
        .post(format!("{}/trigger-invocations/v1/{id}/complete", app.base))
        .bearer_auth("whatever-the-sdk-has")
        .json(&json!({"secret": secret, "output": approval()}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn of_30_concurrent_completions_exactly_one_wins() {
    let app = spawn_app().await;
    let (id, secret, _r) = acknowledged(&app).await;
    let url = format!("{}/trigger-invocations/v1/{id}/complete", app.base);

    let mut racers = Vec::new();
    for n in 0..30 {
        let request = app.client.post(&url).json(&json!({
            "secret": secret,
            "output": {"approved": true, "comment": format!("racer {n}"), "approver": "x"}
        }));
        racers.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    let mut statuses = Vec::new();
    for r in racers {
        statuses.push(r.await.unwrap());
    }

    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::NO_CONTENT)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::BAD_REQUEST)
            .count(),
        29
    );
    let status = app.status(&id).await;
    assert_eq!(status["status"], "COMPLETED");
}

#[tokio::test]
async fn a_synchronous_start_slower_than_the_wait_answers_542_and_goes_on() {
    let app = crate::helpers::spawn_app_with(
        |c| c.sync_wait = triggerline::duration::IsoDuration::parse("w", "PT0.3S").unwrap(),
        std::sync::Arc::new(triggerline::time::SystemClock),
    )
    .await;
    let mut receiver = Receiver::start(vec![Answer::Json(200, json!({}))]).await;
    app.subscribe(PRE, &receiver.url, "ASYNC").await;

    let response = app.start(PRE, true).await;

    assert_eq!(response.status().as_u16(), 542);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Invocation has been started but has not completed."
    );
    assert_eq!(body["triggerId"], PRE);
    assert!(body["dateSubmitted"].is_string());
    let id = body["invocations"][0]["id"].as_str().unwrap().to_owned();
    // Still open: acknowledged, or (on a loaded machine, within 0.3 s) not yet delivered.
    let status = &body["invocations"][0]["status"];
    assert!(status == "ACKNOWLEDGED" || status == "PENDING", "{body}");
    let secret = receiver.next().await.body["_metadata"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = app
        .callback(&id, &json!({"secret": secret, "output": approval()}))
        .await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_sync_subscriber_slower_than_the_wait_gets_a_542_at_the_wait_not_at_its_timeout() {
    let app = crate::helpers::spawn_app_with(
        |c| c.sync_wait = triggerline::duration::IsoDuration::parse("w", "PT0.3S").unwrap(),
        std::sync::Arc::new(triggerline::time::SystemClock),
    )
    .await;
    // Never answers: before the wait limit held on this path, the request stayed until the
    // 10 s attempt ended and then answered with its failure.
    let mut receiver = Receiver::start(vec![Answer::Hang]).await;
    app.subscribe(PRE, &receiver.url, "SYNC").await;

    let response = app.start(PRE, true).await;

    assert_eq!(response.status().as_u16(), 542);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["invocations"][0]["status"], "PENDING");
    let delivered = receiver.next().await;
    assert_eq!(
        delivered.body["_metadata"]["invocationId"], body["invocations"][0]["id"],
        "and the delivery goes on behind the answer"
    );
}

#[tokio::test]
async fn after_a_542_the_producer_waits_for_the_outcome_at_its_status_url() {
    let app = crate::helpers::spawn_app_with(
        |c| c.sync_wait = triggerline::duration::IsoDuration::parse("w", "PT1S").unwrap(),
        std::sync::Arc::new(triggerline::time::SystemClock),
    )
    .await;
    let mut receiver = Receiver::start(vec![Answer::Json(200, json!({}))]).await;
    app.subscribe(PRE, &receiver.url, "ASYNC").await;

    let response = app.start(PRE, true).await;

    assert_eq!(response.status().as_u16(), 542);
    let body: Value = response.json().await.unwrap();
    let id = body["invocations"][0]["id"].as_str().unwrap().to_owned();
    let status_url = body["invocations"][0]["statusUrl"].as_str().unwrap();
    assert_eq!(
        status_url,
        format!("{}/trigger-invocations/v1/{id}/status", app.base)
    );
    let secret = receiver.next().await.body["_metadata"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    // The producer re-attaches (waiting as long as the limit allows); the subscriber answers.
    let waiting = app
        .client
        .get(format!("{status_url}?wait=PT1S"))
        .bearer_auth(crate::helpers::TOKEN)
        .send();
    let waiting = tokio::spawn(waiting);
    let done = app
        .callback(&id, &json!({"secret": secret, "output": approval()}))
        .await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    let read = waiting.await.unwrap().unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let read: Value = read.json().await.unwrap();
    assert_eq!(read["status"], "COMPLETED");
    assert_eq!(read["completeInvocationInput"]["output"], approval());
}

#[tokio::test]
async fn a_status_wait_ends_with_the_current_state_and_is_bounded_by_the_wait_limit() {
    let app = crate::helpers::spawn_app_with(
        |c| c.sync_wait = triggerline::duration::IsoDuration::parse("w", "PT1S").unwrap(),
        std::sync::Arc::new(triggerline::time::SystemClock),
    )
    .await;
    let (id, _, _r) = acknowledged(&app).await;

    let read = app
        .get(&format!("/trigger-invocations/v1/{id}/status?wait=PT0.1S"))
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(
        read.json::<Value>().await.unwrap()["status"],
        "ACKNOWLEDGED"
    );

    for wait in ["PT2S", "P1D", "PT0S", "10", "PT9999999999S", "%00"] {
        let read = app
            .get(&format!("/trigger-invocations/v1/{id}/status?wait={wait}"))
            .await;
        expect_error(read, StatusCode::BAD_REQUEST, "wait").await;
    }
    let unknown = app
        .get("/trigger-invocations/v1/no-such-id/status?wait=PT0.1S")
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
