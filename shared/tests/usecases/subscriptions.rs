//! Subscription writes through their use case: what a patch may and may not leave behind.

use serde_json::{Value, json};
use triggerline::ports::SubscriptionStore;
use triggerline::wire::SubscriptionPatchRequest;

use crate::support::{FIRE, Stack};

fn patch(ops: Value) -> SubscriptionPatchRequest {
    serde_json::from_value(ops).unwrap()
}

#[tokio::test]
async fn a_patch_that_leaves_no_name_or_type_is_refused_and_changes_nothing() {
    let stack = Stack::new();
    let created = stack.webhook(FIRE, "SYNC").await;

    for (ops, field) in [
        (json!([{"op": "remove", "path": "/name"}]), "name"),
        (
            json!([{"op": "replace", "path": "/name", "value": null}]),
            "name",
        ),
        (
            json!([{"op": "move", "from": "/name", "path": "/description"}]),
            "name",
        ),
        (json!([{"op": "remove", "path": "/type"}]), "type"),
    ] {
        let err = stack
            .subscription_uses()
            .patch(&created.id, patch(ops.clone()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{field}: is required")),
            "{ops}: {err}"
        );
    }
    let stored = stack.subscriptions.get(&created.id).await.unwrap().unwrap();
    assert_eq!(stored, created);

    let renamed = stack
        .subscription_uses()
        .patch(
            &created.id,
            patch(json!([{"op": "replace", "path": "/name", "value": "renamed"}])),
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "renamed");
}

#[tokio::test]
async fn a_response_deadline_under_a_second_is_refused_and_changes_nothing() {
    let stack = Stack::new();
    let created = stack.webhook(FIRE, "SYNC").await;

    let err = stack
        .subscription_uses()
        .patch(
            &created.id,
            patch(json!([{"op": "replace", "path": "/responseDeadline", "value": "PT0.5S"}])),
        )
        .await
        .unwrap_err()
        .to_string();

    assert!(
        err.starts_with("responseDeadline: `PT0.5S` is shorter"),
        "{err}"
    );
    let stored = stack.subscriptions.get(&created.id).await.unwrap().unwrap();
    assert_eq!(stored, created);
}
