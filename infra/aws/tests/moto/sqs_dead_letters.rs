//! The dead-letter move of the SQS queue adapter against a real moto server: which receive is
//! the last, and what a moved message carries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use triggerline::Error;
use triggerline_aws::dynamo::DynamoInvocationStore;
use triggerline_aws::sqs::{
    FailedMessage, MAX_RECEIVE_COUNT, MessageAttribute, SqsDeliveryQueue, create_missing_queues,
    dead_letter_attribute, resolve_queue_url,
};
use triggerline_aws::testing::Moto;
use triggerline_aws::{AwsSettings, Clients};

/// The work queue's adapter and the URL of its dead-letter queue.
async fn queues(moto: &Moto) -> (Clients, AwsSettings, SqsDeliveryQueue, String) {
    let clients = moto.clients().await;
    let settings = moto.settings();
    create_missing_queues(
        clients.sqs(),
        &settings.work_queue,
        &settings.dead_letter_queue,
    )
    .await
    .unwrap();
    let url = resolve_queue_url(clients.sqs(), &settings.work_queue)
        .await
        .unwrap();
    let dlq = resolve_queue_url(clients.sqs(), &settings.dead_letter_queue)
        .await
        .unwrap();
    let invocations = Arc::new(DynamoInvocationStore::new(
        clients.dynamodb().clone(),
        &settings.invocations_table,
    ));
    let queue = SqsDeliveryQueue::new(clients.sqs().clone(), url, invocations);
    (clients, settings, queue, dlq)
}

fn attribute(data_type: &str, text: Option<&str>, bytes: Option<&[u8]>) -> MessageAttribute {
    MessageAttribute {
        data_type: data_type.to_owned(),
        string_value: text.map(str::to_owned),
        binary_value: bytes.map(<[u8]>::to_vec),
    }
}

/// The one message in `url`, with every attribute.
async fn only_message(clients: &Clients, url: &str) -> aws_sdk_sqs::types::Message {
    let out = clients
        .sqs()
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let mut messages = out.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1, "{messages:?}");
    messages.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_receive_the_redrive_would_follow_is_the_last() {
    let moto = Moto::start();
    let (_clients, _settings, queue, dlq) = queues(&moto).await;
    assert!(
        !queue.is_last_receive(100),
        "without a dead-letter queue, nothing is moved: the redrive does it"
    );
    let queue = queue.with_dead_letters(dlq, MAX_RECEIVE_COUNT);
    assert!(!queue.is_last_receive(0), "a count SQS did not give");
    assert!(!queue.is_last_receive(MAX_RECEIVE_COUNT - 1));
    assert!(queue.is_last_receive(MAX_RECEIVE_COUNT));
    // An approximate count may overshoot.
    assert!(queue.is_last_receive(MAX_RECEIVE_COUNT + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_message_keeps_its_body_and_attributes_and_says_why() {
    let moto = Moto::start();
    let (clients, _settings, queue, dlq) = queues(&moto).await;
    let queue = queue.with_dead_letters(dlq.clone(), MAX_RECEIVE_COUNT);
    let reason = format!("store unavailable: {}", "é".repeat(1000));
    let failed = FailedMessage {
        body: r#"{"invocationId": "inv-1"}"#.into(),
        attributes: HashMap::from([
            ("text".to_owned(), attribute("String", Some("a"), None)),
            ("count".to_owned(), attribute("Number", Some("42"), None)),
            (
                "bytes".to_owned(),
                attribute("Binary", None, Some(&[0, 1, 2])),
            ),
        ]),
        sent_timestamp: Some(1_741_944_413_271),
        reason: reason.clone(),
    };

    queue.dead_letter(&failed).await.unwrap();

    let moved = only_message(&clients, &dlq).await;
    assert_eq!(moved.body.as_deref(), Some(failed.body.as_str()));
    let attributes: HashMap<String, MessageAttributeValue> =
        moved.message_attributes.unwrap_or_default();
    let text = |name: &str| attributes[name].string_value.clone().unwrap();
    assert_eq!(text("text"), "a");
    assert_eq!(text("count"), "42");
    assert_eq!(attributes["count"].data_type, "Number");
    assert_eq!(
        attributes["bytes"]
            .binary_value
            .as_ref()
            .map(|b| b.as_ref()),
        Some(&[0u8, 1, 2][..])
    );
    let why = text(dead_letter_attribute::FAILURE);
    assert!(reason.starts_with(&why) && why.len() <= 1024, "{why}");
    assert_eq!(text(dead_letter_attribute::FIRST_SENT), "1741944413271");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_moved_before_keeps_its_first_sent_time() {
    let moto = Moto::start();
    let (clients, _settings, queue, dlq) = queues(&moto).await;
    let queue = queue.with_dead_letters(dlq.clone(), MAX_RECEIVE_COUNT);
    let failed = FailedMessage {
        body: "garbage".into(),
        attributes: HashMap::from([(
            dead_letter_attribute::FIRST_SENT.to_owned(),
            attribute("Number", Some("1000"), None),
        )]),
        sent_timestamp: Some(2000),
        reason: "not a work message".into(),
    };
    queue.dead_letter(&failed).await.unwrap();
    let moved = only_message(&clients, &dlq).await;
    let attributes = moved.message_attributes.unwrap_or_default();
    assert_eq!(
        attributes[dead_letter_attribute::FIRST_SENT]
            .string_value
            .as_deref(),
        Some("1000")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_that_sqs_refuses_is_an_error_so_the_redrive_takes_over() {
    let moto = Moto::start();
    let (_clients, _settings, queue, dlq) = queues(&moto).await;
    let failed = FailedMessage {
        body: "garbage".into(),
        attributes: HashMap::new(),
        sent_timestamp: None,
        reason: "not a work message".into(),
    };
    assert!(
        matches!(queue.dead_letter(&failed).await, Err(Error::Unavailable(_))),
        "no dead-letter queue"
    );
    let missing = queue.with_dead_letters(format!("{dlq}-missing"), MAX_RECEIVE_COUNT);
    assert!(
        matches!(
            missing.dead_letter(&failed).await,
            Err(Error::Unavailable(_))
        ),
        "a queue that is not there"
    );
}
