//! Server bugs schemathesis found, pinned down here so they stay fixed without a schemathesis run.

#![allow(clippy::unwrap_used)]

use clap::Parser;
use reqwest::StatusCode;
use serde_json::json;
use triggerline_local::{App, Config};

const TOKEN: &str = "openapi-found-test-token";

#[tokio::test]
async fn a_content_json_that_is_not_an_object_is_refused_naming_it() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::parse_from(["triggerline"]);
    config.data_dir = data.path().to_path_buf();
    config.api_token = Some(TOKEN.into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = App::build(&config, address).await.unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let subscription = client
        .post(format!("http://{address}/trigger-subscriptions/v1"))
        .bearer_auth(TOKEN)
        .json(
            &json!({"name": "n", "triggerId": "idn:identity-created", "type": "HTTP",
            "httpConfig": {"url": "http://127.0.0.1:9/hook", "httpDispatchMode": "SYNC"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(subscription.status(), StatusCode::CREATED);

    for (path, body) in [
        (
            "test",
            json!({"triggerId": "idn:identity-created", "contentJson": [null, null]}),
        ),
        (
            "start",
            json!({"triggerId": "idn:identity-created", "contentJson": 5,
                "input": {"identity": {"type": "IDENTITY", "id": "1", "name": "A"}, "attributes": {}}}),
        ),
    ] {
        let response = client
            .post(format!("http://{address}/trigger-invocations/v1/{path}"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let error: serde_json::Value = response.json().await.unwrap();
        let text = error["messages"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("contentJson: "), "{path}: {text}");
    }
    // Nothing was stored: the status list has no invocation with that content.
    let statuses: serde_json::Value = client
        .get(format!("http://{address}/trigger-invocations/v1/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(statuses, json!([]));
}
