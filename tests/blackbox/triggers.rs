use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn lists_the_whole_catalog_with_schemas_as_strings() {
    let app = spawn_app().await;

    let response = app.get("/triggers/v1").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().get("x-total-count").is_none());
    let triggers: Vec<Value> = response.json().await.unwrap();
    assert_eq!(triggers.len(), 24);
    for t in &triggers {
        let schema: Value = serde_json::from_str(t["inputSchema"].as_str().unwrap()).unwrap();
        assert!(schema.is_object(), "{}", t["id"]);
        assert!(t["exampleInput"].is_object(), "{}", t["id"]);
        match t["type"].as_str().unwrap() {
            "REQUEST_RESPONSE" => {
                assert!(t["outputSchema"].as_str().is_some(), "{}", t["id"]);
                assert!(
                    !t["exampleOutput"].is_null()
                        || t["id"] == "idn:access-request-dynamic-approver"
                );
            }
            "FIRE_AND_FORGET" => assert!(t["outputSchema"].is_null(), "{}", t["id"]),
            other => panic!("unexpected type {other}"),
        }
    }
    let pre = triggers
        .iter()
        .find(|t| t["id"] == "idn:access-request-pre-approval")
        .unwrap();
    assert_eq!(pre["name"], "Access Request Submitted");
    assert_eq!(pre["type"], "REQUEST_RESPONSE");
}

#[tokio::test]
async fn filters_by_id_and_reports_the_total() {
    let app = spawn_app().await;

    let response = app
        .request(reqwest::Method::GET, "/triggers/v1")
        .query(&[
            ("filters", r#"id eq "idn:identity-created""#),
            ("count", "true"),
        ])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-total-count"], "1");
    let triggers: Vec<Value> = response.json().await.unwrap();
    assert_eq!(triggers.len(), 1);
    assert_eq!(triggers[0]["name"], "Identity Created");
    assert_eq!(triggers[0]["type"], "FIRE_AND_FORGET");
}

#[tokio::test]
async fn sorts_and_pages_with_the_unpaged_total() {
    let app = spawn_app().await;
    let all: Vec<Value> = app.get("/triggers/v1").await.json().await.unwrap();
    let mut names: Vec<String> = all
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names.reverse();

    let response = app
        .get("/triggers/v1?sorters=-name&limit=5&offset=2&count=true")
        .await;

    assert_eq!(response.headers()["x-total-count"], "24");
    let page: Vec<Value> = response.json().await.unwrap();
    let page_names: Vec<&str> = page.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        page_names,
        names[2..7].iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn every_published_prefix_serves_the_same_catalog() {
    let app = spawn_app().await;
    let v1: Value = app.get("/triggers/v1").await.json().await.unwrap();

    for prefix in ["beta", "v2024", "v2025", "v2026"] {
        let response = app
            .request(reqwest::Method::GET, &format!("/{prefix}/triggers"))
            .header("X-SailPoint-Experimental", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{prefix}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, v1, "{prefix}");
    }
}
