//! The webhook receiver of the chaos scenarios: it counts deliveries per `webhook-id` (so that
//! duplicates show), and, as an ASYNC subscriber written from SailPoint's docs would, completes
//! each REQUEST_RESPONSE invocation through `_metadata.callbackURL` with `_metadata.secret`.
//!
//! A callback is retried until it gets 204 or the 400 of an invocation already finished: the
//! server may be dead (SIGKILL) or its store away when the callback is sent, and a subscriber
//! that gave up then would leave the invocation open until its deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// How long a subscriber keeps retrying one callback before it gives up.
const CALLBACK_PATIENCE: Duration = Duration::from_secs(600);

/// What the receiver does with a delivery that carries a callback URL and secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer 200 `{}` and complete it through the callback at once (retrying as needed).
    Complete,
    /// Answer 200 `{}` and only record the callback (the race scenario sends it itself).
    Record,
}

/// A callback the receiver was given.
#[derive(Debug, Clone)]
pub struct Callback {
    pub url: String,
    pub secret: String,
}

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct Hooks {
    /// Where to send webhooks: `http://127.0.0.1:<port>/hook`.
    pub url: String,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

#[derive(Debug)]
struct Shared {
    mode: Mode,
    client: reqwest::Client,
    /// Deliveries per `webhook-id` (the invocation id).
    seen: Mutex<HashMap<String, u32>>,
    /// Deliveries without a `webhook-id` header.
    anonymous: AtomicU64,
    callbacks: Mutex<Vec<Callback>>,
    /// Callback tasks still running.
    callbacks_open: AtomicU64,
    /// Callback answers, e.g. "204", "400 already finished", "transport" (one per try).
    callback_answers: Mutex<HashMap<String, u64>>,
    /// Callbacks given up after [`CALLBACK_PATIENCE`] or on an answer that retrying cannot fix.
    callbacks_abandoned: AtomicU64,
}

/// What the receiver saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Seen {
    /// Deliveries received.
    pub deliveries: u64,
    /// Distinct `webhook-id`s.
    pub distinct: u64,
    /// Deliveries beyond the first per `webhook-id` (at least once allows them).
    pub duplicates: u64,
    /// Most deliveries of one `webhook-id`.
    pub max_per_id: u32,
    pub without_webhook_id: u64,
    /// Every answer the callbacks got, by kind (retries included).
    pub callback_answers: std::collections::BTreeMap<String, u64>,
    pub callbacks_abandoned: u64,
    /// Callbacks still being retried when this was read.
    pub callbacks_open: u64,
}

impl Hooks {
    pub async fn start(mode: Mode, client: reqwest::Client) -> anyhow::Result<Hooks> {
        let shared = Arc::new(Shared {
            mode,
            client,
            seen: Mutex::new(HashMap::new()),
            anonymous: AtomicU64::new(0),
            callbacks: Mutex::new(Vec::new()),
            callbacks_open: AtomicU64::new(0),
            callback_answers: Mutex::new(HashMap::new()),
            callbacks_abandoned: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the receiver")?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serving = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serving.await {
                eprintln!("receiver stopped: {e}");
            }
        });
        Ok(Hooks {
            url,
            shared,
            _stop: stop,
        })
    }

    /// Whether `webhook-id` `id` was delivered at least once.
    pub fn delivered(&self, id: &str) -> bool {
        lock(&self.shared.seen).contains_key(id)
    }

    /// The callbacks recorded in [`Mode::Record`], removed from the receiver.
    pub fn take_callbacks(&self) -> Vec<Callback> {
        std::mem::take(&mut *lock(&self.shared.callbacks))
    }

    pub fn seen(&self) -> Seen {
        let seen = lock(&self.shared.seen);
        let deliveries: u64 = seen.values().map(|&n| u64::from(n)).sum();
        Seen {
            deliveries,
            distinct: seen.len() as u64,
            duplicates: deliveries - seen.len() as u64,
            max_per_id: seen.values().copied().max().unwrap_or(0),
            without_webhook_id: self.shared.anonymous.load(Ordering::Relaxed),
            callback_answers: lock(&self.shared.callback_answers)
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            callbacks_abandoned: self.shared.callbacks_abandoned.load(Ordering::Relaxed),
            callbacks_open: self.shared.callbacks_open.load(Ordering::Acquire),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    match headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
        Some(id) => *lock(&shared.seen).entry(id.to_owned()).or_insert(0) += 1,
        None => {
            shared.anonymous.fetch_add(1, Ordering::Relaxed);
        }
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let metadata = &parsed["_metadata"];
    let callback = match (
        metadata["callbackURL"].as_str(),
        metadata["secret"].as_str(),
    ) {
        (Some(url), Some(secret)) => Callback {
            url: url.to_owned(),
            secret: secret.to_owned(),
        },
        // FIRE_AND_FORGET: any 2xx will do.
        _ => return StatusCode::NO_CONTENT.into_response(),
    };
    match shared.mode {
        Mode::Record => lock(&shared.callbacks).push(callback),
        Mode::Complete => {
            shared.callbacks_open.fetch_add(1, Ordering::AcqRel);
            let shared = shared.clone();
            tokio::spawn(async move {
                complete(&shared, &callback).await;
                shared.callbacks_open.fetch_sub(1, Ordering::AcqRel);
            });
        }
    }
    ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
}

/// The output `idn:access-request-pre-approval` expects.
pub fn approval(comment: &str) -> Value {
    json!({"approved": true, "comment": comment, "approver": "triggerline-chaos"})
}

/// POSTs the callback until it is settled: 204 (completed now) or a 400 saying the invocation
/// is already finished (an earlier try, or a duplicate delivery, completed it).
async fn complete(shared: &Shared, callback: &Callback) {
    let body = json!({"secret": callback.secret, "output": approval("chaos")}).to_string();
    let began = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let answer = shared
            .client
            .post(&callback.url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let (kind, settled, hopeless) = match answer {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                match status.as_u16() {
                    204 => ("204".to_owned(), true, false),
                    400 if text.contains("already") => {
                        ("400 already finished".to_owned(), true, false)
                    }
                    // Not settled by retrying: a wrong secret, a deadline passed, a bad output.
                    400..=499 if status != StatusCode::TOO_MANY_REQUESTS => {
                        (format!("{} (given up)", status.as_u16()), false, true)
                    }
                    _ => (status.as_u16().to_string(), false, false),
                }
            }
            Err(e) if e.is_connect() => ("transport: connect".to_owned(), false, false),
            Err(_) => ("transport: other".to_owned(), false, false),
        };
        *lock(&shared.callback_answers).entry(kind).or_insert(0) += 1;
        if settled {
            return;
        }
        if hopeless || began.elapsed() > CALLBACK_PATIENCE {
            shared.callbacks_abandoned.fetch_add(1, Ordering::Relaxed);
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
