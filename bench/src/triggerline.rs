//! The `triggerline` child process, and the few API calls the scenarios make on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rand::RngCore;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// What `triggerline` prints on stdout once it accepts connections.
const LISTENING: &str = "triggerline listening on ";

/// A running `triggerline` process with its own data dir; killed when dropped.
#[derive(Debug)]
pub struct Triggerline {
    pub api: Api,
    pid: u32,
    child: Child,
    log: PathBuf,
    /// The temporary dir of data and log, when this process owns one (removed on drop).
    _dir: Option<TempDir>,
}

/// How to start a `triggerline`: where it keeps its data and log, where it listens, its token,
/// and further flags and environment (e.g. `--backend aws` and the AWS variables).
#[derive(Debug, Clone)]
pub struct Launch {
    pub data_dir: PathBuf,
    /// Its stderr, appended to (so a restarted process adds to the same log).
    pub log: PathBuf,
    /// `--listen`: `127.0.0.1:0` for a free port, or a fixed one to restart on.
    pub listen: String,
    pub token: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Memory of the process, from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    /// Resident set size now.
    pub rss_kib: u64,
    /// Peak resident set size ("high water mark") since the process started.
    pub hwm_kib: u64,
}

impl Memory {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

impl Triggerline {
    /// Starts `binary` on a free loopback port with a fresh data dir and a random token, and
    /// waits until it prints that it listens.
    pub async fn start(binary: &Path, client: &reqwest::Client) -> anyhow::Result<Triggerline> {
        let dir = tempfile::Builder::new()
            .prefix("triggerline-bench-")
            .tempdir()
            .context("cannot create a temporary dir")?;
        let launch = Launch {
            data_dir: dir.path().join("data"),
            log: dir.path().join("stderr.log"),
            listen: "127.0.0.1:0".into(),
            token: random_token(),
            args: Vec::new(),
            env: Vec::new(),
        };
        let mut triggerline = Triggerline::launch(binary, client, &launch).await?;
        triggerline._dir = Some(dir);
        Ok(triggerline)
    }

    /// Starts `binary` as `launch` says and waits until it prints that it listens and answers
    /// `GET /health`.
    pub async fn launch(
        binary: &Path,
        client: &reqwest::Client,
        launch: &Launch,
    ) -> anyhow::Result<Triggerline> {
        let log = launch.log.clone();
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .context("cannot open the log file")?;

        let mut command = Command::new(binary);
        // Nothing from the caller's environment may change the setup below.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TRIGGERLINE_") {
                command.env_remove(name);
            }
        }
        command
            .arg("--listen")
            .arg(&launch.listen)
            .arg("--data-dir")
            .arg(&launch.data_dir)
            .args(&launch.args)
            .env("TRIGGERLINE_API_TOKEN", &launch.token)
            .env("TRIGGERLINE_SYNC_WAIT", "PT60S")
            .env("TRIGGERLINE_ALLOW_PRIVATE_TARGETS", "true")
            .env("RUST_LOG", "warn")
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let pid = child.id().context("the child has no pid")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;

        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix(LISTENING) {
                    return Ok(url.trim().to_owned());
                }
            }
            bail!("triggerline exited before listening")
        })
        .await
        .context("triggerline did not listen within 30 s")?
        .with_context(|| format!("triggerline failed to start; stderr:\n{}", tail(&log)))?;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let api = Api {
            base,
            token: launch.token.clone(),
            client: client.clone(),
            database: launch.data_dir.join("triggerline.db"),
        };
        let health = api.client.get(api.url("/health")).send().await?;
        anyhow::ensure!(
            health.status().is_success(),
            "GET /health answered {}",
            health.status()
        );
        Ok(Triggerline {
            api,
            pid,
            child,
            log,
            _dir: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// SIGKILLs the process (no shutdown of any kind) and reaps it.
    pub async fn kill9(mut self) {
        // tokio's `start_kill` is SIGKILL on Unix.
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// VmRSS and VmHWM of the process now.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
                .unwrap_or(0)
        };
        Ok(Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        })
    }

    /// Starts measuring the CPU time this process and the bench process use.
    pub fn cpu_meter(&self) -> CpuMeter {
        CpuMeter {
            at: Instant::now(),
            triggerline_s: self.cpu_seconds(),
            bench_s: cpu_seconds_of("/proc/self/stat"),
        }
    }

    /// The CPU time used since `meter` started.
    pub fn cpu_since(&self, meter: &CpuMeter) -> CpuUse {
        CpuUse {
            wall_s: meter.at.elapsed().as_secs_f64(),
            triggerline_s: self.cpu_seconds() - meter.triggerline_s,
            bench_s: cpu_seconds_of("/proc/self/stat") - meter.bench_s,
        }
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&format!("/proc/{}/stat", self.pid))
    }

    /// Bytes the process has written to files so far (see [`written_bytes_of`]).
    pub fn written_bytes(&self) -> u64 {
        written_bytes_of(self.pid)
    }

    /// Log lines (warnings and errors, since `RUST_LOG=warn`) written so far.
    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Reads the process's memory and log, then kills it and waits for it.
    pub async fn finish(mut self) -> anyhow::Result<ProcessInfo> {
        let memory = self.memory()?;
        let log = self.log_lines();
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        Ok(ProcessInfo {
            memory,
            log_lines: log.len(),
            log_sample: log.into_iter().take(5).collect(),
        })
    }
}

