//! `triggerline-bench`: measures the real `triggerline` release binary on this machine, beside
//! the bare pipeline, and the Lambda bootstraps' init; the report issue 14 asks for.
//!
//! ```sh
//! cargo build --release -p triggerline-local -p triggerline-bench
//! target/release/triggerline-bench --perf-limits /tmp/perf-limits/release \
//!     --lambda-dir target/lambda-x86 --runs 3 --json target/bench.json
//! ```
//!
//! Each run repeats the whole set, the bare pipeline first:
//!
//! 0. [`bare_pipeline`] (with `--perf-limits`): perf-limits' `pipeline-proto` and `echo-server`
//!    driven by this bench's load generator at the same concurrency, and its fsync probe.
//! 1. [`fire_and_forget`]: deliveries/s to 1 and to 10 subscriptions of `idn:identity-created`,
//!    to 1 with the starts spread over 1,000 `orderingKey`s, and to 1 with the starts sent ten
//!    to a `start-batch` request.
//! 2. [`sync_round_trip`]: latency of a synchronous `start` against a direct POST to the receiver.
//! 3. [`create_deliver`]: create -> deliver at 20 starts/s, one in flight.
//! 4. [`async_callback`]: completions/s through the callback, and memory with invocations open.
//!
//! Then, once, [`lambda_init`] (with `--lambda-dir`): exec -> first `GET /next` of each
//! bootstrap against a runtime API on 127.0.0.1.
//!
//! Every Triggerline scenario starts a fresh `triggerline` child process (own temporary data
//! dir, random token, `--listen 127.0.0.1:0`, `RUST_LOG=warn`) and a fresh webhook receiver
//! inside this process, then drives load through one pooled HTTP client. Memory (VmRSS, VmHWM)
//! is read from `/proc/<pid>/status` at the end of every scenario; CPU time (user + system)
//! from `/proc/<pid>/stat` around each measured phase, `pipeline-proto`'s too, for the CPU per
//! delivery of both. The report is a plain-text
//! table on stdout (and JSON with every run's raw numbers with `--json`). Request failures are
//! counted, never fatal; the exit code is non-zero only when a setup fails. Timing claims
//! belong here, never in the test suite. Nothing leaves 127.0.0.1.

mod async_callback;
mod bare_pipeline;
mod create_deliver;
mod fire_and_forget;
mod lambda_init;
mod report;
mod sync_round_trip;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use triggerline_bench::{load, receiver, triggerline};

use crate::bare_pipeline::PerfLimits;
use crate::fire_and_forget::Shape;
use crate::report::{Machine, Report, Run, Setup};
use crate::triggerline::Triggerline;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "triggerline-bench",
    about = "Benchmarks the real triggerline binary on 127.0.0.1, beside the bare pipeline, and \
             the Lambda bootstraps' init."
)]
struct Args {
    /// The `triggerline` binary to run (default: next to this one, else target/release/triggerline).
    #[arg(long)]
    triggerline: Option<PathBuf>,
    /// The directory of perf-limits' binaries (echo-server, pipeline-proto, sqlite-bench): runs
    /// the bare pipeline first in every run, and gives every figure its ratio to it.
    #[arg(long, env = "TRIGGERLINE_PERF_LIMITS")]
    perf_limits: Option<PathBuf>,
    /// A dir of `<function>/bootstrap` (`cargo lambda build --lambda-dir`, or a `sam build`
    /// dir): times each bootstrap's init.
    #[arg(long, env = "TRIGGERLINE_LAMBDA_DIR")]
    lambda_dir: Option<PathBuf>,
    /// Measured starts per bootstrap.
    #[arg(long, default_value_t = 5)]
    lambda_starts: usize,
    /// A variable to add to every bootstrap's environment, NAME=VALUE (repeatable): what if the
    /// template set it.
    #[arg(long, value_parser = name_value)]
    lambda_env: Vec<(String, String)>,
    /// Only the Lambda init (with --lambda-dir): no triggerline, no bare pipeline.
    #[arg(long, requires = "lambda_dir")]
    lambda_only: bool,
    /// Runs of the whole set, each with its own bare pipeline (default 3; 1 with --quick).
    #[arg(long)]
    runs: Option<usize>,
    /// Smaller counts (2,000 deliveries, 300 sync requests, 60 paced starts, 1,000 async
    /// invocations) and one run.
    #[arg(long)]
    quick: bool,
    /// Also write the report, with every run's raw numbers, as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Concurrent producers for `start` and callback load (the bare pipeline's too).
    #[arg(long, default_value_t = 64)]
    producers: usize,
    /// Deliveries per fire-and-forget run (default 20,000; 2,000 with --quick).
    #[arg(long)]
    deliveries: Option<u64>,
    /// Sequential requests per SYNC side (default 2,000; 300 with --quick).
    #[arg(long)]
    sync_requests: Option<usize>,
    /// Starts paced at 20/s for create -> deliver (default 200; 60 with --quick).
    #[arg(long)]
    paced_starts: Option<usize>,
    /// Starts per `start-batch` request in the batched F&F run (default 10, as many as an
    /// EventBridge `PutEvents` takes; 0 leaves the run out, e.g. against a build without the
    /// route).
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// ASYNC invocations open at once, per round of callbacks (default 5,000; 1,000 with
    /// --quick); rounds repeat until at least --deliveries callbacks were timed.
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
    pub paced_starts: usize,
    pub async_invocations: usize,
    /// Starts per `start-batch` request of the batched F&F run; 0: no such run.
    pub batch: usize,
}

