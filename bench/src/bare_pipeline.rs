//! The bare pipeline, run by the bench right before Triggerline's scenarios, in the same run:
//! perf-limits' `pipeline-proto` (accept over HTTP -> durable SQLite group commit -> 202 ->
//! deliver -> record) delivering to its `echo-server`, both on free loopback ports, driven by
//! this bench's own load generator at the same concurrency and with the same body as
//! Triggerline's scenarios; plus `sqlite-bench --probe fsync` in the temp dir where the data
//! dirs live. The tools live outside the repository (`../shared/perf-limits`); only their
//! binaries are run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::body::Bytes;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::Plan;
use crate::create_deliver::{RATE_PER_S, timed_start_body};
use crate::fire_and_forget::TRIGGER;
use crate::load::{Outcomes, STALL, Summary, burst, paced};

/// The binaries this needs from perf-limits' `target/release`.
const TOOLS: [&str; 3] = ["echo-server", "pipeline-proto", "sqlite-bench"];

/// How to build the tools, for the report when they are missing.
pub const BUILD: &str = "cd /work/shared/perf-limits && CARGO_TARGET_DIR=/tmp/perf-limits \
                         cargo build --release --locked";

/// The directory holding perf-limits' binaries.
#[derive(Debug, Clone)]
pub struct PerfLimits {
    dir: PathBuf,
}

