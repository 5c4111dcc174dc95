//! `triggerline-bench`: measures the real `triggerline` release binary on this machine.
//!
//! ```sh
//! cargo build --release -p triggerline-local -p triggerline-bench
//! target/release/triggerline-bench [--triggerline target/release/triggerline] [--quick] [--json out.json]
//! ```
//!
//! Every scenario starts a fresh `triggerline` child process (own temporary data dir, random
//! token, `--listen 127.0.0.1:0`, `RUST_LOG=warn`) and a fresh webhook receiver inside this
//! process, then drives load through one pooled HTTP client:
//!
//! 1. [`fire_and_forget`]: deliveries/s to 1 and to 10 subscriptions of `idn:identity-created`.
//! 2. [`sync_round_trip`]: latency of a synchronous `start` against a direct POST to the receiver.
//! 3. [`async_callback`]: completions/s through the callback, and memory with invocations open.
//!
//! Memory (VmRSS, VmHWM) is read from `/proc/<pid>/status` at the end of every scenario. The
//! report is a plain-text table on stdout (and JSON with `--json`). Request failures are counted,
//! never fatal; the exit code is non-zero only when the setup fails. Timing claims belong here,
//! never in the test suite.

mod async_callback;
mod fire_and_forget;
mod report;
mod sync_round_trip;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use triggerline_bench::{load, receiver, triggerline};

use crate::report::{Machine, Report};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "triggerline-bench",
    about = "Benchmarks the real triggerline binary on 127.0.0.1."
)]
struct Args {
    /// The `triggerline` binary to run (default: next to this one, else target/release/triggerline).
    #[arg(long)]
    triggerline: Option<PathBuf>,
    /// Smaller counts (2,000 deliveries, 300 sync requests, 1,000 async invocations).
    #[arg(long)]
    quick: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Concurrent producers for `start` and callback load.
    #[arg(long, default_value_t = 64)]
    producers: usize,
    /// Deliveries per fire-and-forget run (default 20,000; 2,000 with --quick).
    #[arg(long)]
    deliveries: Option<u64>,
    /// Sequential requests per SYNC side (default 2,000; 300 with --quick).
    #[arg(long)]
    sync_requests: Option<usize>,
    /// ASYNC invocations to start and complete (default 5,000; 1,000 with --quick).
    #[arg(long)]
    async_invocations: Option<usize>,
}

/// The counts one run uses.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Plan {
    pub quick: bool,
    pub producers: usize,
    pub deliveries: u64,
    pub sync_requests: usize,
    pub async_invocations: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plan = Plan {
        quick: args.quick,
        producers: args.producers.max(1),
        deliveries: args
            .deliveries
            .unwrap_or(if args.quick { 2_000 } else { 20_000 }),
        sync_requests: args
            .sync_requests
            .unwrap_or(if args.quick { 300 } else { 2_000 }),
        async_invocations: args
            .async_invocations
            .unwrap_or(if args.quick { 1_000 } else { 5_000 }),
    };
    let binary = match args.triggerline {
        Some(path) => path,
        None => default_binary(),
    };
    anyhow::ensure!(
        binary.is_file(),
        "no triggerline binary at {} (build it with `cargo build --release -p triggerline-local`, \
         or pass --triggerline PATH)",
        binary.display()
    );
    let binary = binary
        .canonicalize()
        .context("cannot resolve the binary path")?;
    let client = http_client()?;

    let machine = Machine::describe();
    eprintln!("{}", machine.one_line());
    eprintln!("binary: {}", binary.display());

    eprintln!("[1/4] FIRE_AND_FORGET, 1 subscription ...");
    let ff_one = fire_and_forget::run(&binary, &client, &plan, 1).await?;
    eprintln!("[2/4] FIRE_AND_FORGET, 10 subscriptions ...");
    let ff_ten = fire_and_forget::run(&binary, &client, &plan, 10).await?;
    eprintln!("[3/4] SYNC round trip ...");
    let sync = sync_round_trip::run(&binary, &client, &plan).await?;
    eprintln!("[4/4] ASYNC callbacks ...");
    let callbacks = async_callback::run(&binary, &client, &plan).await?;

    let report = Report::new(machine, binary, plan, vec![ff_one, ff_ten], sync, callbacks);
    println!("{}", report.render());
    if let Some(path) = args.json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("JSON report written to {}", path.display());
    }
    Ok(())
}

/// `triggerline` next to this executable (both are built into the same `target/release`),
/// else `target/release/triggerline` under the current directory.
fn default_binary() -> PathBuf {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("triggerline")));
    match sibling {
        Some(path) if path.is_file() => path,
        _ => PathBuf::from("target/release/triggerline"),
    }
}

/// The one pooled client every scenario drives load with (HTTP/1.1 keep-alive).
fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .no_proxy()
        .build()
        .context("cannot build the HTTP client")
}
