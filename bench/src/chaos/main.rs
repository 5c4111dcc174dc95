//! `triggerline-chaos`: reliability figures of the real `triggerline` release binary, on
//! 127.0.0.1 only. Not part of any test run.
//!
//! ```sh
//! cargo build --release -p triggerline-local -p triggerline-bench
//! target/release/triggerline-chaos [--cycles 100] [--quick] [--json out.json]
//! ```
//!
//! 1. [`kill_cycles`]: SIGKILL and restart of the SQLite server under FIRE_AND_FORGET and ASYNC
//!    load; every acknowledged invocation must end COMPLETED.
//! 2. [`race`]: N concurrent callbacks on one ACKNOWLEDGED invocation, on SQLite and on DynamoDB
//!    (moto): exactly one 204, the rest the documented 400.
//! 3. [`outage`]: moto killed and restarted mid-load under `--backend aws`.
//!
//! The report is plain text on stdout (and JSON with `--json`). Findings are reported, never
//! fatal; the exit code is non-zero only when a setup step fails.

mod hooks;
mod kill_cycles;
mod moto;
mod outage;
mod producers;
mod race;
mod verify;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use triggerline_bench::machine::Machine;
use triggerline_bench::triggerline::{Launch, Triggerline, random_token};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "triggerline-chaos",
    about = "Kills, races and outages against the real triggerline binary on 127.0.0.1."
)]
struct Args {
    /// SIGKILL-and-restart cycles of the SQLite server (default 100; 10 with --quick).
    #[arg(long)]
    cycles: Option<usize>,
    /// Concurrent callbacks in the race (default 1,000; 100 with --quick).
    #[arg(long)]
    racers: Option<usize>,
    /// 10 cycles and 100 racers.
    #[arg(long)]
    quick: bool,
    /// The `triggerline` binary (default: next to this one, else target/release/triggerline).
    #[arg(long)]
    triggerline: Option<PathBuf>,
    /// The `moto_server` executable (default: .venv/bin/moto_server).
    #[arg(long)]
    moto: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Producers per kind of start (FIRE_AND_FORGET, ASYNC).
    #[arg(long, default_value_t = 2)]
    producers: usize,
    /// Seconds to wait, after the load stops, for every acknowledged invocation to finish.
    #[arg(long, default_value_t = 300)]
    drain_timeout: u64,
    /// Seconds moto stays down in the outage scenario.
    #[arg(long, default_value_t = 5)]
    outage: u64,
    /// Run one scenario only.
    #[arg(long, value_enum, default_value_t = Only::All)]
    only: Only,
}

/// The scenarios `--only` can pick.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Only {
    All,
    Kills,
    Races,
    Outage,
}

/// Everything one run measured.
#[derive(Debug, serde::Serialize)]
struct Report {
    command: String,
    date: String,
    machine: Machine,
    binary: PathBuf,
    moto: PathBuf,
    kill_cycles: Option<kill_cycles::KillCycles>,
    races: Vec<race::Race>,
    outage: Option<outage::Outage>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cycles = args.cycles.unwrap_or(if args.quick { 10 } else { 100 });
    let racers = args.racers.unwrap_or(if args.quick { 100 } else { 1_000 });
    let binary = resolve(
        args.triggerline.unwrap_or_else(default_binary),
        "triggerline binary (build it with `cargo build --release -p triggerline-local`, or pass --triggerline PATH)",
    )?;
    let moto_binary = resolve(
        args.moto.unwrap_or_else(moto::default_binary),
        "moto_server (run scripts/test once to make .venv, or pass --moto PATH)",
    )?;
    let drain = Duration::from_secs(args.drain_timeout);
    let client = http_client(Duration::from_secs(30), 256)?;
    let race_client = http_client(Duration::from_secs(120), racers + 16)?;

    let machine = Machine::describe();
    eprintln!("{}", machine.one_line());
    eprintln!("binary: {}", binary.display());

    let only = args.only;
    let kills = if matches!(only, Only::All | Only::Kills) {
        eprintln!("[1/4] kill -9 cycles ({cycles}) on SQLite ...");
        Some(kill_cycles::run(&binary, &client, cycles, args.producers.max(1), drain).await?)
    } else {
        None
    };

