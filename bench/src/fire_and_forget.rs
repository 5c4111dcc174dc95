//! Scenario 1: FIRE_AND_FORGET deliveries per second.
//!
//! `n` SYNC-mode webhook subscriptions on `idn:identity-created`, a receiver that answers 204 at
//! once, and `producers` concurrent tasks sending not-synchronous `start` requests with the
//! trigger's example input (or, with [`Shape::batch`], `start-batch` requests of that many
//! such starts: the same number of requests in flight, each carrying several events). Throughput is deliveries received / time from the first `start`
//! sent to the last delivery received. Afterwards the status list must show every invocation
//! COMPLETED; how long after the last delivery that was first seen is reported too.

use std::collections::BTreeMap;
use std::path::Path;

use axum::body::Bytes;
use serde_json::json;

use crate::Plan;
use std::sync::Arc;

use crate::load::{Outcomes, STALL, Starts, Summary, burst, ms};
use crate::receiver::{Answer, Receiver};
use crate::triggerline::{CpuUse, ProcessInfo, Triggerline};

pub const TRIGGER: &str = "idn:identity-created";

/// Result of one fire-and-forget run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FireAndForget {
    pub subscriptions: usize,
    /// Starts spread round-robin over this many `orderingKey`s (None: unordered).
    pub ordering_keys: Option<usize>,
    /// Starts per `start-batch` request (None: one `start` request per start).
    #[serde(default)]
    pub batch: Option<usize>,
    /// Measured starts (each fans out to every subscription); with `batch`, that many to a
    /// request, and the latency and outcomes below are the requests'.
    pub starts: usize,
    pub warmup_starts: usize,
    pub expected_deliveries: u64,
    pub deliveries: u64,
    /// First `start` sent to last delivery received.
    pub elapsed_s: f64,
    pub deliveries_per_s: f64,
    /// Accepted (202) starts per second, producer side.
    pub starts_per_s: f64,
    pub start_latency: Summary,
    pub start_outcomes: Outcomes,
    pub warmup_failed: u64,
    /// Every invocation of the run, warm-up included.
    pub invocations: usize,
    pub invocations_completed: usize,
    /// Invocations by status at the last look.
    pub statuses: BTreeMap<String, usize>,
    /// From the last delivery until the status list first showed all of them COMPLETED (None:
    /// never within the wait). Includes the time of one sweep over the list.
    pub all_completed_after_ms: Option<f64>,
    /// Sweeps over the status list until then, and how long the last one took.
    pub status_sweeps: usize,
    pub status_sweep_ms: f64,
    /// CPU used from the first start to the last delivery.
    pub cpu: CpuUse,
    /// Bytes Triggerline wrote to its files over the same span (`/proc/<pid>/io`).
    pub written_bytes: u64,
    pub process: ProcessInfo,
}

/// What one run raises: its fan-out, its ordering keys and how starts are sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    pub subscriptions: usize,
    /// Starts spread round-robin over this many `orderingKey`s (None: unordered).
    pub ordering_keys: Option<usize>,
    /// Starts per `start-batch` request (None: one `start` request each).
    pub batch: Option<usize>,
}

