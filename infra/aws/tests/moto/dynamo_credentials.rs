//! Subscription credentials at rest in DynamoDB (on moto): the stored item is read directly
//! with `GetItem`, not through the store.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use triggerline::Error;
use triggerline::duration::IsoDuration;
use triggerline::model::{
    DispatchMode, HttpAuth, HttpTarget, PreviousSigningSecret, Subscription, Target,
};
use triggerline::ports::{SubscriptionAdmin, SubscriptionStore};
use triggerline::query::{RawCollection, SubscriptionQuery};
use triggerline::secrets::{CredentialKey, SecretKey};
use triggerline_aws::dynamo::{self, DynamoSubscriptionStore};
use triggerline_aws::testing::dynamo_tables;
use triggerline_aws::{AwsSettings, Clients};

const TOKEN: &str = "bearer-2d7e41-token";
const URL_PASSWORD: &str = "url-pw-c3a9";
const BASIC_PASSWORD: &str = "basic-pw-61f0";
const SIGNING: &str = "whsec_YW5vdGhlci1zaWduaW5nLWtleS1vZi10aGUtdGVzdA";
const HOST: &str = "hooks-a41c.example.com";

fn key(byte: u8) -> CredentialKey {
    SecretKey::new(vec![byte; 32]).credential_key()
}

fn store(clients: &Clients, settings: &AwsSettings, byte: u8) -> DynamoSubscriptionStore {
    DynamoSubscriptionStore::new(
        clients.dynamodb().clone(),
        &settings.subscriptions_table,
        key(byte),
    )
}

fn subscription(id: &str) -> Subscription {
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    Subscription {
        heartbeat_timeout: None,
        health: Default::default(),
        id: id.into(),
        name: "HR".into(),
        description: None,
        trigger_id: "idn:identity-created".into(),
        trigger_name: "Identity Created".into(),
        target: Target::Http(HttpTarget {
            url: format!("https://hook-user:{URL_PASSWORD}@{HOST}/in"),
            mode: DispatchMode::Sync,
            auth: HttpAuth::Bearer {
                token: TOKEN.into(),
            },
        }),
        response_deadline: IsoDuration::parse("responseDeadline", "PT1H").unwrap(),
        enabled: true,
        filter: None,
        signing_secret: SIGNING.into(),
        previous_signing_secret: None,
        created: at,
        modified: at,
        version: 1,
    }
}

