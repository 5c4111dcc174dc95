//! Scenario 3: moto stopped and restarted mid-load, under `triggerline --backend aws`.
//!
//! moto keeps its state in memory only. Its one persistence aid, the recorder
//! (`MOTO_ENABLE_RECORDING`, `/moto-api/recorder/replay-recording`), logs and replays requests,
//! not state: a replay re-sends every SQS ReceiveMessage and DeleteMessage with receipt handles
//! the new queue never issued, so a replayed queue holds work that was already done, and its
//! long polls make the replay take as long as the run. So a restarted moto is empty, and this
//! scenario measures what that leaves measurable:
//!
//! 1. before: producers post FIRE_AND_FORGET starts; acknowledged ids are kept;
//! 2. outage: moto is SIGKILLed; every answer is tallied (expected: 503 with a `trackingId` in
//!    the `ErrorResponseDto`, no other 5xx, no 2xx, no request left without an answer);
//! 3. empty emulator: moto restarts on the same port with nothing in it; the same server keeps
//!    answering (expected: 503s with a tracking id, since its tables and queue are gone);
//! 4. the server restarts (creating the resources again); until it is subscribed again a start
//!    finds no subscription (200, no invocation);
//! 5. after: every start acknowledged from then on must be COMPLETED.
//!
//! Invocations acknowledged before the outage are accounted for by the receiver (was each one
//! delivered?) and by the status API after the restart (moto lost them, so they read 404: the
//! emulator's loss, not Triggerline's; on AWS the tables and the queue outlive any outage).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use triggerline_bench::triggerline::{Launch, Triggerline, random_token};

use crate::hooks::{Hooks, Mode, Seen};
use crate::kill_cycles::{FIRE_AND_FORGET, kind, relaunch};
use crate::moto::{Moto, aws_backend, free_port};
use crate::producers::{PhaseAnswers, Producers};
use crate::verify::{self, Accounting};

/// The phases, in order; an answer counts in the phase its request was sent in.
pub const PHASES: [&str; 5] = [
    "before the outage",
    "moto down",
    "moto back, empty, same server",
    "server restarting, not yet subscribed",
    "server restarted on the new moto",
];

/// What the outage showed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outage {
    pub outage_s: f64,
    /// Answers to starts, per phase, in the order of [`PHASES`].
    pub phases: Vec<(String, PhaseAnswers)>,
    /// Acknowledged before moto went down.
    pub accepted_before: usize,
    /// Of those, delivered to the receiver (by `webhook-id`) by the end of the run.
    pub before_delivered: usize,
    /// Of those, what the status API says after moto's restart (moto forgot them: 404).
    pub before_statuses: BTreeMap<String, usize>,
    /// Acknowledged while moto was down or empty (nothing can be written then: should be 0).
    pub accepted_during: usize,
    /// Acknowledged once the server restarted on the new moto, and their accounting.
    pub after: Accounting,
    pub receiver: Seen,
    pub moto_restart_s: f64,
    pub wall_s: f64,
}

pub async fn run(
    binary: &Path,
    moto_binary: &Path,
    client: &reqwest::Client,
    producers: usize,
    outage: Duration,
    drain: Duration,
) -> anyhow::Result<Outage> {
    let began = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("triggerline-chaos-moto-")
        .tempdir()
        .context("cannot create a temporary dir")?;
    let moto_log = dir.path().join("moto.log");
    let moto_port = free_port()?;
    let moto = Moto::start(moto_binary, moto_port, &moto_log, client).await?;
    let (args, env) = aws_backend(&moto.endpoint());
    let launch = Launch {
        data_dir: dir.path().join("data"),
        log: dir.path().join("stderr.log"),
        listen: format!("127.0.0.1:{}", free_port()?),
        token: random_token(),
        args,
        env,
    };
    let hooks = Hooks::start(Mode::Complete, client.clone()).await?;
    let server = Triggerline::launch(binary, client, &launch).await?;
    let api = server.api.clone();
    api.subscribe("chaos outage", FIRE_AND_FORGET, &hooks.url, "SYNC")
        .await?;
    let kinds = [kind(&api, "FIRE_AND_FORGET", FIRE_AND_FORGET, producers).await?];
    let load = Producers::start(&api, &kinds);

    tokio::time::sleep(Duration::from_secs(5)).await;
    eprintln!("    killing moto_server");
    load.set_phase(1);
    moto.kill9().await;
    tokio::time::sleep(outage).await;

    let restarting = Instant::now();
    let moto = Moto::start(moto_binary, moto_port, &moto_log, client).await?;
    let moto_restart_s = restarting.elapsed().as_secs_f64();
    eprintln!("    moto_server back (empty) after {moto_restart_s:.1} s");
    load.set_phase(2);
    tokio::time::sleep(Duration::from_secs(5)).await;

    eprintln!("    restarting triggerline on the new moto");
    load.set_phase(3);
    server.kill9().await;
    let server = relaunch(binary, client, &launch).await?;
    api.subscribe("chaos outage", FIRE_AND_FORGET, &hooks.url, "SYNC")
        .await?;
    load.set_phase(4);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (accepted, answers) = load.stop().await;

    let before: Vec<String> = accepted
        .iter()
        .filter(|a| a.phase == 0)
        .map(|a| a.id.clone())
        .collect();
    let after: Vec<String> = accepted
        .iter()
        // A start sent between the new subscription and the phase change counts in phase 3.
        .filter(|a| a.phase >= 3)
        .map(|a| a.id.clone())
        .collect();
    let accepted_during = accepted
        .iter()
        .filter(|a| (1..=2).contains(&a.phase))
        .count();
    eprintln!("    draining: reading {} invocations back ...", after.len());
    let after = verify::until_completed(&api, after, drain).await;

    let mut before_statuses: BTreeMap<String, usize> = BTreeMap::new();
    for (_, status) in verify::read_all(&api, &before).await {
        *before_statuses.entry(status).or_insert(0) += 1;
    }
    let before_delivered = before.iter().filter(|id| hooks.delivered(id)).count();
    drop(server);
    drop(moto);
    Ok(Outage {
        outage_s: outage.as_secs_f64(),
        phases: answers
            .into_iter()
            .map(|(phase, a)| (PHASES.get(phase).copied().unwrap_or("?").to_owned(), a))
            .collect(),
        accepted_before: before.len(),
        before_delivered,
        before_statuses,
        accepted_during,
        after,
        receiver: hooks.seen(),
        moto_restart_s,
        wall_s: began.elapsed().as_secs_f64(),
    })
}
