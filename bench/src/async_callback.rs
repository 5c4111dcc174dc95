//! Scenario 3: ASYNC completions per second through the callback, and memory with many
//! invocations open.
//!
//! One ASYNC subscription on `idn:access-request-dynamic-approver`; the receiver answers 200 `{}`
//! and records each `_metadata.invocationId` and `_metadata.secret`. In each round, K
//! invocations are started and acknowledged; with all of them open the process's memory is
//! read; then `producers` concurrent tasks POST the K callbacks
//! (`/trigger-invocations/v1/{id}/complete`, expect 204). Rounds repeat until at least as many
//! callbacks were timed as the bare pipeline's accept rate is timed over (its F&F count), so
//! that neither figure is a fraction of a second long.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::Plan;
use crate::load::{Burst, Outcomes, STALL, Summary, burst, start_many};
use crate::receiver::{Answer, Callback, Receiver};
use crate::triggerline::{Api, CpuUse, Memory, ProcessInfo, Triggerline};

pub const TRIGGER: &str = "idn:access-request-dynamic-approver";

/// Result of the ASYNC scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AsyncCallbacks {
    /// Invocations open at once in each round of the measured part.
    pub invocations: usize,
    /// Rounds of `invocations` started, acknowledged and completed.
    pub rounds: usize,
    pub warmup_invocations: usize,
    pub starts_per_s: f64,
    pub start_outcomes: Outcomes,
    /// Deliveries the receiver recorded (with id and secret).
    pub delivered: u64,
    /// Deliveries without `_metadata.invocationId` or `secret`.
    pub malformed_deliveries: u64,
    /// Invocations seen ACKNOWLEDGED before the callbacks began (the fewest of any round).
    pub in_flight: usize,
    /// Memory with `in_flight` invocations open (the round with the most resident).
    pub memory_in_flight: Memory,
    pub completions_per_s: f64,
    pub callback_latency: Summary,
    pub callback_outcomes: Outcomes,
    /// CPU used while the callbacks ran (every round).
    pub cpu: CpuUse,
    /// Invocations (warm-up included) by status after the callbacks.
    pub statuses: BTreeMap<String, usize>,
    pub all_completed: bool,
    pub process: ProcessInfo,
}

pub async fn run(
    binary: &Path,
    client: &reqwest::Client,
    plan: &Plan,
) -> anyhow::Result<AsyncCallbacks> {
    let triggerline = Triggerline::start(binary, client).await?;
    let api = &triggerline.api;
    let receiver = Receiver::start(Answer::AcknowledgeAndRecord).await?;
    let subscription = [api
        .subscribe("bench async", TRIGGER, &receiver.url, "ASYNC")
        .await?];
    let input = api.example_input(TRIGGER).await?;
    let body = Bytes::from(serde_json::to_vec(
        &json!({"triggerId": TRIGGER, "input": input, "isSynchronous": false}),
    )?);
    let k = plan.async_invocations;
    let rounds = plan.callback_rounds();

    // Warm-up: a few complete round trips.
    let warmup_invocations = (k / 20).max(20);
    start_many(api, &body, warmup_invocations, plan.producers).await;
    receiver.wait_for(warmup_invocations as u64, STALL).await;
    api.wait_for_state(&subscription, "ACKNOWLEDGED", warmup_invocations, STALL)
        .await?;
    complete_all(api, receiver.take_callbacks(), plan.producers).await;

    let mut timed = Completions::default();
    let mut starts = Outcomes::default();
    let mut starting = Duration::ZERO;
    let mut delivered = 0;
    let mut malformed = 0;
    let mut in_flight = usize::MAX;
    let mut memory_in_flight = Memory::default();
    for _ in 0..rounds {
        receiver.reset();
        // K invocations open at once.
        let started = start_many(api, &body, k, plan.producers).await;
        starting += started.elapsed;
        starts.absorb(started.outcomes);
        receiver.wait_for(k as u64, STALL).await;
        delivered += receiver.received();
        malformed += receiver.malformed();
        let acknowledged = api
            .wait_for_state(&subscription, "ACKNOWLEDGED", k, STALL)
            .await?;
        in_flight = in_flight.min(acknowledged.reached);
        let memory = triggerline.memory()?;
        if memory.rss_kib >= memory_in_flight.rss_kib {
            memory_in_flight = memory;
        }

        // Their callbacks, `producers` at a time.
        let callbacks = receiver.take_callbacks();
        let cpu = triggerline.cpu_meter();
        let burst = complete_all(api, callbacks, plan.producers).await;
        timed.add(burst, triggerline.cpu_since(&cpu));
    }
    let done = api
        .wait_for_state(
            &subscription,
            "COMPLETED",
            warmup_invocations + k * rounds,
            STALL,
        )
        .await?;

    Ok(AsyncCallbacks {
        invocations: k,
        rounds,
        warmup_invocations,
        starts_per_s: starts.ok as f64 / starting.as_secs_f64().max(1e-9),
        start_outcomes: starts,
        delivered,
        malformed_deliveries: malformed,
        in_flight,
        memory_in_flight,
        completions_per_s: timed.outcomes.ok as f64 / timed.elapsed.as_secs_f64().max(1e-9),
        callback_latency: Summary::of(&timed.samples),
        callback_outcomes: timed.outcomes,
        cpu: timed.cpu,
        statuses: done.counts,
        all_completed: done.confirmed_at.is_some(),
        process: triggerline.finish().await?,
    })
}

/// The callbacks of every round: counts, time and CPU summed, latencies pooled.
#[derive(Debug, Default)]
struct Completions {
    elapsed: Duration,
    outcomes: Outcomes,
    samples: Vec<Duration>,
    cpu: CpuUse,
}

impl Completions {
    fn add(&mut self, burst: Burst, cpu: CpuUse) {
        self.elapsed += burst.elapsed;
        self.outcomes.absorb(burst.outcomes);
        self.samples.extend(burst.samples);
        self.cpu.wall_s += cpu.wall_s;
        self.cpu.triggerline_s += cpu.triggerline_s;
        self.cpu.bench_s += cpu.bench_s;
    }
}

/// POSTs every callback as a receiver written from SailPoint's docs would: the secret and the
/// output in the body, no Authorization header.
async fn complete_all(api: &Api, callbacks: Vec<Callback>, producers: usize) -> Burst {
    let output =
        json!({"id": "2c91808b6ef1d43e016efba0ce470904", "name": "Adam Admin", "type": "IDENTITY"});
    let count = callbacks.len();
    let callbacks = Arc::new(callbacks);
    let api = api.clone();
    let request = move |i: usize| {
        let callback = &callbacks[i];
        let body: Value = json!({"secret": callback.secret, "output": output});
        api.client
            .post(api.url(&format!(
                "/trigger-invocations/v1/{}/complete",
                callback.invocation_id
            )))
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
    };
    burst(
        count,
        producers,
        StatusCode::NO_CONTENT,
        "complete",
        request,
    )
    .await
}
