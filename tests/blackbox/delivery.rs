//! Delivery end to end: a real receiver per test on 127.0.0.1, one test per row of api.md's
//! subscriber table and per failure kind.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use triggerline::catalog::Catalog;

use crate::helpers::{TestApp, http_subscription, spawn_app};
use crate::receiver::{Answer, Receiver};

pub const PRE: &str = "idn:access-request-pre-approval";
pub const CREATED: &str = "idn:identity-created";

pub fn example(trigger: &str) -> Value {
    Catalog::builtin()
        .get(trigger)
        .unwrap()
        .trigger
        .example_input
        .clone()
}

pub fn approval() -> Value {
    json!({"approved": true, "comment": "looks fine", "approver": "policy-bot"})
}

impl TestApp {
    pub async fn subscribe(&self, trigger: &str, url: &str, mode: &str) -> Value {
        self.create(&http_subscription(trigger, url, mode)).await
    }

    pub async fn start(&self, trigger: &str, synchronous: bool) -> reqwest::Response {
        self.post(
            "/trigger-invocations/v1/start",
            &json!({"triggerId": trigger, "input": example(trigger), "isSynchronous": synchronous}),
        )
        .await
    }

    /// Starts asynchronously and returns the one invocation id.
    pub async fn start_one(&self, trigger: &str) -> String {
        let response = self.start(trigger, false).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        body["invocations"][0]["id"].as_str().unwrap().to_owned()
    }

    pub async fn status(&self, id: &str) -> Value {
        let response = self
            .get(&format!("/trigger-invocations/v1/{id}/status"))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Polls the invocation's status until `done` holds (at most 20 s).
    pub async fn status_until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.status_within(id, done, Duration::from_secs(20)).await
    }

    /// Polls the invocation's status until `done` holds, at most `limit`.
    pub async fn status_within(
        &self,
        id: &str,
        done: impl Fn(&Value) -> bool,
        limit: Duration,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let status = self.status(id).await;
            if done(&status) {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gave up waiting: {status}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn callback(&self, id: &str, body: &Value) -> reqwest::Response {
        // No Authorization header: receivers written from SailPoint's docs send none.
        self.client
            .post(format!(
                "{}/trigger-invocations/v1/{id}/complete",
                self.base
            ))
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// The status codes of an invocation's attempts, in order.
pub fn status_codes(status: &Value) -> Vec<Value> {
    status["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].clone())
        .collect()
}

pub fn is(state: &'static str) -> impl Fn(&Value) -> bool {
    move |s| s["status"] == state
}

#[tokio::test]
async fn fire_and_forget_is_delivered_signed_with_metadata_and_completed() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Empty(204)]).await;
    let subscription = app.subscribe(CREATED, &receiver.url, "SYNC").await;

    let id = app.start_one(CREATED).await;
    let got = receiver.next().await;

    assert_eq!(got.body["_metadata"]["triggerId"], CREATED);
    assert_eq!(got.body["_metadata"]["triggerType"], "fireAndForget");
    assert_eq!(got.body["_metadata"]["invocationId"], id.as_str());
    assert!(got.body["_metadata"].get("secret").is_none());
    assert_eq!(got.body["identity"], example(CREATED)["identity"]);
    // Standard Webhooks, recomputed here with the signing secret from the 201.
    let msg_id = got.headers["webhook-id"].to_str().unwrap();
    let timestamp = got.headers["webhook-timestamp"].to_str().unwrap();
    let secret = subscription["signingSecret"]
        .as_str()
        .unwrap()
        .trim_start_matches("whsec_");
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret)
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(&got.raw);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(
        got.headers["webhook-signature"].to_str().unwrap(),
        format!("v1,{expected}")
    );
    assert_eq!(msg_id, id);

    let status = app.status_until(&id, is("COMPLETED")).await;
    assert!(status["completed"].is_string());
    assert_eq!(status["completeInvocationInput"], Value::Null);
    assert_eq!(status["attempts"][0]["statusCode"], 204);
    assert_eq!(status["attempts"][0]["target"], "127.0.0.1");
}

#[tokio::test]
async fn sync_answer_with_output_completes_a_synchronous_start() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Json(200, approval())]).await;
    app.subscribe(PRE, &receiver.url, "SYNC").await;

    let response = app.start(PRE, true).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["invocations"][0]["status"], "COMPLETED");
    assert_eq!(body["invocations"][0]["output"], approval());
    // A finished invocation carries both keys (api.md), `error` null when it succeeded.
    let finished = body["invocations"][0].as_object().unwrap();
    assert_eq!(finished.get("error"), Some(&Value::Null), "{finished:?}");
    let id = body["invocations"][0]["id"].as_str().unwrap();
    let status = app.status(id).await;
    assert_eq!(status["completeInvocationInput"]["output"], approval());

    // A queued one has neither: it has no outcome yet.
    let queued = app.start(PRE, false).await;
    assert_eq!(queued.status(), StatusCode::ACCEPTED);
    let body: Value = queued.json().await.unwrap();
    let queued = body["invocations"][0].as_object().unwrap();
    assert!(
        !queued.contains_key("output") && !queued.contains_key("error"),
        "{queued:?}"
    );
}