/// The whole stored item, every attribute rendered as text.
async fn raw_item(clients: &Clients, settings: &AwsSettings, id: &str) -> String {
    let out = clients
        .dynamodb()
        .get_item()
        .table_name(&settings.subscriptions_table)
        .key(
            dynamo::SUB_PK,
            AttributeValue::S(format!("{}{id}", dynamo::SUB_PK_PREFIX)),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    format!("{:?}", out.item.expect("the item"))
}

fn assert_no_plaintext(what: &str, stored: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!stored.contains(secret), "{secret} in plain text in {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_items_hold_no_plaintext_credentials_and_round_trip() {
    let (_moto, clients, settings) = dynamo_tables().await;
    let store = store(&clients, &settings, 7);
    let original = subscription("sub-1");
    store.create(&original, 50).await.unwrap();

    let item = raw_item(&clients, &settings, "sub-1").await;
    assert_no_plaintext("the item", &item, &[TOKEN, URL_PASSWORD, SIGNING, HOST]);
    assert!(item.contains("sealed:v1:"), "{item}");

    assert_eq!(store.get("sub-1").await.unwrap(), Some(original.clone()));
    assert_eq!(
        store
            .list_for_trigger("idn:identity-created")
            .await
            .unwrap(),
        vec![Arc::new(original.clone())]
    );
    let all = SubscriptionQuery::parse(&RawCollection::default()).unwrap();
    assert_eq!(
        store.list(&all).await.unwrap().items,
        vec![original.clone()]
    );

    let replaced = Subscription {
        target: Target::Http(HttpTarget {
            url: format!("https://{HOST}/basic"),
            mode: DispatchMode::Async,
            auth: HttpAuth::Basic {
                user_name: "hr".into(),
                password: BASIC_PASSWORD.into(),
            },
        }),
        version: 2,
        ..original
    };
    store.replace(&replaced, 1).await.unwrap();
    let item = raw_item(&clients, &settings, "sub-1").await;
    assert_no_plaintext("the replaced item", &item, &[BASIC_PASSWORD, SIGNING]);
    assert_eq!(store.get("sub-1").await.unwrap(), Some(replaced));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_out_signing_secret_is_stored_sealed_and_round_trips() {
    const NEW_SIGNING: &str = "whsec_cm90YXRlZC1pbi1zaWduaW5nLWtleQ";
    let (_moto, clients, settings) = dynamo_tables().await;
    let store = store(&clients, &settings, 7);
    let original = subscription("sub-1");
    store.create(&original, 50).await.unwrap();
    let until = chrono::DateTime::from_timestamp(1_700_086_400, 0).unwrap();

    let rotated = Subscription {
        signing_secret: NEW_SIGNING.into(),
        previous_signing_secret: Some(PreviousSigningSecret {
            secret: SIGNING.into(),
            until,
        }),
        version: 2,
        ..original
    };
    store.replace(&rotated, 1).await.unwrap();

    let item = raw_item(&clients, &settings, "sub-1").await;
    assert_no_plaintext("the rotated item", &item, &[SIGNING, NEW_SIGNING]);
    assert_eq!(item.matches("sealed:v1:").count(), 4, "{item}");
    assert_eq!(store.get("sub-1").await.unwrap(), Some(rotated.clone()));
    // Sealed under the service key: another key does not open it.
    assert!(
        self::store(&clients, &settings, 8)
            .get("sub-1")
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_written_before_encryption_are_read_and_sealed_on_their_next_write() {
    let (_moto, clients, settings) = dynamo_tables().await;
    let store = store(&clients, &settings, 7);
    // Created through the store (so its trigger counter exists), then overwritten with the
    // body the previous version wrote: the model's JSON, secrets in plain text.
    let legacy = subscription("legacy");
    store.create(&legacy, 50).await.unwrap();
    clients
        .dynamodb()
        .update_item()
        .table_name(&settings.subscriptions_table)
        .key(
            dynamo::SUB_PK,
            AttributeValue::S(format!("{}legacy", dynamo::SUB_PK_PREFIX)),
        )
        .update_expression("SET #b = :b")
        .expression_attribute_names("#b", dynamo::SUB_BODY)
        .expression_attribute_values(
            ":b",
            AttributeValue::S(serde_json::to_string(&legacy).unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert!(
        raw_item(&clients, &settings, "legacy")
            .await
            .contains(TOKEN)
    );

    assert_eq!(store.get("legacy").await.unwrap(), Some(legacy.clone()));
    let next = Subscription {
        name: "renamed".into(),
        version: 2,
        ..legacy
    };
    store.replace(&next, 1).await.unwrap();
    let item = raw_item(&clients, &settings, "legacy").await;
    assert_no_plaintext("the rewritten item", &item, &[TOKEN, URL_PASSWORD, SIGNING]);
    assert_eq!(store.get("legacy").await.unwrap(), Some(next));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_service_key_opens_nothing() {
    let (_moto, clients, settings) = dynamo_tables().await;
    store(&clients, &settings, 7)
        .create(&subscription("sub-1"), 50)
        .await
        .unwrap();
    let err = store(&clients, &settings, 8)
        .get("sub-1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(!format!("{err:?}").contains(TOKEN));
    // Lists and deliveries leave it out and go on with the rest.
    let other = store(&clients, &settings, 8);
    assert_eq!(
        other
            .list_for_trigger("idn:identity-created")
            .await
            .unwrap(),
        vec![]
    );
    let all = SubscriptionQuery::parse(&RawCollection::default()).unwrap();
    assert!(other.list(&all).await.unwrap().items.is_empty());
}
