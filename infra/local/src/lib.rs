//! The local stack: every function's router behind one HTTP server, over one SQLite file. It
//! needs no network, no AWS account and no other service. `main.rs` reads the configuration and
//! runs [`App`]; the black-box tests build the same [`App`] in-process.
#![forbid(unsafe_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use triggerline::catalog::Catalog;
use triggerline::duration::IsoDuration;
use triggerline::health::{HealthPolicy, env as health_env};
use triggerline::ports::{
    EventPublisher, IdempotencyStore, InvocationScans, InvocationStore, SubscriptionAdmin,
    WorkSource,
};
use triggerline::secrets::{CredentialKey, Secret, SecretKey};
use triggerline::time::{Clock, RandomIds, RandomJitter, SystemClock};
use triggerline::usecases::complete::Completion;
use triggerline::usecases::delivery::{Delivery, DeliveryPolicy};
use triggerline::usecases::intake::{Intake, SyncRecord};
use triggerline::usecases::notify::Notifier;
use triggerline::usecases::sweep::{Retention, Sweep};
use triggerline_aws::AwsBackend;
use triggerline_embedded::{
    Sqlite, SqliteDeliveryQueue, SqliteIdempotencyStore, SqliteInvocationStore,
    SqliteSubscriptionStore,
};
use triggerline_http::ApiAuth;
use triggerline_webhook::HttpWebhookClient;

mod body_bounds;
pub mod metrics;
pub mod runtime;
mod server;
mod write_stall;

pub use server::{
    ClientLimits, DEFAULT_MAX_CONNECTIONS, default_max_connections, open_files_needed,
};

use triggerline::cache::CachedSubscriptions;

use runtime::{BroadcastWatch, JsonlEvents, NotifyPoke, Worker};

/// Environment variables, named once.
pub mod env {
    pub const LISTEN: &str = "TRIGGERLINE_LISTEN";
    pub const DATA_DIR: &str = "TRIGGERLINE_DATA_DIR";
    pub const PUBLIC_URL: &str = "TRIGGERLINE_PUBLIC_URL";
    pub const API_TOKEN: &str = "TRIGGERLINE_API_TOKEN";
    pub const LOG_FORMAT: &str = "TRIGGERLINE_LOG_FORMAT";
    pub const SYNC_WAIT: &str = "TRIGGERLINE_SYNC_WAIT";
    pub const MAX_ATTEMPTS: &str = "TRIGGERLINE_MAX_ATTEMPTS";
    pub const ALLOW_PRIVATE_TARGETS: &str = "TRIGGERLINE_ALLOW_PRIVATE_TARGETS";
    pub const RETENTION_SUCCEEDED: &str = "TRIGGERLINE_RETENTION_SUCCEEDED";
    pub const RETENTION_FAILED: &str = "TRIGGERLINE_RETENTION_FAILED";
    pub const DELIVERY_CONCURRENCY: &str = "TRIGGERLINE_DELIVERY_CONCURRENCY";
    pub const SWEEP_INTERVAL: &str = "TRIGGERLINE_SWEEP_INTERVAL";
    pub const PURGE_INTERVAL: &str = "TRIGGERLINE_PURGE_INTERVAL";
    pub const DELIVERY_LEASE: &str = "TRIGGERLINE_DELIVERY_LEASE";
    pub const BACKEND: &str = "TRIGGERLINE_BACKEND";
    pub const METRICS_TOKEN: &str = "TRIGGERLINE_METRICS_TOKEN";
    pub const CLIENT_TIMEOUT: &str = "TRIGGERLINE_CLIENT_TIMEOUT";
    pub const MAX_CONNECTIONS: &str = "TRIGGERLINE_MAX_CONNECTIONS";
    pub const MAX_BODY_MEMORY: &str = "TRIGGERLINE_MAX_BODY_MEMORY";
}