#[tokio::test]
async fn async_acknowledgement_then_callback_completes() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Json(200, json!({}))]).await;
    app.subscribe(PRE, &receiver.url, "ASYNC").await;

    let id = app.start_one(PRE).await;
    let got = receiver.next().await;
    app.status_until(&id, is("ACKNOWLEDGED")).await;
    let meta = &got.body["_metadata"];
    assert_eq!(meta["responseMode"], "async");
    assert_eq!(
        meta["callbackURL"],
        format!("{}/trigger-invocations/v1/{id}/complete", app.base)
    );
    let secret = meta["secret"].as_str().unwrap();

    let response = app
        .callback(&id, &json!({"secret": secret, "output": approval()}))
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let status = app.status(&id).await;
    assert_eq!(status["status"], "COMPLETED");
    assert_eq!(status["completeInvocationInput"]["output"], approval());
    let again = app
        .callback(&id, &json!({"secret": secret, "output": approval()}))
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    if crate::BACKEND == crate::helpers::Backend::Aws {
        // On EventBridge: `aws_only.rs` routes the event from the bus to a queue.
        return;
    }
    // Events are appended by a background writer: poll the outbox file.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = std::fs::read_to_string(app.data_dir.join("events.jsonl")).unwrap_or_default();
        if events.contains("Trigger Invocation Completed") && events.contains(&id) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no completion event: {events}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn dynamic_200_completes_and_202_acknowledges() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Json(200, approval())]).await;
    app.subscribe(PRE, &receiver.url, "DYNAMIC").await;

    let now = app.start_one(PRE).await;
    app.status_until(&now, is("COMPLETED")).await;
    receiver.answer(vec![Answer::Json(202, json!({}))]);
    let later = app.start_one(PRE).await;

    let status = app.status_until(&later, is("ACKNOWLEDGED")).await;
    assert_eq!(status["attempts"][0]["statusCode"], 202);
}

#[tokio::test]
async fn a_5xx_is_retried_and_the_reason_recorded() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Empty(500)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;

    let id = app.start_one(CREATED).await;

    let status = app
        .status_until(&id, |s| {
            s["attempts"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(status["status"], "PENDING", "a retry is scheduled");
    assert_eq!(status["attempts"][0]["statusCode"], 500);
    assert_eq!(status["attempts"][0]["error"], "subscriber answered 500");
}

#[tokio::test]
async fn an_invalid_sync_output_fails_without_retry() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Json(200, json!({"approved": "yes"}))]).await;
    app.subscribe(PRE, &receiver.url, "SYNC").await;

    let response = app.start(PRE, true).await;

    let body: Value = response.json().await.unwrap();
    let invocation = &body["invocations"][0];
    assert_eq!(invocation["status"], "FAILED");
    assert!(
        invocation["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid output"),
        "{body}"
    );
    let status = app.status(invocation["id"].as_str().unwrap()).await;
    assert_eq!(status["attempts"].as_array().unwrap().len(), 1);
    assert!(status["completeInvocationInput"]["localizedError"]["message"].is_string());
}