impl PerfLimits {
    /// `dir` if it holds every binary this needs.
    pub fn at(dir: &Path) -> anyhow::Result<PerfLimits> {
        for tool in TOOLS {
            let path = dir.join(tool);
            anyhow::ensure!(
                path.is_file(),
                "no {} (build the tools with `{BUILD}`, then pass --perf-limits /tmp/perf-limits/release)",
                path.display()
            );
        }
        Ok(PerfLimits {
            dir: dir.canonicalize()?,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// What the bare pipeline did in one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BarePipeline {
    /// `sqlite-bench --probe fsync`: write(4 KiB) + fdatasync in the temp dir.
    pub fsync: Fsync,
    /// Closed loop at the producers' concurrency: deliveries counted by `echo-server`, from the
    /// first accept sent to the count seen complete (polled every millisecond).
    pub deliveries: u64,
    pub expected_deliveries: u64,
    pub elapsed_s: f64,
    pub deliveries_per_s: f64,
    /// Accepted (202) per second, producer side, in the same closed loop: what the callback
    /// rate is compared with.
    pub accepts_per_s: f64,
    pub accept_latency: Summary,
    pub accept_outcomes: Outcomes,
    /// CPU seconds (user + system) `pipeline-proto` used over the closed loop, from the first
    /// accept sent to the last delivery seen: what one delivery costs it, beside what one costs
    /// Triggerline. Unlike throughput, this hardly moves with what else the machine runs.
    pub cpu_s: f64,
    /// Bytes `pipeline-proto` wrote to its files over the same closed loop (`/proc/<pid>/io`).
    pub written_bytes: u64,
    /// One in flight at [`RATE_PER_S`]: send to arrival at `echo-server` (its own clock).
    pub paced_starts: usize,
    pub accept_deliver: Transit,
    pub paced_outcomes: Outcomes,
}

impl BarePipeline {
    /// `pipeline-proto`'s CPU time per delivery of the closed loop, in µs.
    pub fn cpu_us_per_delivery(&self) -> f64 {
        self.cpu_s * 1e6 / (self.deliveries.max(1) as f64)
    }

    /// Bytes `pipeline-proto` wrote to files per delivery of the closed loop, in KiB.
    pub fn written_kib_per_delivery(&self) -> f64 {
        self.written_bytes as f64 / 1024.0 / (self.deliveries.max(1) as f64)
    }
}

/// `sqlite-bench --probe fsync`, in ms.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Fsync {
    pub ops: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// `echo-server`'s send-to-arrival times of timed bodies, in ms.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Transit {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Runs the fsync probe, then the paced phase and the closed loop, each on a fresh
/// `pipeline-proto` (fresh database) in front of one `echo-server`.
pub async fn run(
    tools: &PerfLimits,
    client: &reqwest::Client,
    plan: &Plan,
    input: &Value,
) -> anyhow::Result<BarePipeline> {
    let scratch = tempfile::Builder::new()
        .prefix("triggerline-bench-bare-")
        .tempdir()
        .context("cannot create a temporary dir")?;
    let fsync = fsync_probe(tools, scratch.path(), plan).await?;

    let echo_port = free_port()?;
    let _echo = Tool::start(
        &tools.dir.join("echo-server"),
        &["--addr".into(), format!("127.0.0.1:{echo_port}")],
        "listening",
    )
    .await?;
    let echo = format!("http://127.0.0.1:{echo_port}");

    // One in flight, paced: send to arrival.
    let (paced_outcomes, accept_deliver) = {
        let proto = Proto::start(tools, echo_port, scratch.path()).await?;
        let request = |_| {
            client
                .post(&proto.url)
                .header(CONTENT_TYPE, "application/json")
                .body(timed_start_body(TRIGGER, input))
        };
        let warmup = plan.paced_starts.div_ceil(10).max(10);
        paced(warmup, 1_000.0, StatusCode::ACCEPTED, "accept", request).await;
        wait_for_count(client, &echo, warmup as u64).await?;
        reset(client, &echo).await?;
        let measured = paced(
            plan.paced_starts,
            RATE_PER_S,
            StatusCode::ACCEPTED,
            "accept",
            request,
        )
        .await;
        wait_for_count(client, &echo, measured.outcomes.ok).await?;
        let stats = stats(client, &echo).await?;
        let transit = Transit {
            count: stats["tracked"].as_u64().unwrap_or(0),
            p50_ms: micros(&stats["p50_us"]),
            p99_ms: micros(&stats["p99_us"]),
            max_ms: micros(&stats["max_us"]),
        };
        (measured.outcomes, transit)
    };

    // Closed loop at the producers' concurrency, the F&F scenario's counts and body.
    let proto = Proto::start(tools, echo_port, scratch.path()).await?;
    let body = Bytes::from(
        json!({"triggerId": TRIGGER, "input": input, "isSynchronous": false}).to_string(),
    );
    let count = usize::try_from(plan.deliveries)?;
    let warmup = (count / 20).max(20);
    let request = {
        let (client, url, body) = (client.clone(), proto.url.clone(), body.clone());
        move |_| {
            client
                .post(&url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
        }
    };
    burst(
        warmup,
        plan.producers,
        StatusCode::ACCEPTED,
        "accept",
        request.clone(),
    )
    .await;
    wait_for_count(client, &echo, warmup as u64).await?;
    reset(client, &echo).await?;
    let cpu_before = proto.cpu_seconds();
    let written_before = proto.written_bytes();
    let measured = burst(
        count,
        plan.producers,
        StatusCode::ACCEPTED,
        "accept",
        request,
    )
    .await;
    let (deliveries, last_seen) = wait_for_count(client, &echo, count as u64).await?;
    let cpu_s = proto.cpu_seconds() - cpu_before;
    let written_bytes = proto.written_bytes().saturating_sub(written_before);
    let elapsed = last_seen.saturating_duration_since(measured.began);
    drop(proto);

    Ok(BarePipeline {
        fsync,
        deliveries,
        expected_deliveries: count as u64,
        elapsed_s: elapsed.as_secs_f64(),
        deliveries_per_s: deliveries as f64 / elapsed.as_secs_f64().max(1e-9),
        accepts_per_s: measured.outcomes.ok as f64 / measured.elapsed.as_secs_f64().max(1e-9),
        accept_latency: measured.latency,
        accept_outcomes: measured.outcomes,
        cpu_s,
        written_bytes,
        paced_starts: plan.paced_starts,
        accept_deliver,
        paced_outcomes,
    })
}

/// `sqlite-bench --dir <dir> --probe fsync`.
async fn fsync_probe(tools: &PerfLimits, dir: &Path, plan: &Plan) -> anyhow::Result<Fsync> {
    let secs = if plan.quick { "1" } else { "3" };
    let output = Command::new(tools.dir.join("sqlite-bench"))
        .arg("--dir")
        .arg(dir)
        .args(["--probe", "fsync", "--secs", secs])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run sqlite-bench")?;
    anyhow::ensure!(
        output.status.success(),
        "sqlite-bench --probe fsync failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: Value = serde_json::from_slice(&output.stdout)
        .context("sqlite-bench --probe fsync printed no JSON")?;
    Ok(Fsync {
        ops: line["ops"].as_u64().unwrap_or(0),
        p50_ms: micros(&line["p50_us"]),
        p99_ms: micros(&line["p99_us"]),
        max_ms: micros(&line["max_us"]),
    })
}

fn micros(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN) / 1e3
}

/// A `pipeline-proto` on a free port with 64 delivery connections (its default, as in
/// perf-limits' own runs), delivering to the `echo-server` on `echo_port`.
struct Proto {
    url: String,
    tool: Tool,
}

impl Proto {
    async fn start(tools: &PerfLimits, echo_port: u16, db: &Path) -> anyhow::Result<Proto> {
        let port = free_port()?;
        let args = [
            "--addr".into(),
            format!("127.0.0.1:{port}"),
            "--target".into(),
            format!("127.0.0.1:{echo_port}"),
            "--db".into(),
            db.display().to_string(),
            "--workers".into(),
            "64".into(),
        ];
        let tool = Tool::start(
            &tools.dir.join("pipeline-proto"),
            &args,
            "pipeline-proto on",
        )
        .await?;
        Ok(Proto {
            url: format!("http://127.0.0.1:{port}/trigger-invocations/v1/start"),
            tool,
        })
    }

    /// CPU seconds the process has used so far.
    fn cpu_seconds(&self) -> f64 {
        self.tool.pid.map_or(0.0, |pid| {
            crate::triggerline::cpu_seconds_of(&format!("/proc/{pid}/stat"))
        })
    }

    /// Bytes the process has written to files so far.
    fn written_bytes(&self) -> u64 {
        self.tool
            .pid
            .map_or(0, crate::triggerline::written_bytes_of)
    }
}

/// A child process that announced it listens; killed when dropped.
struct Tool {
    _child: Child,
    pid: Option<u32>,
}

impl Tool {
    /// Runs `binary` and waits for a stderr line containing `ready`.
    async fn start(binary: &Path, args: &[String], ready: &str) -> anyhow::Result<Tool> {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let mut lines = BufReader::new(stderr).lines();
        let name = binary.display().to_string();
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = lines.next_line().await? {
                if line.contains(ready) {
                    return Ok(());
                }
            }
            bail!("{name} exited before it listened")
        })
        .await
        .with_context(|| format!("{} did not listen within 10 s", binary.display()))??;
        // Keep draining, so that the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let pid = child.id();
        Ok(Tool { _child: child, pid })
    }
}

/// A loopback port free right now (the tools take a fixed `--addr`).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

async fn stats(client: &reqwest::Client, echo: &str) -> anyhow::Result<Value> {
    let response = client.get(format!("{echo}/stats")).send().await?;
    Ok(response.json().await?)
}

async fn reset(client: &reqwest::Client, echo: &str) -> anyhow::Result<()> {
    client.post(format!("{echo}/reset")).send().await?;
    Ok(())
}

/// Polls `echo-server`'s count every millisecond until it reaches `count`, or until it did not
/// move for [`STALL`]; the count and when it was last seen to grow.
async fn wait_for_count(
    client: &reqwest::Client,
    echo: &str,
    count: u64,
) -> anyhow::Result<(u64, Instant)> {
    let mut seen = 0;
    let mut moved = Instant::now();
    loop {
        let now = stats(client, echo).await?["count"].as_u64().unwrap_or(0);
        if now > seen {
            seen = now;
            moved = Instant::now();
        }
        if seen >= count || moved.elapsed() > STALL {
            return Ok((seen, moved));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// What the bare pipeline's report line needs, for the progress output.
pub fn one_line(b: &BarePipeline) -> String {
    format!(
        "bare pipeline: {:.0} deliveries/s, {:.0} accepts/s, accept->deliver p50 {:.2} ms, fsync p50 {:.2} ms (took {:.1} s)",
        b.deliveries_per_s, b.accepts_per_s, b.accept_deliver.p50_ms, b.fsync.p50_ms, b.elapsed_s
    )
}
