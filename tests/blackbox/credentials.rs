//! Subscription credentials through the API: redacted in every answer, never carried to another
//! origin without being sent again, still used for delivery; and the local data files'
//! modes.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use triggerline::model::{HttpAuth, Target};

use crate::delivery::CREATED;
use crate::helpers::{TestApp, expect_error, spawn_app};
use crate::receiver::{Answer, Receiver};

/// `http://user:password@host:port/hook` for the receiver's URL.
fn with_userinfo(url: &str, userinfo: &str) -> String {
    url.replacen("http://", &format!("http://{userinfo}@"), 1)
}

fn subscription(url: &str, auth: Value) -> Value {
    let mut http = json!({"url": url, "httpDispatchMode": "SYNC"});
    if let (Some(http), Some(auth)) = (http.as_object_mut(), auth.as_object()) {
        http.extend(auth.clone());
    }
    json!({
        "name": "credentials",
        "triggerId": CREATED,
        "type": "HTTP",
        "httpConfig": http,
    })
}

impl TestApp {
    /// The subscription as `GET /trigger-subscriptions/v1?filters=id eq "…"` lists it.
    async fn listed(&self, id: &str) -> Value {
        let response = self
            .request(reqwest::Method::GET, "/trigger-subscriptions/v1")
            .query(&[("filters", format!("id eq \"{id}\""))])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut items: Vec<Value> = response.json().await.unwrap();
        assert_eq!(items.len(), 1);
        items.remove(0)
    }

    async fn stored_target(&self, id: &str) -> triggerline::model::HttpTarget {
        match self
            .app
            .subscriptions
            .get(id)
            .await
            .unwrap()
            .unwrap()
            .target
        {
            Target::Http(http) => http,
            Target::EventBridge(_) => panic!("not an HTTP subscription"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_credentials_are_redacted_in_every_answer_and_still_sent() {
    let app = spawn_app().await;
    let mut receiver = Receiver::start(vec![Answer::Empty(204)]).await;
    let url = with_userinfo(&receiver.url, "hook-user:url-s3cret");
    let redacted = with_userinfo(&receiver.url, "hook-user:*****");

    let created = app.create(&subscription(&url, json!({}))).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["httpConfig"]["url"], redacted, "{created}");
    assert_eq!(app.listed(&id).await["httpConfig"]["url"], redacted);
    assert!(
        !app.all_subscriptions().await[0]
            .to_string()
            .contains("url-s3cret")
    );

    // A PUT that sends back what GET showed keeps the stored password.
    let mut put = app.listed(&id).await;
    put["name"] = json!("renamed");
    let response = app
        .put(&format!("/trigger-subscriptions/v1/{id}"), &put)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["httpConfig"]["url"], redacted, "{updated}");
    // So does a JSON Patch of another field (it is applied to the redacted view).
    let response = app
        .patch(
            &format!("/trigger-subscriptions/v1/{id}"),
            &json!([{"op": "replace", "path": "/description", "value": "d"}]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["httpConfig"]["url"], redacted, "{patched}");
    assert_eq!(app.stored_target(&id).await.url, url);

    app.start_one(CREATED).await;
    let delivered = receiver.next().await;
    let expected = base64::engine::general_purpose::STANDARD.encode("hook-user:url-s3cret");
    assert_eq!(
        delivered.headers["authorization"].to_str().unwrap(),
        format!("Basic {expected}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_url_to_another_host_needs_the_credentials_again() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::Empty(204)]).await;
    let bearer = json!({
        "httpAuthenticationType": "BEARER_TOKEN",
        "bearerTokenAuthConfig": {"bearerToken": "stored-t0ken"}
    });
    let created = app.create(&subscription(&receiver.url, bearer)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/trigger-subscriptions/v1/{id}");
    let elsewhere = "https://elsewhere.example.com/hook";

    // PUT to another host without the token: refused, nothing changed.
    let mut put = app.listed(&id).await;
    put["httpConfig"]["url"] = json!(elsewhere);
    let message = expect_error(
        app.put(&path, &put).await,
        StatusCode::BAD_REQUEST,
        "httpConfig.url",
    )
    .await;
    assert!(message.contains("bearerToken"), "{message}");
    // The same through JSON Patch.
    let move_url = json!([{"op": "replace", "path": "/httpConfig/url", "value": elsewhere}]);
    expect_error(
        app.patch(&path, &move_url).await,
        StatusCode::BAD_REQUEST,
        "httpConfig.url",
    )
    .await;
    assert_eq!(app.stored_target(&id).await.url, receiver.url);

    // Another path on the same origin keeps the token.
    let same_origin = format!("{}/v2", receiver.url);
    let response = app
        .patch(
            &path,
            &json!([{"op": "replace", "path": "/httpConfig/url", "value": same_origin}]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.stored_target(&id).await.auth,
        HttpAuth::Bearer {
            token: "stored-t0ken".into()
        }
    );

    // With the token sent again (PUT), or without auth (PATCH), the move is accepted.
    put["httpConfig"]["bearerTokenAuthConfig"] = json!({"bearerToken": "new-t0ken"});
    let response = app.put(&path, &put).await;
    assert_eq!(response.status(), StatusCode::OK);
    let moved = app.stored_target(&id).await;
    assert_eq!(moved.url, elsewhere);
    assert_eq!(
        moved.auth,
        HttpAuth::Bearer {
            token: "new-t0ken".into()
        }
    );
    let response = app
        .patch(
            &path,
            &json!([
                {"op": "replace", "path": "/httpConfig/url", "value": receiver.url},
                {"op": "replace", "path": "/httpConfig/httpAuthenticationType", "value": "NO_AUTH"}
            ]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.stored_target(&id).await.auth, HttpAuth::None);

    // URL credentials sent back redacted do not follow a move either.
    let with_password = with_userinfo(&receiver.url, "u:pw");
    let response = app
        .patch(
            &path,
            &json!([{"op": "replace", "path": "/httpConfig/url", "value": with_password}]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let redacted_elsewhere = "https://u:*****@elsewhere.example.com/hook";
    let move_url =
        json!([{"op": "replace", "path": "/httpConfig/url", "value": redacted_elsewhere}]);
    expect_error(
        app.patch(&path, &move_url).await,
        StatusCode::BAD_REQUEST,
        "httpConfig.url",
    )
    .await;
    assert_eq!(app.stored_target(&id).await.url, with_password);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_data_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    if crate::BACKEND != crate::helpers::Backend::Sqlite {
        return;
    }
    let app = spawn_app().await;
    // A committed write, so that the WAL and its shared-memory index exist.
    let receiver = Receiver::start(vec![Answer::Empty(204)]).await;
    app.create(&subscription(&receiver.url, json!({}))).await;
    for name in [
        "triggerline.db",
        "triggerline.db-wal",
        "triggerline.db-shm",
        "events.jsonl",
        "secret.key",
    ] {
        let path = app.data_dir.join(name);
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
}
