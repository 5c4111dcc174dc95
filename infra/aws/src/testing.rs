//! The AWS emulator the tests run against (feature `test-support`): a real `moto_server` on
//! loopback. `scripts/test` starts one for the whole run and exports its address as
//! `TRIGGERLINE_MOTO_ENDPOINT`; a test run without it (`cargo test` by hand) starts a server of
//! its own per test, from `TRIGGERLINE_MOTO_SERVER`, `.venv/bin/moto_server` or `PATH`.
//!
//! Every test takes fresh resource names ([`Moto::settings`]), so tests sharing one server never
//! see each other's tables, queues or buses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::{AwsSettings, Clients};

/// Where the shared emulator is, when `scripts/test` started one.
pub const MOTO_ENDPOINT: &str = "TRIGGERLINE_MOTO_ENDPOINT";
/// Which `moto_server` to start when there is no shared one.
pub const MOTO_SERVER: &str = "TRIGGERLINE_MOTO_SERVER";
/// The region every test uses.
pub const REGION: &str = "us-east-1";
/// The account moto answers as.
pub const ACCOUNT: &str = "123456789012";

/// A running emulator; one this value started is stopped when it drops.
#[derive(Debug)]
pub struct Moto {
    pub endpoint: String,
    child: Option<Child>,
}

impl Moto {
    /// The shared emulator, or a new one of this test's own.
    pub fn start() -> Moto {
        if let Ok(endpoint) = std::env::var(MOTO_ENDPOINT) {
            if !endpoint.is_empty() {
                return Moto {
                    endpoint,
                    child: None,
                };
            }
        }
        Self::spawn()
    }

    /// A new emulator of this test's own on a free loopback port (the fault tests stop it).
    pub fn spawn() -> Moto {
        let port = free_port();
        Self::spawn_on(port)
    }

    /// A new emulator on `port`.
    pub fn spawn_on(port: u16) -> Moto {
        let program = moto_server();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); install moto[server] (scripts/test does) or set {MOTO_ENDPOINT}",
                    program.display()
                )
            });
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        // Polls the port until moto accepts connections (it starts in about a second).
        while TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not listen on {address} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Moto {
            endpoint: format!("http://{address}"),
            child: Some(child),
        }
    }

    /// The port this emulator listens on.
    pub fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the endpoint ends in a port")
    }

    /// Stops an emulator this value started (its state is gone with it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes an emulator this value started (SIGSTOP): connections hang and calls time out,
    /// as in an outage, while its in-memory state is kept for [`Moto::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused emulator run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self
            .child
            .as_ref()
            .expect("only an emulator this test started can be paused");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {}", child.id());
    }

    /// SDK clients pointed at this emulator, with fixed test credentials.
    pub async fn clients(&self) -> Clients {
        clients_at(&self.endpoint).await
    }

    /// Fresh resource names for one test.
    pub fn settings(&self) -> AwsSettings {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        AwsSettings {
            create_resources: true,
            ..AwsSettings::default().prefixed(&format!("t{}-", &unique[..12]))
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SIGKILL ends a paused (SIGSTOPped) emulator too.
        self.stop();
    }
}

/// A test's own DynamoDB tables on the emulator (the shared one, or a new one): its clients,
/// and fresh settings whose subscriptions and invocations tables exist.
pub async fn dynamo_tables() -> (Moto, Clients, AwsSettings) {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let settings = moto.settings();
    crate::dynamo::tables::create_missing(
        clients.dynamodb(),
        &settings.subscriptions_table,
        &settings.invocations_table,
    )
    .await
    .expect("create the tables");
    (moto, clients, settings)
}

/// The subscription credential key of the tests: from the 32 bytes of 7 the tests' function
/// environments use as their service key, so that every part of one test stack agrees.
pub fn test_credentials() -> triggerline::secrets::CredentialKey {
    triggerline::secrets::SecretKey::new(vec![7; 32]).credential_key()
}

/// SDK clients pointed at `endpoint` (an emulator, or a proxy in front of one).
pub async fn clients_at(endpoint: &str) -> Clients {
    let config = Clients::loader()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await;
    Clients::from_config(config)
}

/// Counts the AWS operations made through clients from [`counting_clients_at`], by
/// `Service.Operation` (one per call, whatever the SDK's retries: a retried call is one line
/// here and more than one request on the bill, so the counts are a floor on a healthy network).
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    /// The counts so far, and back to zero.
    pub fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    // Not `read_before_execution`: a client's interceptors run that before the operation's
    // configuration (which holds its name) is in the bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(operation) = cfg.load::<Metadata>() {
            let key = format!("{}.{}", operation.service(), operation.name());
            *self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default() += 1;
        }
        Ok(())
    }
}

/// [`clients_at`] with every client reporting its calls to `counter`.
pub async fn counting_clients_at(endpoint: &str, counter: &CallCounter) -> Clients {
    let config = clients_at(endpoint).await.config().clone();
    let clients = Clients::from_config(config.clone());
    let _ = clients.dynamodb.set(aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(counter.clone())
            .build(),
    ));
    let _ = clients.sqs.set(aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .interceptor(counter.clone())
            .build(),
    ));
    let _ = clients
        .eventbridge
        .set(aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&config)
                .interceptor(counter.clone())
                .build(),
        ));
    clients
}

fn moto_server() -> PathBuf {
    if let Ok(path) = std::env::var(MOTO_SERVER) {
        return PathBuf::from(path);
    }
    // The workspace's venv, from any crate's test directory.
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join(".venv/bin/moto_server");
        if candidate.exists() {
            return candidate;
        }
        if !dir.pop() {
            return PathBuf::from("moto_server");
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The event fixture `tests/events/<name>` of the workspace (real API Gateway v2, SQS and
/// scheduled-event JSON).
pub fn fixture(name: &str) -> String {
    let path = format!("{}/../../tests/events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What API Gateway gets back: the runtime's JSON answer to one API Gateway v2 event.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: serde_json::Value,
    pub body: serde_json::Value,
}

/// Feeds one API Gateway v2 event to `router` through `lambda_http`'s own adapter (the one
/// `lambda_http::run` wraps a router in), so both conversions are the real ones.
pub async fn invoke_http(router: axum::Router, event: &str) -> HttpAnswer {
    use lambda_http::tower::ServiceExt;
    let request: lambda_http::request::LambdaRequest =
        serde_json::from_str(event).expect("an API Gateway v2 event");
    let response = lambda_http::Adapter::from(router)
        .oneshot(lambda_http::LambdaEvent::new(
            request,
            lambda_http::Context::default(),
        ))
        .await
        .expect("the adapter answers");
    let answer = serde_json::to_value(&response).expect("a JSON answer");
    let body = match answer["body"].as_str() {
        Some(text) if !text.is_empty() => serde_json::from_str(text).expect("a JSON body"),
        _ => serde_json::Value::Null,
    };
    HttpAnswer {
        status: answer["statusCode"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .expect("a status code"),
        headers: answer["headers"].clone(),
        body,
    }
}
