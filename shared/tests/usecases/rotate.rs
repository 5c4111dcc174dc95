//! Signing secret rotation: the new secret, the previous one beside it for the grace period,
//! then only the new one; and the `gracePeriod` bounds.

use chrono::Duration as Span;
use serde_json::json;
use triggerline::Error;
use triggerline::ports::{SubscriptionStore, WorkItem};
use triggerline::secrets::webhook_signature;
use triggerline::usecases::intake::Started;
use triggerline::wire::{RotateSigningSecretRequest, StartInvocation};

use crate::support::{FIRE, Stack, example_input, t0};

fn grace(text: Option<&str>) -> RotateSigningSecretRequest {
    RotateSigningSecretRequest {
        grace_period: text.map(str::to_owned),
    }
}

/// Raises FIRE once and delivers it; the `webhook-signature` header it went out with, with
/// what was signed (id, timestamp, body).
async fn delivered_signature(stack: &Stack) -> (String, String, i64, Vec<u8>) {
    let request: StartInvocation =
        serde_json::from_value(json!({"triggerId": FIRE, "input": example_input(FIRE)})).unwrap();
    let Started::Queued(_) = stack.intake().start(request).await.unwrap() else {
        panic!("queued");
    };
    let item: WorkItem = stack.queue.queued().last().unwrap().item.clone();
    stack.delivery().deliver(&item).await.unwrap();
    let sent = stack.webhooks.requests().pop().unwrap();
    let value = |name: &str| {
        sent.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let timestamp = value("webhook-timestamp").parse().unwrap();
    (
        value("webhook-signature"),
        value("webhook-id"),
        timestamp,
        sent.body,
    )
}

#[tokio::test]
async fn during_the_grace_period_deliveries_carry_the_new_and_the_old_signature() {
    let stack = Stack::new();
    let old = stack.webhook(FIRE, "SYNC").await;

    let rotated = stack
        .subscription_uses()
        .rotate_signing_secret(&old.id, grace(Some("PT1H")))
        .await
        .unwrap();

    assert_ne!(rotated.signing_secret, old.signing_secret);
    assert!(rotated.signing_secret.expose().starts_with("whsec_"));
    let previous = rotated.previous_signing_secret.clone().unwrap();
    assert_eq!(previous.secret, old.signing_secret);
    assert_eq!(previous.until, t0() + Span::hours(1));
    assert_eq!(rotated.version, old.version + 1);
    assert_eq!(
        stack.subscriptions.get(&old.id).await.unwrap(),
        Some(rotated.clone())
    );

    let (header, id, ts, body) = delivered_signature(&stack).await;
    assert_eq!(
        header,
        format!(
            "{} {}",
            webhook_signature(rotated.signing_secret.expose(), &id, ts, &body),
            webhook_signature(old.signing_secret.expose(), &id, ts, &body)
        )
    );

    // The grace period ends (exclusive): only the new signature.
    stack.advance(Span::hours(1));
    let (header, id, ts, body) = delivered_signature(&stack).await;
    assert_eq!(
        header,
        webhook_signature(rotated.signing_secret.expose(), &id, ts, &body)
    );
}

#[tokio::test]
async fn the_default_grace_period_is_a_day_and_pt0s_drops_the_old_secret_at_once() {
    let stack = Stack::new();
    let first = stack.webhook(FIRE, "SYNC").await;

    let rotated = stack
        .subscription_uses()
        .rotate_signing_secret(&first.id, RotateSigningSecretRequest::default())
        .await
        .unwrap();
    assert_eq!(
        rotated.previous_signing_secret.unwrap().until,
        t0() + Span::hours(24)
    );

    let again = stack
        .subscription_uses()
        .rotate_signing_secret(&first.id, grace(Some("PT0S")))
        .await
        .unwrap();
    assert_eq!(again.previous_signing_secret, None);
    let (header, id, ts, body) = delivered_signature(&stack).await;
    assert_eq!(
        header,
        webhook_signature(again.signing_secret.expose(), &id, ts, &body)
    );
}

#[tokio::test]
async fn rotating_again_during_a_grace_period_keeps_only_the_last_two_secrets() {
    let stack = Stack::new();
    let first = stack.webhook(FIRE, "SYNC").await;
    let second = stack
        .subscription_uses()
        .rotate_signing_secret(&first.id, grace(Some("P1D")))
        .await
        .unwrap();
    stack.advance(Span::minutes(5));

    let third = stack
        .subscription_uses()
        .rotate_signing_secret(&first.id, grace(Some("PT2H")))
        .await
        .unwrap();

    let previous = third.previous_signing_secret.clone().unwrap();
    assert_eq!(previous.secret, second.signing_secret);
    assert_eq!(previous.until, t0() + Span::minutes(5) + Span::hours(2));
    let (header, id, ts, body) = delivered_signature(&stack).await;
    let signatures: Vec<&str> = header.split(' ').collect();
    assert_eq!(
        signatures,
        [
            webhook_signature(third.signing_secret.expose(), &id, ts, &body),
            webhook_signature(second.signing_secret.expose(), &id, ts, &body)
        ]
    );
    assert!(!header.contains(&webhook_signature(
        first.signing_secret.expose(),
        &id,
        ts,
        &body
    )));
}

#[tokio::test]
async fn a_put_after_the_grace_period_drops_the_old_secret_from_the_store() {
    let stack = Stack::new();
    let first = stack.webhook(FIRE, "SYNC").await;
    stack
        .subscription_uses()
        .rotate_signing_secret(&first.id, grace(Some("PT1H")))
        .await
        .unwrap();
    let put = || {
        serde_json::from_value(json!({
            "name": "renamed", "type": "HTTP",
            "httpConfig": {"url": "https://hooks.example.com/triggerline",
                           "httpDispatchMode": "SYNC", "httpAuthenticationType": "NO_AUTH"}
        }))
        .unwrap()
    };

    let during = stack
        .subscription_uses()
        .replace(&first.id, put())
        .await
        .unwrap();
    assert!(
        during.previous_signing_secret.is_some(),
        "kept in its grace"
    );
    stack.advance(Span::hours(1));
    let after = stack
        .subscription_uses()
        .replace(&first.id, put())
        .await
        .unwrap();

    assert_eq!(after.previous_signing_secret, None);
    let stored = stack.subscriptions.get(&first.id).await.unwrap().unwrap();
    assert_eq!(stored.previous_signing_secret, None);
}

#[tokio::test]
async fn grace_periods_out_of_bounds_or_malformed_are_refused_naming_the_field() {
    let stack = Stack::new();
    let first = stack.webhook(FIRE, "SYNC").await;
    let huge = "P".to_owned() + &"9".repeat(10_000) + "D";
    for bad in [
        "P31D",
        "PT721H",
        "P5W",
        "P4294967295D",
        "P1Y",
        "P1M",
        "-PT1H",
        "1h",
        "",
        "PT",
        "P",
        "PT0",
        huge.as_str(),
    ] {
        let err = stack
            .subscription_uses()
            .rotate_signing_secret(&first.id, grace(Some(bad)))
            .await
            .err()
            .unwrap_or_else(|| panic!("{bad} was taken"));
        assert!(matches!(err, Error::Invalid { .. }), "{bad}: {err:?}");
        assert!(err.to_string().starts_with("gracePeriod:"), "{bad}: {err}");
        assert!(err.to_string().len() < 300, "{err}");
    }
    // Nothing changed.
    assert_eq!(
        stack.subscriptions.get(&first.id).await.unwrap(),
        Some(first.clone())
    );
    for good in ["P30D", "PT720H", "P0D", "PT0S", "PT1S"] {
        stack
            .subscription_uses()
            .rotate_signing_secret(&first.id, grace(Some(good)))
            .await
            .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[tokio::test]
async fn rotating_an_unknown_subscription_is_not_found() {
    let stack = Stack::new();
    let err = stack
        .subscription_uses()
        .rotate_signing_secret("no-such-id", grace(None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