impl Plan {
    /// Rounds of `async_invocations` callbacks: enough to time at least as many as the bare
    /// pipeline's accept rate is timed over (`deliveries`), and at least one. With no
    /// invocations there is nothing to time, so one (empty) round.
    pub fn callback_rounds(&self) -> usize {
        if self.async_invocations == 0 {
            return 1;
        }
        self.deliveries
            .div_ceil(self.async_invocations as u64)
            .max(1) as usize
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let plan = Plan {
        quick: args.quick,
        producers: args.producers.max(1),
        deliveries: args
            .deliveries
            .unwrap_or(if args.quick { 2_000 } else { 20_000 }),
        sync_requests: args
            .sync_requests
            .unwrap_or(if args.quick { 300 } else { 2_000 }),
        paced_starts: args
            .paced_starts
            .unwrap_or(if args.quick { 60 } else { 200 })
            .max(1),
        async_invocations: args
            .async_invocations
            .unwrap_or(if args.quick { 1_000 } else { 5_000 }),
        batch: args.batch,
    };
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let tools = args
        .perf_limits
        .as_deref()
        .map(PerfLimits::at)
        .transpose()?;
    let binary = match args.triggerline {
        Some(path) => path,
        None => default_binary(),
    };
    anyhow::ensure!(
        args.lambda_only || binary.is_file(),
        "no triggerline binary at {} (build it with `cargo build --release -p triggerline-local`, \
         or pass --triggerline PATH)",
        binary.display()
    );
    let binary = if args.lambda_only {
        binary
    } else {
        binary
            .canonicalize()
            .context("cannot resolve the binary path")?
    };
    let client = http_client()?;

    let machine = Machine::describe();
    eprintln!("{}", machine.one_line());
    let mut measured = Vec::new();
    if !args.lambda_only {
        eprintln!("binary: {}", binary.display());
        // The bare pipeline is sent the same body as Triggerline: the trigger's example input.
        let input = {
            let triggerline = Triggerline::start(&binary, &client).await?;
            let input = triggerline
                .api
                .example_input(fire_and_forget::TRIGGER)
                .await?;
            triggerline.finish().await?;
            input
        };
        for run in 1..=runs {
            measured
                .push(one_run(run, runs, &binary, &client, &plan, tools.as_ref(), &input).await?);
        }
    }
    let lambda_init = match &args.lambda_dir {
        Some(dir) => {
            eprintln!("Lambda init, {} ...", dir.display());
            Some(lambda_init::run(dir, args.lambda_starts.max(1), &args.lambda_env).await?)
        }
        None => None,
    };

    let setup = Setup {
        command,
        date,
        machine,
        binary,
        plan,
        perf_limits: tools.map(|t| t.dir().to_owned()),
    };
    let report = Report::new(setup, measured, lambda_init);
    println!("{}", report.render());
    if let Some(path) = args.json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("JSON report written to {}", path.display());
    }
    Ok(())
}