/// The process at the end of a scenario.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProcessInfo {
    pub memory: Memory,
    /// Lines on stderr (warnings and errors only, with `RUST_LOG=warn`).
    pub log_lines: usize,
    /// The first few of them.
    pub log_sample: Vec<String>,
}

/// Where a CPU measurement started.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    at: Instant,
    triggerline_s: f64,
    bench_s: f64,
}

/// CPU time (user + system) used over `wall_s` seconds by triggerline and by the bench process
/// (load generator and receiver).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CpuUse {
    pub wall_s: f64,
    pub triggerline_s: f64,
    pub bench_s: f64,
}

impl CpuUse {
    /// Average busy cores: (triggerline, bench).
    pub fn cores(&self) -> (f64, f64) {
        let wall = self.wall_s.max(1e-9);
        (self.triggerline_s / wall, self.bench_s / wall)
    }
}

/// `write_bytes` of a process from `/proc/<pid>/io`: what it sent towards the disk, counted
/// when it dirtied the pages (its WAL appends and its checkpoints' copies into the database
/// file), not when the kernel wrote them out; 0 if unreadable.
pub fn written_bytes_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process from `/proc/<pid>/stat`, in seconds.
pub fn cpu_seconds_of(path: &str) -> f64 {
    /// Clock ticks per second of `/proc` times (USER_HZ, fixed at 100 in Linux's ABI).
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces: the
    // first is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / USER_HZ
}

