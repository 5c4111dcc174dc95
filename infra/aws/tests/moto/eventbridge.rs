//! The EventBridge publisher against a real moto server: events reach a rule's SQS target on
//! the right bus, in the right region, and rejected events are errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use triggerline::Error;
use triggerline::ports::{Event, EventPublisher};
use triggerline_aws::eventbridge::{EventBridgePublisher, create_missing_bus};
use triggerline_aws::testing::{ACCOUNT, Moto, REGION};
use triggerline_aws::{AwsSettings, Clients};

const PATIENCE: Duration = Duration::from_secs(10);

/// Clients of the same emulator in another region.
fn in_region(clients: &Clients, region: &str) -> Clients {
    let config = clients
        .config()
        .to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .build();
    Clients::from_config(config)
}

/// A queue in `clients`' region that receives what a rule on `bus` matches (events of `source`
/// with `detail_type`); returns the queue's URL.
async fn rule_to_queue(
    clients: &Clients,
    bus: &str,
    name: &str,
    source: &str,
    detail_type: &str,
) -> String {
    let url = clients
        .sqs()
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = clients
        .sqs()
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    // What a real account needs for EventBridge to deliver to the queue (moto does not check).
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": arn,
        }]
    });
    clients
        .sqs()
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .unwrap();
    clients
        .eventbridge()
        .put_rule()
        .name(name)
        .event_bus_name(bus)
        .event_pattern(json!({"source": [source], "detail-type": [detail_type]}).to_string())
        .send()
        .await
        .unwrap();
    clients
        .eventbridge()
        .put_targets()
        .rule(name)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    url
}

