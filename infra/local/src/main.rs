//! `triggerline`: the local stack as one process (`serve`, also what runs with no subcommand, so
//! `triggerline --listen … --data-dir …` keeps working), and the client subcommands of
//! `triggerline_cli` that talk to a running one.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use triggerline::time::SystemClock;
use triggerline_local::{App, Backend, Config, LogFormat, Storage, env};

#[derive(Debug, Parser)]
#[command(
    name = "triggerline",
    version,
    about = "Triggerline: event triggers, locally. With no subcommand, serves (as `serve`).",
    // The server's flags stand alone (`triggerline --listen …`), or follow `serve`; a client
    // subcommand after them is a usage error rather than a silently ignored flag.
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Top>,
    #[command(flatten)]
    serve: Config,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Run the service: the API on --listen over the SQLite file in --data-dir (the default
    /// when no subcommand is given).
    Serve(Config),
    #[command(flatten)]
    Client(triggerline_cli::Command),
}

/// mimalloc instead of glibc's malloc. Memory here is freed on another thread than the one that
/// allocated it all the time (a request read on one runtime worker, settled on the SQLite writer,
/// answered on the other worker), and glibc takes the allocating thread's arena lock for each
/// such free once the freeing thread's cache is full: 95 % of the server's `futex` calls under
/// load were those locks. mimalloc hands a free back to its heap without a lock. Measured in
/// docs/performance.md (2026-12-06).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.command {
        Some(Top::Client(command)) => return triggerline_cli::run(command).await,
        Some(Top::Serve(config)) => config,
        None => cli.serve,
    };
    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The message and its causes on one line (`{:#}`): a startup error is read by a
            // person, and `{:?}` would add a backtrace of stripped frames when RUST_BACKTRACE
            // is set.
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    init_tracing(config.log_format);
    raise_open_file_limit(&config);

    let listener = TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    let storage = match config.backend {
        Backend::Sqlite => Storage::Sqlite,
        Backend::Aws => Storage::Aws {
            clients: Box::new(triggerline_aws::Clients::from_env().await),
            settings: Box::new(triggerline_aws::AwsSettings::from_env()),
        },
    };
    let app = App::build_on(&config, address, Arc::new(SystemClock), storage).await?;
    if app.token_generated {
        // Printed once, on stdout, so a user can copy it; it is never logged.
        println!(
            "API token (generated for this run; set {} to choose one): {}",
            env::API_TOKEN,
            app.api_token
        );
    }
    println!("triggerline listening on http://{address}");
    tracing::info!(%address, backend = ?config.backend, data_dir = %config.data_dir.display(), "serving");

    let stop = async {
        triggerline_cli::shutdown_signal(|signal, e| {
            tracing::error!(error = %e, "cannot listen for {signal}");
        })
        .await;
        tracing::info!("shutting down");
    };
    app.serve(listener, stop).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Lifts the soft limit on open files to the hard one, as servers do (Go's runtime does it for
/// every program): connections, deliveries and the store all hold files, and the soft limit is
/// often 1,024. A limit still too low for the configured delivery concurrency is logged, since
/// deliveries would then fail to connect under load.
fn raise_open_file_limit(config: &Config) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(open_files) => {
            let needed = triggerline_local::open_files_needed(config.delivery_concurrency);
            if open_files < needed {
                tracing::warn!(
                    open_files,
                    needed,
                    delivery_concurrency = config.delivery_concurrency,
                    "the open-file limit is low for this delivery concurrency; raise it \
                     (ulimit -n) or lower TRIGGERLINE_DELIVERY_CONCURRENCY"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "cannot read or raise the open-file limit"),
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: piped into a file or a log collector, escape
    // codes are noise in every line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
