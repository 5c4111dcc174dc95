//! Crash safety: the real binary is SIGKILLed with 200 invocations queued or in flight; after a
//! restart on the same data dir every accepted invocation reaches the receiver (duplicates are
//! allowed and recognised by `webhook-id`; losses are not).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::delivery::{CREATED, example};
use crate::helpers::{TOKEN, http_subscription};
use crate::receiver::{Answer, Receiver};
use crate::restart::start;

#[tokio::test]
async fn every_accepted_invocation_is_delivered_after_a_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    // Slow enough that most deliveries are still queued or in flight at the kill.
    let mut receiver = Receiver::start(vec![Answer::After(
        Duration::from_millis(200),
        Box::new(Answer::Empty(200)),
    )])
    .await;
    let (mut first, base) = start(data.path(), &[("TRIGGERLINE_DELIVERY_CONCURRENCY", "8")]);
    let created = client
        .post(format!("{base}/trigger-subscriptions/v1"))
        .bearer_auth(TOKEN)
        .json(&http_subscription(CREATED, &receiver.url, "SYNC"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let mut accepted = HashSet::new();
    for _ in 0..200 {
        let body: Value = client
            .post(format!("{base}/trigger-invocations/v1/start"))
            .bearer_auth(TOKEN)
            .json(&json!({"triggerId": CREATED, "input": example(CREATED)}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        accepted.insert(body["invocations"][0]["id"].as_str().unwrap().to_owned());
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let webhook_id =
        |r: &crate::receiver::Received| r.headers["webhook-id"].to_str().unwrap().to_owned();
    let mut delivered: HashSet<String> = receiver.drain().iter().map(webhook_id).collect();
    assert!(
        delivered.len() < 200,
        "the kill came too late to test anything"
    );

    let (mut second, base) = start(data.path(), &[]);
    while !accepted.is_subset(&delivered) {
        let got = receiver.next().await;
        delivered.insert(webhook_id(&got));
    }
    // And every one is accounted for as COMPLETED.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let statuses: Vec<Value> = client
            .get(format!("{base}/trigger-invocations/v1/status?limit=250"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let completed = statuses
            .iter()
            .filter(|s| s["status"] == "COMPLETED")
            .count();
        if statuses.len() == 200 && completed == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{completed} of {} completed",
            statuses.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
}
