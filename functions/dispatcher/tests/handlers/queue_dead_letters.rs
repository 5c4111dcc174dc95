//! `dispatcher-queue` and the dead-letter queue, on a real work queue and DLQ pair on moto (its
//! redrive policy and `ApproximateReceiveCount` as on SQS): a record that fails on its last
//! receive is moved to the DLQ by the consumer as a new message, so that it keeps the DLQ's whole
//! retention; the redrive remains the safety net when that move fails.
//!
//! The tests play the event source mapping: receive, hand the records to
//! [`queue_consumer::handle`] as the Lambda event, delete the records it did not report failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use dispatcher::queue_consumer;
use serde_json::{Value, json};
use triggerline::secrets::SecretKey;
use triggerline_aws::sqs::{
    MAX_RECEIVE_COUNT, SqsDeliveryQueue, dead_letter_attribute, resolve_queue_url,
};
use triggerline_aws::testing::Moto;
use triggerline_aws::{AwsBackend, Clients};
use triggerline_lambda::FunctionEnv;
use triggerline_webhook::HttpWebhookClient;

/// A body that is neither a work message nor an intake event: it fails on every receive.
const GARBAGE: &str = "not a work message";

struct Stack {
    _moto: Moto,
    clients: Clients,
    env: FunctionEnv,
    backend: AwsBackend,
    work_url: String,
    dlq_url: String,
}

/// One received message, as the test saw it.
#[derive(Debug)]
struct Received {
    message_id: String,
    receipt_handle: String,
    body: String,
    /// System attributes (`SentTimestamp`, `ApproximateReceiveCount`, …).
    attributes: HashMap<String, String>,
    message_attributes: HashMap<String, MessageAttributeValue>,
}

impl Stack {
    async fn start() -> Stack {
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
        let work_url = resolve_queue_url(clients.sqs(), &settings.work_queue)
            .await
            .unwrap();
        let dlq_url = resolve_queue_url(clients.sqs(), &settings.dead_letter_queue)
            .await
            .unwrap();
        let env = FunctionEnv {
            aws: settings,
            public_url: Some("http://127.0.0.1:8080".into()),
            secret_key: Some(SecretKey::new(vec![7; 32])),
            allow_private_targets: true,
            ..FunctionEnv::from_lookup(|_| None).unwrap()
        };
        Stack {
            _moto: moto,
            clients,
            env,
            backend,
            work_url,
            dlq_url,
        }
    }

    /// The queue `dispatcher-queue` builds in `main`, moving what fails on its last receive to
    /// `dlq_url`.
    fn consumer_queue(&self, dlq_url: &str) -> SqsDeliveryQueue {
        SqsDeliveryQueue::clone(&self.backend.queue)
            .with_dead_letters(dlq_url.to_owned(), self.env.max_receive_count)
    }

