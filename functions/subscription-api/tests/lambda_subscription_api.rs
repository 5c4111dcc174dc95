//! The subscription API function, fed real API Gateway HTTP API (payload 2.0) events from
//! `tests/events/` through `lambda_http`'s own conversion (the adapter `lambda_http::run` wraps
//! the router in), over the DynamoDB store on moto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::Value;
use triggerline::ports::SubscriptionStore;
use triggerline::time::{RandomIds, SystemClock};
use triggerline_aws::dynamo::DynamoSubscriptionStore;
use triggerline_aws::testing::{Moto, fixture, invoke_http};
use triggerline_aws::{AwsSettings, Clients};
use triggerline_http::ApiAuth;

/// The context `main` builds.
fn context(clients: &Clients, settings: &AwsSettings) -> subscription_api::Context {
    subscription_api::Context {
        subscriptions: Arc::new(DynamoSubscriptionStore::new(
            clients.dynamodb().clone(),
            &settings.subscriptions_table,
            triggerline_aws::testing::test_credentials(),
        )),
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        auth: ApiAuth::Upstream,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_subscription_is_listed() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    // The tables, as the template creates them.
    triggerline_aws::resources::create_missing(&clients, &settings)
        .await
        .unwrap();
    // The router `main` serves.
    let router = || subscription_api::router(context(&clients, &settings));

    let created = invoke_http(router(), &fixture("apigw-v2-create-subscription.json")).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["triggerId"], "idn:identity-created");
    assert_eq!(
        created.body["httpConfig"]["bearerTokenAuthConfig"]["bearerToken"],
        Value::Null
    );
    let secret = created.body["signingSecret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));

    // `filters=triggerId eq "idn:identity-created"&count=true`, URL-encoded as API Gateway
    // passes it on in `rawQueryString`.
    let listed = invoke_http(router(), &fixture("apigw-v2-list-subscriptions.json")).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.headers["x-total-count"], "1");
    let items = listed.body.as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["name"], "New identities to HR");
    assert_eq!(items[0]["filter"], "$[?($.identity.type == \"IDENTITY\")]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_body_gets_a_sailpoint_error_through_the_gateway() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    triggerline_aws::resources::create_missing(&clients, &settings)
        .await
        .unwrap();
    let mut event: Value =
        serde_json::from_str(&fixture("apigw-v2-create-subscription.json")).unwrap();
    event["body"] = Value::from(r#"{"name": "no trigger", "type": "HTTP"}"#);

    let answer = invoke_http(
        subscription_api::router(context(&clients, &settings)),
        &event.to_string(),
    )
    .await;

    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert_eq!(answer.body["detailCode"], "400.1 Bad Request Content");
    let text = answer.body["messages"][0]["text"].as_str().unwrap();
    assert!(text.contains("triggerId"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_through_the_gateway_answers_a_new_secret_once_and_keeps_the_old_sealed() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    triggerline_aws::resources::create_missing(&clients, &settings)
        .await
        .unwrap();
    let router = || subscription_api::router(context(&clients, &settings));
    let created = invoke_http(router(), &fixture("apigw-v2-create-subscription.json")).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let old = created.body["signingSecret"].as_str().unwrap().to_owned();
    // The create event, turned into the rotation's route with no body.
    let mut event: Value =
        serde_json::from_str(&fixture("apigw-v2-create-subscription.json")).unwrap();
    let path = format!("/trigger-subscriptions/v1/{id}/rotate-secret");
    event["routeKey"] = Value::from("POST /trigger-subscriptions/v1/{id}/rotate-secret");
    event["requestContext"]["routeKey"] = event["routeKey"].clone();
    event["rawPath"] = Value::from(path.as_str());
    event["requestContext"]["http"]["path"] = Value::from(path.as_str());
    event["pathParameters"] = serde_json::json!({"id": id});
    event["headers"]["content-length"] = Value::from("0");
    event["body"] = Value::Null;

    let rotated = invoke_http(router(), &event.to_string()).await;

    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    assert_eq!(rotated.body["id"], id.as_str());
    let new = rotated.body["signingSecret"].as_str().unwrap();
    assert!(new.starts_with("whsec_") && new != old);
    let stored = DynamoSubscriptionStore::new(
        clients.dynamodb().clone(),
        &settings.subscriptions_table,
        triggerline_aws::testing::test_credentials(),
    );
    let subscription = stored.get(&id).await.unwrap().unwrap();
    assert_eq!(subscription.signing_secret.expose(), new);
    let previous = subscription.previous_signing_secret.unwrap();
    assert_eq!(previous.secret.expose(), old);
    // The default grace period: a day from now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let left = previous.until.timestamp() - i64::try_from(now).unwrap();
    assert!(left > 23 * 3600 && left <= 24 * 3600, "{left}");
}
