//! The DynamoDB stores against the port contract suites on moto, plus what only DynamoDB has to
//! prove: the SQS queue's record_attempt / reopen, TTL and the filtering of expired items, a
//! purge that really deletes, the per-trigger counter under a create race, item size, and that
//! an unreachable endpoint is `Unavailable`, not a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::json;
use tokio::task::JoinSet;
use triggerline::Error;
use triggerline::catalog::Catalog;
use triggerline::contract;
use triggerline::error::ResourceKind;
use triggerline::model::{
    Attempt, DispatchMode, Invocation, InvocationState, InvocationType, Subscription,
};
use triggerline::ports::{InvocationStore, SubscriptionStore, Transition};
use triggerline::query::{InvocationQuery, RawCollection};
use triggerline_aws::dynamo::{self, DynamoInvocationStore, DynamoSubscriptionStore, tables};
use triggerline_aws::testing::{Moto, clients_at};
use triggerline_aws::{AwsSettings, Clients};

/// Clients and freshly created tables of this test's own on the (shared) emulator.
async fn setup() -> (Moto, Clients, AwsSettings) {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    tables::create_missing(
        &clients.dynamodb,
        &settings.subscriptions_table,
        &settings.invocations_table,
    )
    .await
    .expect("create the tables");
    (moto, clients, settings)
}

fn invocations(clients: &Clients, settings: &AwsSettings) -> DynamoInvocationStore {
    DynamoInvocationStore::new(clients.dynamodb.clone(), &settings.invocations_table)
}

fn subscriptions(clients: &Clients, settings: &AwsSettings) -> DynamoSubscriptionStore {
    DynamoSubscriptionStore::new(clients.dynamodb.clone(), &settings.subscriptions_table)
}

/// Now, to the millisecond (what the stored text keeps).
fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::milliseconds(1))
        .unwrap()
}

const APPROVAL: &str = "idn:access-request-pre-approval";
const IDENTITY_CREATED: &str = "idn:identity-created";

/// A PENDING invocation of the pre-approval trigger with the catalog's example input.
fn pending(id: &str, created: DateTime<Utc>) -> Invocation {
    let trigger = &Catalog::builtin().get(APPROVAL).unwrap().trigger;
    Invocation {
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
        input: trigger.example_input.clone(),
        content_json: json!({}),
        output: None,
        error: None,
        secret_hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            .to_owned(),
        attempts: Vec::new(),
    }
}

fn attempt(at: DateTime<Utc>, status: Option<u16>, outcome: &str) -> Attempt {
    Attempt {
        started_at: at,
        target: "approvals.example.com".to_owned(),
        status_code: status,
        duration_ms: 87,
        outcome: outcome.to_owned(),
        error: None,
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

/// The raw item of an invocation, expired or not.
async fn raw(
    clients: &Clients,
    settings: &AwsSettings,
    id: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    clients
        .dynamodb
        .get_item()
        .table_name(&settings.invocations_table)
        .key(dynamo::INV_ID, AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name).map(|v| v.as_n().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscription_store_passes_the_contract() {
    let (_moto, clients, settings) = setup().await;
    contract::subscription_store(Arc::new(subscriptions(&clients, &settings))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invocation_store_passes_the_contract() {
    let (_moto, clients, settings) = setup().await;
    contract::invocation_store(Arc::new(invocations(&clients, &settings))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creating_the_tables_again_is_harmless() {
    let (_moto, clients, settings) = setup().await;
    tables::create_missing(
        &clients.dynamodb,
        &settings.subscriptions_table,
        &settings.invocations_table,
    )
    .await
    .expect("a second create_missing finds both tables and changes nothing");
    let ttl = clients
        .dynamodb
        .describe_time_to_live()
        .table_name(&settings.invocations_table)
        .send()
        .await
        .unwrap();
    let description = ttl.time_to_live_description().unwrap();
    assert_eq!(description.attribute_name(), Some(dynamo::INV_EXPIRES));
}