/// The local stack's configuration, read once at the edge (`main.rs`: flags, then environment).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "triggerline",
    version,
    about = "Triggerline: event triggers, locally."
)]
pub struct Config {
    /// Address to serve the API on.
    #[arg(long, env = env::LISTEN, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where state lives: `sqlite` (one file under the data dir) or `aws` (DynamoDB, SQS and
    /// EventBridge, from the standard AWS environment: `AWS_ENDPOINT_URL`, `AWS_REGION`,
    /// credentials; resource names from `TRIGGERLINE_*_TABLE`, `TRIGGERLINE_WORK_QUEUE`, …).
    #[arg(long, env = env::BACKEND, default_value = "sqlite")]
    pub backend: Backend,
    /// Folder for the SQLite database and the callback secret key (created if missing).
    #[arg(long, env = env::DATA_DIR, default_value = "./.triggerline")]
    pub data_dir: PathBuf,
    /// Base URL subscribers use to reach this service (callback URLs): http or https, with a
    /// host and no query; defaults to the listen address.
    #[arg(long, env = env::PUBLIC_URL, value_parser = triggerline::delivery::public_base_url)]
    pub public_url: Option<String>,
    /// Bearer token the management API accepts; generated and printed at start when unset.
    #[arg(long, env = env::API_TOKEN, hide_env_values = true)]
    pub api_token: Option<Secret>,
    /// Log format: `text` or `json`.
    #[arg(long, env = env::LOG_FORMAT, default_value = "text")]
    pub log_format: LogFormat,
    /// How long a synchronous `start` waits before answering 542 (ISO-8601 duration, at most
    /// PT10M).
    #[arg(long, env = env::SYNC_WAIT, default_value = "PT25S", value_parser = sync_wait)]
    pub sync_wait: IsoDuration,
    /// Delivery attempts per invocation, the first included: 1 to 50, the most attempts an
    /// invocation keeps over all its rounds (`triggerline::limits::MAX_KEPT_ATTEMPTS`).
    #[arg(long, env = env::MAX_ATTEMPTS, default_value_t = 8, value_parser = max_attempts)]
    pub max_attempts: u32,
    /// Whether deliveries may go to loopback, private and link-local addresses (true locally,
    /// so that receivers on localhost work; set false when subscribers are untrusted).
    #[arg(long, env = env::ALLOW_PRIVATE_TARGETS, default_value_t = true, action = clap::ArgAction::Set)]
    pub allow_private_targets: bool,
    /// How long completed invocations stay listable (ISO-8601 duration, PT1S to P3660D).
    #[arg(long, env = env::RETENTION_SUCCEEDED, default_value = "PT24H", value_parser = retention)]
    pub retention_succeeded: IsoDuration,
    /// How long failed and timed-out invocations stay listable (ISO-8601 duration, PT1S to
    /// P3660D).
    #[arg(long, env = env::RETENTION_FAILED, default_value = "PT48H", value_parser = retention)]
    pub retention_failed: IsoDuration,
    /// Deliveries in flight at once: 1 to 100,000.
    #[arg(long, env = env::DELIVERY_CONCURRENCY, default_value_t = 512,
          value_parser = delivery_concurrency)]
    pub delivery_concurrency: usize,
    /// How often open invocations past their deadline are timed out (ISO-8601 duration,
    /// PT0.1S to PT1H).
    #[arg(long, env = env::SWEEP_INTERVAL, default_value = "PT1S", value_parser = sweep_interval)]
    pub sweep_interval: IsoDuration,
    /// How often retention purges old invocations (ISO-8601 duration, PT1S to P1D).
    #[arg(long, env = env::PURGE_INTERVAL, default_value = "PT5M", value_parser = purge_interval)]
    pub purge_interval: IsoDuration,
    /// How long work taken up for delivery stays reserved to this process (ISO-8601 duration,
    /// longer than one 10 s attempt, at most PT12H). Work a process took and never settled,
    /// because it died or lost its store mid-delivery, is delivered by another process, or after
    /// a restart, once this has passed; on the AWS backend it is the SQS visibility timeout of
    /// claimed messages.
    #[arg(long, env = env::DELIVERY_LEASE, default_value = "PT60S", value_parser = lease)]
    pub delivery_lease: IsoDuration,
    /// On the AWS backend, how long an acknowledged invocation with an ordering key holds its
    /// key before it is looked at again (ISO-8601, whole seconds, PT1S to PT12H): the next of
    /// its key goes at most this long after its callback.
    #[arg(long, env = triggerline_aws::settings::env::ORDER_RECHECK, default_value = "PT30S",
        value_parser = triggerline_aws::settings::order_recheck)]
    pub order_recheck: std::time::Duration,
    /// Consecutive failed attempts that open a subscription's circuit: its deliveries then
    /// wait for a cool-down, and one probe goes when it ends (1 to 1000).
    #[arg(long, env = health_env::CIRCUIT_FAILURES, default_value = "5")]
    pub circuit_failures: String,
    /// The first cool-down of an open circuit; each opening in a row doubles it (ISO-8601).
    #[arg(long, env = health_env::CIRCUIT_COOL_DOWN, default_value = "PT30S")]
    pub circuit_cool_down: String,
    /// The longest cool-down (ISO-8601).
    #[arg(long, env = health_env::CIRCUIT_MAX_COOL_DOWN, default_value = "PT10M")]
    pub circuit_max_cool_down: String,
    /// How long a subscription may fail every attempt before it is disabled (ISO-8601).
    #[arg(long, env = health_env::DISABLE_AFTER, default_value = "P5D")]
    pub disable_after: String,
    /// Bearer token `GET /metrics` asks for; unset, the metrics need no token. Not the API
    /// token: a scraper should not hold the keys to the API.
    #[arg(long, env = env::METRICS_TOKEN, hide_env_values = true)]
    pub metrics_token: Option<Secret>,
    /// How long a client has to send a request's head, then its whole body, and to take each
    /// part of an answer (ISO-8601, PT1S to PT10M). A body later than that is answered 408; a
    /// client that takes nothing of an answer for this long, or keeps a connection open without
    /// a next request, has its connection closed.
    #[arg(long, env = env::CLIENT_TIMEOUT, default_value = "PT30S", value_parser = client_timeout)]
    pub client_timeout: IsoDuration,
    /// Connections served at once (1 to 1,000,000); more wait to be accepted. Unset: the
    /// open-file limit less what deliveries and the store may hold, at most 4,096.
    #[arg(long, env = env::MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: Option<u32>,
    /// MiB of request bodies held at once while they are read, over all connections (1 to
    /// 65,536). A body that would take it over is answered 503 with `Retry-After`.
    #[arg(long, env = env::MAX_BODY_MEMORY, default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_body_memory: u32,
}