    let mut races = Vec::new();
    if matches!(only, Only::All | Only::Races) {
        eprintln!("[2/4] {racers} racing callbacks on SQLite ...");
        let sqlite = Triggerline::start(&binary, &client).await?;
        races.push(race::run(&sqlite, &race_client, "SQLite", racers).await?);
        drop(sqlite);

        eprintln!("[3/4] {racers} racing callbacks on DynamoDB (moto) ...");
        races.push(race_on_moto(&binary, &moto_binary, &client, &race_client, racers).await?);
    }

    let outage = if matches!(only, Only::All | Only::Outage) {
        eprintln!("[4/4] moto killed and restarted mid-load ...");
        Some(
            outage::run(
                &binary,
                &moto_binary,
                &client,
                args.producers.max(1) * 2,
                Duration::from_secs(args.outage),
                drain,
            )
            .await?,
        )
    } else {
        None
    };

    let report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        date: utc_now(),
        machine,
        binary,
        moto: moto_binary,
        kill_cycles: kills,
        races,
        outage,
    };
    println!("{}", render(&report));
    if let Some(path) = args.json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("JSON report written to {}", path.display());
    }
    Ok(())
}

/// The race on `--backend aws` against a fresh moto.
async fn race_on_moto(
    binary: &std::path::Path,
    moto_binary: &std::path::Path,
    client: &reqwest::Client,
    race_client: &reqwest::Client,
    racers: usize,
) -> anyhow::Result<race::Race> {
    let dir = tempfile::Builder::new()
        .prefix("triggerline-chaos-race-")
        .tempdir()
        .context("cannot create a temporary dir")?;
    let moto = moto::Moto::start(
        moto_binary,
        moto::free_port()?,
        &dir.path().join("moto.log"),
        client,
    )
    .await?;
    let (args, env) = moto::aws_backend(&moto.endpoint());
    let launch = Launch {
        data_dir: dir.path().join("data"),
        log: dir.path().join("stderr.log"),
        listen: "127.0.0.1:0".into(),
        token: random_token(),
        args,
        env,
    };
    let server = Triggerline::launch(binary, client, &launch).await?;
    let result = race::run(&server, race_client, "DynamoDB (moto)", racers).await;
    drop(server);
    drop(moto);
    result
}

fn resolve(path: PathBuf, what: &str) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(path.is_file(), "no {what} at {}", path.display());
    path.canonicalize()
        .with_context(|| format!("cannot resolve {}", path.display()))
}

/// `triggerline` next to this executable, else `target/release/triggerline`.
fn default_binary() -> PathBuf {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("triggerline")));
    match sibling {
        Some(path) if path.is_file() => path,
        _ => PathBuf::from("target/release/triggerline"),
    }
}

fn http_client(timeout: Duration, pool: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(timeout)
        .no_proxy()
        .build()
        .context("cannot build the HTTP client")
}

/// The date and time now, UTC, as `YYYY-MM-DD HH:MM:SS UTC` (no date crate for one line).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

fn render(r: &Report) -> String {
    let mut out = String::new();
    let m = &r.machine;
    let _ = writeln!(out, "triggerline-chaos, {}", r.date);
    let _ = writeln!(out, "command: {}", r.command);
    let _ = writeln!(
        out,
        "machine: {} CPUs (nproc), {}, {}, {} MiB RAM, fsync p50 {:.2} ms",
        m.cpus, m.cpu_model, m.kernel, m.memory_mib, m.fsync_p50_ms
    );
    let _ = writeln!(out, "binary: {}", r.binary.display());
    let _ = writeln!(out, "moto: {}", r.moto.display());

    if let Some(k) = &r.kill_cycles {
        render_kills(&mut out, k);
    }
    render_races(&mut out, &r.races);
    if let Some(o) = &r.outage {
        render_outage(&mut out, o);
    }
    out
}

