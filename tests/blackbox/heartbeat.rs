//! Heartbeats (extension): an ASYNC invocation of a subscription with `heartbeatTimeout` stays
//! open only while its subscriber posts `…/{id}/heartbeat`. On a manual clock, with the deadline
//! sweep run by the test instead of its timer, so nothing waits for real time.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use triggerline::time::{Clock, ManualClock};
use triggerline::usecases::sweep::Sweep;

use crate::delivery::{PRE, approval, is};
use crate::helpers::{TestApp, expect_error, http_subscription, spawn_app, spawn_app_with};
use crate::receiver::{Answer, Receiver};

/// An app on a manual clock, an ASYNC subscription with `heartbeatTimeout` PT30S and a deadline
/// of an hour, and one invocation of it acknowledged: its id and secret.
async fn acknowledged(clock: &Arc<ManualClock>) -> (TestApp, Receiver, String, String) {
    let app = spawn_app_with(|_| {}, clock.clone()).await;
    let mut receiver = Receiver::start(vec![Answer::Json(200, json!({}))]).await;
    let mut body = http_subscription(PRE, &receiver.url, "ASYNC");
    body["heartbeatTimeout"] = json!("PT30S");
    let created = app.create(&body).await;
    assert_eq!(created["heartbeatTimeout"], "PT30S");
    let id = app.start_one(PRE).await;
    let secret = receiver.next().await.body["_metadata"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    app.status_until(&id, |s| {
        s["status"] == "ACKNOWLEDGED" && s["heartbeatDue"].is_string()
    })
    .await;
    (app, receiver, id, secret)
}

impl TestApp {
    async fn heartbeat(&self, id: &str, body: &Value) -> reqwest::Response {
        // No Authorization header, as for the completion: the secret is the credential.
        self.client
            .post(format!(
                "{}/trigger-invocations/v1/{id}/heartbeat",
                self.base
            ))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Runs the deadline sweep once, as its timer (or the sweep Lambda) would.
    async fn sweep(&self) {
        Sweep {
            invocations: self.app.invocations.clone(),
            clock: self.app.delivery.clock.clone(),
            notifier: self.app.delivery.notifier.clone(),
        }
        .time_out_overdue()
        .await
        .unwrap();
    }
}

/// A manual clock at now, to the millisecond the API shows.
fn manual_clock() -> Arc<ManualClock> {
    use chrono::SubsecRound;
    Arc::new(ManualClock::new(Utc::now().trunc_subsecs(3)))
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn a_heartbeat_is_accepted_shown_in_the_status_and_keeps_the_invocation_open() {
    let clock = manual_clock();
    let (app, _receiver, id, secret) = acknowledged(&clock).await;
    let status = app.status(&id).await;
    assert_eq!(status["heartbeatTimeout"], "PT30S");
    assert!(status.get("lastHeartbeat").is_none(), "{status}");
    clock.advance(Duration::seconds(20));

    let response = app.heartbeat(&id, &json!({"secret": secret})).await;

    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    let now = clock.now();
    assert_eq!(answer["id"], json!(id));
    assert_eq!(
        time(&answer["heartbeatDue"]),
        now + Duration::seconds(30),
        "{answer}"
    );
    let status = app.status(&id).await;
    assert_eq!(status["status"], "ACKNOWLEDGED");
    assert_eq!(time(&status["lastHeartbeat"]), now, "{status}");
    assert_eq!(status["heartbeatDue"], answer["heartbeatDue"]);
    assert_eq!(status["deadline"], answer["deadline"]);

    // Past the first due time, within the one the heartbeat set: still open.
    clock.advance(Duration::seconds(20));
    app.sweep().await;
    assert_eq!(app.status(&id).await["status"], "ACKNOWLEDGED");
    let done = app
        .callback(&id, &json!({"secret": secret, "output": approval()}))
        .await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.status(&id).await["status"], "COMPLETED");
}

#[tokio::test]
async fn a_missed_heartbeat_times_the_invocation_out_before_its_deadline() {
    let clock = manual_clock();
    let (app, _receiver, id, secret) = acknowledged(&clock).await;

    clock.advance(Duration::seconds(31));
    app.sweep().await;

    let status = app.status_until(&id, is("TIMED_OUT")).await;
    assert_eq!(
        status["completeInvocationInput"]["localizedError"]["message"],
        "no heartbeat for PT30S"
    );
    assert!(time(&status["completed"]) < time(&status["deadline"]));
    let late = app.heartbeat(&id, &json!({"secret": secret})).await;
    expect_error(late, StatusCode::BAD_REQUEST, "invocation").await;
    let late = app
        .callback(&id, &json!({"secret": secret, "output": approval()}))
        .await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_heartbeat_after_the_completion_is_a_400() {
    let clock = manual_clock();
    let (app, _receiver, id, secret) = acknowledged(&clock).await;
    let done = app
        .callback(&id, &json!({"secret": secret, "output": approval()}))
        .await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);

    let late = app.heartbeat(&id, &json!({"secret": secret})).await;

    let text = expect_error(late, StatusCode::BAD_REQUEST, "invocation").await;
    assert!(text.contains("COMPLETED"), "{text}");
}

#[tokio::test]
async fn a_wrong_secret_and_an_unknown_id_get_the_same_401() {
    let clock = manual_clock();
    let (app, _receiver, id, _) = acknowledged(&clock).await;
    let before = app.status(&id).await;

    let wrong = app.heartbeat(&id, &json!({"secret": "guess"})).await;
    let unknown = app
        .heartbeat("no-such-id", &json!({"secret": "guess"}))
        .await;

    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown);
    assert_eq!(app.status(&id).await, before, "nothing changed");
}

#[tokio::test]
async fn a_heartbeat_body_of_the_wrong_shape_is_a_400_naming_the_field() {
    let clock = manual_clock();
    let (app, _receiver, id, _) = acknowledged(&clock).await;

    let response = app.heartbeat(&id, &json!({"secret": 42})).await;
    expect_error(response, StatusCode::BAD_REQUEST, "secret").await;
    let response = app.heartbeat(&id, &json!({})).await;
    expect_error(response, StatusCode::BAD_REQUEST, "secret").await;
}

#[tokio::test]
async fn heartbeat_timeout_is_validated_on_create_put_and_patch() {
    let app = spawn_app().await;
    let mut body = http_subscription(PRE, "http://127.0.0.1:9/hook", "ASYNC");
    let created = app.create(&body).await;
    assert_eq!(
        created["heartbeatTimeout"],
        Value::Null,
        "null when not set"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let bad = [
        (json!("PT1H"), "shorter than responseDeadline"),
        (json!("PT2H"), "shorter than responseDeadline"),
        (json!("PT0.5S"), "PT1S"),
        (json!("soon"), "ISO-8601"),
        (json!("P96000000D"), "P365D"),
        (json!("PT4294967295H"), "P365D"),
        (json!(30), ""),
        (json!({"seconds": 30}), ""),
    ];
    for (value, says) in &bad {
        body["heartbeatTimeout"] = value.clone();
        let response = app.post("/trigger-subscriptions/v1", &body).await;
        let text = expect_error(response, StatusCode::BAD_REQUEST, "heartbeatTimeout").await;
        assert!(text.contains(says), "{value}: {text}");

        let response = app
            .put(&format!("/trigger-subscriptions/v1/{id}"), &body)
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "heartbeatTimeout").await;

        let response = app
            .patch(
                &format!("/trigger-subscriptions/v1/{id}"),
                &json!([{"op": "add", "path": "/heartbeatTimeout", "value": value}]),
            )
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "heartbeatTimeout").await;
    }
    // A patch that shortens the deadline below the timeout is refused the same way.
    let response = app
        .patch(
            &format!("/trigger-subscriptions/v1/{id}"),
            &json!([{"op": "replace", "path": "/heartbeatTimeout", "value": "PT10M"}]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .patch(
            &format!("/trigger-subscriptions/v1/{id}"),
            &json!([{"op": "replace", "path": "/responseDeadline", "value": "PT5M"}]),
        )
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "heartbeatTimeout").await;
    assert_eq!(
        app.all_subscriptions().await.len(),
        1,
        "no bad create stored"
    );
    assert_eq!(
        app.all_subscriptions().await[0]["heartbeatTimeout"],
        "PT10M"
    );

    // PUT without it takes the default, like the other optional fields: none.
    body.as_object_mut().unwrap().remove("heartbeatTimeout");
    let response = app
        .put(&format!("/trigger-subscriptions/v1/{id}"), &body)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let put: Value = response.json().await.unwrap();
    assert_eq!(put["heartbeatTimeout"], Value::Null);
}