    async fn send(&self, body: &str, attributes: &[(&str, &str)]) {
        let mut send = self
            .clients
            .sqs()
            .send_message()
            .queue_url(&self.work_url)
            .message_body(body);
        for (name, value) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .unwrap();
            send = send.message_attributes(*name, value);
        }
        send.send().await.unwrap();
    }

    /// One `ReceiveMessage` with every attribute, visible again at once (a failed record comes
    /// straight back, instead of after a visibility timeout).
    async fn receive(&self, url: &str) -> Vec<Received> {
        let out = self
            .clients
            .sqs()
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Received {
                message_id: m.message_id.unwrap(),
                receipt_handle: m.receipt_handle.unwrap(),
                body: m.body.unwrap(),
                attributes: m
                    .attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v))
                    .collect(),
                message_attributes: m.message_attributes.unwrap_or_default(),
            })
            .collect()
    }

    /// What the event source mapping does once: receive a batch, invoke the function with it,
    /// delete the records it did not report failed. Returns the batch and the response.
    async fn poll_once(&self, queue: &SqsDeliveryQueue) -> (Vec<Received>, SqsBatchResponse) {
        let received = self.receive(&self.work_url).await;
        let response = queue_consumer::handle(
            &triggerline_lambda::delivery(
                &self.backend,
                Arc::new(HttpWebhookClient::new(self.env.allow_private_targets)),
                &self.env,
            )
            .unwrap(),
            queue,
            lambda_event(&received),
        )
        .await;
        for record in &received {
            let failed = response
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == record.message_id);
            if !failed {
                self.clients
                    .sqs()
                    .delete_message()
                    .queue_url(&self.work_url)
                    .receipt_handle(&record.receipt_handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
        (received, response)
    }

    /// Messages in `url`, visible or not.
    async fn count(&self, url: &str) -> u64 {
        let out = self
            .clients
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attributes = out.attributes.unwrap_or_default();
        [
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .map(|name| attributes.get(name).map_or(0, |n| n.parse().unwrap()))
        .sum()
    }
}

/// The SQS event Lambda builds from received messages.
fn lambda_event(received: &[Received]) -> SqsEvent {
    let records: Vec<Value> = received
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .message_attributes
                .iter()
                .map(|(name, value)| {
                    let value = json!({
                        "stringValue": value.string_value,
                        "binaryValue": null,
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value.data_type,
                    });
                    (name.clone(), value)
                })
                .collect();
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": m.attributes,
                "messageAttributes": attributes,
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

fn number(attributes: &HashMap<String, String>, name: &str) -> i64 {
    attributes[name].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_failing_on_its_last_receive_goes_to_the_dead_letter_queue_as_a_new_message() {
    let stack = Stack::start().await;
    assert_eq!(
        stack.env.max_receive_count, MAX_RECEIVE_COUNT,
        "the default is the redrive policy the test queues were created with"
    );
    let queue = stack.consumer_queue(&stack.dlq_url);
    stack.send(GARBAGE, &[("origin", "a test")]).await;

    let mut first_sent = None;
    for receive in 1..MAX_RECEIVE_COUNT {
        let (received, response) = stack.poll_once(&queue).await;
        assert_eq!(received.len(), 1, "receive {receive}");
        assert_eq!(
            number(&received[0].attributes, "ApproximateReceiveCount"),
            i64::from(receive)
        );
        first_sent = Some(number(&received[0].attributes, "SentTimestamp"));
        assert_eq!(
            failed_ids(&response),
            [received[0].message_id.as_str()],
            "before its last receive a failed record is received again"
        );
        assert_eq!(stack.count(&stack.dlq_url).await, 0, "receive {receive}");
    }
    let first_sent = first_sent.unwrap();

    let (received, response) = stack.poll_once(&queue).await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        number(&received[0].attributes, "ApproximateReceiveCount"),
        i64::from(MAX_RECEIVE_COUNT)
    );
    assert!(
        response.batch_item_failures.is_empty(),
        "moved, so reported processed: {response:?}"
    );
    assert_eq!(
        stack.count(&stack.work_url).await,
        0,
        "gone from the work queue"
    );

    let dead = stack.receive(&stack.dlq_url).await;
    assert_eq!(dead.len(), 1);
    let dead = &dead[0];
    assert_eq!(dead.body, GARBAGE);
    assert_ne!(dead.message_id, received[0].message_id, "a new message");
    assert!(
        number(&dead.attributes, "SentTimestamp") > first_sent,
        "sent to the DLQ after the original: its retention starts afresh"
    );
    let text = |name: &str| dead.message_attributes[name].string_value.clone().unwrap();
    assert_eq!(text("origin"), "a test", "its own attributes kept");
    assert!(
        text(dead_letter_attribute::FAILURE).contains("not a work message"),
        "{}",
        text(dead_letter_attribute::FAILURE)
    );
    assert_eq!(
        text(dead_letter_attribute::FIRST_SENT),
        first_sent.to_string()
    );
    assert_eq!(
        dead.message_attributes[dead_letter_attribute::FIRST_SENT].data_type,
        "Number"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_move_fails_the_redrive_still_dead_letters_the_record() {
    let stack = Stack::start().await;
    let missing = format!("{}-missing", stack.dlq_url);
    let queue = stack.consumer_queue(&missing);
    stack.send(GARBAGE, &[]).await;

    for receive in 1..=MAX_RECEIVE_COUNT {
        let (received, response) = stack.poll_once(&queue).await;
        assert_eq!(received.len(), 1, "receive {receive}");
        assert_eq!(failed_ids(&response), [received[0].message_id.as_str()]);
    }
    // The receive after the last: SQS's redrive moves the original message.
    assert!(stack.receive(&stack.work_url).await.is_empty());
    let dead = stack.receive(&stack.dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, GARBAGE);
    assert!(
        !dead[0]
            .message_attributes
            .contains_key(dead_letter_attribute::FAILURE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_dead_letter_queue_a_record_failing_on_its_last_receive_is_reported_failed() {
    let stack = Stack::start().await;
    let queue = SqsDeliveryQueue::clone(&stack.backend.queue);
    stack.send(GARBAGE, &[]).await;
    for _ in 1..=MAX_RECEIVE_COUNT {
        let (received, response) = stack.poll_once(&queue).await;
        assert_eq!(failed_ids(&response), [received[0].message_id.as_str()]);
    }
    assert_eq!(stack.count(&stack.dlq_url).await, 0, "nothing moved it");
    assert!(stack.receive(&stack.work_url).await.is_empty());
    assert_eq!(stack.count(&stack.dlq_url).await, 1, "redriven by SQS");
}
