//! Every kind of bad input answers a 4xx `ErrorResponseDto` naming the field and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_error, http_subscription, spawn_app};

/// Posts `body` as a new subscription, expects a 400 naming `field`, and checks nothing was
/// stored.
async fn create_is_refused(app: &TestApp, body: &Value, field: &str) -> String {
    let response = app.post("/trigger-subscriptions/v1", body).await;
    let text = expect_error(response, StatusCode::BAD_REQUEST, field).await;
    assert!(app.all_subscriptions().await.is_empty(), "state changed");
    text
}

fn valid() -> Value {
    http_subscription("idn:identity-created", "https://example.test/hook", "SYNC")
}

#[tokio::test]
async fn unknown_trigger() {
    let app = spawn_app().await;
    let mut body = valid();
    body["triggerId"] = json!("idn:access-requested");
    let text = create_is_refused(&app, &body, "triggerId").await;
    assert!(text.contains("idn:access-requested"));
}

#[tokio::test]
async fn http_subscription_without_http_config() {
    let app = spawn_app().await;
    let mut body = valid();
    body.as_object_mut().unwrap().remove("httpConfig");
    create_is_refused(&app, &body, "httpConfig").await;
}

#[tokio::test]
async fn eventbridge_subscription_with_a_sync_mode() {
    let app = spawn_app().await;
    let mut body = valid();
    body["type"] = json!("EVENTBRIDGE");
    body["eventBridgeConfig"] = json!({"awsAccount": "123456789012", "awsRegion": "us-east-1"});
    let text = create_is_refused(&app, &body, "httpConfig").await;
    assert!(text.contains("ASYNC only"), "{text}");
}

#[tokio::test]
async fn eventbridge_subscription_without_its_config() {
    let app = spawn_app().await;
    let body = json!({"name": "n", "triggerId": "idn:identity-created", "type": "EVENTBRIDGE"});
    create_is_refused(&app, &body, "eventBridgeConfig").await;
}

#[tokio::test]
async fn eventbridge_account_and_region_must_be_real() {
    let app = spawn_app().await;
    let mut body = json!({"name": "n", "triggerId": "idn:identity-created", "type": "EVENTBRIDGE",
        "eventBridgeConfig": {"awsAccount": "12345", "awsRegion": "us-east-1"}});
    create_is_refused(&app, &body, "eventBridgeConfig.awsAccount").await;
    body["eventBridgeConfig"] = json!({"awsAccount": "123456789012", "awsRegion": "us-middle-9"});
    create_is_refused(&app, &body, "eventBridgeConfig.awsRegion").await;
}

#[tokio::test]
async fn unsupported_subscription_type() {
    let app = spawn_app().await;
    let mut body = valid();
    body["type"] = json!("WORKFLOW");
    create_is_refused(&app, &body, "type").await;
}

#[tokio::test]
async fn malformed_json() {
    let app = spawn_app().await;
    let response = app
        .request(Method::POST, "/trigger-subscriptions/v1")
        .header("Content-Type", "application/json")
        .body(r#"{"name": "n", "triggerId": "#)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "body").await;
    assert!(app.all_subscriptions().await.is_empty());
}

#[tokio::test]
async fn a_compressed_body_is_a_415_naming_content_encoding() {
    let app = spawn_app().await;
    let send = |coding: &'static str| {
        app.request(Method::POST, "/trigger-subscriptions/v1")
            .header("Content-Type", "application/json")
            .header("Content-Encoding", coding)
            .body(valid().to_string())
            .send()
    };
    for coding in ["gzip", "br", "gzip, identity"] {
        let text = expect_error(
            send(coding).await.unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding",
        )
        .await;
        assert!(text.contains(coding), "{text}");
        assert!(app.all_subscriptions().await.is_empty(), "state changed");
    }
    for none in ["identity", ""] {
        assert_eq!(send(none).await.unwrap().status(), StatusCode::CREATED);
    }
}

#[tokio::test]
async fn a_byte_order_mark_before_the_json_is_skipped() {
    let app = spawn_app().await;
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend(valid().to_string().into_bytes());
    let created = app
        .request(Method::POST, "/trigger-subscriptions/v1")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(app.all_subscriptions().await.len(), 1);
}

