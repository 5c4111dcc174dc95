//! The status query function, fed real API Gateway HTTP API (payload 2.0) events from
//! `tests/events/` through `lambda_http`'s own conversion (the adapter `lambda_http::run` wraps
//! the router in), over the DynamoDB store on moto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use chrono::Utc;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, LambdaEvent};
use serde_json::{Value, json};
use triggerline::catalog::Catalog;
use triggerline::model::{Invocation, InvocationState, InvocationType};
use triggerline::ports::InvocationStore;
use triggerline_aws::AwsBackend;
use triggerline_aws::testing::Moto;

/// The invocation the status fixtures name.
const INVOCATION: &str = "0f8a6c1e-5b7d-4c2a-9e3f-1d2b3c4d5e6f";

fn fixture(name: &str) -> String {
    let path = format!("{}/../../tests/events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What API Gateway gets back: the runtime's JSON answer to one event.
struct HttpAnswer {
    status: u16,
    headers: Value,
    body: Value,
}

async fn invoke_http(router: Router, event: &str) -> HttpAnswer {
    let request: LambdaRequest = serde_json::from_str(event).expect("an API Gateway v2 event");
    let response = Adapter::from(router)
        .oneshot(LambdaEvent::new(request, lambda_http::Context::default()))
        .await
        .unwrap();
    let answer = serde_json::to_value(&response).unwrap();
    let body = match answer["body"].as_str() {
        Some(text) if !text.is_empty() => serde_json::from_str(text).unwrap(),
        _ => Value::Null,
    };
    HttpAnswer {
        status: u16::try_from(answer["statusCode"].as_u64().unwrap()).unwrap(),
        headers: answer["headers"].clone(),
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_are_listed_and_one_is_detailed() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let backend = AwsBackend::connect(&clients, &moto.settings())
        .await
        .unwrap();
    let entry = Catalog::builtin().get("idn:identity-created").unwrap();
    let now = Utc::now();
    backend
        .invocations
        .create_all(&[Invocation {
            id: INVOCATION.into(),
            trigger_id: entry.trigger.id.clone(),
            trigger_type: entry.trigger.trigger_type,
            subscription_id: "b3e1c2d4-0a5f-4e6b-8c7d-9e0f1a2b3c4d".into(),
            subscription_name: "New identities to HR".into(),
            invocation_type: InvocationType::RealTime,
            response_mode: None,
            state: InvocationState::Pending,
            created: now,
            completed: None,
            deadline: None,
            input: entry.trigger.example_input.clone(),
            content_json: json!({"workflow": "onboarding"}),
            output: None,
            error: None,
            secret_hash: String::new(),
            attempts: vec![],
        }])
        .await
        .unwrap();
    // The router `main` serves.
    let router = || status_query::router(status_query::aws::context(&backend));

    let listed = invoke_http(router(), &fixture("apigw-v2-list-statuses.json")).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.headers["x-total-count"], "1");
    assert_eq!(listed.body[0]["id"], INVOCATION);
    assert_eq!(listed.body[0]["triggerId"], "idn:identity-created");
    assert_eq!(listed.body[0]["status"], "PENDING");

    let detail = invoke_http(router(), &fixture("apigw-v2-invocation-status.json")).await;
    assert_eq!(detail.status, 200, "{:?}", detail.body);
    assert_eq!(detail.body["id"], INVOCATION);
    assert_eq!(detail.body["subscriptionName"], "New identities to HR");
    assert_eq!(detail.body["attempts"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_invocation_is_a_404() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let backend = AwsBackend::connect(&clients, &moto.settings())
        .await
        .unwrap();

    let answer = invoke_http(
        status_query::router(status_query::aws::context(&backend)),
        &fixture("apigw-v2-invocation-status.json"),
    )
    .await;

    assert_eq!(answer.status, 404, "{:?}", answer.body);
    let text = answer.body["messages"][0]["text"].as_str().unwrap();
    assert!(text.contains(INVOCATION), "{text}");
}
