//! The status query function, fed real API Gateway HTTP API (payload 2.0) events from
//! `tests/events/` through `lambda_http`'s own conversion (the adapter `lambda_http::run` wraps
//! the router in), over the DynamoDB store on moto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Utc;
use serde_json::json;
use std::sync::Arc;
use triggerline::catalog::Catalog;
use triggerline::model::{Invocation, InvocationState, InvocationType};
use triggerline::ports::InvocationStore;

use triggerline_aws::dynamo::DynamoInvocationStore;
use triggerline_aws::testing::{Moto, fixture, invoke_http};
use triggerline_aws::{AwsBackend, AwsSettings, Clients};
use triggerline_http::ApiAuth;

/// The invocation the status fixtures name.
const INVOCATION: &str = "0f8a6c1e-5b7d-4c2a-9e3f-1d2b3c4d5e6f";

/// The context `main` builds.
fn context(clients: &Clients, settings: &AwsSettings) -> status_query::Context {
    status_query::Context {
        invocations: Arc::new(DynamoInvocationStore::new(
            clients.dynamodb().clone(),
            &settings.invocations_table,
        )),
        watch: Arc::new(triggerline_lambda::PollingWatch),
        max_wait: std::time::Duration::from_secs(25),
        auth: ApiAuth::Upstream,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_are_listed_and_one_is_detailed() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    let backend = AwsBackend::connect(
        &clients,
        &settings,
        triggerline_aws::testing::test_credentials(),
    )
    .await
    .unwrap();
    let entry = Catalog::builtin().get("idn:identity-created").unwrap();
    let now = Utc::now();
    backend
        .invocations
        .create_all(&[Invocation {
            heartbeat: None,
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
            input: entry.trigger.example_input.clone().into(),
            content_json: json!({"workflow": "onboarding"}).into(),
            output: None,
            error: None,
            ordering_key: None,
            secret_hash: String::new(),
            attempts: vec![],
            trace: None,
        }])
        .await
        .unwrap();
    // The router `main` serves.
    let router = || status_query::router(context(&clients, &settings));

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
    let settings = moto.settings();
    triggerline_aws::resources::create_missing(&clients, &settings)
        .await
        .unwrap();

    let answer = invoke_http(
        status_query::router(context(&clients, &settings)),
        &fixture("apigw-v2-invocation-status.json"),
    )
    .await;

    assert_eq!(answer.status, 404, "{:?}", answer.body);
    let text = answer.body["messages"][0]["text"].as_str().unwrap();
    assert!(text.contains(INVOCATION), "{text}");
}