#[tokio::test]
async fn missing_required_field() {
    let app = spawn_app().await;
    let mut body = valid();
    body.as_object_mut().unwrap().remove("name");
    create_is_refused(&app, &body, "name: is required").await;
}

#[tokio::test]
async fn wrong_type() {
    let app = spawn_app().await;
    let mut body = valid();
    body["enabled"] = json!("yes");
    create_is_refused(&app, &body, "enabled: invalid type").await;
}

#[tokio::test]
async fn unknown_enum_value() {
    let app = spawn_app().await;
    let mut body = valid();
    body["httpConfig"]["httpDispatchMode"] = json!("EVENTUALLY");
    let text = create_is_refused(&app, &body, "httpConfig.httpDispatchMode").await;
    assert!(text.contains("EVENTUALLY"), "{text}");
}

#[tokio::test]
async fn an_enum_value_that_is_not_a_string_is_named() {
    let app = spawn_app().await;
    for (pointer, wrong) in [
        ("/type", json!(null)),
        ("/type", json!(0)),
        ("/httpConfig/httpDispatchMode", json!(null)),
        ("/httpConfig/httpAuthenticationType", json!(5)),
    ] {
        let mut body = valid();
        *body.pointer_mut(pointer).unwrap() = wrong;
        let field = pointer.trim_start_matches('/').replace('/', ".");
        let text = create_is_refused(&app, &body, &field).await;
        assert!(!text.contains("not valid JSON"), "{text}");
    }
}

#[tokio::test]
async fn bad_url() {
    let app = spawn_app().await;
    let mut body = valid();
    body["httpConfig"]["url"] = json!("file:///etc/passwd");
    create_is_refused(&app, &body, "httpConfig.url").await;
}

#[tokio::test]
async fn bad_filter_expression() {
    let app = spawn_app().await;
    let mut body = valid();
    body["filter"] = json!("$[?(@.a ==");
    create_is_refused(&app, &body, "filter").await;
}