/// The most deliveries in flight. Each holds a connection (two open files with its pooled
/// twin); past this the open-file limit, not the setting, decides, and a count beyond tokio's
/// semaphore (2^61 permits) stopped the server with a panic at start.
pub const MAX_DELIVERY_CONCURRENCY: usize = 100_000;

/// A whole number from 1 to `most`, or the message clap shows beside the flag.
fn count_up_to(text: &str, most: usize) -> Result<usize, String> {
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=most).contains(n))
        .ok_or_else(|| format!("`{text}` is not a count from 1 to {most}"))
}

fn delivery_concurrency(text: &str) -> Result<usize, String> {
    count_up_to(text, MAX_DELIVERY_CONCURRENCY)
}

fn max_attempts(text: &str) -> Result<u32, String> {
    let most = triggerline::limits::MAX_KEPT_ATTEMPTS;
    // Within u32: `most` is 50.
    count_up_to(text, most).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

fn duration(text: &str) -> Result<IsoDuration, String> {
    IsoDuration::parse("duration", text).map_err(|e| e.to_string())
}

/// A duration from `least` to `most` milliseconds, the bounds said as `range` when refused.
fn bounded(text: &str, least: u64, most: u64, range: &str) -> Result<IsoDuration, String> {
    let value = duration(text)?;
    if !(least..=most).contains(&value.as_millis()) {
        return Err(format!("must be from {range}"));
    }
    Ok(value)
}

/// Short enough that invocations past their deadline time out soon after it, as the sweep is
/// what times them out (an interval of weeks left them open for weeks); long enough not to
/// spin.
fn sweep_interval(text: &str) -> Result<IsoDuration, String> {
    bounded(text, 100, 3_600_000, "PT0.1S to PT1H")
}

fn purge_interval(text: &str) -> Result<IsoDuration, String> {
    bounded(text, 1_000, 86_400_000, "PT1S to P1D")
}

/// At least a second, so that a finished invocation can still be read by whoever waits on it
/// (a synchronous start reads its outcome back); at most ten years.
fn retention(text: &str) -> Result<IsoDuration, String> {
    bounded(text, 1_000, 3660 * 86_400_000, "PT1S to P3660D")
}

/// Checks that `token` (given as `--{flag}` or `variable`) is one a client can send as
/// `Authorization: Bearer <token>`: visible ASCII, no spaces (a token of blanks was taken, and
/// no request could then carry it). Empty means none given (the API token is then generated;
/// the metrics need none). Checked here rather than by clap, whose error would print the value.
fn check_bearer_token(token: Option<&Secret>, flag: &str, variable: &str) -> anyhow::Result<()> {
    let Some(text) = token.map(Secret::expose) else {
        return Ok(());
    };
    if text.len() > 4096 || !text.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!(
            "invalid value for --{flag} ({variable}): must be up to 4,096 visible ASCII \
             characters, without spaces (it is sent as `Authorization: Bearer <token>`)"
        );
    }
    Ok(())
}

/// The longest the server holds one request, as `--client-timeout`'s longest is what it waits
/// on a client: a producer that waits longer should poll the status instead. Unbounded, a
/// wait of years was taken, and each such start held its connection until every invocation
/// finished.
fn sync_wait(text: &str) -> Result<IsoDuration, String> {
    let wait = duration(text)?;
    if wait.as_millis() > 600_000 {
        return Err("must be at most PT10M".to_owned());
    }
    Ok(wait)
}

