//! Times a request sets (`delay`, `timestamp`, `responseDeadline`) are held to one year ahead:
//! past it, a 400 naming the field, and nothing stored. Before the bound, a `timestamp` sent in
//! microseconds was accepted and its row stopped every claim and sweep after it, and a huge
//! `delay` or `responseDeadline` panicked the request.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::{CREATED, PRE, example};
use crate::helpers::{TestApp, expect_error, http_subscription, spawn_app};

async fn start(app: &TestApp, trigger: &str, extra: Value) -> reqwest::Response {
    let mut body = json!({"triggerId": trigger, "input": example(trigger)});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.post("/trigger-invocations/v1/start", &body).await
}

async fn invocation_count(app: &TestApp) -> usize {
    let response = app.get("/trigger-invocations/v1/status").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the status list still answers"
    );
    response.json::<Vec<Value>>().await.unwrap().len()
}

/// An app with one subscription to identity-created, at an address nothing answers on.
async fn subscribed_to_created() -> TestApp {
    let app = spawn_app().await;
    app.create(&http_subscription(
        CREATED,
        "http://127.0.0.1:9/hook",
        "SYNC",
    ))
    .await;
    app
}

#[tokio::test]
async fn a_timestamp_in_microseconds_is_a_400_naming_it_and_the_service_goes_on() {
    let app = subscribed_to_created().await;

    let now_ms = chrono::Utc::now().timestamp_millis();
    // Microseconds, beyond any bound, a year and a day ahead, and a future time in seconds.
    let seconds_ahead = now_ms / 1000 + 600;
    for bad in [
        now_ms * 1000,
        i64::MAX,
        now_ms + 366 * 86_400_000,
        seconds_ahead,
    ] {
        let response = start(&app, CREATED, json!({"timestamp": bad})).await;
        let text = expect_error(response, StatusCode::BAD_REQUEST, "timestamp").await;
        assert!(text.contains("epoch milliseconds"), "{text}");
    }
    assert_eq!(invocation_count(&app).await, 0, "nothing was stored");

    // In range, and in the past (even before 1970): accepted, due now.
    for good in [now_ms + 60_000, 1, -5_000_000_000_000_000, i64::MIN] {
        let response = start(&app, CREATED, json!({"timestamp": good})).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{good}");
    }
    assert_eq!(invocation_count(&app).await, 4);
}