#[tokio::test]
async fn bad_response_deadline() {
    let app = spawn_app().await;
    let mut body = valid();
    body["responseDeadline"] = json!("one hour");
    create_is_refused(&app, &body, "responseDeadline").await;
    // Shorter than a second, every invocation would time out before it could be answered.
    for short in ["PT0.001S", "PT0.5S"] {
        body["responseDeadline"] = json!(short);
        let text = create_is_refused(&app, &body, "responseDeadline").await;
        assert!(text.contains("PT1S"), "{text}");
    }
    body["responseDeadline"] = json!("PT1S");
    assert_eq!(
        app.post("/trigger-subscriptions/v1", &body).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn basic_auth_without_a_password() {
    let app = spawn_app().await;
    let mut body = valid();
    body["httpConfig"]["httpAuthenticationType"] = json!("BASIC_AUTH");
    body["httpConfig"]["basicAuthConfig"] = json!({"userName": "u"});
    create_is_refused(&app, &body, "httpConfig.basicAuthConfig.password").await;
}

/// Credentials a delivery could not send as they are, and a port nothing listens on: each was
/// stored, and then every delivery failed or reached the receiver as another user.
#[tokio::test]
async fn credentials_with_control_characters_a_colon_in_a_user_name_and_port_zero() {
    let app = spawn_app().await;
    let mut bearer = valid();
    bearer["httpConfig"]["httpAuthenticationType"] = json!("BEARER_TOKEN");
    bearer["httpConfig"]["bearerTokenAuthConfig"] = json!({"bearerToken": "t\r\nX-Evil: 1"});
    let text = create_is_refused(
        &app,
        &bearer,
        "httpConfig.bearerTokenAuthConfig.bearerToken",
    )
    .await;
    assert!(!text.contains("X-Evil"), "the value is not quoted: {text}");
    for (user, password, field) in [
        ("a:b", "pw", "httpConfig.basicAuthConfig.userName"),
        ("u\n", "pw", "httpConfig.basicAuthConfig.userName"),
        ("u", "p\u{0}w", "httpConfig.basicAuthConfig.password"),
    ] {
        let mut basic = valid();
        basic["httpConfig"]["httpAuthenticationType"] = json!("BASIC_AUTH");
        basic["httpConfig"]["basicAuthConfig"] = json!({"userName": user, "password": password});
        create_is_refused(&app, &basic, field).await;
    }
    let mut port_zero = valid();
    port_zero["httpConfig"]["url"] = json!("http://127.0.0.1:0/hook");
    create_is_refused(&app, &port_zero, "httpConfig.url").await;
    // A refused URL is quoted as every response shows a URL: without its credentials.
    for url in [
        "http://alice:PWLEAK@127.0.0.1:0/hook",
        "ftp://alice:PWLEAK@example.test/",
        "http://alice:PWLEAK@h x/",
        "http://alice:PWLEAK@h:99999/",
        "http://alice:PWLEAK@example.test/\nX-Injected: 1",
    ] {
        let mut leaky = valid();
        leaky["httpConfig"]["url"] = json!(url);
        let text = create_is_refused(&app, &leaky, "httpConfig.url").await;
        assert!(!text.contains("PWLEAK"), "{url}: {text}");
    }
}

#[tokio::test]
async fn limit_over_250() {
    let app = spawn_app().await;
    for path in [
        "/triggers/v1",
        "/trigger-subscriptions/v1",
        "/trigger-invocations/v1/status",
    ] {
        let response = app.get(&format!("{path}?limit=251")).await;
        expect_error(response, StatusCode::BAD_REQUEST, "limit").await;
    }
}

#[tokio::test]
async fn a_repeated_list_parameter_is_a_400_naming_it() {
    let app = spawn_app().await;
    for (query, field) in [
        ("limit=1&limit=2", "limit"),
        ("count=true&count=false", "count"),
        ("sorters=created&sorters=-created", "sorters"),
    ] {
        let response = app
            .get(&format!("/trigger-invocations/v1/status?{query}"))
            .await;
        let text = expect_error(response, StatusCode::BAD_REQUEST, field).await;
        assert!(text.contains("more than once"), "{text}");
    }
}

/// A misspelt parameter was ignored: `filter=` listed everything, `type eq "HTPP"` nothing.
#[tokio::test]
async fn an_unknown_list_parameter_or_enum_value_is_a_400_naming_it() {
    let app = spawn_app().await;
    for path in [
        "/triggers/v1?bogus=1",
        "/trigger-subscriptions/v1?filter=id%20eq%20%22x%22",
        "/trigger-invocations/v1/status?limit=5&Limit=6",
    ] {
        let field = path
            .rsplit_once(['?', '&'])
            .unwrap()
            .1
            .split('=')
            .next()
            .unwrap();
        let text = expect_error(app.get(path).await, StatusCode::BAD_REQUEST, field).await;
        assert!(text.contains("is not a parameter here"), "{text}");
    }
    for odd in [
        "=1".to_owned(),
        format!("{}=1", "a".repeat(3000)),
        "x%00=1".to_owned(),
    ] {
        let response = app.get(&format!("/triggers/v1?{odd}")).await;
        let text = expect_error(response, StatusCode::BAD_REQUEST, "query").await;
        assert!(!text.contains("aaaa"), "not echoed: {text}");
    }
    let response = app
        .get("/trigger-subscriptions/v1?filters=type%20eq%20%22HTPP%22")
        .await;
    let text = expect_error(response, StatusCode::BAD_REQUEST, "filters").await;
    assert!(text.contains("`HTPP` is not a value of `type`"), "{text}");
}

#[tokio::test]
async fn unsupported_filter_field() {
    let app = spawn_app().await;
    let response = app
        .get("/trigger-subscriptions/v1?filters=name%20eq%20%22x%22")
        .await;
    let text = expect_error(response, StatusCode::BAD_REQUEST, "filters").await;
    assert!(text.contains("`name`"), "{text}");
}

#[tokio::test]
async fn unsupported_filter_operator() {
    let app = spawn_app().await;
    let response = app
        .get("/trigger-subscriptions/v1?filters=triggerId%20sw%20%22idn%22")
        .await;
    let text = expect_error(response, StatusCode::BAD_REQUEST, "filters").await;
    assert!(text.contains("`sw`"), "{text}");
}

#[tokio::test]
async fn unsupported_sorter() {
    let app = spawn_app().await;
    let response = app
        .get("/trigger-invocations/v1/status?sorters=status")
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "sorters").await;
}

#[tokio::test]
async fn body_over_the_limit() {
    let app = spawn_app().await;
    let mut body = valid();
    body["description"] = json!("x".repeat(1024 * 1024));
    let response = app.post("/trigger-subscriptions/v1", &body).await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "body").await;
    assert!(app.all_subscriptions().await.is_empty());
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_with_an_error_field() {
    let app = spawn_app().await;
    let no_token = app
        .client
        .post(format!("{}/trigger-subscriptions/v1", app.base))
        .json(&valid())
        .send()
        .await
        .unwrap();
    let wrong_token = app
        .client
        .post(format!("{}/trigger-subscriptions/v1", app.base))
        .bearer_auth("not-the-token")
        .json(&valid())
        .send()
        .await
        .unwrap();

    for response in [no_token, wrong_token] {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().is_some(), "{body}");
    }
    assert!(app.all_subscriptions().await.is_empty());
}

