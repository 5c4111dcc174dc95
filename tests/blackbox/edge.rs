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
