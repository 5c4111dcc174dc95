//! The callback function, fed a real API Gateway HTTP API (payload 2.0) event from
//! `tests/events/` through `lambda_http`'s own conversion (the adapter `lambda_http::run` wraps
//! the router in), over DynamoDB and EventBridge on moto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Utc;
use serde_json::{Value, json};
use triggerline::catalog::Catalog;
use triggerline::model::{DispatchMode, Invocation, InvocationState, InvocationType};
use triggerline::ports::InvocationStore;
use triggerline::secrets::hash_secret;
use triggerline_aws::testing::{Moto, fixture, invoke_http};
use triggerline_aws::{AwsBackend, Clients};
use triggerline_lambda::FunctionEnv;

/// The invocation and secret `apigw-v2-complete-invocation.json` presents.
const INVOCATION: &str = "0f8a6c1e-5b7d-4c2a-9e3f-1d2b3c4d5e6f";
const SECRET: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9-callback-secret";

/// An acknowledged ASYNC pre-approval waiting for its callback, with the fixture's secret.
async fn stack_with_acknowledged_invocation() -> (Moto, AwsBackend, Clients, FunctionEnv) {
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
    let entry = Catalog::builtin()
        .get("idn:access-request-pre-approval")
        .unwrap();
    let now = Utc::now();
    backend
        .invocations
        .create_all(&[Invocation {
            heartbeat: None,
            id: INVOCATION.into(),
            trigger_id: entry.trigger.id.clone(),
            trigger_type: entry.trigger.trigger_type,
            subscription_id: "b3e1c2d4-0a5f-4e6b-8c7d-9e0f1a2b3c4d".into(),
            subscription_name: "Pre-approval bot".into(),
            invocation_type: InvocationType::RealTime,
            response_mode: Some(DispatchMode::Async),
            state: InvocationState::Acknowledged,
            created: now,
            completed: None,
            deadline: Some(now + chrono::Duration::hours(1)),
            input: entry.trigger.example_input.clone().into(),
            content_json: json!({}).into(),
            output: None,
            error: None,
            ordering_key: None,
            secret_hash: hash_secret(SECRET),
            attempts: vec![],
            trace: None,
        }])
        .await
        .unwrap();
    // What `main` reads when the template sets nothing but resource names: no key, no URL.
    let env = FunctionEnv {
        aws: settings,
        ..FunctionEnv::from_lookup(|_| None).unwrap()
    };
    (moto, backend, clients, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_completes_the_invocation_once() {
    let (_moto, backend, clients, env) = stack_with_acknowledged_invocation().await;
    let router = || invocation_complete::router(triggerline_lambda::completion(&clients, &env));

    let answer = invoke_http(router(), &fixture("apigw-v2-complete-invocation.json")).await;

    assert_eq!(answer.status, 204, "{:?}", answer.body);
    let completed = backend.invocations.get(INVOCATION).await.unwrap().unwrap();
    assert_eq!(completed.state, InvocationState::Completed);
    let decision = json!({
        "approved": true,
        "comment": "Approved by the access policy",
        "approver": "policy-bot",
    });
    assert_eq!(completed.output, Some(decision));
    assert!(
        completed.attempts.is_empty(),
        "the callback posted something"
    );

    let again = invoke_http(router(), &fixture("apigw-v2-complete-invocation.json")).await;
    assert_eq!(again.status, 400, "{:?}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_a_401_and_changes_nothing() {
    let (_moto, backend, clients, env) = stack_with_acknowledged_invocation().await;
    let mut event: Value =
        serde_json::from_str(&fixture("apigw-v2-complete-invocation.json")).unwrap();
    let mut body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    body["secret"] = Value::from("guessed");
    event["body"] = Value::from(body.to_string());

    let answer = invoke_http(
        invocation_complete::router(triggerline_lambda::completion(&clients, &env)),
        &event.to_string(),
    )
    .await;

    assert_eq!(answer.status, 401, "{:?}", answer.body);
    assert!(answer.body["error"].is_string(), "{:?}", answer.body);
    let unchanged = backend.invocations.get(INVOCATION).await.unwrap().unwrap();
    assert_eq!(unchanged.state, InvocationState::Acknowledged);
}

/// Every event logged at ERROR, with its target.
#[derive(Clone, Default)]
struct ErrorLog(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            self.0
                .lock()
                .unwrap()
                .push(format!("{}: {:?}", event.metadata().target(), event));
        }
    }
}

/// The fixture's callback event with `id` in its path, and the raw JSON the function answers
/// it with, through the entry point `main` runs.
async fn raw_answer(router: axum::Router, id: &str) -> Value {
    let event = fixture("apigw-v2-complete-invocation.json").replace(INVOCATION, id);
    let event = lambda_http::LambdaEvent::new(
        serde_json::from_str(&event).unwrap(),
        lambda_http::Context::default(),
    );
    let answer = triggerline_lambda::http::handle(router, event)
        .await
        .unwrap();
    // What the runtime posts back to Lambda, re-read as API Gateway reads it.
    serde_json::from_str(&serde_json::to_string(&answer).unwrap()).unwrap()
}

// A current-thread runtime, so that the log capture (set for this thread) sees every event.
#[tokio::test(flavor = "current_thread")]
async fn a_malformed_or_oversized_id_is_the_wrong_secret_401_without_a_store_read() {
    let (moto, backend, _, env) = stack_with_acknowledged_invocation().await;
    let counter = triggerline_aws::testing::CallCounter::default();
    let clients = triggerline_aws::testing::counting_clients_at(&moto.endpoint, &counter).await;
    let router = || invocation_complete::router(triggerline_lambda::completion(&clients, &env));
    let errors = ErrorLog::default();
    let _logs = tracing::subscriber::set_default(tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        errors.clone(),
    ));
    let wrong_secret = {
        let mut event: Value =
            serde_json::from_str(&fixture("apigw-v2-complete-invocation.json")).unwrap();
        event["body"] = Value::from(json!({"secret": "guessed", "output": {}}).to_string());
        invoke_http(router(), &event.to_string()).await
    };
    assert_eq!(wrong_secret.status, 401);
    counter.take();

    let oversized = "a".repeat(10 * 1024);
    let upper_case = INVOCATION.to_uppercase();
    for id in [
        oversized.as_str(),
        "no-such-id",
        upper_case.as_str(),
        "0f8a6c1e5b7d4c2a9e3f1d2b3c4d5e6f",
    ] {
        let answer = raw_answer(router(), id).await;

        assert_eq!(answer["statusCode"], 401, "{id:.40}: {answer}");
        let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, wrong_secret.body, "{id:.40}");
        assert_eq!(answer["headers"]["Content-Type"], "application/json");
        assert!(answer["headers"].get("content-type").is_none(), "{answer}");
    }

    assert_eq!(counter.take(), Default::default(), "the store was read");
    assert_eq!(*errors.0.lock().unwrap(), Vec::<String>::new());
    let unchanged = backend.invocations.get(INVOCATION).await.unwrap().unwrap();
    assert_eq!(unchanged.state, InvocationState::Acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_secret_is_a_401_without_a_store_read() {
    let (moto, backend, _, env) = stack_with_acknowledged_invocation().await;
    let counter = triggerline_aws::testing::CallCounter::default();
    let clients = triggerline_aws::testing::counting_clients_at(&moto.endpoint, &counter).await;
    let mut event: Value =
        serde_json::from_str(&fixture("apigw-v2-complete-invocation.json")).unwrap();
    let secret = "s".repeat(triggerline_http::MAX_CALLBACK_SECRET_BYTES + 1);
    event["body"] = Value::from(json!({"secret": secret, "output": {}}).to_string());

    let answer = invoke_http(
        invocation_complete::router(triggerline_lambda::completion(&clients, &env)),
        &event.to_string(),
    )
    .await;

    assert_eq!(answer.status, 401, "{:?}", answer.body);
    assert!(answer.body["error"].is_string(), "{:?}", answer.body);
    assert_eq!(counter.take(), Default::default(), "the store was read");
    let unchanged = backend.invocations.get(INVOCATION).await.unwrap().unwrap();
    assert_eq!(unchanged.state, InvocationState::Acknowledged);
}