/// serde_json would read the number as the nearest double: recorded and handed to the producer
/// rounded. The answer is refused as an input holding one is.
#[tokio::test]
async fn a_sync_output_with_an_integer_beyond_64_bits_fails_naming_it() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Text(
        200,
        r#"{"approved": true, "comment": "ok", "approver": "bot", "ticket": 123456789012345678901234567890}"#,
    )])
    .await;
    app.subscribe(PRE, &receiver.url, "SYNC").await;

    let body: Value = app.start(PRE, true).await.json().await.unwrap();

    let invocation = &body["invocations"][0];
    assert_eq!(invocation["status"], "FAILED", "{body}");
    assert_eq!(invocation["output"], Value::Null, "{body}");
    let message = invocation["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "output.ticket: `123456789012345678901234567890` is an integer beyond 64 bits"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn connection_refused_is_a_failed_attempt() {
    let app = spawn_app().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", listener.local_addr().unwrap())
    };
    app.subscribe(PRE, &closed, "SYNC").await;

    let body: Value = app.start(PRE, true).await.json().await.unwrap();

    assert_eq!(body["invocations"][0]["status"], "FAILED");
    let message = body["invocations"][0]["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("connection failed"), "{message}");
}

#[tokio::test]
async fn a_sync_subscriber_slower_than_10_s_fails_the_invocation() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Hang]).await;
    app.subscribe(PRE, &receiver.url, "SYNC").await;

    let body: Value = app.start(PRE, true).await.json().await.unwrap();

    assert_eq!(body["invocations"][0]["status"], "FAILED");
    assert_eq!(
        body["invocations"][0]["error"]["message"],
        "no answer within 10 s"
    );
}

#[tokio::test]
async fn start_validates_the_input_against_the_trigger_schema() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let mut input = example(CREATED);
    input["identity"].as_object_mut().unwrap().remove("id");

    let response = app
        .post(
            "/trigger-invocations/v1/start",
            &json!({"triggerId": CREATED, "input": input}),
        )
        .await;

    crate::helpers::expect_error(response, StatusCode::BAD_REQUEST, "input.identity").await;
    let statuses: Vec<Value> = app
        .get("/trigger-invocations/v1/status")
        .await
        .json()
        .await
        .unwrap();
    assert!(statuses.is_empty());
}