/// Posts `body` to `/start-batch` (with `headers`), expects `status` naming `field`, and checks
/// that no invocation was raised.
async fn batch_is_refused(
    app: &TestApp,
    body: &Value,
    headers: &[(&str, &str)],
    status: StatusCode,
    field: &str,
) {
    let mut request = app.request(Method::POST, "/trigger-invocations/v1/start-batch");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.json(body).send().await.unwrap();
    expect_error(response, status, field).await;
    let statuses = app.all_statuses().await;
    assert!(statuses.is_empty(), "{body}: raised {statuses:?}");
}

#[tokio::test]
async fn a_batch_with_one_bad_start_names_it_and_raises_nothing() {
    let app = spawn_app().await;
    let created = "idn:identity-created";
    app.create(&valid()).await;
    let good = json!({"triggerId": created, "input": {
        "identity": {"type": "IDENTITY", "id": "2c91808a", "name": "Ann"}, "attributes": {}}});
    let mut no_identity = good.clone();
    no_identity["input"]
        .as_object_mut()
        .unwrap()
        .remove("identity");
    let mut micros = good.clone();
    micros["timestamp"] = json!(1_764_777_600_000_000_i64);
    let mut listed = good.clone();
    listed["contentJson"] = json!([1]);
    let mut synchronous = good.clone();
    synchronous["isSynchronous"] = json!(true);
    let huge = json!({"triggerId": created, "input": {
        "identity": {"type": "IDENTITY", "id": "2c91808a", "name": "x".repeat(200 * 1024)},
        "attributes": {}}});
    let cases = [
        (json!({"starts": [good, no_identity]}), "starts[1].input"),
        (
            json!({"starts": [good, good, micros]}),
            "starts[2].timestamp",
        ),
        (json!({"starts": [listed]}), "starts[0].contentJson"),
        (
            json!({"starts": [good, synchronous]}),
            "starts[1].isSynchronous",
        ),
        (json!({"starts": []}), "starts"),
        (json!({"starts": vec![good.clone(); 101]}), "starts"),
        (json!({"starts": good}), "starts"),
        // An array where the object goes is a wrong type (serde alone would read it by
        // position, `starts` being its first member).
        (json!([good]), "body"),
    ];
    for (body, field) in &cases {
        batch_is_refused(&app, body, &[], StatusCode::BAD_REQUEST, field).await;
    }
    // Over an input's limit, as for one start: 413 naming it.
    let too_large = StatusCode::PAYLOAD_TOO_LARGE;
    let body = json!({"starts": [good, huge]});
    batch_is_refused(&app, &body, &[], too_large, "starts[1].input").await;
    // Nine starts each under their own 128 KiB, together over the 1 MiB body limit: 413.
    let mut large = good.clone();
    large["input"]["identity"]["name"] = json!("x".repeat(120 * 1024));
    let body = json!({"starts": vec![large; 9]});
    batch_is_refused(&app, &body, &[], too_large, "body").await;
    let one = json!({"starts": [good]});
    let key = [("Idempotency-Key", "k-1")];
    batch_is_refused(&app, &one, &key, StatusCode::BAD_REQUEST, "Idempotency-Key").await;
}

