//! The document and the routes the local server serves cannot drift apart: every path form and
//! every method the server answers is in the document, and nothing else is. Runs the real local
//! stack (SQLite in a temp dir) on 127.0.0.1 and asks it over HTTP.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use clap::Parser;
use reqwest::{Method, StatusCode};
use triggerline_local::{App, Config};

const TOKEN: &str = "openapi-route-test-token";

struct Server {
    base: String,
    client: reqwest::Client,
    _data: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve() -> Server {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::parse_from(["triggerline"]);
    config.data_dir = data.path().to_path_buf();
    config.api_token = Some(TOKEN.into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = App::build(&config, address).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    Server {
        base: format!("http://{address}"),
        client: reqwest::Client::new(),
        _data: data,
        _stop: stop,
    }
}

/// Path template -> documented methods.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc: serde_json::Value = serde_json::from_str(&triggerline_openapi::json()).unwrap();
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .map(|m| m.to_ascii_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[tokio::test]
async fn every_served_path_is_documented_and_every_documented_path_is_served() {
    let _server = serve().await;
    let mut served: BTreeSet<String> = triggerline_http::mounted::paths();
    served.insert(triggerline_openapi::HEALTH_PATH.to_owned());
    served.insert(triggerline_openapi::DOCUMENT_PATH.to_owned());
    served.insert(triggerline_openapi::METRICS_PATH.to_owned());
    // `/console` is the browser's, a web page rather than an API: it is not mounted through
    // `Versioned`, so it is not in `served`, nor in the document.
    let documented: BTreeSet<String> = documented().into_keys().collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "served but not documented: {missing:?}; documented but not served: {extra:?}"
    );
    // Every route in every form: 5 forms of each mounted route.
    assert!(served.len() > 5 * 8, "{served:?}");
}

#[tokio::test]
async fn every_path_answers_exactly_the_documented_methods() {
    let server = serve().await;
    let probes = [
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::TRACE,
    ];
    let mut wrong = Vec::new();
    for (template, methods) in documented() {
        // A well-formed invocation id, so that no extractor refuses it before the router has
        // chosen the method.
        let path = template.replace("{id}", "0f8a6c1e-5b7d-4c2a-9e3f-1d2b3c4d5e6f");
        for method in &probes {
            let response = server
                .client
                .request(method.clone(), format!("{}{path}", server.base))
                .bearer_auth(TOKEN)
                .header("Content-Type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            let routed = status != StatusCode::METHOD_NOT_ALLOWED
                && !(status == StatusCode::NOT_FOUND && body.contains("no route for"));
            if routed != methods.contains(method.as_str()) {
                wrong.push(format!("{method} {template}: {status} {body}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "answers that differ from the document:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let server = serve().await;
    let response = server
        .client
        .get(format!(
            "{}{}",
            server.base,
            triggerline_openapi::DOCUMENT_PATH
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(response.text().await.unwrap(), triggerline_openapi::json());
}