fn render_kills(out: &mut String, k: &kill_cycles::KillCycles) {
    let a = &k.accounting;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "1. kill -9 cycles, SQLite, one data dir and port ({} producers per kind)",
        k.producers_per_kind
    );
    let _ = writeln!(out, "   cycles            {}", k.cycles);
    let _ = writeln!(
        out,
        "   accepted (2xx)    {} ({})",
        k.accepted_total,
        pairs(&k.accepted)
    );
    let _ = writeln!(
        out,
        "   lost              {}   (acknowledged, unknown to the status API)",
        a.lost
    );
    let _ = writeln!(
        out,
        "   unfinished        {}   (not COMPLETED; the drain read them all back within {:.0} s of the load's end)",
        a.unfinished, a.waited_s
    );
    let _ = writeln!(out, "   statuses          {}", pairs(&a.statuses));
    let _ = writeln!(
        out,
        "   duplicates        {}   deliveries of a webhook-id seen before (at least once); {} deliveries, {} ids, most {} per id",
        k.receiver.duplicates, k.receiver.deliveries, k.receiver.distinct, k.receiver.max_per_id
    );
    let _ = writeln!(
        out,
        "   callback answers  {}; abandoned {}, still retrying {}",
        pairs(&k.receiver.callback_answers),
        k.receiver.callbacks_abandoned,
        k.receiver.callbacks_open
    );
    let _ = writeln!(
        out,
        "   start answers     {}",
        pairs(&k.start_answers.answers)
    );
    let _ = writeln!(
        out,
        "   restart           mean {:.0} ms, max {:.0} ms; killed after {:.0}-{:.0} ms up",
        k.restart_ms_mean, k.restart_ms_max, k.uptime_ms_min, k.uptime_ms_max
    );
    let _ = writeln!(
        out,
        "   server log        {} ERROR lines, {} panics",
        k.log_errors, k.log_panics
    );
    for line in &k.log_sample {
        let _ = writeln!(out, "     {line}");
    }
    for example in &a.examples {
        let _ = writeln!(out, "     not completed: {example}");
    }
    let _ = writeln!(out, "   wall time         {:.0} s", k.wall_s);
}

fn render_races(out: &mut String, races: &[race::Race]) {
    for (i, race) in races.iter().enumerate() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "2{}. {} concurrent callbacks on one ACKNOWLEDGED invocation, {}",
            ['a', 'b'].get(i).copied().unwrap_or('?'),
            race.racers,
            race.backend
        );
        for (answer, n) in &race.answers {
            let _ = writeln!(out, "   {n:>5}  {answer}");
        }
        let _ = writeln!(
            out,
            "   exactly one 204: {}; all others the documented 400: {}; final status {}; stored output is the winner's: {}; {:.0} ms",
            yes(race.winners == 1),
            yes(race.rest_documented),
            race.final_status,
            yes(race.output_is_winners),
            race.race_ms
        );
        let _ = writeln!(out, "   server log: {} lines", race.log_lines);
        for (cause, n) in &race.store_errors {
            let _ = writeln!(out, "   {n:>5}  store error: {cause}");
        }
        for line in &race.log_sample {
            let _ = writeln!(out, "     {line}");
        }
    }
}

fn render_outage(out: &mut String, o: &outage::Outage) {
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "3. moto killed mid-load, down {:.0} s, restarted on the same port (back in {:.1} s), --backend aws",
        o.outage_s, o.moto_restart_s
    );
    for (phase, answers) in &o.phases {
        let _ = writeln!(
            out,
            "   {phase}: {}; slowest answer {:.0} ms",
            pairs(&answers.answers),
            answers.slowest_ms
        );
    }
    let _ = writeln!(
        out,
        "   acknowledged before the outage: {}; delivered to the receiver: {}; status API after moto's restart: {}",
        o.accepted_before,
        o.before_delivered,
        pairs(&o.before_statuses)
    );
    let _ = writeln!(
        out,
        "   acknowledged while moto was down or empty: {}",
        o.accepted_during
    );
    let _ = writeln!(
        out,
        "   acknowledged after the restart: {}; lost {}, unfinished {} ({})",
        o.after.checked,
        o.after.lost,
        o.after.unfinished,
        pairs(&o.after.statuses)
    );
    for example in &o.after.examples {
        let _ = writeln!(out, "     not completed: {example}");
    }
    let _ = writeln!(
        out,
        "   moto keeps no state across a restart (its recorder replays requests, not state), so \
         invocations acknowledged before the outage can only be checked by their deliveries; \
         their 404s afterwards are the emulator's loss"
    );
    let _ = writeln!(out, "   wall time {:.0} s", o.wall_s);
}

fn pairs<V: std::fmt::Display>(map: &std::collections::BTreeMap<String, V>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}
