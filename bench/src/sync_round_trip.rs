//! Scenario 2: the SYNC round trip, against the receiver alone.
//!
//! One SYNC subscription on `idn:access-request-pre-approval` whose receiver answers 200 with an
//! approval. One request at a time, alternating: a synchronous `start` through triggerline
//! (expect 200 with status COMPLETED), then a direct POST of the very body the receiver got
//! from triggerline to the receiver itself. What triggerline adds is the difference of the two
//! latency distributions at p50 and p99.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::Plan;
use crate::load::{Outcomes, Summary, Tally, send};
use crate::receiver::{Answer, Receiver};
use crate::triggerline::{Api, CpuUse, ProcessInfo, Triggerline};

pub const TRIGGER: &str = "idn:access-request-pre-approval";

/// Result of the SYNC scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncRoundTrip {
    /// Requests on each side (through triggerline, direct), after the warm-up.
    pub requests: usize,
    pub warmup_requests: usize,
    pub through: Summary,
    pub direct: Summary,
    /// through / direct at p50.
    pub ratio_p50: f64,
    /// through / direct, means.
    pub ratio_mean: f64,
    /// through - direct at p50, in ms.
    pub added_p50_ms: f64,
    /// through - direct at p99, in ms.
    pub added_p99_ms: f64,
    pub through_outcomes: Outcomes,
    pub direct_outcomes: Outcomes,
    /// CPU used by the measured requests (both sides).
    pub cpu: CpuUse,
    pub process: ProcessInfo,
}

pub async fn run(
    binary: &Path,
    client: &reqwest::Client,
    plan: &Plan,
) -> anyhow::Result<SyncRoundTrip> {
    let triggerline = Triggerline::start(binary, client).await?;
    let api = &triggerline.api;
    let approval = json!({"approved": true, "comment": "ok", "approver": "bench"});
    let receiver = Receiver::start(Answer::Json(approval)).await?;
    api.subscribe("bench sync", TRIGGER, &receiver.url, "SYNC")
        .await?;
    let input = api.example_input(TRIGGER).await?;
    let start_body = Bytes::from(serde_json::to_vec(
        &json!({"triggerId": TRIGGER, "input": input, "isSynchronous": true}),
    )?);

    // The direct side replays what triggerline sent: same size, same `_metadata`.
    let first = through(api, &start_body).await;
    anyhow::ensure!(
        first.is_ok(),
        "the first synchronous start failed: {first:?}"
    );
    let direct_body = receiver
        .first_body()
        .ok_or_else(|| anyhow::anyhow!("the receiver got nothing from the first start"))?;

    let warmup_requests = (plan.sync_requests / 10).max(50);
    let discard = Tally::default();
    for _ in 0..warmup_requests {
        record(&discard, &mut Vec::new(), through(api, &start_body).await);
        record(
            &discard,
            &mut Vec::new(),
            direct(api, &receiver.url, &direct_body).await,
        );
    }

    let (through_tally, direct_tally) = (Tally::default(), Tally::default());
    let mut through_times = Vec::with_capacity(plan.sync_requests);
    let mut direct_times = Vec::with_capacity(plan.sync_requests);
    let cpu = triggerline.cpu_meter();
    for _ in 0..plan.sync_requests {
        let result = through(api, &start_body).await;
        record(&through_tally, &mut through_times, result);
        let result = direct(api, &receiver.url, &direct_body).await;
        record(&direct_tally, &mut direct_times, result);
    }
    let cpu = triggerline.cpu_since(&cpu);

    let through = Summary::of(&through_times);
    let direct = Summary::of(&direct_times);
    Ok(SyncRoundTrip {
        requests: plan.sync_requests,
        warmup_requests,
        through,
        direct,
        ratio_p50: through.p50_ms / direct.p50_ms.max(1e-9),
        ratio_mean: through.mean_ms / direct.mean_ms.max(1e-9),
        added_p50_ms: through.p50_ms - direct.p50_ms,
        added_p99_ms: through.p99_ms - direct.p99_ms,
        through_outcomes: through_tally.outcomes(),
        direct_outcomes: direct_tally.outcomes(),
        cpu,
        process: triggerline.finish().await?,
    })
}

/// Counts the result, and keeps the latency of a success.
fn record(tally: &Tally, times: &mut Vec<Duration>, result: Result<Duration, String>) {
    match result {
        Ok(took) => {
            tally.ok();
            times.push(took);
        }
        Err(kind) => tally.error(kind),
    }
}

/// One synchronous `start`; its latency if it answered 200 with the invocation COMPLETED.
async fn through(api: &Api, body: &Bytes) -> Result<Duration, String> {
    let request = api
        .post("/trigger-invocations/v1/start")
        .header(CONTENT_TYPE, "application/json")
        .body(body.clone());
    let sent = Instant::now();
    let answer = send(request, StatusCode::OK)
        .await
        .map_err(|kind| format!("start: {kind}"))?;
    let took = sent.elapsed();
    let answer: Value = serde_json::from_slice(&answer).map_err(|_| "start: not JSON")?;
    match answer["invocations"][0]["status"].as_str() {
        Some("COMPLETED") => Ok(took),
        other => Err(format!("start: invocation {}", other.unwrap_or("missing"))),
    }
}

/// One POST of `body` straight to the receiver; its latency if it answered 200.
async fn direct(api: &Api, url: &str, body: &Bytes) -> Result<Duration, String> {
    let request = api
        .client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body.clone());
    let sent = Instant::now();
    send(request, StatusCode::OK)
        .await
        .map_err(|kind| format!("direct: {kind}"))?;
    Ok(sent.elapsed())
}
