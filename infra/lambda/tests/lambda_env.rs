//! What the functions read at start, end to end on moto: the callback key fetched from Secrets
//! Manager with nothing but its ARN in the environment, and the retention the environment sets
//! written as the DynamoDB TTL of finished invocations (the only retention on AWS).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::json;
use triggerline::catalog::Catalog;
use triggerline::model::{DispatchMode, Invocation, InvocationState, InvocationType};
use triggerline::ports::{InvocationStore, Transition};
use triggerline::secrets::SecretKey;
use triggerline_aws::secretsmanager::{SecretsError, SecretsManager};
use triggerline_aws::settings::env as names;
use triggerline_aws::testing::Moto;
use triggerline_aws::{AwsSettings, Clients, dynamo};
use triggerline_lambda::{self as lambda, FunctionEnv, env};

/// The function environment these variables describe (what `main` reads).
fn function_env(vars: &[(&str, &str)]) -> FunctionEnv {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    FunctionEnv::from_lookup(|name| vars.get(name).cloned()).unwrap()
}

/// A secret on the emulator with this value; its ARN.
async fn create_secret(clients: &Clients, value: &str) -> String {
    let name = format!("tl-key-{}", uuid::Uuid::new_v4().simple());
    let created = SecretsManager::new(clients)
        .call(
            "CreateSecret",
            &json!({ "Name": name, "SecretString": value }),
        )
        .await
        .expect("CreateSecret on moto");
    created["ARN"].as_str().expect("an ARN").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_key_is_fetched_with_only_its_arn_in_the_environment() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    // What the template's generated secret looks like: 64 characters of [A-Za-z0-9], which are
    // base64 of 48 bytes.
    let bytes: Vec<u8> = (0u8..48)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let arn = create_secret(&clients, &text).await;

    let mut env = function_env(&[(env::SECRET_KEY_ARN, &arn)]);
    assert!(
        env.secret_key.is_none(),
        "the key is not in the environment"
    );
    lambda::load_secret_key(&clients, &mut env).await.unwrap();
    let key = env.secret_key.as_ref().expect("fetched at start");
    assert_eq!(
        key.callback_secret("inv-1"),
        SecretKey::new(bytes).callback_secret("inv-1"),
        "the fetched key derives the same callback secrets as the secret's value"
    );

    // Without an ARN (the settling functions, or TRIGGERLINE_SECRET_KEY by hand) nothing is
    // fetched.
    let mut none = function_env(&[]);
    lambda::load_secret_key(&clients, &mut none).await.unwrap();
    assert!(none.secret_key.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_weak_key_stops_the_start() {
    let moto = Moto::start();
    let clients = moto.clients().await;

    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nothing-here-AbCdEf";
    let answer = SecretsManager::new(&clients).secret_string(missing).await;
    assert!(
        matches!(&answer, Err(SecretsError::Refused { kind, .. }) if kind == "ResourceNotFoundException"),
        "{answer:?}"
    );
    let mut env = function_env(&[(env::SECRET_KEY_ARN, missing)]);
    assert!(lambda::load_secret_key(&clients, &mut env).await.is_err());
    assert!(env.secret_key.is_none());

    let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
    let arn = create_secret(&clients, &short).await;
    let mut env = function_env(&[(env::SECRET_KEY_ARN, &arn)]);
    let error = lambda::load_secret_key(&clients, &mut env)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(env::SECRET_KEY_ARN), "{error}");
    assert!(env.secret_key.is_none());
}

/// Now, to the millisecond (what the stored text keeps).
fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::milliseconds(1))
        .unwrap()
}

fn pending(id: &str, created: DateTime<Utc>) -> Invocation {
    const APPROVAL: &str = "idn:access-request-pre-approval";
    let trigger = &Catalog::builtin().get(APPROVAL).unwrap().trigger;
    Invocation {
        heartbeat: None,
        id: id.to_owned(),
        trigger_id: APPROVAL.to_owned(),
        trigger_type: trigger.trigger_type,
        subscription_id: "4f6e3c52-6a8e-4f7e-9d0c-2b8e1f0a9c31".to_owned(),
        subscription_name: "Approvals".to_owned(),
        invocation_type: InvocationType::RealTime,
        response_mode: Some(DispatchMode::Async),
        state: InvocationState::Pending,
        created,
        completed: None,
        deadline: Some(created + Duration::minutes(10)),
        input: trigger.example_input.clone().into(),
        content_json: json!({}).into(),
        output: None,
        error: None,
        ordering_key: None,
        secret_hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            .to_owned(),
        attempts: Vec::new(),
        trace: None,
    }
}

