//! Spawning the app and talking to it.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use triggerline::time::{Clock, SystemClock};
use triggerline_local::{App, Config, LogFormat, Storage};

/// Which storage a test binary runs the suite on (`main.rs`: SQLite; `aws.rs`: the AWS adapters
/// on moto).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // each test binary constructs one
pub enum Backend {
    Sqlite,
    Aws,
}

pub const TOKEN: &str = "test-token";

/// A running local stack on a random loopback port, stopped when dropped.
pub struct TestApp {
    pub base: String,
    pub data_dir: std::path::PathBuf,
    pub client: reqwest::Client,
    pub app: App,
    /// The emulator behind an AWS-backed app (shared by the run, or this test's own).
    #[allow(dead_code)] // read by the AWS suite only
    pub moto: Option<triggerline_aws::testing::Moto>,
    _data: TempDir,
    _stop: oneshot::Sender<()>,
}

pub fn config(data_dir: &std::path::Path) -> Config {
    use clap::Parser;
    let mut config = Config::parse_from(["triggerline"]);
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.data_dir = data_dir.to_path_buf();
    config.api_token = Some(TOKEN.into());
    config.log_format = LogFormat::Text;
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}, Arc::new(SystemClock)).await
}

/// The app with a changed configuration and another clock.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config), clock: Arc<dyn Clock>) -> TestApp {
    let aws = (crate::BACKEND == Backend::Aws).then(|| {
        let moto = triggerline_aws::testing::Moto::start();
        let settings = moto.settings();
        (moto, settings)
    });
    spawn_app_on(configure, clock, aws).await
}

/// The app on the given emulator and resource names (AWS backend), or on SQLite (`None`).
pub async fn spawn_app_on(
    configure: impl FnOnce(&mut Config),
    clock: Arc<dyn Clock>,
    aws: Option<(triggerline_aws::testing::Moto, triggerline_aws::AwsSettings)>,
) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let mut config = config(data.path());
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (storage, moto) = match aws {
        None => (Storage::Sqlite, None),
        Some((moto, settings)) => (
            Storage::Aws {
                clients: Box::new(moto.clients().await),
                settings: Box::new(settings),
            },
            Some(moto),
        ),
    };
    let app = App::build_on(&config, address, clock, storage)
        .await
        .unwrap();
    let base = format!("http://{address}");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.clone().serve(listener, async {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        data_dir: data.path().to_path_buf(),
        client: reqwest::Client::new(),
        app,
        moto,
        _data: data,
        _stop: stop,
    }
}

impl TestApp {
    /// A request with the management token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.request(Method::PUT, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// PATCH as the SDK sends it: `application/json-patch+json`.
    pub async fn patch(&self, path: &str, ops: &Value) -> Response {
        self.request(Method::PATCH, path)
            .header("Content-Type", "application/json-patch+json")
            .body(ops.to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().await.unwrap()
    }

    /// Creates a subscription and returns its body.
    pub async fn create(&self, body: &Value) -> Value {
        let response = self.post("/trigger-subscriptions/v1", body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    /// Every stored subscription, as the API lists them.
    pub async fn all_subscriptions(&self) -> Vec<Value> {
        let response = self.get("/trigger-subscriptions/v1").await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// The status list's first page: every invocation of a small test.
    pub async fn all_statuses(&self) -> Vec<Value> {
        let response = self.get("/trigger-invocations/v1/status").await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

/// A webhook subscription body as the SDK would send it.
pub fn http_subscription(trigger_id: &str, url: &str, mode: &str) -> Value {
    json!({
        "name": format!("{trigger_id} via {mode}"),
        "triggerId": trigger_id,
        "type": "HTTP",
        "responseDeadline": "PT1H",
        "httpConfig": {"url": url, "httpDispatchMode": mode, "httpAuthenticationType": "NO_AUTH"},
        "enabled": true
    })
}

/// Asserts an `ErrorResponseDto` with `status` whose message starts with `field` and returns
/// the message.
pub async fn expect_error(response: Response, status: StatusCode, field: &str) -> String {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body["trackingId"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(body["detailCode"].as_str().is_some(), "{body}");
    assert_eq!(body["causes"], json!([]), "{body}");
    let text = body["messages"][0]["text"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with(field),
        "expected a message naming `{field}`, got {text:?}"
    );
    assert_eq!(body["messages"][0]["locale"], "en-US");
    text
}
