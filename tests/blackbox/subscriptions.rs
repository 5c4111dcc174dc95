use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{expect_error, http_subscription, spawn_app};

#[tokio::test]
async fn create_answers_201_with_secrets_nulled_and_the_signing_secret_once() {
    let app = spawn_app().await;
    let mut body = http_subscription("idn:identity-created", "https://example.test/hook", "ASYNC");
    body["httpConfig"]["httpAuthenticationType"] = json!("BEARER_TOKEN");
    body["httpConfig"]["bearerTokenAuthConfig"] = json!({"bearerToken": "s3cret"});
    body["filter"] = json!(r#"$[?($.identity.type == "IDENTITY")]"#);

    let response = app.post("/trigger-subscriptions/v1", &body).await;

    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["content-type"], "application/json");
    let created: Value = response.json().await.unwrap();
    assert!(created["id"].as_str().is_some_and(|id| id.len() == 36));
    assert_eq!(created["triggerName"], "Identity Created");
    assert_eq!(created["type"], "HTTP");
    assert_eq!(created["responseDeadline"], "PT1H");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["filter"], body["filter"]);
    assert_eq!(
        created["httpConfig"]["httpAuthenticationType"],
        "BEARER_TOKEN"
    );
    assert_eq!(
        created["httpConfig"]["bearerTokenAuthConfig"]["bearerToken"],
        Value::Null
    );
    assert!(
        created["signingSecret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert!(!created.to_string().contains("s3cret"));

    let listed = app.all_subscriptions().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    assert_eq!(listed[0]["signingSecret"], Value::Null);
    assert!(!listed[0].to_string().contains("s3cret"));
}

#[tokio::test]
async fn list_filters_by_trigger_and_type_and_sorts_by_trigger_name() {
    let app = spawn_app().await;
    app.create(&http_subscription(
        "idn:source-created",
        "https://a.test",
        "SYNC",
    ))
    .await;
    app.create(&http_subscription(
        "idn:identity-created",
        "https://b.test",
        "SYNC",
    ))
    .await;
    app.create(&json!({
        "name": "bus", "triggerId": "idn:identity-deleted", "type": "EVENTBRIDGE",
        "eventBridgeConfig": {"awsAccount": "123456789012", "awsRegion": "us-west-1"}
    }))
    .await;

    let by_trigger: Vec<Value> = app
        .get("/trigger-subscriptions/v1?filters=triggerId%20eq%20%22idn%3Asource-created%22")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_trigger.len(), 1);
    assert_eq!(by_trigger[0]["triggerId"], "idn:source-created");

    let response = app
        .get("/trigger-subscriptions/v1?filters=type%20eq%20%22EVENTBRIDGE%22&count=true")
        .await;
    assert_eq!(response.headers()["x-total-count"], "1");
    let buses: Vec<Value> = response.json().await.unwrap();
    assert_eq!(buses[0]["eventBridgeConfig"]["awsRegion"], "us-west-1");

    let sorted: Vec<Value> = app
        .get("/trigger-subscriptions/v1?sorters=-triggerName")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = sorted
        .iter()
        .map(|s| s["triggerName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Source Created", "Identity Deleted", "Identity Created"]
    );
}

#[tokio::test]
async fn put_replaces_the_subscription_and_keeps_a_left_out_secret() {
    let app = spawn_app().await;
    let mut body = http_subscription("idn:identity-created", "https://a.test", "SYNC");
    body["httpConfig"]["httpAuthenticationType"] = json!("BASIC_AUTH");
    body["httpConfig"]["basicAuthConfig"] = json!({"userName": "u", "password": "p"});
    body["description"] = json!("first");
    let created = app.create(&body).await;
    let id = created["id"].as_str().unwrap();

    let response = app
        .put(
            &format!("/trigger-subscriptions/v1/{id}"),
            &json!({
                "name": "renamed", "type": "HTTP", "responseDeadline": "PT5M", "enabled": false,
                // Same origin: a stored secret never follows the URL to another one
                // (credentials.rs).
                "httpConfig": {"url": "https://a.test/b", "httpDispatchMode": "DYNAMIC",
                    "httpAuthenticationType": "BASIC_AUTH",
                    "basicAuthConfig": {"userName": "u2", "password": null}}
            }),
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["name"], "renamed");
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["responseDeadline"], "PT5M");
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["triggerId"], "idn:identity-created");
    assert_eq!(updated["httpConfig"]["httpDispatchMode"], "DYNAMIC");
    assert_eq!(updated["httpConfig"]["basicAuthConfig"]["userName"], "u2");
    let stored = app.app.subscriptions.get(id).await.unwrap().unwrap();
    let triggerline::model::Target::Http(target) = stored.target else {
        panic!()
    };
    assert_eq!(
        target.auth,
        triggerline::model::HttpAuth::Basic {
            user_name: "u2".into(),
            password: "p".into()
        }
    );
}

#[tokio::test]
async fn put_refuses_to_change_the_trigger_and_changes_nothing() {
    let app = spawn_app().await;
    let created = app
        .create(&http_subscription(
            "idn:identity-created",
            "https://a.test",
            "SYNC",
        ))
        .await;
    let id = created["id"].as_str().unwrap();
    let mut body = http_subscription("idn:source-created", "https://b.test", "SYNC");
    body.as_object_mut().unwrap().remove("name");

    let response = app
        .put(&format!("/trigger-subscriptions/v1/{id}"), &body)
        .await;

    expect_error(response, StatusCode::BAD_REQUEST, "triggerId").await;
    assert_eq!(app.all_subscriptions().await, vec![created_view(&created)]);
}

fn created_view(created: &Value) -> Value {
    let mut v = created.clone();
    v["signingSecret"] = Value::Null;
    v
}