fn finish(state: InvocationState, completed: DateTime<Utc>) -> Transition {
    let succeeded = state == InvocationState::Completed;
    Transition {
        to: state,
        completed: Some(completed),
        output: succeeded.then(|| json!({"approved": true})),
        error: (!succeeded).then(|| "the subscriber answered 500".to_owned()),
    }
}

const OPEN: [InvocationState; 2] = [InvocationState::Pending, InvocationState::Acknowledged];

/// The invocation's TTL attribute as stored, read past the store.
async fn ttl(clients: &Clients, settings: &AwsSettings, id: &str) -> Option<i64> {
    let item = clients
        .dynamodb()
        .get_item()
        .table_name(&settings.invocations_table)
        .key(dynamo::INV_ID, AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the item");
    item.get(dynamo::INV_EXPIRES)
        .map(|v| v.as_n().unwrap().parse().unwrap())
}

/// The environment of a function over `settings`' resources, plus `extra`.
fn resources_env(settings: &AwsSettings, extra: &[(&str, &str)]) -> FunctionEnv {
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let mut vars = vec![
        (env::SECRET_KEY, key.as_str()),
        (
            names::SUBSCRIPTIONS_TABLE,
            settings.subscriptions_table.as_str(),
        ),
        (
            names::INVOCATIONS_TABLE,
            settings.invocations_table.as_str(),
        ),
        (names::WORK_QUEUE, settings.work_queue.as_str()),
        (
            names::DEAD_LETTER_QUEUE,
            settings.dead_letter_queue.as_str(),
        ),
        (names::EVENT_BUS, settings.event_bus.as_str()),
        (names::CREATE_RESOURCES, "true"),
    ];
    vars.extend_from_slice(extra);
    function_env(&vars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_write_the_ttl_of_finished_invocations_by_default() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    // Nothing about retention in the environment: the local stack's defaults.
    let env = resources_env(&settings, &[]);
    // The dispatcher's functions (intake and queue consumer)...
    let backend = lambda::connect(&clients, &env).await.unwrap();
    // ... and the settling ones (callback, sweep).
    let settling = lambda::sweep(&clients, &env);

    let t0 = now();
    backend
        .invocations
        .create_all(&[
            pending("ok", t0),
            pending("failed", t0),
            pending("late", t0),
        ])
        .await
        .unwrap();
    let backstop = triggerline_aws::dynamo::OPEN_BACKSTOP + Duration::hours(48);
    assert_eq!(
        ttl(&clients, &settings, "ok").await,
        Some((t0 + backstop).timestamp()),
        "open: the backstop, past anything that could still finish it"
    );
    backend
        .invocations
        .transition("ok", &OPEN, &finish(InvocationState::Completed, t0))
        .await
        .unwrap();
    backend
        .invocations
        .transition("failed", &OPEN, &finish(InvocationState::Failed, t0))
        .await
        .unwrap();
    settling
        .invocations
        .transition("late", &OPEN, &finish(InvocationState::TimedOut, t0))
        .await
        .unwrap();
    let at = |hours: i64| Some((t0 + Duration::hours(hours)).timestamp());
    assert_eq!(ttl(&clients, &settings, "ok").await, at(24));
    assert_eq!(ttl(&clients, &settings, "failed").await, at(48));
    assert_eq!(ttl(&clients, &settings, "late").await, at(48));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_variables_set_the_ttl() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    let env = resources_env(
        &settings,
        &[
            (env::RETENTION_SUCCEEDED, "PT2H"),
            (env::RETENTION_FAILED, "P7D"),
        ],
    );
    let backend = lambda::connect(&clients, &env).await.unwrap();
    let t0 = now();
    backend
        .invocations
        .create_all(&[pending("ok", t0), pending("failed", t0)])
        .await
        .unwrap();
    for (id, state) in [
        ("ok", InvocationState::Completed),
        ("failed", InvocationState::Failed),
    ] {
        backend
            .invocations
            .transition(id, &OPEN, &finish(state, t0))
            .await
            .unwrap();
    }
    assert_eq!(
        ttl(&clients, &settings, "ok").await,
        Some((t0 + Duration::hours(2)).timestamp())
    );
    assert_eq!(
        ttl(&clients, &settings, "failed").await,
        Some((t0 + Duration::days(7)).timestamp())
    );
}