/// Long enough for a slow client on a slow link, short enough that a stalled one soon lets go.
fn client_timeout(text: &str) -> Result<IsoDuration, String> {
    let timeout = duration(text)?;
    if !(1_000..=600_000).contains(&timeout.as_millis()) {
        return Err("must be from PT1S to PT10M".to_owned());
    }
    Ok(timeout)
}

/// A lease that outlasts one attempt, so that work is never handed to a second process while
/// the first is still delivering it, and fits SQS's longest visibility timeout (12 h).
fn lease(text: &str) -> Result<IsoDuration, String> {
    let lease = duration(text)?;
    let attempt = triggerline::delivery::ATTEMPT_TIMEOUT;
    if u128::from(lease.as_millis()) <= attempt.as_millis() {
        return Err(format!(
            "must be longer than one delivery attempt ({} s)",
            attempt.as_secs()
        ));
    }
    if lease.as_millis() > 12 * 60 * 60 * 1000 {
        return Err("must be at most PT12H (SQS's longest visibility timeout)".to_owned());
    }
    Ok(lease)
}

impl Config {
    /// The circuit breaker's and automatic disabling's settings, checked.
    /// An error names the flag as well as its variable: either may have set it.
    pub fn health_policy(&self) -> anyhow::Result<HealthPolicy> {
        HealthPolicy::from_settings(
            Some(&self.circuit_failures),
            Some(&self.circuit_cool_down),
            Some(&self.circuit_max_cool_down),
            Some(&self.disable_after),
        )
        .map_err(|e| {
            let flag = e
                .name
                .trim_start_matches("TRIGGERLINE_")
                .to_lowercase()
                .replace('_', "-");
            anyhow::anyhow!("invalid value for --{flag} ({}): {}", e.name, e.reason)
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Aws,
}

/// The stores and queue the app runs on, built by the caller (`main.rs` from the environment;
/// the tests against an emulator with names of their own).
#[derive(Debug, Clone)]
pub enum Storage {
    /// `<data-dir>/triggerline.db`.
    Sqlite,
    /// The AWS adapters over these clients and resource names.
    Aws {
        clients: Box<triggerline_aws::Clients>,
        settings: Box<triggerline_aws::AwsSettings>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What differs between the backends.
struct Adapters {
    subscriptions: CachedSubscriptions,
    invocations: Arc<dyn InvocationStore>,
    /// The same store, as the status list reads it.
    lists: Arc<dyn InvocationScans>,
    /// The queue, as the worker polls it (and, upcast, as the use cases write it).
    queue: Arc<dyn WorkSource>,
    events: Arc<dyn EventPublisher>,
    event_source: String,
    subscriber_bus: String,
    /// The SQLite database, whose gauges `/metrics` reads (`None` on the AWS backend).
    gauges: Option<Sqlite>,
    /// The `Idempotency-Key`s of `start` and `test`.
    keys: Arc<dyn IdempotencyStore>,
}

impl Adapters {
    async fn open(
        config: &Config,
        storage: Storage,
        credentials: CredentialKey,
    ) -> anyhow::Result<Adapters> {
        Ok(match storage {
            Storage::Sqlite => {
                let db_path = config.data_dir.join("triggerline.db");
                let db = Sqlite::open(&db_path)
                    .await
                    .with_context(|| format!("cannot open {}", db_path.display()))?;
                let events = JsonlEvents::open(config.data_dir.join("events.jsonl"))
                    .context("cannot open events.jsonl")?;
                let store = Arc::new(SqliteInvocationStore::new(db.clone()));
                Adapters {
                    subscriptions: CachedSubscriptions::new(Arc::new(
                        SqliteSubscriptionStore::new(db.clone(), credentials),
                    )),
                    invocations: store.clone(),
                    lists: store,
                    queue: Arc::new(SqliteDeliveryQueue::new(db.clone())),
                    events: Arc::new(events),
                    event_source: "triggerline".into(),
                    subscriber_bus: "default".into(),
                    keys: Arc::new(SqliteIdempotencyStore::new(db.clone())),
                    gauges: Some(db),
                }
            }
            Storage::Aws {
                clients,
                mut settings,
            } => {
                settings.order_recheck = config.order_recheck;
                let aws = AwsBackend::connect(&clients, &settings, credentials)
                    .await
                    .context("cannot reach the AWS resources")?;
                Adapters {
                    // Other processes (the Lambda functions, another local stack) may write the
                    // same tables, so cached subscriptions also expire.
                    subscriptions: CachedSubscriptions::with_max_age(
                        aws.subscriptions,
                        SUBSCRIPTION_CACHE_AGE,
                    ),
                    invocations: aws.invocations.clone(),
                    lists: aws.invocations,
                    queue: aws.queue,
                    events: aws.events,
                    event_source: settings.event_source.clone(),
                    subscriber_bus: settings.subscriber_bus.clone(),
                    gauges: None,
                    keys: aws.keys,
                }
            }
        })
    }
}

/// How long cached subscriptions are trusted on the AWS backend, where other processes write.
const SUBSCRIPTION_CACHE_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// A built local stack: its router, the stores behind it, and its background work. `Debug`
/// leaves out the API token.
#[derive(Clone)]
pub struct App {
    pub router: Router,
    pub subscriptions: Arc<dyn SubscriptionAdmin>,
    pub invocations: Arc<dyn InvocationStore>,
    pub delivery: Delivery,
    /// The queue `delivery` writes, as the worker polls it.
    pub work: Arc<dyn WorkSource>,
    /// The token the management API accepts.
    pub api_token: Arc<str>,
    /// Whether `api_token` was generated because none was configured.
    pub token_generated: bool,
    /// Wakes the worker to look at the queue now (tests use it after moving a manual clock).
    pub poke: Arc<Notify>,
    /// The same store as `invocations`, for the status list and retention.
    pub scans: Arc<dyn InvocationScans>,
    /// The `Idempotency-Key`s, which retention also purges.
    pub keys: Arc<dyn IdempotencyStore>,
    retention: Retention,
    sweep_interval: std::time::Duration,
    purge_interval: std::time::Duration,
    /// What each client is allowed: time to send a request, connections at once.
    pub client_limits: server::ClientLimits,
    worker: Arc<std::sync::Mutex<Option<Worker>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("delivery", &self.delivery)
            .field("api_token", &"<redacted>")
            .field("token_generated", &self.token_generated)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Opens the database under `config.data_dir` and assembles every function's router.
    /// `address` is where the API is reachable (callback URLs use it unless a public URL is set).
    pub async fn build(config: &Config, address: SocketAddr) -> anyhow::Result<App> {
        Self::build_with_clock(config, address, Arc::new(SystemClock)).await
    }

    /// [`App::build`] with another clock (tests move a manual one instead of waiting).
    pub async fn build_with_clock(
        config: &Config,
        address: SocketAddr,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        Self::build_on(config, address, clock, Storage::Sqlite).await
    }

    /// [`App::build_with_clock`] on the given storage.
    pub async fn build_on(
        config: &Config,
        address: SocketAddr,
        clock: Arc<dyn Clock>,
        storage: Storage,
    ) -> anyhow::Result<App> {
        // Every setting is checked before anything is written: a refused one leaves no data
        // dir, database or key behind.
        let health = config.health_policy()?;
        check_bearer_token(config.api_token.as_ref(), "api-token", env::API_TOKEN)?;
        check_bearer_token(
            config.metrics_token.as_ref(),
            "metrics-token",
            env::METRICS_TOKEN,
        )?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
        // On SQLite each commit waits on an fsync: the accept's runs while the subscriber
        // answers, and the outcome is written after the answer, with the next commit, so the
        // fsync adds nothing to a SYNC round trip unless it outlasts the subscriber. On AWS each
        // write is billed: one write, with the outcome, as in the Lambda functions.
        let sync_record = match storage {
            Storage::Sqlite => SyncRecord::DuringDelivery,
            Storage::Aws { .. } => SyncRecord::WithOutcome,
        };
        // Read first: it also seals the subscriptions' credentials in the store.
        let key = SecretKey::new(secret_key(&config.data_dir)?);
        let Adapters {
            subscriptions,
            invocations,
            lists,
            queue,
            events,
            event_source,
            subscriber_bus,
            gauges,
            keys,
        } = Adapters::open(config, storage, key.credential_key()).await?;
        let subscriptions: Arc<dyn SubscriptionAdmin> = Arc::new(subscriptions);
        let client = HttpWebhookClient::new(config.allow_private_targets);

        let (api_token, token_generated) = match &config.api_token {
            Some(token) if !token.is_empty() => (Arc::<str>::from(token.expose()), false),
            _ => (Arc::<str>::from(generate_token()), true),
        };
        let auth = ApiAuth::Token(api_token.clone());
        let public_url = config
            .public_url
            .clone()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| format!("http://{address}"));

        // Locally an event is a line in a file: announce everything.
        // The worker's nudge: the intake and every settling path pull it when ordered work may
        // have become claimable.
        let poke = Arc::new(Notify::new());
        let notifier = Notifier {
            events: Some(events.clone()),
            watch: Arc::new(BroadcastWatch::default()),
            event_source: event_source.clone(),
            inline_completion_events: true,
            poke: Some(Arc::new(NotifyPoke(poke.clone()))),
        };
        let delivery = Delivery {
            catalog: Catalog::builtin(),
            subscriptions: subscriptions.clone(),
            invocations: invocations.clone(),
            queue: queue.clone(),
            client: Arc::new(client),
            events,
            clock: clock.clone(),
            jitter: Arc::new(RandomJitter),
            key,
            policy: DeliveryPolicy {
                public_url,
                max_attempts: config.max_attempts,
                event_source,
                subscriber_bus,
                lease: std::time::Duration::from_millis(config.delivery_lease.as_millis()),
                health,
            },
            notifier: notifier.clone(),
        };
        let completion = Completion {
            catalog: Catalog::builtin(),
            invocations: invocations.clone(),
            clock: clock.clone(),
            notifier: notifier.clone(),
        };
        let (worker, signal) = Worker::new(
            delivery.clone(),
            queue.clone(),
            config.delivery_concurrency,
            poke.clone(),
        );
        let intake = Intake {
            delivery: delivery.clone(),
            signal: Some(Arc::new(signal)),
            sync_record,
            ids: Arc::new(RandomIds),
            sync_wait: std::time::Duration::from_millis(config.sync_wait.as_millis()),
            keys: Some(keys.clone()),
            // The in-process worker delivers every event as soon as it is accepted.
            events_inline: false,
        };

        let metrics = crate::metrics::router(
            gauges,
            clock.clone(),
            config
                .metrics_token
                .as_ref()
                .filter(|t| !t.is_empty())
                .map(|t| Arc::from(t.expose())),
        );
        let router = Router::new()
            .route(
                "/health",
                get(|| async { Json(serde_json::json!({"status": "ok"})) }),
            )
            .merge(triggerline_openapi::router())
            .merge(metrics)
            .merge(subscription_api::router(subscription_api::Context {
                subscriptions: subscriptions.clone(),
                clock,
                ids: Arc::new(RandomIds),
                auth: auth.clone(),
            }))
            .merge(status_query::router(status_query::Context {
                invocations: lists.clone(),
                watch: notifier.watch.clone(),
                max_wait: intake.sync_wait,
                auth: auth.clone(),
            }))
            .merge(dispatcher::router(dispatcher::Context { intake, auth }))
            .merge(invocation_complete::router(completion))
            .merge(triggerline_console::router())
            .fallback(triggerline_http::not_found);

        Ok(App {
            router,
            subscriptions,
            invocations,
            delivery,
            work: queue,
            api_token,
            token_generated,
            poke,
            scans: lists,
            keys,
            retention: Retention {
                succeeded: config.retention_succeeded.as_chrono(),
                failed: config.retention_failed.as_chrono(),
            },
            sweep_interval: std::time::Duration::from_millis(config.sweep_interval.as_millis()),
            purge_interval: std::time::Duration::from_millis(config.purge_interval.as_millis()),
            client_limits: server::ClientLimits::from_config(config),
            worker: Arc::new(std::sync::Mutex::new(Some(worker))),
        })
    }

    /// Serves the API on `listener` and runs the worker and the sweeps until `shutdown`
    /// resolves; then stops taking requests, and lets in-flight requests and deliveries finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stop = CancellationToken::new();
        let worker = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(worker) = &worker {
            // Before the first request is taken (see `Worker::release_leases`).
            worker.release_leases().await;
        }
        let worker = worker.map(|w| tokio::spawn(w.run(stop.clone())));
        let upkeep = tokio::spawn(
            runtime::Upkeep {
                sweep: Sweep {
                    invocations: self.invocations.clone(),
                    clock: self.delivery.clock.clone(),
                    notifier: self.delivery.notifier.clone(),
                },
                queue: self.delivery.queue.clone(),
                lease: self.delivery.policy.lease,
                scans: self.scans.clone(),
                keys: self.keys.clone(),
                retention: self.retention,
                sweep_every: self.sweep_interval,
                purge_every: self.purge_interval,
            }
            .run(stop.clone()),
        );
        let served = server::serve(listener, self.router, self.client_limits, shutdown).await;
        stop.cancel();
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        let _ = upkeep.await;
        served
    }
}

/// The key callback secrets are derived from: `<data-dir>/secret.key`, made once. It lives
/// beside the database, not in it, so that a copy of the database alone cannot complete
/// invocations.
fn secret_key(data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("secret.key");
    match std::fs::read(&path) {
        Ok(key) if key.len() >= 32 => return Ok(key),
        Ok(_) => anyhow::bail!("{} is shorter than 32 bytes", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, &key)?;
    file.sync_all()?;
    Ok(key)
}

fn generate_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "tl_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::{Config, MAX_DELIVERY_CONCURRENCY, Secret, check_bearer_token, env};

    #[test]
    fn a_delivery_lease_must_outlast_one_attempt() {
        let parse =
            |lease: &str| Config::try_parse_from(["triggerline", "--delivery-lease", lease]);

        assert_eq!(parse("PT90S").unwrap().delivery_lease.as_millis(), 90_000);
        let refused = parse("PT10S").unwrap_err().to_string();
        assert!(
            refused.contains("must be longer than one delivery attempt (10 s)"),
            "{refused}"
        );
        let refused = parse("P1D").unwrap_err().to_string();
        assert!(refused.contains("at most PT12H"), "{refused}");
        assert!(parse("PT12H").is_ok());
        assert!(parse("soon").is_err());
    }

    #[test]
    fn the_client_timeout_and_connection_limit_are_bounded() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.client_timeout.as_millis(), 30_000);
        assert_eq!(config.max_connections, None);
        assert_eq!(config.max_body_memory, 256);
        assert_eq!(
            parse(&["--client-timeout", "PT10M"])
                .unwrap()
                .client_timeout
                .as_millis(),
            600_000
        );
        for refused in ["PT0.5S", "PT0S", "PT10M1S", "P1D", "30", ""] {
            let error = parse(&["--client-timeout", refused])
                .unwrap_err()
                .to_string();
            assert!(error.contains("--client-timeout"), "{refused}: {error}");
        }
        assert_eq!(
            parse(&["--max-connections", "1"]).unwrap().max_connections,
            Some(1)
        );
        for refused in ["0", "-1", "1000001", "many", "18446744073709551616", ""] {
            let flag = format!("--max-connections={refused}");
            let error = parse(&[&flag]).unwrap_err().to_string();
            assert!(error.contains("--max-connections"), "{refused}: {error}");
        }
        assert_eq!(
            parse(&["--max-body-memory", "1"]).unwrap().max_body_memory,
            1
        );
        for refused in ["0", "-5", "65537", "1.5", "256MiB", ""] {
            let flag = format!("--max-body-memory={refused}");
            let error = parse(&[&flag]).unwrap_err().to_string();
            assert!(error.contains("--max-body-memory"), "{refused}: {error}");
        }
    }

    /// The configuration of `triggerline` with `flags`.
    fn parse(flags: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("triggerline").chain(flags.iter().copied()))
    }

