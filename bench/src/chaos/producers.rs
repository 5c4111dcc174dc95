//! Producers: tasks that keep posting `POST /trigger-invocations/v1/start` until told to stop,
//! whatever happens to the server, and record every invocation id that came back with a 2xx.
//!
//! Every answer is tallied under the phase that was current when its request was sent (the
//! scenario moves the phase: "before", "outage", ...), with 503s split by whether their
//! `ErrorResponseDto` carries a `trackingId`, and requests unanswered after the client's
//! timeout counted as hangs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use tokio::task::JoinSet;
use triggerline_bench::triggerline::Api;

/// One kind of start the producers send.
#[derive(Debug, Clone)]
pub struct Kind {
    /// A short label: "FIRE_AND_FORGET", "ASYNC".
    pub label: &'static str,
    /// The JSON body of the start.
    pub body: Bytes,
    /// Producers of this kind.
    pub producers: usize,
}

/// An invocation whose start was acknowledged.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub id: String,
    pub kind: &'static str,
    /// The phase the start was sent in.
    pub phase: usize,
}

/// Running producers.
#[derive(Debug)]
pub struct Producers {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    phase: AtomicUsize,
    accepted: Mutex<Vec<Accepted>>,
    /// (phase, answer kind) -> count.
    answers: Mutex<BTreeMap<(usize, String), u64>>,
    /// Slowest answer per phase, in ms.
    slowest_ms: Mutex<BTreeMap<usize, f64>>,
}

/// Answers of one phase.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PhaseAnswers {
    /// Answer kind ("202", "503 with trackingId", "transport: connect", ...) -> count.
    pub answers: BTreeMap<String, u64>,
    pub slowest_ms: f64,
}

impl Producers {
    /// Starts `kind.producers` tasks per kind against `api`, in phase 0.
    pub fn start(api: &Api, kinds: &[Kind]) -> Producers {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            phase: AtomicUsize::new(0),
            accepted: Mutex::new(Vec::new()),
            answers: Mutex::new(BTreeMap::new()),
            slowest_ms: Mutex::new(BTreeMap::new()),
        });
        let mut tasks = JoinSet::new();
        for kind in kinds {
            for _ in 0..kind.producers {
                let (api, kind, shared) = (api.clone(), kind.clone(), shared.clone());
                tasks.spawn(async move { produce(&api, &kind, &shared).await });
            }
        }
        Producers { shared, tasks }
    }

    /// Later requests are tallied under `phase`.
    pub fn set_phase(&self, phase: usize) {
        self.shared.phase.store(phase, Ordering::Release);
    }

    /// Starts acknowledged so far.
    pub fn accepted_count(&self) -> usize {
        lock(&self.shared.accepted).len()
    }

    /// Stops the producers, waits for their last requests, and returns what they saw: every
    /// acknowledged invocation and the answers of each phase.
    pub async fn stop(mut self) -> (Vec<Accepted>, BTreeMap<usize, PhaseAnswers>) {
        self.shared.stop.store(true, Ordering::Release);
        while let Some(done) = self.tasks.join_next().await {
            if let Err(e) = done {
                eprintln!("a producer failed: {e}");
            }
        }
        let accepted = std::mem::take(&mut *lock(&self.shared.accepted));
        let mut phases: BTreeMap<usize, PhaseAnswers> = BTreeMap::new();
        for ((phase, kind), n) in lock(&self.shared.answers).iter() {
            phases
                .entry(*phase)
                .or_default()
                .answers
                .insert(kind.clone(), *n);
        }
        for (phase, ms) in lock(&self.shared.slowest_ms).iter() {
            phases.entry(*phase).or_default().slowest_ms = *ms;
        }
        (accepted, phases)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn produce(api: &Api, kind: &Kind, shared: &Shared) {
    while !shared.stop.load(Ordering::Acquire) {
        let phase = shared.phase.load(Ordering::Acquire);
        let sent = Instant::now();
        let answer = api
            .post("/trigger-invocations/v1/start")
            .header(CONTENT_TYPE, "application/json")
            .body(kind.body.clone())
            .send()
            .await;
        let (label, ids) = match answer {
            Ok(response) => {
                let status = response.status();
                let body = response.bytes().await.unwrap_or_default();
                classify(status.as_u16(), &body)
            }
            Err(e) if e.is_timeout() => {
                ("hang (no answer within the client timeout)".into(), vec![])
            }
            Err(e) if e.is_connect() => ("transport: connect".into(), vec![]),
            Err(_) => ("transport: cut off".into(), vec![]),
        };
        let took_ms = sent.elapsed().as_secs_f64() * 1e3;
        let ok = !ids.is_empty();
        if ok {
            lock(&shared.accepted).extend(ids.into_iter().map(|id| Accepted {
                id,
                kind: kind.label,
                phase,
            }));
        }
        *lock(&shared.answers).entry((phase, label)).or_insert(0) += 1;
        {
            let mut slowest = lock(&shared.slowest_ms);
            let entry = slowest.entry(phase).or_insert(0.0);
            *entry = entry.max(took_ms);
        }
        if !ok {
            // The server is down or failing: do not spin on it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The tally label of an answer, and the invocation ids of a 2xx.
fn classify(status: u16, body: &[u8]) -> (String, Vec<String>) {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match status {
        200..=299 => {
            let ids: Vec<String> = json["invocations"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|i| i["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if ids.is_empty() {
                (format!("{status} without invocation ids"), ids)
            } else {
                (status.to_string(), ids)
            }
        }
        503 => {
            let tracked = json["trackingId"].as_str().is_some_and(|t| !t.is_empty());
            let label = if tracked {
                "503 with trackingId"
            } else {
                "503 WITHOUT trackingId"
            };
            (label.into(), vec![])
        }
        _ => (format!("HTTP {status}"), vec![]),
    }
}
