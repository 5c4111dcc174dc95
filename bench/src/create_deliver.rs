//! Scenario 3: create -> deliver at low load.
//!
//! One SYNC-mode webhook subscription on `idn:identity-created` and a receiver that answers 204.
//! Not-synchronous `start` requests go out one at a time at [`RATE_PER_S`]; each carries its
//! send time (`"ts_ns"`, epoch nanoseconds) in its input, and the receiver subtracts it from its
//! own clock on arrival. The bare pipeline is timed the same way, with the same body
//! ([`crate::bare_pipeline`]), so the two p50s compare.

use std::path::Path;

use axum::body::Bytes;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::Plan;
use crate::fire_and_forget::TRIGGER;
use crate::load::{Outcomes, STALL, Summary, epoch_ns, paced};
use crate::receiver::{Answer, Receiver};
use crate::triggerline::{ProcessInfo, Triggerline};

/// Starts per second, one in flight.
pub const RATE_PER_S: f64 = 20.0;

/// Result of the create -> deliver scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreateDeliver {
    /// Paced starts measured (after the warm-up).
    pub starts: usize,
    pub rate_per_s: f64,
    /// Send of the `start` to arrival at the receiver.
    pub create_deliver: Summary,
    /// The `start` round trip (202) alone.
    pub start_latency: Summary,
    pub start_outcomes: Outcomes,
    /// Deliveries that carried their send time.
    pub timed_deliveries: usize,
    pub process: ProcessInfo,
}

/// A not-synchronous `start` of `trigger` with `input` and, inside the input, `"ts_ns"` set to
/// now: `input` must be an object whose schema allows more properties (identity-created's does).
pub fn timed_start_body(trigger: &str, input: &Value) -> Bytes {
    let mut input = input.clone();
    if let Some(object) = input.as_object_mut() {
        object.insert("ts_ns".into(), json!(epoch_ns()));
    }
    let body = json!({"triggerId": trigger, "input": input, "isSynchronous": false});
    Bytes::from(body.to_string())
}

pub async fn run(
    binary: &Path,
    client: &reqwest::Client,
    plan: &Plan,
) -> anyhow::Result<CreateDeliver> {
    let triggerline = Triggerline::start(binary, client).await?;
    let api = &triggerline.api;
    let receiver = Receiver::start(Answer::NoContentTimed).await?;
    api.subscribe("bench create-deliver", TRIGGER, &receiver.url, "SYNC")
        .await?;
    let input = api.example_input(TRIGGER).await?;
    let request = |_| {
        api.post("/trigger-invocations/v1/start")
            .header(CONTENT_TYPE, "application/json")
            .body(timed_start_body(TRIGGER, &input))
    };

    // Warm-up, unpaced: connections, SQLite pages, the subscription cache.
    let warmup = plan.paced_starts.div_ceil(10).max(10);
    paced(warmup, 1_000.0, StatusCode::ACCEPTED, "start", request).await;
    receiver.wait_for(warmup as u64, STALL).await;
    receiver.reset();

    let measured = paced(
        plan.paced_starts,
        RATE_PER_S,
        StatusCode::ACCEPTED,
        "start",
        request,
    )
    .await;
    receiver.wait_for(measured.outcomes.ok, STALL).await;
    let transits = receiver.take_transits();
    Ok(CreateDeliver {
        starts: plan.paced_starts,
        rate_per_s: RATE_PER_S,
        create_deliver: Summary::of(&transits),
        start_latency: measured.latency,
        start_outcomes: measured.outcomes,
        timed_deliveries: transits.len(),
        process: triggerline.finish().await?,
    })
}