/// Receives until `n` events arrived (polling: a target is delivered to asynchronously on AWS).
async fn receive_events(clients: &Clients, url: &str, n: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let started = Instant::now();
    while events.len() < n {
        assert!(
            started.elapsed() < PATIENCE,
            "{} of {n} events arrived",
            events.len()
        );
        let out = clients
            .sqs()
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for message in out.messages.unwrap_or_default() {
            let event: Value = serde_json::from_str(message.body().unwrap()).unwrap();
            // SQS delivers at least once: a copy of an event already received (the same
            // EventBridge id) is the queue's redelivery, not a second event.
            if !events.iter().any(|e: &Value| e["id"] == event["id"]) {
                events.push(event);
            }
            clients
                .sqs()
                .delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if events.len() < n {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    events
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn event(bus: Option<String>, source: &str, detail_type: &str, detail: Value) -> Event {
    Event::new(bus, source, detail_type, &detail)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_rule_on_triggerlines_own_bus() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    for _ in 0..2 {
        create_missing_bus(clients.eventbridge(), &settings.event_bus)
            .await
            .unwrap();
    }
    create_missing_bus(clients.eventbridge(), "default")
        .await
        .unwrap();
    let source = unique("triggerline");
    let url = rule_to_queue(
        &clients,
        &settings.event_bus,
        &unique("completed"),
        &source,
        "Trigger Invocation Completed",
    )
    .await;
    let publisher = EventBridgePublisher::new(clients.clone(), &settings);

    // 23 events: three `PutEvents`; one of another detail-type the rule does not match.
    let mut events: Vec<Event> = (0..22)
        .map(|n| {
            event(
                None,
                &source,
                "Trigger Invocation Completed",
                json!({"invocationId": format!("inv-{n:02}"), "status": "COMPLETED", "output": {"ok": true}}),
            )
        })
        .collect();
    events.push(event(
        None,
        &source,
        "Something Else",
        json!({"invocationId": "x"}),
    ));
    publisher.publish(&events).await.unwrap();
    publisher.publish(&[]).await.unwrap();

    let mut received = receive_events(&clients, &url, 22).await;
    received.sort_by_key(|e| e["detail"]["invocationId"].as_str().unwrap().to_owned());
    for (n, e) in received.iter().enumerate() {
        assert_eq!(e["source"], json!(source));
        assert_eq!(e["detail-type"], json!("Trigger Invocation Completed"));
        assert_eq!(
            e["detail"],
            json!({"invocationId": format!("inv-{n:02}"), "status": "COMPLETED", "output": {"ok": true}})
        );
    }
    let left = clients
        .sqs()
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert!(
        left.messages.unwrap_or_default().is_empty(),
        "the unmatched detail-type was delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_bus_is_reached_by_its_arn_in_its_own_region() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    let source = unique("triggerline");
    let detail_type = "Identity Created";
    let home_url = rule_to_queue(&clients, "default", &unique("home"), &source, detail_type).await;
    let abroad = in_region(&clients, "eu-west-1");
    let abroad_url =
        rule_to_queue(&abroad, "default", &unique("abroad"), &source, detail_type).await;

    let publisher = EventBridgePublisher::new(clients.clone(), &settings);
    let arn = |region: &str| format!("arn:aws:events:{region}:{ACCOUNT}:event-bus/default");
    publisher
        .publish(&[
            event(
                Some(arn(REGION)),
                &source,
                detail_type,
                json!({"to": "home"}),
            ),
            event(
                Some(arn("eu-west-1")),
                &source,
                detail_type,
                json!({"to": "abroad"}),
            ),
        ])
        .await
        .unwrap();
    // Once more, over the regional client kept from the first time.
    publisher
        .publish(&[event(
            Some(arn("eu-west-1")),
            &source,
            detail_type,
            json!({"to": "abroad"}),
        )])
        .await
        .unwrap();

    let home = receive_events(&clients, &home_url, 1).await;
    assert_eq!(home[0]["detail"], json!({"to": "home"}));
    assert_eq!(home[0]["region"], json!(REGION));
    let away = receive_events(&abroad, &abroad_url, 2).await;
    for e in &away {
        assert_eq!(e["detail"], json!({"to": "abroad"}));
        assert_eq!(e["region"], json!("eu-west-1"));
        assert_eq!(e["source"], json!(source));
        assert_eq!(e["detail-type"], json!(detail_type));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bus_is_unavailable() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings: AwsSettings = moto.settings();
    // Never created.
    let publisher = EventBridgePublisher::new(clients.clone(), &settings);
    let err = publisher
        .publish(&[event(None, "triggerline", "Test", json!({}))])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    let arn = format!(
        "arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{}",
        unique("nobody")
    );
    let err = publisher
        .publish(&[event(Some(arn), "triggerline", "Test", json!({}))])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_entries_are_unavailable_and_named() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    create_missing_bus(clients.eventbridge(), &settings.event_bus)
        .await
        .unwrap();
    let publisher = EventBridgePublisher::new(clients.clone(), &settings);
    // An empty source is rejected per entry (FailedEntryCount), not for the whole call.
    let err = publisher
        .publish(&[
            event(None, "triggerline", "Test", json!({"n": 1})),
            event(None, "", "Test", json!({"n": 2})),
        ])
        .await
        .unwrap_err();
    let Error::Unavailable(source) = &err else {
        panic!("{err:?}");
    };
    let detail = source.to_string();
    assert!(
        detail.contains("1 of 2") && detail.contains("InvalidArgument"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_over_the_entry_limit_is_refused_naming_the_limit() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings: AwsSettings = moto.settings();
    create_missing_bus(clients.eventbridge(), &settings.event_bus)
        .await
        .unwrap();
    let publisher = EventBridgePublisher::new(clients.clone(), &settings);
    let big = json!({"blob": "x".repeat(triggerline::limits::EVENTBRIDGE_ENTRY_BYTES)});
    let err = publisher
        .publish(&[event(None, "triggerline", "Test", big)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::TooLarge { name, .. } if *name == "EVENTBRIDGE_ENTRY_BYTES"),
        "{err:?}"
    );
}
