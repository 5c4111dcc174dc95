//! `Idempotency-Key` on `start` and `test`: a repeat answers what the first answered and raises
//! nothing; another body is a 409; a bad key a 400; concurrent repeats raise one set.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use crate::delivery::{CREATED, PRE, approval, example};
use crate::helpers::{TestApp, expect_error, spawn_app};
use crate::receiver::{Answer, Receiver};

const START: &str = "/trigger-invocations/v1/start";
const TEST: &str = "/trigger-invocations/v1/test";

impl TestApp {
    async fn post_keyed(
        &self,
        path: &str,
        key: impl Into<HeaderValue>,
        body: &Value,
    ) -> reqwest::Response {
        self.request(reqwest::Method::POST, path)
            .header("Idempotency-Key", key.into())
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// How many invocations the status list holds.
    pub(crate) async fn invocation_count(&self) -> usize {
        let response = self.get("/trigger-invocations/v1/status?count=true").await;
        assert_eq!(response.status(), StatusCode::OK);
        response.headers()["x-total-count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

fn started(trigger: &str) -> Value {
    json!({"triggerId": trigger, "input": example(trigger)})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_start_answers_the_same_and_creates_nothing() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;
    app.subscribe(CREATED, &receiver.url, "ASYNC").await;

    let first = app
        .post_keyed(
            START,
            HeaderValue::from_static("order-1"),
            &started(CREATED),
        )
        .await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["invocations"].as_array().unwrap().len(), 2);
    // The same body with its fields in another order and other spacing is the same request.
    let reordered = json!({"input": example(CREATED), "triggerId": CREATED});
    let again = app
        .post_keyed(START, HeaderValue::from_static("order-1"), &reordered)
        .await;

    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the same answer, the same invocation ids");
    assert_eq!(app.invocation_count().await, 2, "nothing new was created");

    // Without the key, the same body raises a new set.
    let unkeyed = app.post(START, &started(CREATED)).await;
    assert_eq!(unkeyed.status(), StatusCode::ACCEPTED);
    assert_eq!(app.invocation_count().await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_with_another_body_is_a_409_naming_the_key() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let first = app
        .post_keyed(
            START,
            HeaderValue::from_static("order-2"),
            &started(CREATED),
        )
        .await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);

    let other = json!({"triggerId": CREATED, "input": example(CREATED), "contentJson": {"n": 2}});
    let response = app
        .post_keyed(START, HeaderValue::from_static("order-2"), &other)
        .await;
    let text = expect_error(response, StatusCode::CONFLICT, "Idempotency-Key").await;
    assert!(text.contains("order-2"), "{text}");

    // A key of `start` is not one of `test` either.
    let response = app
        .post_keyed(
            TEST,
            HeaderValue::from_static("order-2"),
            &json!({"triggerId": CREATED}),
        )
        .await;
    expect_error(response, StatusCode::CONFLICT, "Idempotency-Key").await;
    assert_eq!(app.invocation_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_is_a_400_naming_the_header() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let long = "k".repeat(256);
    let bad = [
        HeaderValue::from_static(""),
        HeaderValue::from_str(&long).unwrap(),
        HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap(),
        HeaderValue::from_bytes(b"tab\there").unwrap(),
        HeaderValue::from_bytes(&[b'a', 0xff]).unwrap(),
    ];
    for key in bad {
        for (path, body) in [
            (START, started(CREATED)),
            (TEST, json!({"triggerId": CREATED})),
        ] {
            let response = app.post_keyed(path, key.clone(), &body).await;
            expect_error(response, StatusCode::BAD_REQUEST, "Idempotency-Key").await;
        }
    }
    // Twice in one request.
    let response = app
        .request(reqwest::Method::POST, START)
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "b")
        .json(&started(CREATED))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "Idempotency-Key").await;
    assert_eq!(app.invocation_count().await, 0, "nothing was created");

    // 255 printable characters are a key.
    let longest = "k".repeat(255);
    let response = app
        .post_keyed(
            START,
            HeaderValue::from_str(&longest).unwrap(),
            &started(CREATED),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_synchronous_start_answers_the_same_outcome_without_delivering_again() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Json(200, approval())]).await;
    app.subscribe(PRE, &receiver.url, "SYNC").await;
    let body = json!({"triggerId": PRE, "input": example(PRE), "isSynchronous": true});

    let first = app
        .post_keyed(START, HeaderValue::from_static("sync-1"), &body)
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["invocations"][0]["output"], approval());
    let again = app
        .post_keyed(START, HeaderValue::from_static("sync-1"), &body)
        .await;

    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    // Each delivery reaches the receiver before its start answers, so a second one would be here.
    assert_eq!(receiver.drain().len(), 1, "delivered once");
    assert_eq!(app.invocation_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_key_create_one_set() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;

    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = app
            .request(reqwest::Method::POST, START)
            .header("Idempotency-Key", "race-1")
            .json(&started(CREATED));
        racers.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        });
    }
    let answers = racers.join_all().await;

    // Those that found the key held by the first waited for its answer.
    assert!(
        answers
            .iter()
            .all(|(status, body)| *status == StatusCode::ACCEPTED && *body == answers[0].1),
        "one answer: {answers:?}"
    );
    assert_eq!(app.invocation_count().await, 1, "one set of invocations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_repeat_while_the_first_waits_answers_its_outcome() {
    let app = spawn_app().await;
    let slow = Answer::After(
        Duration::from_millis(500),
        Box::new(Answer::Json(200, approval())),
    );
    let mut receiver = Receiver::start(vec![slow]).await;
    app.subscribe(PRE, &receiver.url, "SYNC").await;
    let body = json!({"triggerId": PRE, "input": example(PRE), "isSynchronous": true});
    let first = {
        let request = app
            .request(reqwest::Method::POST, START)
            .header("Idempotency-Key", "sync-slow")
            .json(&body);
        tokio::spawn(async move { request.send().await.unwrap() })
    };
    // The first request is now waiting on its subscriber.
    receiver.next().await;

    let again = app
        .post_keyed(START, HeaderValue::from_static("sync-slow"), &body)
        .await;

    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.json::<Value>().await.unwrap(), again);
    assert_eq!(again["invocations"][0]["output"], approval());
    assert_eq!(receiver.drain().len(), 0, "delivered once");
    assert_eq!(app.invocation_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_test_answers_the_same_invocations_and_secrets() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Empty(200)]).await;
    app.subscribe(PRE, &receiver.url, "ASYNC").await;
    let body = json!({"triggerId": PRE});

    let first = app
        .post_keyed(TEST, HeaderValue::from_static("test-1"), &body)
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    let again = app
        .post_keyed(TEST, HeaderValue::from_static("test-1"), &body)
        .await;

    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(app.invocation_count().await, 1);
}
