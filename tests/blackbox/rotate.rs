//! Signing secret rotation (`POST /trigger-subscriptions/v1/{id}/rotate-secret`) through the
//! whole app: a real receiver checks every signature of `webhook-signature` against the secrets
//! the API gave out; the grace period ends on a manual clock.

use std::sync::Arc;

use base64::Engine;
use chrono::{Duration, Utc};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use triggerline::time::ManualClock;

use crate::delivery::CREATED;
use crate::helpers::{TestApp, expect_error, http_subscription, spawn_app, spawn_app_with};
use crate::receiver::{Answer, Received, Receiver};

fn rotate_path(id: &str) -> String {
    format!("/trigger-subscriptions/v1/{id}/rotate-secret")
}

/// The Standard Webhooks signature of `got` under `secret` (`whsec_<base64 key>`), computed
/// here from the specification.
fn expected_signature(got: &Received, secret: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let id = got.headers["webhook-id"].to_str().unwrap();
    let timestamp = got.headers["webhook-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&got.raw);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

fn signatures(got: &Received) -> Vec<String> {
    got.headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .map(str::to_owned)
        .collect()
}

fn secret_of(body: &Value) -> String {
    body["signingSecret"].as_str().unwrap().to_owned()
}

async fn rotate(app: &TestApp, id: &str, body: Option<&Value>) -> reqwest::Response {
    let request = app.request(Method::POST, &rotate_path(id));
    match body {
        Some(body) => request.json(body),
        None => request,
    }
    .send()
    .await
    .unwrap()
}

/// The subscription as the API lists it.
async fn listed(app: &TestApp, id: &str) -> Value {
    let response = app
        .request(Method::GET, "/trigger-subscriptions/v1")
        .query(&[("filters", format!("id eq \"{id}\""))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let list: Vec<Value> = response.json().await.unwrap();
    list.into_iter().next().unwrap()
}

#[tokio::test]
async fn after_a_rotation_deliveries_carry_both_signatures_until_the_grace_period_ends() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_with(|_| {}, clock.clone()).await;
    let mut receiver = Receiver::start(vec![Answer::Empty(204)]).await;
    let created = app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let id = created["id"].as_str().unwrap();
    let old = secret_of(&created);

    let response = rotate(&app, id, Some(&json!({"gracePeriod": "PT1H"}))).await;

    assert_eq!(response.status(), StatusCode::OK);
    let rotated: Value = response.json().await.unwrap();
    let new = secret_of(&rotated);
    assert!(new.starts_with("whsec_") && new != old, "{new}");
    // The subscription as the list shows it (no secret), plus the new secret this once.
    let mut without_secret = rotated.clone();
    without_secret["signingSecret"] = Value::Null;
    assert_eq!(listed(&app, id).await, without_secret);

    app.start_one(CREATED).await;
    let during = receiver.next().await;
    assert_eq!(
        signatures(&during),
        [
            expected_signature(&during, &new),
            expected_signature(&during, &old)
        ]
    );

    clock.advance(Duration::hours(1));
    app.start_one(CREATED).await;
    let after = receiver.next().await;
    assert_eq!(signatures(&after), [expected_signature(&after, &new)]);
}

#[tokio::test]
async fn a_rotation_without_a_body_or_with_pt0s_answers_a_new_secret_each_time() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Empty(204)]).await;
    let created = app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let id = created["id"].as_str().unwrap();

    // No body, `{}` and `null` all take the default grace period.
    let mut secrets = Vec::new();
    for body in [None, Some(json!({})), Some(Value::Null)] {
        let response = rotate(&app, id, body.as_ref()).await;
        assert_eq!(response.status(), StatusCode::OK, "{body:?}");
        secrets.push(secret_of(&response.json().await.unwrap()));
    }
    // The default grace period (a day) is running: the last two secrets sign.
    app.start_one(CREATED).await;
    let got = receiver.next().await;
    assert_eq!(
        signatures(&got),
        [
            expected_signature(&got, &secrets[2]),
            expected_signature(&got, &secrets[1])
        ]
    );

    // PT0S: the secret rotated out stops signing at once.
    let now = rotate(&app, id, Some(&json!({"gracePeriod": "PT0S"}))).await;
    assert_eq!(now.status(), StatusCode::OK);
    let last = secret_of(&now.json().await.unwrap());
    assert!(!secrets.contains(&last));
    app.start_one(CREATED).await;
    let got = receiver.next().await;
    assert_eq!(signatures(&got), [expected_signature(&got, &last)]);
}

#[tokio::test]
async fn bad_grace_periods_are_a_400_naming_the_field_and_change_nothing() {
    let app = spawn_app().await;
    let created = app
        .create(&http_subscription(CREATED, "https://a.test/hook", "SYNC"))
        .await;
    let id = created["id"].as_str().unwrap();
    let before = listed(&app, id).await;
    let huge = "P".to_owned() + &"1".repeat(100_000) + "D";

    for bad in [
        json!({"gracePeriod": 3600}),
        json!({"gracePeriod": true}),
        json!({"gracePeriod": ["PT1H"]}),
        json!({"gracePeriod": "P31D"}),
        json!({"gracePeriod": "PT721H"}),
        json!({"gracePeriod": "P1M"}),
        json!({"gracePeriod": "-PT1H"}),
        json!({"gracePeriod": "an hour"}),
        json!({"gracePeriod": ""}),
        json!({"gracePeriod": huge}),
    ] {
        let text = expect_error(
            rotate(&app, id, Some(&bad)).await,
            StatusCode::BAD_REQUEST,
            "gracePeriod",
        )
        .await;
        assert!(text.len() < 400, "{text}");
    }
    for bad_body in ["[]", "\"PT1H\"", "{"] {
        let response = app
            .request(Method::POST, &rotate_path(id))
            .header("Content-Type", "application/json")
            .body(bad_body)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "body").await;
    }
    assert_eq!(listed(&app, id).await, before);
}

#[tokio::test]
async fn rotating_an_unknown_subscription_is_a_404_and_needs_the_token() {
    let app = spawn_app().await;
    expect_error(
        rotate(&app, "6f1e0f8e-1c0b-4a44-9d3e-0d6f5b1f7a10", None).await,
        StatusCode::NOT_FOUND,
        "subscription",
    )
    .await;

    let created = app
        .create(&http_subscription(CREATED, "https://a.test/hook", "SYNC"))
        .await;
    let id = created["id"].as_str().unwrap();
    let url = format!("{}{}", app.base, rotate_path(id));
    let no_token = app.client.post(&url).send().await.unwrap();
    let wrong_token = app
        .client
        .post(&url)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    for response in [no_token, wrong_token] {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().is_some(), "{body}");
    }
    assert_eq!(listed(&app, id).await["signingSecret"], Value::Null);
}
