//! Scenario 1: kill -9 cycles of the local server (SQLite) under FIRE_AND_FORGET and ASYNC load.
//!
//! One data dir, one port and one API token for the whole run. Producers post starts without
//! pause to a FIRE_AND_FORGET subscription of `idn:identity-created` and to an ASYNC
//! subscription of `idn:access-request-pre-approval`, whose receiver completes each invocation
//! through its callback. Each cycle, the server is SIGKILLed at a random moment and restarted on
//! the same data dir and port while the producers keep going. After the last restart the
//! producers stop, and every invocation that got a 2xx is read back through the status API until
//! it is COMPLETED or the drain timeout passes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use rand::Rng as _;
use serde_json::json;
use triggerline_bench::triggerline::{Launch, Triggerline, random_token};

use crate::hooks::{Hooks, Mode, Seen};
use crate::moto::free_port;
use crate::producers::{Kind, PhaseAnswers, Producers};
use crate::verify::{self, Accounting};

pub const FIRE_AND_FORGET: &str = "idn:identity-created";
pub const REQUEST_RESPONSE: &str = "idn:access-request-pre-approval";

/// What the kill cycles showed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KillCycles {
    pub cycles: usize,
    pub producers_per_kind: usize,
    /// Starts acknowledged (2xx), by kind.
    pub accepted: BTreeMap<String, usize>,
    pub accepted_total: usize,
    /// Every answer the producers got, over the whole run.
    pub start_answers: PhaseAnswers,
    pub accounting: Accounting,
    /// What the receiver saw (duplicates: the same `webhook-id` delivered again).
    pub receiver: Seen,
    /// From spawn to listening, per restart.
    pub restart_ms_mean: f64,
    pub restart_ms_max: f64,
    /// How long each server lived before its SIGKILL: shortest and longest.
    pub uptime_ms_min: f64,
    pub uptime_ms_max: f64,
    /// ERROR lines and panics in the servers' logs (one log over every restart).
    pub log_errors: usize,
    pub log_panics: usize,
    pub log_sample: Vec<String>,
    pub wall_s: f64,
}

pub async fn run(
    binary: &Path,
    client: &reqwest::Client,
    cycles: usize,
    producers: usize,
    drain: Duration,
) -> anyhow::Result<KillCycles> {
    let began = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("triggerline-chaos-")
        .tempdir()
        .context("cannot create a temporary dir")?;
    let launch = Launch {
        data_dir: dir.path().join("data"),
        log: dir.path().join("stderr.log"),
        listen: format!("127.0.0.1:{}", free_port()?),
        token: random_token(),
        args: Vec::new(),
        env: Vec::new(),
    };
    let hooks = Hooks::start(Mode::Complete, client.clone()).await?;
    let mut server = Triggerline::launch(binary, client, &launch).await?;
    // The port and the token stay the same over restarts, so this handle stays valid.
    let api = server.api.clone();
    api.subscribe("chaos fire-and-forget", FIRE_AND_FORGET, &hooks.url, "SYNC")
        .await?;
    api.subscribe("chaos async", REQUEST_RESPONSE, &hooks.url, "ASYNC")
        .await?;
    let kinds = [
        kind(&api, "FIRE_AND_FORGET", FIRE_AND_FORGET, producers).await?,
        kind(&api, "ASYNC", REQUEST_RESPONSE, producers).await?,
    ];
    let load = Producers::start(&api, &kinds);

    let mut restarts = Vec::with_capacity(cycles);
    let mut uptimes = Vec::with_capacity(cycles);
    for cycle in 1..=cycles {
        let up = Duration::from_millis(rand::rng().random_range(300..3_000));
        tokio::time::sleep(up).await;
        uptimes.push(up.as_secs_f64() * 1e3);
        server.kill9().await;
        let spawned = Instant::now();
        server = relaunch(binary, client, &launch).await?;
        restarts.push(spawned.elapsed().as_secs_f64() * 1e3);
        if cycle % 10 == 0 || cycle == cycles {
            eprintln!(
                "    cycle {cycle}/{cycles}: {} starts acknowledged so far",
                load.accepted_count()
            );
        }
    }
    // A little load on the last server, then let it drain.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (accepted, phases) = load.stop().await;

    eprintln!(
        "    draining: reading {} invocations back ...",
        accepted.len()
    );
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for a in &accepted {
        *by_kind.entry(a.kind.to_owned()).or_insert(0) += 1;
    }
    let ids: Vec<String> = accepted.iter().map(|a| a.id.clone()).collect();
    let accounting = verify::until_completed(&api, ids, drain).await;
    let receiver = hooks.seen();
    drop(server);

    let log = std::fs::read_to_string(&launch.log).unwrap_or_default();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    let panics = log.lines().filter(|l| l.contains("panicked")).count();
    let start_answers = merge(phases.into_values());
    Ok(KillCycles {
        cycles,
        producers_per_kind: producers,
        accepted_total: accepted.len(),
        accepted: by_kind,
        start_answers,
        accounting,
        receiver,
        restart_ms_mean: restarts.iter().sum::<f64>() / restarts.len().max(1) as f64,
        restart_ms_max: restarts.iter().copied().fold(0.0, f64::max),
        uptime_ms_min: uptimes.iter().copied().fold(f64::INFINITY, f64::min),
        uptime_ms_max: uptimes.iter().copied().fold(0.0, f64::max),
        log_errors: errors.len(),
        log_panics: panics,
        log_sample: errors.iter().take(5).map(|l| (*l).to_owned()).collect(),
        wall_s: began.elapsed().as_secs_f64(),
    })
}

/// A start body for `trigger` with its example input.
pub async fn kind(
    api: &triggerline_bench::triggerline::Api,
    label: &'static str,
    trigger: &str,
    producers: usize,
) -> anyhow::Result<Kind> {
    let input = api.example_input(trigger).await?;
    Ok(Kind {
        label,
        body: Bytes::from(serde_json::to_vec(
            &json!({"triggerId": trigger, "input": input}),
        )?),
        producers,
    })
}

/// Starts the server again on the same data dir and port; the port may still be held for a
/// moment by the killed process's sockets, so a failed start is retried a few times.
pub async fn relaunch(
    binary: &Path,
    client: &reqwest::Client,
    launch: &Launch,
) -> anyhow::Result<Triggerline> {
    let mut tries = 0;
    loop {
        match Triggerline::launch(binary, client, launch).await {
            Ok(server) => return Ok(server),
            Err(e) if tries < 20 => {
                tries += 1;
                eprintln!("    restart failed ({e:#}); retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The answers of every phase, added up.
pub fn merge(phases: impl Iterator<Item = PhaseAnswers>) -> PhaseAnswers {
    let mut all = PhaseAnswers::default();
    for phase in phases {
        for (kind, n) in phase.answers {
            *all.answers.entry(kind).or_insert(0) += n;
        }
        all.slowest_ms = all.slowest_ms.max(phase.slowest_ms);
    }
    all
}