#[tokio::test]
async fn patch_applies_json_patch_with_sdk_style_booleans() {
    let app = spawn_app().await;
    let mut body = http_subscription("idn:identity-created", "https://a.test", "SYNC");
    body["filter"] = json!("$.identity");
    let created = app.create(&body).await;
    let id = created["id"].as_str().unwrap();

    let response = app
        .patch(
            &format!("/trigger-subscriptions/v1/{id}"),
            &json!([
                {"op": "replace", "path": "/enabled", "value": "false"},
                {"op": "remove", "path": "/filter"},
                {"op": "add", "path": "/description", "value": "patched"},
                {"op": "replace", "path": "/httpConfig/url", "value": "https://c.test/x"}
            ]),
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["filter"], Value::Null);
    assert_eq!(patched["description"], "patched");
    assert_eq!(patched["httpConfig"]["url"], "https://c.test/x");
    assert_eq!(app.all_subscriptions().await, vec![patched]);
}

#[tokio::test]
async fn patch_that_fails_validation_changes_nothing() {
    let app = spawn_app().await;
    let created = app
        .create(&http_subscription(
            "idn:identity-created",
            "https://a.test",
            "SYNC",
        ))
        .await;
    let id = created["id"].as_str().unwrap();
    let before = app.all_subscriptions().await;
    let path = format!("/trigger-subscriptions/v1/{id}");

    let cases = [
        (
            json!([{"op": "replace", "path": "/enabled", "value": "maybe"}]),
            "enabled",
        ),
        (
            json!([{"op": "replace", "path": "/triggerId", "value": "idn:source-created"}]),
            "[0].path",
        ),
        (
            json!([{"op": "replace", "path": "/responseDeadline", "value": "soon"}]),
            "responseDeadline",
        ),
        (
            json!([{"op": "remove", "path": "/httpConfig"}]),
            "httpConfig",
        ),
        (
            json!([{"op": "replace", "path": "/filter", "value": "$[?("}]),
            "filter",
        ),
        (json!([{"op": "remove", "path": "/name"}]), "name"),
        (
            json!([{"op": "replace", "path": "/type", "value": null}]),
            "type",
        ),
        (json!([{"op": "explode", "path": "/name"}]), "[0]"),
        (
            json!([{"op": "move", "from": "/nothing", "path": "/name"}]),
            "[0].path",
        ),
    ];
    for (ops, field) in cases {
        expect_error(app.patch(&path, &ops).await, StatusCode::BAD_REQUEST, field).await;
    }
    assert_eq!(app.all_subscriptions().await, before);
}

#[tokio::test]
async fn delete_answers_204_then_404() {
    let app = spawn_app().await;
    let created = app
        .create(&http_subscription(
            "idn:identity-created",
            "https://a.test",
            "SYNC",
        ))
        .await;
    let path = format!(
        "/trigger-subscriptions/v1/{}",
        created["id"].as_str().unwrap()
    );

    let first = app.delete(&path).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert!(first.bytes().await.unwrap().is_empty());

    expect_error(
        app.delete(&path).await,
        StatusCode::NOT_FOUND,
        "subscription",
    )
    .await;
    assert!(app.all_subscriptions().await.is_empty());
}

#[tokio::test]
async fn a_request_response_trigger_takes_one_subscription() {
    let app = spawn_app().await;
    let first = app
        .create(&http_subscription(
            "idn:access-request-pre-approval",
            "https://a.test",
            "SYNC",
        ))
        .await;
    let mut second =
        http_subscription("idn:access-request-pre-approval", "https://b.test", "ASYNC");
    second["enabled"] = json!(false);

    let response = app.post("/trigger-subscriptions/v1", &second).await;

    let text = expect_error(response, StatusCode::BAD_REQUEST, "triggerId").await;
    assert!(text.contains(first["id"].as_str().unwrap()), "{text}");
    assert_eq!(app.all_subscriptions().await.len(), 1);
}

#[tokio::test]
async fn concurrent_creates_for_a_request_response_trigger_leave_one() {
    let app = spawn_app().await;
    let body = http_subscription(
        "idn:access-request-dynamic-approver",
        "https://a.test",
        "SYNC",
    );

    let responses = futures_join(&app, &body, 10).await;

    assert_eq!(
        responses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1
    );
    assert_eq!(
        responses
            .iter()
            .filter(|s| **s == StatusCode::BAD_REQUEST)
            .count(),
        9
    );
    assert_eq!(app.all_subscriptions().await.len(), 1);
}

async fn futures_join(app: &crate::helpers::TestApp, body: &Value, n: usize) -> Vec<StatusCode> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let request = app
            .request(reqwest::Method::POST, "/trigger-subscriptions/v1")
            .json(body);
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

#[tokio::test]
async fn validate_filter_answers_the_three_booleans() {
    let app = spawn_app().await;
    let input = json!({"identity": {"type": "IDENTITY", "name": "Ann"}});
    let cases = [
        (r#"$[?($.identity.type == "IDENTITY")]"#, true, true),
        ("$.identity.manager", true, false),
        ("$[?(", false, false),
        // Jayway, as SailPoint reads filters: an object's filter tests the object itself.
        (r#"$.identity[?(@.type == "IDENTITY")]"#, true, true),
        (r#"$[?(@.type == "IDENTITY")]"#, true, false),
        ("$[?($.identity.name in ['Ann','Bob'])]", true, true),
    ];

    for (filter, valid_path, exists) in cases {
        let response = app
            .post(
                "/trigger-subscriptions/v1/validate-filter",
                &json!({"input": input, "filter": filter}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer,
            json!({"isValid": valid_path && exists, "isValidJSONPath": valid_path, "isPathExist": exists}),
            "{filter}"
        );
    }
}