/// The management API of one `triggerline`.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    token: String,
    pub client: reqwest::Client,
    /// The process's SQLite file (absent on `--backend aws`), read to count invocations by
    /// state: the status list, like SailPoint's, reaches only 2,000 invocations.
    database: PathBuf,
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST path` with the management token.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(&self.token)
    }

    /// `GET path` with the management token.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(&self.token)
    }

    /// The trigger's `exampleInput`, from `GET /triggers/v1?filters=id eq "<trigger>"`.
    pub async fn example_input(&self, trigger: &str) -> anyhow::Result<Value> {
        let response = self
            .get("/triggers/v1")
            .query(&[("filters", format!("id eq \"{trigger}\""))])
            .send()
            .await?;
        let triggers: Value = expect_json(response, StatusCode::OK, "GET /triggers/v1").await?;
        triggers[0]
            .get("exampleInput")
            .cloned()
            .with_context(|| format!("no exampleInput for {trigger}: {triggers}"))
    }

    /// Subscribes the webhook `url` to `trigger` in `mode` (`SYNC` or `ASYNC`); returns its id.
    pub async fn subscribe(
        &self,
        name: &str,
        trigger: &str,
        url: &str,
        mode: &str,
    ) -> anyhow::Result<String> {
        let body = json!({
            "name": name,
            "triggerId": trigger,
            "type": "HTTP",
            "responseDeadline": "PT1H",
            "httpConfig": {"url": url, "httpDispatchMode": mode, "httpAuthenticationType": "NO_AUTH"},
            "enabled": true
        });
        let response = self
            .post("/trigger-subscriptions/v1")
            .json(&body)
            .send()
            .await?;
        let created = expect_json(
            response,
            StatusCode::CREATED,
            "POST /trigger-subscriptions/v1",
        )
        .await?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no id in {created}"))
    }

    /// How many invocations of the subscription are in each `status` (COMPLETED, PENDING, ...).
    /// The status list reaches only the first 2,000 invocations (`query::MAX_REACHABLE`, as
    /// SailPoint caps it), and a run has up to 21,000, so on SQLite they are counted in the
    /// database file, read-only beside the running process (WAL lets it read while the server
    /// writes); without one (the AWS backend), from the status list, at most 2,000.
    pub async fn status_counts(
        &self,
        subscription_id: &str,
    ) -> anyhow::Result<BTreeMap<String, usize>> {
        if self.database.exists() {
            let database = self.database.clone();
            let subscription_id = subscription_id.to_owned();
            return tokio::task::spawn_blocking(move || {
                count_in_database(&database, &subscription_id)
            })
            .await?;
        }
        const PAGE: usize = 250;
        let filter = format!("subscriptionId eq \"{subscription_id}\"");
        let mut counts = BTreeMap::new();
        let mut offset = 0;
        loop {
            let response = self
                .get("/trigger-invocations/v1/status")
                .query(&[
                    ("filters", filter.as_str()),
                    ("limit", &PAGE.to_string()),
                    ("offset", &offset.to_string()),
                ])
                .send()
                .await?;
            let page: Value = expect_json(
                response,
                StatusCode::OK,
                "GET /trigger-invocations/v1/status",
            )
            .await?;
            let items = page.as_array().context("status list is not an array")?;
            for item in items {
                let status = item["status"].as_str().unwrap_or("(none)");
                *counts.entry(status.to_owned()).or_insert(0) += 1;
            }
            if items.len() < PAGE {
                return Ok(counts);
            }
            offset += PAGE;
        }
    }

    /// Polls [`Api::status_counts`] over `subscriptions` until `expected` invocations in total
    /// are in `state`, or until nothing moved for `stall`.
    pub async fn wait_for_state(
        &self,
        subscriptions: &[String],
        state: &str,
        expected: usize,
        stall: Duration,
    ) -> anyhow::Result<StateWait> {
        let mut best = 0;
        let mut last_progress = Instant::now();
        let mut sweeps = 0;
        loop {
            let sweep = Instant::now();
            sweeps += 1;
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for id in subscriptions {
                for (status, n) in self.status_counts(id).await? {
                    *counts.entry(status).or_insert(0) += n;
                }
            }
            let reached = counts.get(state).copied().unwrap_or(0);
            if reached > best {
                best = reached;
                last_progress = Instant::now();
            }
            if reached >= expected || last_progress.elapsed() > stall {
                return Ok(StateWait {
                    reached,
                    counts,
                    confirmed_at: (reached >= expected).then(Instant::now),
                    sweeps,
                    last_sweep_ms: sweep.elapsed().as_secs_f64() * 1e3,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What [`Api::wait_for_state`] saw last.
#[derive(Debug, Clone)]
pub struct StateWait {
    /// Invocations in the wanted state.
    pub reached: usize,
    /// Invocations per status.
    pub counts: BTreeMap<String, usize>,
    /// When all expected invocations were seen in the state (None: gave up).
    pub confirmed_at: Option<Instant>,
    /// Reads of the whole status list it took.
    pub sweeps: usize,
    /// How long the last read of the whole list took.
    pub last_sweep_ms: f64,
}

/// Invocations of `subscription_id` per state, counted in the SQLite file at `database`.
fn count_in_database(
    database: &Path,
    subscription_id: &str,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let connection = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", database.display()))?;
    connection.busy_timeout(Duration::from_secs(5))?;
    let mut statement = connection.prepare(
        "SELECT state, count(*) FROM invocations WHERE subscription_id = ?1 GROUP BY state",
    )?;
    let rows = statement.query_map([subscription_id], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
    })?;
    let mut counts = BTreeMap::new();
    for row in rows {
        let (state, n) = row?;
        counts.insert(state, usize::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

/// The body of a response with status `want`, as JSON; any other status is an error.
async fn expect_json(
    response: reqwest::Response,
    want: StatusCode,
    what: &str,
) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.text().await?;
    if status != want {
        bail!("{what} answered {status} (expected {want}): {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what} answered non-JSON: {text}"))
}

pub fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("bench_{hex}")
}

/// The last lines of a log file, for setup errors.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
