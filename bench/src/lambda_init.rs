//! Scenario 6: Lambda init, exec -> first `GET /2018-06-01/runtime/invocation/next`.
//!
//! Each bootstrap under `--lambda-dir` (a `cargo lambda build` dir, `<function>/bootstrap`, or a
//! `sam build` dir, `<LogicalId>/bootstrap`) is started `starts` times, after one unmeasured
//! start that brings the file into the page cache, against a minimal Lambda Runtime API served
//! here on 127.0.0.1: just `GET …/invocation/next` (timed, then held open until the process is
//! killed) and `POST …/init/error`. Every other request is an AWS call made during init: every
//! endpoint (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`) points at this same
//! server, which answers Secrets Manager's `GetSecretValue` (the callback key, as the template
//! has the functions fetch it at start) and refuses anything else. Nothing leaves 127.0.0.1.
//!
//! The environment is the template's (`template.yaml`: Globals plus each function's
//! Variables, the queues given as URLs) with the variables the Lambda runtime sets; nothing is
//! inherited from the bench's own environment.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::oneshot;

use crate::load::{Summary, ms};

/// The targets of issue 14, in ms.
pub const TARGET_P50_MS: f64 = 10.0;
pub const TARGET_MAX_MS: f64 = 25.0;
/// The package budget, in bytes.
pub const BUDGET_BYTES: u64 = 6_000_000;

/// The six functions: binary name, `sam build` logical id, memory (MiB) in the template.
const FUNCTIONS: [(&str, &str, u32); 6] = [
    ("subscription-api", "SubscriptionApiFunction", 256),
    ("status-query", "StatusQueryFunction", 256),
    ("invocation-complete", "InvocationCompleteFunction", 256),
    ("dispatcher", "DispatcherFunction", 512),
    ("dispatcher-queue", "DispatcherQueueFunction", 512),
    ("dispatcher-sweep", "DispatcherSweepFunction", 256),
];

/// Base64 of 32 bytes: the callback key the stub's Secrets Manager returns.
const SECRET_KEY: &str = "YmVuY2gtY2FsbGJhY2sta2V5LTMyLWJ5dGVzLWxvbmch";
const SECRET_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:triggerline-callback-key-AbCdEf";

/// The init times of every bootstrap found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LambdaInit {
    pub dir: PathBuf,
    /// Variables added to the template's (`--lambda-env`), for what-ifs.
    pub extra_env: Vec<(String, String)>,
    pub starts_per_bootstrap: usize,
    pub bootstraps: Vec<BootstrapInit>,
    /// Functions of the template with no bootstrap under `dir` (not measured).
    pub missing: Vec<String>,
}

/// One bootstrap's starts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BootstrapInit {
    pub function: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// Exec -> first `GET /next` of each measured start, in ms (empty when it never got there).
    pub init_ms: Vec<f64>,
    pub init: Summary,
    /// AWS calls seen during one start (`X-Amz-Target`, or method and path).
    pub aws_calls_per_start: Vec<String>,
    /// Why a start failed (the process exited, reported an init error, or timed out).
    pub failure: Option<String>,
}

impl BootstrapInit {
    pub fn meets_targets(&self) -> bool {
        self.failure.is_none()
            && self.init.p50_ms <= TARGET_P50_MS
            && self.init.max_ms <= TARGET_MAX_MS
    }
}

/// What the stub saw of the start under way.
#[derive(Debug, Default)]
struct Start {
    next: Option<oneshot::Sender<Instant>>,
    aws_calls: Vec<String>,
    init_error: Option<String>,
}

type Stub = Arc<Mutex<Start>>;