#[tokio::test]
async fn a_filter_of_many_conditions_is_refused_and_repeated_sorters_are_harmless() {
    // SQLite refused both with an error the list answered as a 503 "retry later" (expression
    // tree over 1,000 deep; ORDER BY of 2,000 terms), while DynamoDB's lists, sorted in memory,
    // answered 200.
    let app = spawn_app().await;
    let created = app.create(&valid()).await;
    let id = created["id"].as_str().unwrap();
    // Chains long enough to pass SQLite's 1,000 levels, still under the 64 KiB a URI takes.
    let chain = |field: &str, value: &str, n: usize| {
        vec![format!("{field} eq \"{value}\""); n].join(" and ")
    };
    for path in [
        format!(
            "/trigger-subscriptions/v1?filters={}",
            chain("id", "a", 2000)
        ),
        format!(
            "/trigger-invocations/v1/status?filters={}",
            chain("subscriptionId", "a", 1500)
        ),
        format!(
            "/trigger-invocations/v1/status?filters={}",
            chain("subscriptionId", id, 17)
        ),
    ] {
        let response = app.get(&path).await;
        let text = expect_error(response, StatusCode::BAD_REQUEST, "filters").await;
        assert!(text.contains("at most 16 conditions"), "{text}");
    }
    let response = app
        .get(&format!(
            "/trigger-subscriptions/v1?filters={}",
            chain("id", id, 16)
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let found: Vec<Value> = response.json().await.unwrap();
    assert_eq!(found.len(), 1);

    let sorters = ["-created", "completed", "subscriptionName"]
        .repeat(700)
        .join(",");
    let response = app
        .get(&format!("/trigger-invocations/v1/status?sorters={sorters}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let sorters = ["-triggerName", "triggerId"].repeat(1000).join(",");
    let response = app
        .get(&format!("/trigger-subscriptions/v1?sorters={sorters}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// Each `copy` of a member into itself doubles the document: 30 of them, 1.3 KB of patch, made
/// gigabytes and the kernel killed the process. The document is held to what a PUT may send.
#[tokio::test]
async fn a_patch_that_doubles_the_subscription_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let created = app.create(&valid()).await;
    let path = format!(
        "/trigger-subscriptions/v1/{}",
        created["id"].as_str().unwrap()
    );
    let before = app.all_subscriptions().await;

    let doubling: Vec<Value> = (0..30)
        .map(|i| json!({"op": "copy", "from": "/httpConfig", "path": format!("/httpConfig/x{i}")}))
        .collect();
    let text = expect_error(
        app.patch(&path, &json!(doubling)).await,
        StatusCode::BAD_REQUEST,
        "[",
    )
    .await;
    assert!(text.contains("MAX_PATCHED_BYTES"), "{text}");

    let many: Vec<Value> = (0..101)
        .map(|_| json!({"op": "test", "path": "/name", "value": created["name"]}))
        .collect();
    let text = expect_error(
        app.patch(&path, &json!(many)).await,
        StatusCode::BAD_REQUEST,
        "body",
    )
    .await;
    assert!(text.contains("at most 100 operations"), "{text}");

    let after = app.all_subscriptions().await;
    assert_eq!(after, before, "nothing was written");
    // A patch within both bounds still applies.
    let renamed = app
        .patch(
            &path,
            &json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
        )
        .await;
    assert_eq!(renamed.status(), StatusCode::OK);
}

/// serde reads a struct from an array of its fields in order as readily as from an object, so
/// `["idn:identity-created", {…}]` raised an invocation. An array where an object goes is a
/// wrong type, named like any other.
#[tokio::test]
async fn an_array_where_an_object_goes_is_a_400_naming_it() {
    let app = spawn_app().await;
    let mut body = valid();
    body["httpConfig"] = json!(["https://example.test/hook", "SYNC"]);
    let text = create_is_refused(&app, &body, "httpConfig").await;
    assert!(text.contains("invalid type: sequence"), "{text}");
    let positional = json!(["n", null, "idn:identity-created", "HTTP"]);
    create_is_refused(&app, &positional, "body").await;

    app.create(&http_subscription(
        "idn:identity-created",
        "http://127.0.0.1:9/hook",
        "SYNC",
    ))
    .await;
    let input = crate::delivery::example("idn:identity-created");
    for (path, body) in [
        (
            "/trigger-invocations/v1/start",
            json!(["idn:identity-created", input]),
        ),
        (
            "/trigger-invocations/v1/test",
            json!(["idn:identity-created"]),
        ),
        (
            "/trigger-subscriptions/v1/validate-filter",
            json!([input, "$.identity"]),
        ),
    ] {
        let response = app.post(path, &body).await;
        expect_error(response, StatusCode::BAD_REQUEST, "body").await;
    }
    assert!(app.all_statuses().await.is_empty(), "nothing was raised");
}