/// One run of the whole set: the bare pipeline (when given), then every Triggerline scenario.
async fn one_run(
    run: usize,
    runs: usize,
    binary: &std::path::Path,
    client: &reqwest::Client,
    plan: &Plan,
    tools: Option<&PerfLimits>,
    input: &serde_json::Value,
) -> anyhow::Result<Run> {
    let step = |n: usize, what: &str| eprintln!("[run {run}/{runs}, {n}/6] {what} ...");
    let bare_pipeline = match tools {
        Some(tools) => {
            step(1, "bare pipeline");
            let bare = bare_pipeline::run(tools, client, plan, input).await?;
            eprintln!("      {}", bare_pipeline::one_line(&bare));
            Some(bare)
        }
        None => None,
    };
    let one = Shape {
        subscriptions: 1,
        ..Shape::default()
    };
    step(2, "FIRE_AND_FORGET, 1 subscription");
    let ff_one = fire_and_forget::run(binary, client, plan, one).await?;
    step(3, "FIRE_AND_FORGET, 10 subscriptions");
    let ten = Shape {
        subscriptions: 10,
        ..one
    };
    let ff_ten = fire_and_forget::run(binary, client, plan, ten).await?;
    step(3, "FIRE_AND_FORGET, 1 subscription, 1,000 ordering keys");
    let ordered = Shape {
        ordering_keys: Some(ORDERING_KEYS),
        ..one
    };
    let ff_ordered = fire_and_forget::run(binary, client, plan, ordered).await?;
    let mut fire_and_forget = vec![ff_one, ff_ten, ff_ordered];
    if plan.batch > 0 {
        step(
            3,
            &format!(
                "FIRE_AND_FORGET, 1 subscription, start-batch of {}",
                plan.batch
            ),
        );
        let batched = Shape {
            batch: Some(plan.batch),
            ..one
        };
        fire_and_forget.push(fire_and_forget::run(binary, client, plan, batched).await?);
    }
    step(4, "SYNC round trip");
    let sync_round_trip = sync_round_trip::run(binary, client, plan).await?;
    step(5, "create -> deliver at 20 starts/s");
    let create_deliver = create_deliver::run(binary, client, plan).await?;
    step(6, "ASYNC callbacks");
    let async_callbacks = async_callback::run(binary, client, plan).await?;
    Ok(Run {
        bare_pipeline,
        fire_and_forget,
        sync_round_trip,
        create_deliver,
        async_callbacks,
    })
}

/// Ordering keys of the ordered fire-and-forget run (issue 15 asks for 1,000).
const ORDERING_KEYS: usize = 1000;

/// `NAME=VALUE`.
fn name_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
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

#[cfg(test)]
mod tests {
    use super::Plan;

    fn plan(deliveries: u64, async_invocations: usize) -> Plan {
        Plan {
            quick: false,
            producers: 64,
            deliveries,
            sync_requests: 1,
            paced_starts: 1,
            async_invocations,
            batch: 10,
        }
    }

    #[test]
    fn callbacks_are_timed_over_at_least_as_many_requests_as_the_bare_accepts() {
        assert_eq!(plan(20_000, 5_000).callback_rounds(), 4);
        assert_eq!(plan(20_001, 5_000).callback_rounds(), 5);
        assert_eq!(plan(2_000, 1_000).callback_rounds(), 2);
        assert_eq!(plan(200, 40_000).callback_rounds(), 1);
        assert_eq!(plan(0, 5_000).callback_rounds(), 1);
        assert_eq!(plan(20_000, 0).callback_rounds(), 1, "nothing to time");
        assert_eq!(plan(20_000, 1).callback_rounds(), 20_000);
    }
}
