//! Auth headers, the SSRF guard, retention and replay.

use std::sync::Arc;

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use triggerline::time::ManualClock;
use triggerline::usecases::sweep::{Retention, purge};

use crate::delivery::{CREATED, is, status_codes};
use crate::helpers::{expect_error, http_subscription, spawn_app, spawn_app_with};
use crate::receiver::{Answer, Receiver};

#[tokio::test]
async fn deliveries_carry_the_subscriptions_bearer_or_basic_auth() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    let mut bearer = http_subscription(CREATED, &receiver.url, "SYNC");
    bearer["httpConfig"]["httpAuthenticationType"] = json!("BEARER_TOKEN");
    bearer["httpConfig"]["bearerTokenAuthConfig"] = json!({"bearerToken": "receiver-token"});
    app.create(&bearer).await;

    app.start_one(CREATED).await;
    let got = receiver.next().await;
    assert_eq!(got.headers["authorization"], "Bearer receiver-token");

    let id = app.all_subscriptions().await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/trigger-subscriptions/v1/{id}")).await;
    let mut basic = http_subscription(CREATED, &receiver.url, "SYNC");
    basic["httpConfig"]["httpAuthenticationType"] = json!("BASIC_AUTH");
    basic["httpConfig"]["basicAuthConfig"] = json!({"userName": "ann", "password": "pw"});
    app.create(&basic).await;
    app.start_one(CREATED).await;
    let got = receiver.next().await;
    assert_eq!(got.headers["authorization"], "Basic YW5uOnB3"); // base64("ann:pw")
}

#[tokio::test]
async fn with_private_targets_refused_a_loopback_subscriber_gets_nothing() {
    let app = spawn_app_with(
        |c| c.allow_private_targets = false,
        Arc::new(triggerline::time::SystemClock),
    )
    .await;
    let mut receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;

    let id = app.start_one(CREATED).await;

    let status = app.status_until(&id, is("FAILED")).await;
    let error = status["attempts"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("target refused"), "{error}");
    assert_eq!(
        status["attempts"].as_array().unwrap().len(),
        1,
        "a refused target is not retried"
    );
    assert!(receiver.drain().is_empty());
}

#[tokio::test]
async fn retention_purges_finished_invocations_after_their_window() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_with(|_| {}, clock.clone()).await;
    let ok = Receiver::start(vec![Answer::Empty(200)]).await;
    let refused = Receiver::start(vec![Answer::Empty(400)]).await;
    app.subscribe(CREATED, &ok.url, "SYNC").await;
    let succeeded = app.start_one(CREATED).await;
    app.status_until(&succeeded, is("COMPLETED")).await;
    let ids: Vec<Value> = app
        .all_subscriptions()
        .await
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    app.delete(&format!(
        "/trigger-subscriptions/v1/{}",
        ids[0].as_str().unwrap()
    ))
    .await;
    app.subscribe(CREATED, &refused.url, "SYNC").await;
    let failed = app.start_one(CREATED).await;
    app.status_until(&failed, is("FAILED")).await;
    let retention = Retention::default();

    clock.advance(Duration::hours(25));
    assert_eq!(
        purge(&*app.app.scans, &*app.app.delivery.clock, retention)
            .await
            .unwrap(),
        1
    );
    let missing = app
        .get(&format!("/trigger-invocations/v1/{succeeded}/status"))
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.status(&failed).await["status"],
        "FAILED",
        "failures stay 48 h"
    );

    clock.advance(Duration::hours(24));
    assert_eq!(
        purge(&*app.app.scans, &*app.app.delivery.clock, retention)
            .await
            .unwrap(),
        1
    );
    let gone = app
        .get(&format!("/trigger-invocations/v1/{failed}/status"))
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_failed_invocation_can_be_replayed() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Empty(404)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let id = app.start_one(CREATED).await;
    receiver.next().await;
    app.status_until(&id, is("FAILED")).await;
    receiver.answer(vec![Answer::Empty(200)]);

    let response = app
        .post(&format!("/trigger-invocations/v1/{id}/retry"), &json!({}))
        .await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    receiver.next().await;
    let status = app.status_until(&id, is("COMPLETED")).await;
    assert_eq!(status_codes(&status), [json!(404), json!(200)]);
    let again = app
        .post(&format!("/trigger-invocations/v1/{id}/retry"), &json!({}))
        .await;
    expect_error(again, StatusCode::BAD_REQUEST, "id").await;
}