#[tokio::test]
async fn filters_and_disabled_subscriptions_decide_who_gets_real_time_events() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    let mut matching = http_subscription(CREATED, &receiver.url, "SYNC");
    matching["filter"] = json!(r#"$[?($.identity.type == "IDENTITY")]"#);
    let mut other = http_subscription(CREATED, &receiver.url, "SYNC");
    other["filter"] = json!(r#"$[?($.identity.type == "MACHINE")]"#);
    let mut disabled = http_subscription(CREATED, &receiver.url, "SYNC");
    disabled["enabled"] = json!(false);
    let matching = app.create(&matching).await;
    app.create(&other).await;
    app.create(&disabled).await;

    let body: Value = app.start(CREATED, false).await.json().await.unwrap();

    let invocations = body["invocations"].as_array().unwrap();
    assert_eq!(invocations.len(), 1);
    assert_eq!(invocations[0]["subscriptionId"], matching["id"]);
}

/// Filters written as SailPoint's documentation writes them (Jayway JSONPath): a filter on the
/// event or an object in it tests that object, and Jayway's operators work.
#[tokio::test]
async fn sailpoint_style_filters_pick_the_subscriptions_jayway_would() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    let mut chosen = Vec::new();
    for (filter, matches) in [
        (r#"$[?(@.identity.type == "IDENTITY")]"#, true),
        (r#"$.identity[?(@.type == "IDENTITY")]"#, true),
        (r#"$[?(@.type == "IDENTITY")]"#, false),
        (r#"$[?($.identity.name contains "Michael")]"#, true),
        ("$[?($.identity.type in ['IDENTITY','MACHINE'])]", true),
        ("$[?($.identity.type nin ['IDENTITY','MACHINE'])]", false),
        ("$[?($.identity.name =~ /michael.*/i)]", true),
        ("$[?($.identity.name =~ /michael/)]", false),
    ] {
        let mut subscription = http_subscription(CREATED, &receiver.url, "SYNC");
        subscription["filter"] = json!(filter);
        let created = app.create(&subscription).await;
        if matches {
            chosen.push(created["id"].as_str().unwrap().to_owned());
        }
    }

    let body: Value = app.start(CREATED, false).await.json().await.unwrap();

    let mut raised: Vec<String> = body["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["subscriptionId"].as_str().unwrap().to_owned())
        .collect();
    raised.sort();
    chosen.sort();
    assert_eq!(raised, chosen, "{body}");
}

#[tokio::test]
async fn test_invocations_reach_disabled_subscriptions_with_the_example_input() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Json(200, json!({}))]).await;
    let mut body = http_subscription(PRE, &receiver.url, "ASYNC");
    body["enabled"] = json!(false);
    app.create(&body).await;

    let response = app
        .post(
            "/trigger-invocations/v1/test",
            &json!({"triggerId": PRE, "contentJson": {"workflowId": 7}}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let started: Vec<Value> = response.json().await.unwrap();
    assert_eq!(started.len(), 1);
    let got = receiver.next().await;
    assert_eq!(got.body["accessRequestId"], example(PRE)["accessRequestId"]);
    assert_eq!(got.body["_metadata"]["secret"], started[0]["secret"]);
    let id = started[0]["id"].as_str().unwrap();
    let status = app.status_until(id, is("ACKNOWLEDGED")).await;
    assert_eq!(status["type"], "TEST");
    assert_eq!(
        status["startInvocationInput"]["contentJson"]["workflowId"],
        7
    );

    let none = app
        .post(
            "/trigger-invocations/v1/test",
            &json!({"triggerId": CREATED, "contentJson": {}}),
        )
        .await;
    assert_eq!(none.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn subscription_ids_narrow_a_test_invocation() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    let first = app.subscribe(CREATED, &receiver.url, "SYNC").await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;

    let response = app
        .post(
            "/trigger-invocations/v1/test",
            &json!({"triggerId": CREATED, "contentJson": {}, "subscriptionIds": [first["id"]]}),
        )
        .await;

    let started: Vec<Value> = response.json().await.unwrap();
    assert_eq!(started.len(), 1);
    let status = app.status(started[0]["id"].as_str().unwrap()).await;
    assert_eq!(status["subscriptionId"], first["id"]);
    let unknown = app
        .post(
            "/trigger-invocations/v1/test",
            &json!({"triggerId": CREATED, "contentJson": {}, "subscriptionIds": ["nope"]}),
        )
        .await;
    crate::helpers::expect_error(unknown, StatusCode::BAD_REQUEST, "subscriptionIds").await;
}

const BATCH: &str = "/trigger-invocations/v1/start-batch";

#[tokio::test]
async fn a_batch_start_answers_each_start_in_order_and_delivers_them_all() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Empty(204)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let names = ["Ann", "Bo", "Cy"];
    let starts: Vec<Value> = names
        .iter()
        .map(|name| {
            let mut input = example(CREATED);
            input["identity"]["name"] = json!(name);
            json!({"triggerId": CREATED, "input": input})
        })
        .collect();

    let response = app.post(BATCH, &json!({"starts": starts})).await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    let ids: Vec<String> = body["starts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|start| {
            assert_eq!(start["invocations"].as_array().unwrap().len(), 1);
            start["invocations"][0]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 3);
    // Each answer is the invocation of its own start: the name it was raised with.
    let mut delivered = std::collections::HashMap::new();
    for _ in 0..3 {
        let got = receiver.next().await;
        delivered.insert(
            got.body["_metadata"]["invocationId"]
                .as_str()
                .unwrap()
                .to_owned(),
            got.body["identity"]["name"].clone(),
        );
    }
    for (id, name) in ids.iter().zip(names) {
        assert_eq!(delivered[id], name, "{id}");
        app.status_until(id, is("COMPLETED")).await;
    }
}

#[tokio::test]
async fn a_batch_that_matches_nothing_answers_200_with_empty_starts() {
    let app = spawn_app().await;
    let starts = json!([{"triggerId": CREATED, "input": example(CREATED)}]);

    let response = app.post(BATCH, &json!({"starts": starts})).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"starts": [{"invocations": []}]}));
}