    /// Checks that each of `values` for `--{flag}` is refused with an error naming the flag and
    /// saying `says`.
    fn refused(flag: &str, values: &[&str], says: &str) {
        for value in values {
            let error = parse(&[&format!("--{flag}={value}")])
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("--{flag}")) && error.contains(says),
                "{value}: {error}"
            );
        }
    }

    #[test]
    fn delivery_concurrency_is_a_count_the_runtime_can_hold() {
        assert_eq!(parse(&[]).unwrap().delivery_concurrency, 512);
        let most = format!("--delivery-concurrency={MAX_DELIVERY_CONCURRENCY}");
        assert_eq!(
            parse(&[&most]).unwrap().delivery_concurrency,
            MAX_DELIVERY_CONCURRENCY
        );
        refused(
            "delivery-concurrency",
            &["0", "100001", "4611686018427387904", "-1", "1e3", ""],
            "from 1 to 100000",
        );
    }

    #[test]
    fn attempts_per_invocation_fit_what_an_invocation_keeps() {
        assert_eq!(parse(&[]).unwrap().max_attempts, 8);
        assert_eq!(parse(&["--max-attempts", "1"]).unwrap().max_attempts, 1);
        assert_eq!(parse(&["--max-attempts", "50"]).unwrap().max_attempts, 50);
        refused(
            "max-attempts",
            &["0", "51", "4294967296", "-1", "3.5", "many", ""],
            "from 1 to 50",
        );
    }

    #[test]
    fn the_public_url_is_one_subscribers_can_call_back() {
        let url = |flags: &[&str]| parse(flags).unwrap().public_url;
        assert_eq!(url(&[]), None);
        assert_eq!(
            url(&["--public-url", "https://tl.example.com/"]).as_deref(),
            Some("https://tl.example.com")
        );
        refused("public-url", &["notaurl", "ftp://x"], "is not");
        refused("public-url", &["http://x/y?z"], "query or fragment");
        // An empty variable is unset: the listen address is the default, as on Lambda.
        assert_eq!(url(&["--public-url", ""]).as_deref(), Some(""));
    }

    #[test]
    fn tokens_are_what_a_bearer_header_can_carry_and_a_refusal_does_not_show_them() {
        let check = |value: &str| {
            check_bearer_token(Some(&Secret::from(value)), "api-token", env::API_TOKEN)
                .map_err(|e| e.to_string())
        };
        assert!(check("s3cr3t-._~+/=").is_ok());
        assert!(check("").is_ok(), "empty: none given");
        assert!(check_bearer_token(None, "api-token", env::API_TOKEN).is_ok());
        let long = "x".repeat(4097);
        for bad in [" ", "two words", "tab\there", "caf\u{e9}", long.as_str()] {
            let err = check(bad).unwrap_err();
            assert!(
                err.contains("--api-token (TRIGGERLINE_API_TOKEN)"),
                "{bad:?}: {err}"
            );
            assert!(err.contains("visible ASCII"), "{err}");
            assert!(
                bad.trim().is_empty() || !err.contains(bad),
                "the token is shown: {err}"
            );
        }
    }

    #[test]
    fn intervals_and_retention_are_bounded() {
        let refused = |flag: &str, value: &str| parse(&[&format!("--{flag}={value}")]).is_err();
        for (flag, too_small, too_large, ok) in [
            ("sweep-interval", "PT0.01S", "P4294967295W", "PT1H"),
            ("purge-interval", "PT0.5S", "P2D", "PT1S"),
            ("retention-succeeded", "PT0.5S", "PT4294967295H", "P3660D"),
            ("retention-failed", "PT0.5S", "P3661D", "PT1S"),
        ] {
            assert!(refused(flag, too_small), "{flag} {too_small}");
            assert!(refused(flag, too_large), "{flag} {too_large}");
            assert!(!refused(flag, ok), "{flag} {ok}");
        }
    }

    #[test]
    fn a_synchronous_start_waits_at_most_ten_minutes() {
        let wait = |flags: &[&str]| parse(flags).unwrap().sync_wait.as_millis();
        assert_eq!(wait(&[]), 25_000);
        assert_eq!(wait(&["--sync-wait", "PT10M"]), 600_000);
        assert_eq!(wait(&["--sync-wait", "PT0.5S"]), 500);
        refused(
            "sync-wait",
            &["PT10M0.001S", "PT11M", "P1D", "P99999999D"],
            "at most PT10M",
        );
        refused("sync-wait", &["PT0S", "25", "P1Y"], "duration");
    }

    #[test]
    fn a_refused_health_setting_names_its_flag_and_variable_once() {
        for (flag, value, says) in [
            ("circuit-failures", "0", "not a whole number from 1 to 1000"),
            ("circuit-cool-down", "PT0S", "longer than zero"),
            ("circuit-cool-down", "30", "not an ISO-8601 duration"),
            ("circuit-max-cool-down", "P99999999D", "out of range"),
            ("disable-after", "PT1M", "out of range"),
        ] {
            let config = parse(&[&format!("--{flag}={value}")]).unwrap();
            let error = config.health_policy().unwrap_err().to_string();
            let variable = format!("TRIGGERLINE_{}", flag.to_uppercase().replace('-', "_"));
            assert!(error.contains(&format!("--{flag} ")), "{error}");
            assert_eq!(error.matches(&variable).count(), 1, "{error}");
            assert!(error.contains(says), "{error}");
        }
        assert!(parse(&[]).unwrap().health_policy().is_ok());
    }

    #[test]
    fn connections_get_what_deliveries_and_the_store_leave_of_the_open_files() {
        use super::{DEFAULT_MAX_CONNECTIONS, default_max_connections};

        // 1,024 files, 128 deliveries: 256 for them and their idle pool, 128 for the rest.
        assert_eq!(default_max_connections(1024, 128), 640);
        assert_eq!(default_max_connections(256, 16), 96);
        // A high limit still holds stalled connections to a bounded memory.
        assert_eq!(
            default_max_connections(1 << 20, 512),
            DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(
            default_max_connections(u64::MAX, usize::MAX),
            16,
            "nothing left: the floor"
        );
        assert_eq!(default_max_connections(0, 0), 16);
        // Below this the floor is used, and the start warns.
        assert_eq!(super::open_files_needed(16), 32 + 128 + 16);
    }

    #[test]
    fn debug_of_the_configuration_shows_no_api_token() {
        let config =
            Config::try_parse_from(["triggerline", "--api-token", "tl_very-secret-token"]).unwrap();
        assert_eq!(
            config.api_token.as_ref().map(|t| t.expose()),
            Some("tl_very-secret-token")
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }
}
