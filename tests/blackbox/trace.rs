//! W3C trace context end to end: a start's `traceparent` reaches the subscriber (same trace id,
//! a span of its own) and the status detail; without one, or with an invalid one, a new trace is
//! started (never a 400) and shared by every invocation of the start.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use triggerline::trace::TraceContext;

use crate::delivery::{CREATED, PRE, example, is};
use crate::helpers::TestApp;
use crate::helpers::spawn_app;
use crate::receiver::{Answer, Received, Receiver};

pub const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

impl TestApp {
    /// Starts `trigger` asynchronously with these trace headers; returns the invocation ids.
    pub async fn start_traced(&self, trigger: &str, headers: &[(&str, &str)]) -> Vec<String> {
        let mut request = self
            .request(reqwest::Method::POST, "/trigger-invocations/v1/start")
            .json(&json!({"triggerId": trigger, "input": example(trigger)}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        body["invocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The trace context a delivery carried in its headers (valid, or the test fails).
fn sent(got: &Received) -> TraceContext {
    let parent = got.headers["traceparent"].to_str().unwrap();
    let states: Vec<&str> = got
        .headers
        .get_all("tracestate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    TraceContext::parse(Some(parent), &states).expect("a valid traceparent")
}

#[tokio::test]
async fn a_start_with_a_traceparent_reaches_the_subscriber_and_the_status_detail() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Empty(204)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;

    let ids = app
        .start_traced(
            CREATED,
            &[("traceparent", PARENT), ("tracestate", "congo=t61rcWkgMzE")],
        )
        .await;

    let got = sent(&receiver.next().await);
    assert_eq!(got.trace_id(), TRACE_ID);
    assert_ne!(
        got.parent_id(),
        "00f067aa0ba902b7",
        "the delivery is a span of its own"
    );
    assert_eq!(got.flags(), "01");
    assert_eq!(got.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
    let status = app.status_until(&ids[0], is("COMPLETED")).await;
    assert_eq!(status["traceparent"], PARENT);
    assert_eq!(status["tracestate"], "congo=t61rcWkgMzE");
}

#[tokio::test]
async fn without_a_traceparent_every_invocation_of_a_start_shares_a_new_trace() {
    let app = spawn_app().await;
    let mut first = Receiver::start(vec![Answer::Empty(204)]).await;
    let mut second = Receiver::start(vec![Answer::Empty(204)]).await;
    app.subscribe(CREATED, &first.url, "SYNC").await;
    app.subscribe(CREATED, &second.url, "SYNC").await;

    let ids = app.start_traced(CREATED, &[]).await;

    assert_eq!(ids.len(), 2);
    let (a, b) = (sent(&first.next().await), sent(&second.next().await));
    assert_eq!(a.trace_id(), b.trace_id());
    assert_ne!(a.parent_id(), b.parent_id());
    assert_eq!(a.tracestate, None);
    let mut started = Vec::new();
    for id in &ids {
        let status = app.status_until(id, is("COMPLETED")).await;
        let trace = TraceContext::parse(status["traceparent"].as_str(), &[]).unwrap();
        assert_eq!(trace.trace_id(), a.trace_id());
        assert_eq!(trace.flags(), "01");
        assert!(status.get("tracestate").is_none(), "{status}");
        started.push(trace);
    }
    assert_eq!(started[0], started[1]);
}

#[tokio::test]
async fn an_invalid_traceparent_starts_a_new_trace_and_is_no_error() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Empty(204)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let huge = "x".repeat(4000);

    for bad in [
        zero,
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "junk",
        &huge,
    ] {
        let ids = app
            .start_traced(CREATED, &[("traceparent", bad), ("tracestate", "a=1")])
            .await;
        let got = sent(&receiver.next().await);
        assert_ne!(got.trace_id(), TRACE_ID);
        assert_ne!(got.trace_id(), "0".repeat(32));
        assert_eq!(
            got.tracestate, None,
            "a tracestate without its traceparent is dropped"
        );
        let status = app.status_until(&ids[0], is("COMPLETED")).await;
        let stored = TraceContext::parse(status["traceparent"].as_str(), &[]).unwrap();
        assert_eq!(stored.trace_id(), got.trace_id());
    }
}

#[tokio::test]
async fn an_oversized_tracestate_is_dropped_and_the_traceparent_kept() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Empty(204)]).await;
    app.subscribe(CREATED, &receiver.url, "SYNC").await;
    let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();

    for state in [format!("a={}", "x".repeat(600)), members.join(",")] {
        let ids = app
            .start_traced(CREATED, &[("traceparent", PARENT), ("tracestate", &state)])
            .await;
        let got = sent(&receiver.next().await);
        assert_eq!(got.trace_id(), TRACE_ID);
        assert_eq!(got.tracestate, None);
        let status = app.status_until(&ids[0], is("COMPLETED")).await;
        assert!(status.get("tracestate").is_none(), "{status}");
    }
}

#[tokio::test]
async fn a_test_invocation_and_its_callback_carry_the_trace() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Json(200, json!({}))]).await;
    app.subscribe(PRE, &receiver.url, "ASYNC").await;

    let response = app
        .request(reqwest::Method::POST, "/trigger-invocations/v1/test")
        .header("traceparent", PARENT)
        .json(&json!({"triggerId": PRE}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let started: Value = response.json().await.unwrap();
    let id = started[0]["id"].as_str().unwrap();
    let secret = started[0]["secret"].as_str().unwrap();
    assert_eq!(sent(&receiver.next().await).trace_id(), TRACE_ID);
    app.status_until(id, is("ACKNOWLEDGED")).await;

    // The subscriber completes within its own span of the trace.
    let callback = app
        .client
        .post(format!("{}/trigger-invocations/v1/{id}/complete", app.base))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01",
        )
        .json(&json!({"secret": secret, "output": crate::delivery::approval()}))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), StatusCode::NO_CONTENT);
    let done = app.status_until(id, is("COMPLETED")).await;
    assert_eq!(done["traceparent"], PARENT, "the invocation's trace stays");
}

#[tokio::test]
async fn an_eventbridge_delivery_carries_the_trace_in_its_metadata() {
    if crate::BACKEND == crate::helpers::Backend::Aws {
        // On EventBridge: `aws_only.rs` routes the event from the bus to a queue and reads it.
        return;
    }
    let app = spawn_app().await;
    app.create(&json!({
        "name": "approvals on the bus", "triggerId": PRE, "type": "EVENTBRIDGE",
        "eventBridgeConfig": {"awsAccount": "123456789012", "awsRegion": "us-east-1"},
        "responseDeadline": "PT1H",
    }))
    .await;

    let ids = app
        .start_traced(
            PRE,
            &[("traceparent", PARENT), ("tracestate", "congo=t61rcWkgMzE")],
        )
        .await;
    app.status_until(&ids[0], is("ACKNOWLEDGED")).await;

    // Events are appended by a background writer: poll the outbox file.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let event = loop {
        let events = std::fs::read_to_string(app.data_dir.join("events.jsonl")).unwrap_or_default();
        let found = events
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["detail"]["_metadata"]["invocationId"] == json!(ids[0]));
        if let Some(event) = found {
            break event;
        }
        assert!(tokio::time::Instant::now() < deadline, "no event: {events}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let metadata = &event["detail"]["_metadata"];
    let carried = TraceContext::parse(
        metadata["traceparent"].as_str(),
        &[metadata["tracestate"].as_str().unwrap()],
    )
    .unwrap();
    assert_eq!(carried.trace_id(), TRACE_ID);
    assert_eq!(carried.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
}
