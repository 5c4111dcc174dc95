//! The webhook receiver: an axum server on 127.0.0.1 inside the bench process (on its
//! multi-threaded runtime) that answers every request the same way and counts what it gets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::load::{epoch_ns, find_ts_ns};

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 204 with no body, without looking at the request (fire-and-forget).
    NoContent,
    /// 204, after recording how long ago the body's `"ts_ns"` was (create -> deliver).
    NoContentTimed,
    /// 200 with this JSON body (a SYNC subscriber's output).
    Json(Value),
    /// 200 `{}`, after recording `_metadata.invocationId` and `_metadata.secret` (ASYNC).
    AcknowledgeAndRecord,
}

/// What an ASYNC subscriber keeps to complete an invocation later.
#[derive(Debug, Clone)]
pub struct Callback {
    pub invocation_id: String,
    pub secret: String,
}

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    /// Where to send webhooks: `http://127.0.0.1:<port>/hook`.
    pub url: String,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

#[derive(Debug)]
struct Shared {
    answer: Answer,
    /// The JSON `Answer::Json` sends, serialized once.
    json: Bytes,
    /// Times are kept as nanoseconds since `epoch`, so that atomics can hold them.
    epoch: Instant,
    received: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    /// Requests whose body lacked `_metadata.invocationId` or `_metadata.secret`.
    malformed: AtomicU64,
    callbacks: Mutex<Vec<Callback>>,
    /// The first request body, kept to replay it directly.
    first_body: OnceLock<Bytes>,
    /// Send-to-arrival times of timed bodies (`Answer::NoContentTimed`).
    transits: Mutex<Vec<Duration>>,
}

impl Receiver {
    pub async fn start(answer: Answer) -> anyhow::Result<Receiver> {
        let json = match &answer {
            Answer::Json(body) => Bytes::from(serde_json::to_vec(body)?),
            _ => Bytes::from_static(b"{}"),
        };
        let shared = Arc::new(Shared {
            answer,
            json,
            epoch: Instant::now(),
            received: AtomicU64::new(0),
            first_ns: AtomicU64::new(u64::MAX),
            last_ns: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            callbacks: Mutex::new(Vec::new()),
            first_body: OnceLock::new(),
            transits: Mutex::new(Vec::new()),
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
        Ok(Receiver {
            url,
            shared,
            _stop: stop,
        })
    }

    /// Requests received since the start or the last [`Receiver::reset`].
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::Acquire)
    }

    /// Requests with no `_metadata.invocationId`/`secret` (only checked when recording).
    pub fn malformed(&self) -> u64 {
        self.shared.malformed.load(Ordering::Relaxed)
    }

    /// When the first and the last request since the last reset arrived.
    pub fn first_and_last(&self) -> Option<(Instant, Instant)> {
        let first = self.shared.first_ns.load(Ordering::Acquire);
        let last = self.shared.last_ns.load(Ordering::Acquire);
        (first != u64::MAX).then(|| (self.shared.at(first), self.shared.at(last)))
    }

    /// Forgets counts, times and recorded callbacks (after a warm-up).
    pub fn reset(&self) {
        self.shared.received.store(0, Ordering::Release);
        self.shared.first_ns.store(u64::MAX, Ordering::Release);
        self.shared.last_ns.store(0, Ordering::Release);
        self.shared.malformed.store(0, Ordering::Release);
        self.take_callbacks();
        self.take_transits();
    }

    /// The send-to-arrival times recorded so far (`Answer::NoContentTimed`), removed.
    pub fn take_transits(&self) -> Vec<Duration> {
        std::mem::take(
            &mut *self
                .shared
                .transits
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The callbacks recorded so far, removed from the receiver.
    pub fn take_callbacks(&self) -> Vec<Callback> {
        std::mem::take(
            &mut *self
                .shared
                .callbacks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The first body received, byte for byte.
    pub fn first_body(&self) -> Option<Bytes> {
        self.shared.first_body.get().cloned()
    }

    /// Waits until `count` requests arrived, or until none arrived for `stall`; returns
    /// whether all arrived.
    pub async fn wait_for(&self, count: u64, stall: Duration) -> bool {
        let mut seen = self.received();
        let mut last_progress = Instant::now();
        loop {
            let now = self.received();
            if now >= count {
                return true;
            }
            if now > seen {
                seen = now;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > stall {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Shared {
    fn at(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }
}

async fn handle(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let ns = u64::try_from(shared.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    shared.first_ns.fetch_min(ns, Ordering::AcqRel);
    shared.last_ns.fetch_max(ns, Ordering::AcqRel);
    if shared.first_body.get().is_none() {
        let _ = shared.first_body.set(body.clone());
    }
    let response = match &shared.answer {
        Answer::NoContent => StatusCode::NO_CONTENT.into_response(),
        Answer::NoContentTimed => {
            if let Some(sent) = find_ts_ns(&body) {
                let transit = Duration::from_nanos(epoch_ns().saturating_sub(sent));
                shared
                    .transits
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(transit);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Answer::Json(_) => json_response(shared.json.clone()),
        Answer::AcknowledgeAndRecord => {
            record(&shared, &body);
            json_response(shared.json.clone())
        }
    };
    // Counted last, so that a waiter that sees the count also sees the recorded callback.
    shared.received.fetch_add(1, Ordering::AcqRel);
    response
}

fn record(shared: &Shared, body: &[u8]) {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let metadata = &parsed["_metadata"];
    match (
        metadata["invocationId"].as_str(),
        metadata["secret"].as_str(),
    ) {
        (Some(id), Some(secret)) => shared
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Callback {
                invocation_id: id.to_owned(),
                secret: secret.to_owned(),
            }),
        _ => {
            shared.malformed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn json_response(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