pub async fn run(
    binary: &Path,
    client: &reqwest::Client,
    plan: &Plan,
    shape: Shape,
) -> anyhow::Result<FireAndForget> {
    let Shape {
        subscriptions,
        ordering_keys,
        batch,
    } = shape;
    let triggerline = Triggerline::start(binary, client).await?;
    let api = &triggerline.api;
    let receiver = Receiver::start(Answer::NoContent).await?;
    let mut ids = Vec::new();
    for n in 0..subscriptions {
        let name = format!("bench fire-and-forget {n}");
        ids.push(api.subscribe(&name, TRIGGER, &receiver.url, "SYNC").await?);
    }
    let input = api.example_input(TRIGGER).await?;
    let body = json!({"triggerId": TRIGGER, "input": input, "isSynchronous": false});
    // With ordering keys, start `i` carries key `i mod keys`: each key's invocations are
    // delivered one after the other, the keys side by side.
    let bodies: Arc<Vec<Bytes>> = Arc::new(match (ordering_keys, batch) {
        (None, None) => vec![Bytes::from(serde_json::to_vec(&body)?)],
        (None, Some(size)) => {
            let batch = json!({"starts": vec![body; size.max(1)]});
            vec![Bytes::from(serde_json::to_vec(&batch)?)]
        }
        (Some(keys), _) => (0..keys.max(1))
            .map(|k| {
                let mut keyed = body.clone();
                keyed["orderingKey"] = json!(format!("bench-key-{k}"));
                serde_json::to_vec(&keyed).map(Bytes::from)
            })
            .collect::<Result<_, _>>()?,
    });
    let per_request = batch.unwrap_or(1).max(1);
    // Whole requests: a batched run raises a multiple of its batch.
    let requests = usize::try_from(plan.deliveries)?
        .div_ceil(subscriptions)
        .div_ceil(per_request);
    let warmup_requests = (requests / 20).max(20usize.div_ceil(per_request));
    let (starts, warmup_starts) = (requests * per_request, warmup_requests * per_request);
    let path = if batch.is_some() {
        "/trigger-invocations/v1/start-batch"
    } else {
        "/trigger-invocations/v1/start"
    };

    // Warm-up (connections, SQLite pages, allocator), then a quiet service: every warm-up
    // invocation delivered and COMPLETED before the clock starts.
    let warmup = start_each(api, path, &bodies, warmup_requests, plan.producers).await;
    receiver
        .wait_for((warmup_starts * subscriptions) as u64, STALL)
        .await;
    api.wait_for_state(&ids, "COMPLETED", warmup_starts * subscriptions, STALL)
        .await?;
    receiver.reset();

    let cpu = triggerline.cpu_meter();
    let written_before = triggerline.written_bytes();
    let measured = start_each(api, path, &bodies, requests, plan.producers).await;
    let expected_deliveries = (starts * subscriptions) as u64;
    receiver.wait_for(expected_deliveries, STALL).await;
    let cpu = triggerline.cpu_since(&cpu);
    let written_bytes = triggerline.written_bytes().saturating_sub(written_before);
    let deliveries = receiver.received();
    let last_delivery = receiver
        .first_and_last()
        .map_or(measured.began, |(_, last)| last);
    let elapsed = last_delivery.saturating_duration_since(measured.began);

    let invocations = (warmup_starts + starts) * subscriptions;
    let completion = api
        .wait_for_state(&ids, "COMPLETED", invocations, STALL)
        .await?;

    Ok(FireAndForget {
        subscriptions,
        ordering_keys,
        batch,
        starts,
        warmup_starts,
        expected_deliveries,
        deliveries,
        elapsed_s: elapsed.as_secs_f64(),
        deliveries_per_s: deliveries as f64 / elapsed.as_secs_f64().max(1e-9),
        starts_per_s: measured.accepted_per_s() * per_request as f64,
        start_latency: measured.latency,
        start_outcomes: measured.outcomes,
        warmup_failed: warmup.outcomes.failed,
        invocations,
        invocations_completed: completion.reached,
        statuses: completion.counts,
        all_completed_after_ms: completion
            .confirmed_at
            .map(|at| ms(at.saturating_duration_since(last_delivery))),
        status_sweeps: completion.sweeps,
        status_sweep_ms: completion.last_sweep_ms,
        cpu,
        written_bytes,
        process: triggerline.finish().await?,
    })
}

impl FireAndForget {
    /// Bytes written to files per delivery of the measured run, in KiB.
    pub fn written_kib_per_delivery(&self) -> f64 {
        self.written_bytes as f64 / 1024.0 / (self.deliveries.max(1) as f64)
    }

    /// Triggerline's CPU time per delivery of the measured run, in µs.
    pub fn cpu_us_per_delivery(&self) -> f64 {
        self.cpu.triggerline_s * 1e6 / (self.deliveries.max(1) as f64)
    }
}

/// `count` requests to `path` from `producers` tasks, request `i` with `bodies[i mod len]`.
async fn start_each(
    api: &crate::triggerline::Api,
    path: &'static str,
    bodies: &Arc<Vec<Bytes>>,
    count: usize,
    producers: usize,
) -> Starts {
    let (api, bodies) = (api.clone(), bodies.clone());
    let request = move |i: usize| {
        api.post(path)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bodies[i % bodies.len()].clone())
    };
    let burst = burst(
        count,
        producers,
        reqwest::StatusCode::ACCEPTED,
        "start",
        request,
    )
    .await;
    Starts {
        began: burst.began,
        elapsed: burst.elapsed,
        outcomes: burst.outcomes,
        latency: burst.latency,
    }
}
