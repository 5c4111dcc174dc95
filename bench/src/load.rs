//! Load helpers: concurrent workers over a shared counter, error tallies and latency summaries.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use tokio::task::JoinSet;

use crate::triggerline::Api;

/// How long a wait goes on without progress before it gives up.
pub const STALL: Duration = Duration::from_secs(30);

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `job(0)`, `job(1)`, ... `job(count - 1)` on `concurrency` tasks; each task takes the next
/// index as soon as its previous job finished, so that `concurrency` requests are always in flight.
pub async fn run_concurrently<F, Fut>(count: usize, concurrency: usize, job: F)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let next = next.clone();
        let job = job.clone();
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                job(i).await;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        if let Err(e) = done {
            eprintln!("a load task failed: {e}");
        }
    }
}

/// What [`start_many`] did.
#[derive(Debug)]
pub struct Starts {
    /// When the first request was sent.
    pub began: Instant,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    pub outcomes: Outcomes,
    pub latency: Summary,
}

impl Starts {
    /// Accepted starts per second, producer side.
    pub fn accepted_per_s(&self) -> f64 {
        self.outcomes.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Sends `count` not-synchronous `POST /trigger-invocations/v1/start` with `body` from
/// `producers` concurrent tasks, and expects 202 from each.
pub async fn start_many(api: &Api, body: &Bytes, count: usize, producers: usize) -> Starts {
    let (api, body) = (api.clone(), body.clone());
    let request = move |_| {
        api.post("/trigger-invocations/v1/start")
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone())
    };
    let burst = burst(count, producers, StatusCode::ACCEPTED, "start", request).await;
    Starts {
        began: burst.began,
        elapsed: burst.elapsed,
        outcomes: burst.outcomes,
        latency: burst.latency,
    }
}

/// What [`burst`] did.
#[derive(Debug)]
pub struct Burst {
    /// When the first request was sent.
    pub began: Instant,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    pub outcomes: Outcomes,
    pub latency: Summary,
    /// Every request's latency, for a figure made of several bursts.
    pub samples: Vec<Duration>,
}

/// Sends `request(0)` … `request(count - 1)` from `producers` concurrent tasks, expecting
/// `want` from each; failures are tallied under `label`.
pub async fn burst<F>(
    count: usize,
    producers: usize,
    want: StatusCode,
    label: &'static str,
    request: F,
) -> Burst
where
    F: Fn(usize) -> reqwest::RequestBuilder + Clone + Send + Sync + 'static,
{
    let tally = Arc::new(Tally::default());
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let job = {
        let (tally, latencies) = (tally.clone(), latencies.clone());
        move |i: usize| {
            let request = request(i);
            let (tally, latencies) = (tally.clone(), latencies.clone());
            async move {
                let sent = Instant::now();
                let result = send(request, want).await;
                let took = sent.elapsed();
                match result {
                    Ok(_) => tally.ok(),
                    Err(kind) => tally.error(format!("{label}: {kind}")),
                }
                latencies
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(took);
            }
        }
    };
    let began = Instant::now();
    run_concurrently(count, producers, job).await;
    let elapsed = began.elapsed();
    let samples = std::mem::take(&mut *latencies.lock().unwrap_or_else(PoisonError::into_inner));
    Burst {
        began,
        elapsed,
        outcomes: tally.outcomes(),
        latency: Summary::of(&samples),
        samples,
    }
}

/// Sends `request(0)` … `request(count - 1)` one at a time, each on the next tick of a
/// `per_s` clock (one in flight: a slow answer delays the next request instead of bunching
/// them), expecting `want` from each; failures are tallied under `label`. The low-load half of
/// a latency figure, where queueing inside the server does not count.
pub async fn paced<F>(
    count: usize,
    per_s: f64,
    want: StatusCode,
    label: &'static str,
    request: F,
) -> Burst
where
    F: Fn(usize) -> reqwest::RequestBuilder,
{
    let tally = Tally::default();
    let mut latencies = Vec::with_capacity(count);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_s.max(1e-3)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let began = Instant::now();
    for i in 0..count {
        ticks.tick().await;
        let sent = Instant::now();
        match send(request(i), want).await {
            Ok(_) => tally.ok(),
            Err(kind) => tally.error(format!("{label}: {kind}")),
        }
        latencies.push(sent.elapsed());
    }
    Burst {
        began,
        elapsed: began.elapsed(),
        outcomes: tally.outcomes(),
        latency: Summary::of(&latencies),
        samples: latencies,
    }
}

/// Now, in nanoseconds since the Unix epoch: the `"ts_ns"` a timed body carries, which the
/// receiver (ours, or perf-limits' `echo-server`) subtracts from its own clock on arrival.
pub fn epoch_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The `"ts_ns":<digits>` a timed body carries, found without parsing the JSON (as
/// `echo-server` does), so that both receivers measure alike.
pub fn find_ts_ns(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"ts_ns\":";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits: &[u8] = &body[at..];
    let digits = &digits[..digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len())];
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Counts successes and, by kind, failures of many concurrent requests.
#[derive(Debug, Default)]
pub struct Tally {
    ok: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    pub fn ok(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self, kind: impl Into<String>) {
        *self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(kind.into())
            .or_insert(0) += 1;
    }

    pub fn outcomes(&self) -> Outcomes {
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Outcomes {
            ok: self.ok.load(Ordering::Relaxed),
            failed: errors.values().sum(),
            errors,
        }
    }
}

/// The result of a [`Tally`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outcomes {
    pub ok: u64,
    pub failed: u64,
    /// Failures by kind, e.g. `"HTTP 500"` or `"transport: timeout"`.
    pub errors: BTreeMap<String, u64>,
}

impl Outcomes {
    /// Adds `other`'s counts to these.
    pub fn absorb(&mut self, other: Outcomes) {
        self.ok += other.ok;
        self.failed += other.failed;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_insert(0) += n;
        }
    }
}

/// Sends a request and reads its whole body (so that the connection goes back to the pool).
/// A status other than `want`, or a transport error, is an `Err` naming its kind.
pub async fn send(request: reqwest::RequestBuilder, want: StatusCode) -> Result<Bytes, String> {
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let body = response.bytes().await.map_err(transport)?;
    if status == want {
        Ok(body)
    } else {
        Err(format!("HTTP {}", status.as_u16()))
    }
}

fn transport(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    format!("transport: {kind}")
}

/// Latencies of a series of requests.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        Summary {
            count: ms.len(),
            p50_ms: percentile(&ms, 0.50),
            p99_ms: percentile(&ms, 0.99),
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
            max_ms: ms[ms.len() - 1],
        }
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = Summary::of(&samples);
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 1e-9);
        assert!((s.p99_ms - 99.0).abs() < 1e-9);
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
        assert!((s.max_ms - 100.0).abs() < 1e-9);
    }

    #[test]
    fn finds_the_send_time_in_a_body() {
        assert_eq!(
            find_ts_ns(br#"{"input":{"ts_ns":1234567,"x":1}}"#),
            Some(1_234_567)
        );
        assert_eq!(find_ts_ns(br#"{"ts_ns":99}"#), Some(99));
        assert_eq!(find_ts_ns(br#"{"ts_ns":"x"}"#), None);
        assert_eq!(find_ts_ns(b"{}"), None);
    }
}
