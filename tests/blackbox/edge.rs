//! Health, unknown routes and methods.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{expect_error, spawn_app};

#[tokio::test]
async fn health_needs_no_token() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = spawn_app().await;
    expect_error(
        app.get("/nothing/here").await,
        StatusCode::NOT_FOUND,
        "no route",
    )
    .await;
    let response = app.post("/triggers/v1", &serde_json::json!({})).await;
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED, "").await;
}

/// The response head exactly as it crosses the wire, for `GET path` with the token.
async fn raw_head(app: &crate::helpers::TestApp, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\n\r\n",
        crate::helpers::TOKEN
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    raw.split("\r\n\r\n").next().unwrap().to_owned()
}

// The official SDKs hand response headers to users as a case-sensitive dict:
// `headers.get("X-Total-Count")` must find the count, as it does against SailPoint.
#[tokio::test]
async fn header_names_go_out_in_canonical_case() {
    let app = spawn_app().await;

    let head = raw_head(&app, "/triggers/v1?count=true&limit=1").await;

    let lines: Vec<&str> = head.lines().collect();
    assert_eq!(lines[0], "HTTP/1.1 200 OK", "{head}");
    assert!(lines.contains(&"X-Total-Count: 24"), "{head}");
    assert!(lines.contains(&"Content-Type: application/json"), "{head}");
    assert!(
        lines.iter().any(|l| l.starts_with("Content-Length: ")),
        "{head}"
    );
    assert!(!head.contains("x-total-count"), "{head}");
    assert!(!head.contains("content-type"), "{head}");
}