/// Starts every bootstrap under `dir` `starts` times each.
pub async fn run(
    dir: &Path,
    starts: usize,
    extra_env: &[(String, String)],
) -> anyhow::Result<LambdaInit> {
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("no directory {}", dir.display()))?;
    let found = bootstraps(dir)?;
    anyhow::ensure!(
        !found.is_empty(),
        "no <function>/bootstrap under {} (build with `cargo lambda build --release --bin <name> \
         --lambda-dir {}`, or `sam build --build-dir …`)",
        dir.display(),
        dir.display()
    );
    let stub: Stub = Arc::default();
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(aws_call)
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the runtime API")?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut bootstraps = Vec::new();
    for (function, memory, path) in found {
        eprintln!("      {function} ({})", path.display());
        let bytes = std::fs::metadata(&path)?.len();
        let mut env = environment(&function, memory, &path, &addr.to_string());
        env.extend(extra_env.iter().cloned());
        let mut init_ms = Vec::new();
        let mut failure = None;
        let mut aws_calls_per_start = Vec::new();
        // One unmeasured start: the file into the page cache.
        for i in 0..=starts {
            match start_once(&stub, &path, &env).await {
                Ok((took, calls)) => {
                    if i > 0 {
                        init_ms.push(ms(took));
                    }
                    aws_calls_per_start = calls;
                }
                Err(e) => {
                    failure = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        let samples: Vec<Duration> = init_ms
            .iter()
            .map(|m| Duration::from_secs_f64(m / 1e3))
            .collect();
        bootstraps.push(BootstrapInit {
            function,
            path,
            bytes,
            init: Summary::of(&samples),
            init_ms,
            aws_calls_per_start,
            failure,
        });
    }
    server.abort();
    let missing = FUNCTIONS
        .iter()
        .map(|(name, ..)| (*name).to_owned())
        .filter(|name| !bootstraps.iter().any(|b| &b.function == name))
        .collect();
    Ok(LambdaInit {
        missing,
        dir: dir.to_owned(),
        extra_env: extra_env.to_vec(),
        starts_per_bootstrap: starts,
        bootstraps,
    })
}

/// `(function, memory MiB, bootstrap)` for each function with a `bootstrap` under `dir`, by
/// binary name or by `sam build` logical id, in the template's order.
fn bootstraps(dir: &Path) -> anyhow::Result<Vec<(String, u32, PathBuf)>> {
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    let mut found = Vec::new();
    for (name, logical_id, memory) in FUNCTIONS {
        for folder in [name, logical_id] {
            let path = dir.join(folder).join("bootstrap");
            if path.is_file() {
                found.push((name.to_owned(), memory, path));
                break;
            }
        }
    }
    Ok(found)
}

/// The variables Lambda and the template give `function`, every endpoint on `runtime`.
fn environment(
    function: &str,
    memory: u32,
    bootstrap: &Path,
    runtime: &str,
) -> Vec<(String, String)> {
    let endpoint = format!("http://{runtime}");
    let task_root = bootstrap
        .parent()
        .map_or_else(String::new, |p| p.display().to_string());
    let mut env: Vec<(&str, String)> = vec![
        // What the Lambda runtime sets.
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("TZ", ":UTC".into()),
        ("_HANDLER", "bootstrap".into()),
        ("LAMBDA_TASK_ROOT", task_root),
        ("AWS_LAMBDA_RUNTIME_API", runtime.into()),
        (
            "AWS_LAMBDA_FUNCTION_NAME",
            format!("triggerline-{function}"),
        ),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/triggerline-{function}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/12/03/[$LATEST]bench".into(),
        ),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE".into()),
        ("AWS_SECRET_ACCESS_KEY", "bench-secret-access-key".into()),
        ("AWS_SESSION_TOKEN", "bench-session-token".into()),
        // Not on AWS: every call of init comes here instead.
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint.clone()),
        // template.yaml, Globals.
        ("RUST_LOG", "info".into()),
        (
            "TRIGGERLINE_SUBSCRIPTIONS_TABLE",
            "triggerline-subscriptions".into(),
        ),
        (
            "TRIGGERLINE_INVOCATIONS_TABLE",
            "triggerline-invocations".into(),
        ),
        (
            "TRIGGERLINE_WORK_QUEUE",
            format!("{endpoint}/123456789012/triggerline-work"),
        ),
        (
            "TRIGGERLINE_ORDERED_QUEUE",
            format!("{endpoint}/123456789012/triggerline-ordered.fifo"),
        ),
        ("TRIGGERLINE_ORDER_RECHECK", "PT30S".into()),
        ("TRIGGERLINE_EVENT_BUS", "triggerline".into()),
        ("TRIGGERLINE_EVENT_SOURCE", "triggerline".into()),
        ("TRIGGERLINE_SUBSCRIBER_BUS", "default".into()),
        ("TRIGGERLINE_RETENTION_SUCCEEDED", "PT24H".into()),
        ("TRIGGERLINE_RETENTION_FAILED", "PT48H".into()),
    ];
    // template.yaml, each function's Variables.
    let key = ("TRIGGERLINE_SECRET_KEY_ARN", SECRET_ARN.to_owned());
    let delivery = [
        (
            "TRIGGERLINE_PUBLIC_URL",
            "https://api.example.com".to_owned(),
        ),
        ("TRIGGERLINE_MAX_ATTEMPTS", "8".into()),
        ("TRIGGERLINE_SYNC_WAIT", "PT25S".into()),
    ];
    match function {
        "subscription-api" => env.push(key),
        "dispatcher" => {
            env.push(key);
            env.extend(delivery);
        }
        "dispatcher-queue" => {
            env.push(key);
            env.extend(delivery);
            env.push((
                "TRIGGERLINE_DEAD_LETTER_QUEUE",
                format!("{endpoint}/123456789012/triggerline-work-dlq"),
            ));
            env.push(("TRIGGERLINE_MAX_RECEIVE_COUNT", "5".into()));
        }
        "dispatcher-sweep" => env.push(("TRIGGERLINE_MAX_ATTEMPTS", "8".into())),
        _ => {}
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// One start: exec, then the time until `GET /next` and the AWS calls made before it.
async fn start_once(
    stub: &Stub,
    bootstrap: &Path,
    env: &[(String, String)],
) -> anyhow::Result<(Duration, Vec<String>)> {
    let (tx, rx) = oneshot::channel();
    *lock(stub) = Start {
        next: Some(tx),
        ..Start::default()
    };
    let log = tempfile::NamedTempFile::new()?;
    let mut command = tokio::process::Command::new(bootstrap);
    command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(bootstrap.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.reopen()?))
        .stderr(Stdio::from(log.reopen()?))
        .kill_on_drop(true);
    let exec = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", bootstrap.display()))?;
    let outcome = tokio::select! {
        at = rx => at.map(|at| at.saturating_duration_since(exec)).map_err(|_| anyhow::anyhow!("the stub lost the start")),
        status = child.wait() => Err(anyhow::anyhow!("exited ({}) before GET /next", status.map_or_else(|e| e.to_string(), |s| s.to_string()))),
        () = tokio::time::sleep(Duration::from_secs(10)) => Err(anyhow::anyhow!("no GET /next within 10 s")),
    };
    let _ = child.start_kill();
    let _ = child.wait().await;
    let start = std::mem::take(&mut *lock(stub));
    match outcome {
        Ok(took) => Ok((took, start.aws_calls)),
        Err(e) => {
            let output = std::fs::read_to_string(log.path()).unwrap_or_default();
            let tail: Vec<&str> = output.lines().rev().take(5).collect();
            Err(e.context(format!(
                "init error: {}; AWS calls: {:?}; last output: {}",
                start.init_error.as_deref().unwrap_or("none"),
                start.aws_calls,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )))
        }
    }
}

fn lock(stub: &Stub) -> std::sync::MutexGuard<'_, Start> {
    stub.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The first `GET /next` of a start: its time goes to the waiting start, and the request is
/// held open (no event is ever given) until the process is killed.
async fn next(State(stub): State<Stub>) -> Response {
    let at = Instant::now();
    if let Some(tx) = lock(&stub).next.take() {
        let _ = tx.send(at);
    }
    std::future::pending::<()>().await;
    StatusCode::NO_CONTENT.into_response()
}

async fn init_error(State(stub): State<Stub>, body: Bytes) -> StatusCode {
    lock(&stub).init_error = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

/// An AWS call during init: Secrets Manager's `GetSecretValue` gets the key; anything else is
/// refused (and shows in the report).
async fn aws_call(
    State(stub): State<Stub>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| format!("{method} {}", uri.path()), str::to_owned);
    lock(&stub).aws_calls.push(target.clone());
    if target == "secretsmanager.GetSecretValue" {
        let body = json!({
            "ARN": SECRET_ARN,
            "Name": "triggerline-callback-key",
            "SecretString": SECRET_KEY,
            "VersionId": "00000000-0000-0000-0000-000000000000",
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1_764_720_000.0
        });
        return (
            [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
            body.to_string(),
        )
            .into_response();
    }
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        json!({"__type": "UnknownOperationException", "message": "not served by the bench"})
            .to_string(),
    )
        .into_response()
}
