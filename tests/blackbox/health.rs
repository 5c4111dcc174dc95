//! Endpoint health (extension) through the whole app, with real receivers: a 410 disables the
//! subscription, consecutive failures open its circuit (held deliveries spend no attempt), a
//! probe closes it, and enabling it again delivers what waited. On real time with short
//! settings (`--circuit-failures 1 --circuit-cool-down PT2S`), so that SQS's real delays work
//! the same on the AWS backend.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use triggerline::time::SystemClock;

use crate::delivery::{CREATED, is};
use crate::helpers::{TestApp, expect_error, spawn_app, spawn_app_with};
use crate::receiver::{Answer, Receiver};

fn subscription_path(id: &str) -> String {
    format!("/trigger-subscriptions/v1/{id}")
}

impl TestApp {
    /// The subscription as the list answers it (SailPoint has no GET of one subscription).
    async fn subscription(&self, id: &str) -> Value {
        self.all_subscriptions()
            .await
            .into_iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no subscription {id}"))
    }

    /// Polls the subscription until `done` holds (at most 20 s).
    async fn subscription_until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let subscription = self.subscription(id).await;
            if done(&subscription) {
                return subscription;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "subscription never got there: {subscription}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `Subscription Health Changed` transitions of `id` in `events.jsonl`, once there are
    /// `count` of them (the SQLite backend's outbox; on AWS they go to EventBridge, where
    /// `aws_only.rs` reads them). `None` on AWS.
    async fn health_transitions(&self, id: &str, count: usize) -> Option<Vec<Value>> {
        if crate::BACKEND == crate::helpers::Backend::Aws {
            return None;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let text =
                std::fs::read_to_string(self.data_dir.join("events.jsonl")).unwrap_or_default();
            let found: Vec<Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|e| {
                    e["detail-type"] == "Subscription Health Changed"
                        && e["detail"]["subscriptionId"] == id
                })
                .map(|e| e["detail"].clone())
                .collect();
            if found.len() >= count {
                return Some(found);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {found:?} published"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn a_410_disables_the_subscription_with_a_reason_until_it_is_enabled_again() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Empty(410), Answer::Empty(200)]).await;
    let created = app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["health"]["circuit"], "CLOSED");
    assert_eq!(created["disabledReason"], Value::Null);

    let first = app.start_one(CREATED).await;
    receiver.next().await;
    let failed = app.status_until(&first, is("FAILED")).await;
    assert_eq!(failed["attempts"][0]["statusCode"], 410, "{failed}");
    let disabled = app.subscription_until(id, |s| s["enabled"] == false).await;
    assert_eq!(disabled["disabledReason"], "the receiver answered 410 Gone");
    let at = time(&disabled["disabledAt"]);
    assert!(at <= Utc::now() && at > Utc::now() - chrono::Duration::minutes(1));
    if let Some(events) = app.health_transitions(id, 1).await {
        assert_eq!(events[0]["transition"], "DISABLED");
        assert_eq!(events[0]["reason"], "the receiver answered 410 Gone");
        assert_eq!(events[0]["enabled"], false);
    }
    // Disabled: a start raises nothing for it.
    let response = app.start(CREATED, false).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["invocations"], json!([]), "{body}");

    // Enabled again (PATCH, as the SDK does): the reason goes, and deliveries resume.
    let response = app
        .patch(
            &subscription_path(id),
            &json!([{"op": "replace", "path": "/enabled", "value": true}]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let enabled: Value = response.json().await.unwrap();
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["disabledReason"], Value::Null);
    assert_eq!(enabled["disabledAt"], Value::Null);
    let again = app.start_one(CREATED).await;
    receiver.next().await;
    app.status_until(&again, is("COMPLETED")).await;
}

#[tokio::test]
async fn an_open_circuit_holds_deliveries_without_spending_attempts_until_a_probe_closes_it() {
    let app = spawn_app_with(
        |c| {
            c.circuit_failures = "1".into();
            c.circuit_cool_down = "PT2S".into();
        },
        Arc::new(SystemClock),
    )
    .await;
    let mut receiver = Receiver::start(vec![Answer::Empty(503), Answer::Empty(200)]).await;
    let created = app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let id = created["id"].as_str().unwrap();

    let first = app.start_one(CREATED).await;
    receiver.next().await;
    let open = app
        .subscription_until(id, |s| s["health"]["circuit"] == "OPEN")
        .await;
    assert_eq!(open["health"]["consecutiveFailures"], 1);
    assert_eq!(open["enabled"], true);
    let open_until = time(&open["health"]["openUntil"]);

    // Raised while the circuit is open: held until the cool-down ends, then sent as the probe
    // (or after it), never failed for it.
    let second = app.start_one(CREATED).await;
    let done = app.status_until(&second, is("COMPLETED")).await;
    let attempts = done["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(done["status"], "COMPLETED");
    let closed = app
        .subscription_until(id, |s| s["health"]["circuit"] == "CLOSED")
        .await;
    assert_eq!(closed["health"]["consecutiveFailures"], 0);
    assert!(time(&closed["health"]["changed"]) >= open_until);
    assert_eq!(attempts.len(), 1, "held, not retried: {done}");
    let started = time(&attempts[0]["startedAt"]);
    assert!(started >= open_until, "{started} < {open_until}");
    // The first invocation's retry goes through once the circuit is closed.
    app.status_until(&first, is("COMPLETED")).await;
    assert_eq!(
        receiver.drain().len(),
        2,
        "after the failure: one probe and one retry, nothing else"
    );
    if let Some(events) = app.health_transitions(id, 2).await {
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["transition"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["OPENED", "CLOSED"]);
        assert_eq!(events[0]["health"]["circuit"], "OPEN");
    }
}

#[tokio::test]
async fn health_is_read_only_and_the_settings_are_checked() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    let created = app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let id = created["id"].as_str().unwrap();
    // A PUT of what GET answered (health and all) is accepted; the health is not the
    // client's to set.
    let mut body = created.clone();
    body["health"] = json!({"circuit": "OPEN", "consecutiveFailures": 99});
    body["disabledReason"] = json!("made up");
    let response = app.put(&subscription_path(id), &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let put: Value = response.json().await.unwrap();
    assert_eq!(put["health"]["circuit"], "CLOSED");
    assert_eq!(put["health"]["consecutiveFailures"], 0);
    assert_eq!(put["disabledReason"], Value::Null);
    // A patch of the health is refused, naming the path.
    let response = app
        .patch(
            &subscription_path(id),
            &json!([{"op": "replace", "path": "/health", "value": {}}]),
        )
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "[0].path").await;

    for (flag, value) in [
        ("circuit_failures", "0"),
        ("circuit_failures", "1e9"),
        ("circuit_cool_down", "30"),
        ("circuit_cool_down", "P96000000D"),
        ("disable_after", "PT1M"),
    ] {
        let mut config = crate::helpers::config(std::path::Path::new("/nonexistent"));
        match flag {
            "circuit_failures" => config.circuit_failures = value.into(),
            "circuit_cool_down" => config.circuit_cool_down = value.into(),
            _ => config.disable_after = value.into(),
        }
        let error = config.health_policy().unwrap_err().to_string();
        let named = format!(
            "--{} (TRIGGERLINE_{})",
            flag.replace('_', "-"),
            flag.to_uppercase()
        );
        assert!(error.contains(&named), "{flag}={value}: {error}");
    }
}
