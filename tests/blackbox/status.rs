//! The invocation status list and detail over invocations written through the store port
//! (the delivery issue adds the endpoints that create them).

use chrono::{Duration, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use triggerline::model::{DispatchMode, Invocation, InvocationState, InvocationType, TriggerType};
use triggerline::ports::Transition;

use crate::helpers::{expect_error, spawn_app};

fn invocation(id: &str, trigger_id: &str, subscription: (&str, &str), minute: i64) -> Invocation {
    let trigger_type = if trigger_id == "idn:access-request-pre-approval" {
        TriggerType::RequestResponse
    } else {
        TriggerType::FireAndForget
    };
    let created = Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap() + Duration::minutes(minute);
    Invocation {
        heartbeat: None,
        id: id.into(),
        trigger_id: trigger_id.into(),
        trigger_type,
        subscription_id: subscription.0.into(),
        subscription_name: subscription.1.into(),
        invocation_type: InvocationType::RealTime,
        response_mode: (trigger_type == TriggerType::RequestResponse)
            .then_some(DispatchMode::Async),
        state: InvocationState::Pending,
        created,
        completed: None,
        deadline: Some(created + Duration::hours(1)),
        input: json!({"n": minute}).into(),
        content_json: json!({"workflowId": 1234}).into(),
        output: None,
        error: None,
        ordering_key: None,
        secret_hash: "hash".into(),
        attempts: vec![],
        trace: None,
    }
}

/// Invocations dated in the future, so that the deadline sweep leaves them open.
async fn seeded() -> crate::helpers::TestApp {
    let app = spawn_app().await;
    app.app
        .invocations
        .create_all(&[
            invocation("i-1", "idn:identity-created", ("s-1", "beta"), 1),
            invocation(
                "i-2",
                "idn:access-request-pre-approval",
                ("s-2", "alpha"),
                2,
            ),
            invocation("i-3", "idn:identity-created", ("s-1", "beta"), 3),
        ])
        .await
        .unwrap();
    app.app
        .invocations
        .transition(
            "i-2",
            &[InvocationState::Pending],
            &Transition {
                to: InvocationState::Completed,
                completed: Some(Utc.with_ymd_and_hms(2030, 1, 1, 12, 30, 0).unwrap()),
                output: Some(json!({"approved": true, "comment": "ok", "approver": "AI"})),
                error: None,
            },
        )
        .await
        .unwrap();
    app
}

#[tokio::test]
async fn lists_newest_first_in_sailpoints_shape() {
    let app = seeded().await;

    let response = app.get("/trigger-invocations/v1/status?count=true").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-total-count"], "3");
    let statuses: Vec<Value> = response.json().await.unwrap();
    let ids: Vec<&str> = statuses.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["i-3", "i-2", "i-1"]);
    let completed = &statuses[1];
    assert_eq!(completed["type"], "REAL_TIME");
    assert_eq!(completed["created"], "2030-01-01T12:02:00.000Z");
    assert_eq!(completed["completed"], "2030-01-01T12:30:00.000Z");
    assert_eq!(completed["status"], "COMPLETED");
    assert_eq!(
        completed["startInvocationInput"]["triggerId"],
        "idn:access-request-pre-approval"
    );
    assert_eq!(
        completed["startInvocationInput"]["contentJson"]["workflowId"],
        1234
    );
    assert_eq!(
        completed["completeInvocationInput"]["output"]["approved"],
        true
    );
    assert_eq!(
        completed["completeInvocationInput"]["localizedError"],
        Value::Null
    );
    let open = &statuses[0];
    assert_eq!(open["completed"], Value::Null);
    assert_eq!(open["completeInvocationInput"], Value::Null);
    assert!(open["startInvocationInput"].is_object());
    assert!(open.get("attempts").is_none());
}

#[tokio::test]
async fn filters_and_sorts_the_list() {
    let app = seeded().await;

    let by_subscription: Vec<Value> = app
        .get("/trigger-invocations/v1/status?filters=subscriptionId%20eq%20%22s-1%22&sorters=created")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = by_subscription
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["i-1", "i-3"]);

    let by_name: Vec<Value> = app
        .get("/v2025/trigger-invocations/status?sorters=subscriptionName,-created&limit=2")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = by_name.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["i-2", "i-3"]);

    let by_trigger: Vec<Value> = app
        .get("/trigger-invocations/v1/status?filters=triggerId%20eq%20%22idn%3Aaccess-request-pre-approval%22")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_trigger.len(), 1);
}

#[tokio::test]
async fn detail_shows_status_deadline_and_attempts() {
    let app = seeded().await;

    let response = app.get("/trigger-invocations/v1/i-1/status").await;

    assert_eq!(response.status(), StatusCode::OK);
    let detail: Value = response.json().await.unwrap();
    assert_eq!(detail["status"], "PENDING");
    assert_eq!(detail["deadline"], "2030-01-01T13:01:00.000Z");
    assert_eq!(detail["attempts"], json!([]));
    expect_error(
        app.get("/trigger-invocations/v1/nope/status").await,
        StatusCode::NOT_FOUND,
        "invocation nope",
    )
    .await; // Past DynamoDB's key limit: refused before any store read, on both backends alike.
    let huge = "x".repeat(10_000);
    for path in [
        format!("/trigger-invocations/v1/{huge}/status"),
        format!("/trigger-invocations/v1/{huge}/retry"),
    ] {
        let response = if path.ends_with("retry") {
            app.post(&path, &json!({})).await
        } else {
            app.get(&path).await
        };
        let text = expect_error(response, StatusCode::BAD_REQUEST, "id").await;
        assert!(!text.contains(&huge), "the id is not echoed");
    }
}