#[tokio::test]
async fn an_integer_beyond_64_bits_in_an_input_is_a_400_naming_it_not_rounded() {
    let app = subscribed_to_created().await;
    let mut input = example(CREATED);
    input["identity"]["id"] = json!(0);
    // serde_json's `json!` cannot hold the number either: written into the text.
    let body = json!({"triggerId": CREATED, "input": input})
        .to_string()
        .replace(r#""id":0"#, r#""id":123456789012345678901234567890"#);

    let response = app
        .request(reqwest::Method::POST, "/trigger-invocations/v1/start")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();

    let text = expect_error(response, StatusCode::BAD_REQUEST, "input.identity.id").await;
    assert!(text.contains("beyond 64 bits"), "{text}");
    assert_eq!(invocation_count(&app).await, 0, "nothing was stored");
}

#[tokio::test]
async fn a_delay_over_a_year_is_a_400_naming_it_and_a_zero_delay_is_now() {
    let app = subscribed_to_created().await;

    for bad in ["P96000000D", "P366D", "PT4294967295H", "P4294967295W"] {
        let response = start(&app, CREATED, json!({"delay": bad})).await;
        let text = expect_error(response, StatusCode::BAD_REQUEST, "delay").await;
        assert!(text.contains("P365D"), "{bad}: {text}");
    }
    assert_eq!(invocation_count(&app).await, 0);
    let response = start(&app, CREATED, json!({"delay": "P365D"})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // A zero delay is "now", as a timestamp in the past is; a negative one is no duration.
    for now in ["PT0S", "P0D"] {
        let response = start(&app, CREATED, json!({"delay": now})).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{now}");
    }
    assert_eq!(invocation_count(&app).await, 3);
    for bad in ["-PT1S", "PT", "P"] {
        let response = start(&app, CREATED, json!({"delay": bad})).await;
        expect_error(response, StatusCode::BAD_REQUEST, "delay").await;
    }
    assert_eq!(invocation_count(&app).await, 3);
}

#[tokio::test]
async fn a_response_deadline_over_a_year_is_a_400_on_create_put_and_patch() {
    let app = spawn_app().await;
    let mut body = http_subscription(PRE, "http://127.0.0.1:9/hook", "SYNC");
    body["responseDeadline"] = json!("P96000000D");
    let response = app.post("/trigger-subscriptions/v1", &body).await;
    expect_error(response, StatusCode::BAD_REQUEST, "responseDeadline").await;
    assert!(app.all_subscriptions().await.is_empty());

    body["responseDeadline"] = json!("P365D");
    let created = app.create(&body).await;
    let id = created["id"].as_str().unwrap();
    body["responseDeadline"] = json!("P366D");
    let response = app
        .put(&format!("/trigger-subscriptions/v1/{id}"), &body)
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "responseDeadline").await;
    let response = app
        .patch(
            &format!("/trigger-subscriptions/v1/{id}"),
            &json!([{"op": "replace", "path": "/responseDeadline", "value": "P96000000D"}]),
        )
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "responseDeadline").await;
    assert_eq!(
        app.all_subscriptions().await[0]["responseDeadline"],
        "P365D"
    );

    // The longest deadline and the longest delay together still start.
    let response = start(&app, PRE, json!({"delay": "P365D"})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn any_whole_offset_is_a_page_never_a_503() {
    let app = spawn_app().await;
    for path in [
        "/triggers/v1",
        "/trigger-subscriptions/v1",
        "/trigger-invocations/v1/status",
    ] {
        for offset in [
            "2000",
            "9223372036854775807",
            "9223372036854775808",
            "99999999999999999999999",
        ] {
            let response = app.get(&format!("{path}?offset={offset}&count=true")).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}?offset={offset}");
            let items: Vec<Value> = response.json().await.unwrap();
            assert!(items.is_empty(), "{path}?offset={offset}");
        }
        let response = app.get(&format!("{path}?offset=-1")).await;
        expect_error(response, StatusCode::BAD_REQUEST, "offset").await;
    }
}

#[tokio::test]
async fn a_stored_deadline_longer_than_the_bound_is_held_to_it_instead_of_failing_starts() {
    if crate::BACKEND != crate::helpers::Backend::Sqlite {
        return; // the row is edited in the SQLite file
    }
    let app = spawn_app().await;
    let created = app
        .create(&http_subscription(PRE, "http://127.0.0.1:9/hook", "ASYNC"))
        .await;
    // Saved by a build that did not bound responseDeadline: every start of its trigger used to
    // panic adding it to now.
    let conn = rusqlite::Connection::open(app.data_dir.join("triggerline.db")).unwrap();
    let changed = conn
        .execute(
            "UPDATE subscriptions SET body = json_set(body, '$.responseDeadline', 'P96000000D')
             WHERE id = ?1",
            [created["id"].as_str().unwrap()],
        )
        .unwrap();
    assert_eq!(changed, 1);

    let response = start(&app, PRE, json!({})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    let status = app
        .get(&format!(
            "/trigger-invocations/v1/{}/status",
            body["invocations"][0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status.status(), StatusCode::OK);
    let status: Value = status.json().await.unwrap();
    let deadline =
        chrono::DateTime::parse_from_rfc3339(status["deadline"].as_str().unwrap()).unwrap();
    let ahead = deadline.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(ahead <= chrono::Duration::days(365), "{deadline}");
    assert!(ahead > chrono::Duration::days(364), "{deadline}");
}
