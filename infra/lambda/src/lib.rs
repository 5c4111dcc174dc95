//! What the Lambda functions share at start: their settings from the environment (read once, in
//! `main`), their logging, the use cases' contexts over the AWS adapters ([`triggerline_aws`],
//! [`triggerline_webhook`]) with the pieces that differ on AWS from the local stack, and a
//! router's Lambda entry point ([`http::run`]). The functions' mains call it; their libraries
//! (handlers) never do. The adapter crate reads only its own settings ([`AwsSettings`],
//! [`Clients::from_lambda_env`]).
#![forbid(unsafe_code)]

pub mod emf;
pub mod http;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use tracing_subscriber::filter::LevelFilter;
use triggerline::cache::CachedSubscriptions;
use triggerline::catalog::Catalog;
use triggerline::duration::IsoDuration;
use triggerline::health::{HealthPolicy, env as health_env};
use triggerline::limits::MAX_KEPT_ATTEMPTS;
use triggerline::ports::{EventPublisher, InvocationWatch, WatchSubscription, WebhookClient};
use triggerline::secrets::{CredentialKey, SecretKey};
use triggerline::time::{RandomJitter, SystemClock};
use triggerline::usecases::complete::Completion;
use triggerline::usecases::delivery::{Delivery, DeliveryPolicy};
use triggerline::usecases::intake::DEFAULT_LEASE;
use triggerline::usecases::notify::Notifier;
use triggerline::usecases::sweep::Sweep;

use triggerline::usecases::intake::INLINE_WAIT_FLOOR;
use triggerline_aws::eventbridge::EventBridgePublisher;
use triggerline_aws::secretsmanager::SecretsManager;
use triggerline_aws::settings::InvocationTtl;
use triggerline_aws::sqs::{SqsDeliveryQueue, resolve_queue_url};
use triggerline_aws::{AwsBackend, AwsSettings, Clients};
use triggerline_webhook::HttpWebhookClient;

/// Environment variables of the functions (besides [`triggerline_aws::settings::env`]).
pub mod env {
    /// Base URL of the API (callback URLs are `{public_url}/trigger-invocations/v1/{id}/complete`).
    pub const PUBLIC_URL: &str = "TRIGGERLINE_PUBLIC_URL";
    /// Base64 of at least 32 random bytes: the key callback secrets are derived from. For a
    /// function run by hand or against an emulator; deployed functions use [`SECRET_KEY_ARN`].
    pub const SECRET_KEY: &str = "TRIGGERLINE_SECRET_KEY";
    /// ARN of the Secrets Manager secret holding [`SECRET_KEY`]'s value, fetched once at start
    /// with the function's own role ([`super::load_secret_key`]): the key itself is never in
    /// the function's configuration, which more people can read than the secret.
    pub const SECRET_KEY_ARN: &str = "TRIGGERLINE_SECRET_KEY_ARN";
    /// How long completed invocations stay listable before DynamoDB's TTL deletes them
    /// (ISO-8601, default PT24H, as on the local stack).
    pub const RETENTION_SUCCEEDED: &str = "TRIGGERLINE_RETENTION_SUCCEEDED";
    /// The same for failed and timed-out invocations (default PT48H).
    pub const RETENTION_FAILED: &str = "TRIGGERLINE_RETENTION_FAILED";
    /// Delivery attempts per invocation, the first included (default 8).
    pub const MAX_ATTEMPTS: &str = "TRIGGERLINE_MAX_ATTEMPTS";
    /// How long a synchronous `start` waits before answering 542 (ISO-8601, default PT25S).
    pub const SYNC_WAIT: &str = "TRIGGERLINE_SYNC_WAIT";
    /// Whether deliveries may go to private addresses (default false on AWS).
    pub const ALLOW_PRIVATE_TARGETS: &str = "TRIGGERLINE_ALLOW_PRIVATE_TARGETS";
    /// Whether invocations answered inline to a synchronous `start` also publish `Trigger
    /// Invocation Completed` (default false: the producer has the answer, and the event would
    /// double the fast path's cost).
    pub const INLINE_COMPLETION_EVENTS: &str = "TRIGGERLINE_INLINE_COMPLETION_EVENTS";
    /// Whether finished REQUEST_RESPONSE invocations publish `Trigger Invocation Completed` on
    /// Triggerline's bus at all (default false: each event is billed, $1.00 per million, and
    /// nobody may listen; the template turns it on with its `CompletionEvents` parameter, or
    /// when it creates the example rule). Off, [`INLINE_COMPLETION_EVENTS`] has no effect.
    pub const COMPLETION_EVENTS: &str = "TRIGGERLINE_COMPLETION_EVENTS";
    /// How long a warm function trusts the subscriptions it read for a trigger (ISO-8601,
    /// default PT5S): a subscription change reaches deliveries within this time, and a `start`
    /// on a warm function reads no subscription. Longer than zero and at most
    /// [`super::MAX_SUBSCRIPTION_CACHE`].
    pub const SUBSCRIPTION_CACHE: &str = "TRIGGERLINE_SUBSCRIPTION_CACHE";
    /// The work queue's `maxReceiveCount` (default 5), from the same template value as its
    /// redrive policy: the queue consumer moves a message failing on that receive to the
    /// dead-letter queue itself ([`triggerline_aws::sqs::SqsDeliveryQueue::dead_letter`]).
    pub const MAX_RECEIVE_COUNT: &str = "TRIGGERLINE_MAX_RECEIVE_COUNT";
    /// The CloudWatch namespace of the functions' embedded-format metrics (default
    /// `Triggerline`; the template gives each stack its own).
    pub const METRICS_NAMESPACE: &str = "TRIGGERLINE_METRICS_NAMESPACE";
}

/// [`InvocationWatch`] across processes: a callback lands in another function, so a waiting
/// intake learns of it only by reading again. `wait` returns after a growing pause (50 ms,
/// doubling up to 1 s) and the caller re-reads with a consistent read.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollingWatch;

impl InvocationWatch for PollingWatch {
    fn changed(&self, _invocation_id: &str) {}

    fn subscribe(&self) -> Box<dyn WatchSubscription> {
        Box::new(Backoff(Duration::from_millis(50)))
    }
}

struct Backoff(Duration);

#[async_trait]
impl WatchSubscription for Backoff {
    async fn wait(&mut self, _ids: &[String], timeout: Duration) {
        tokio::time::sleep(self.0.min(timeout)).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(1));
    }
}

/// A function's configuration, read once in `main` from [`env`] and
/// [`triggerline_aws::settings::env`].
///
/// Only what a function uses is required of it: the secret key and the public URL matter where
/// webhooks are sent ([`delivery`]), so the callback and sweep functions run without them (and
/// their roles never see the key).
#[derive(Clone)]
pub struct FunctionEnv {
    /// Resource names.
    pub aws: AwsSettings,
    /// [`env::PUBLIC_URL`], if set.
    pub public_url: Option<String>,
    /// [`env::SECRET_KEY`], decoded, if set; or the secret of [`env::SECRET_KEY_ARN`] once
    /// [`load_secret_key`] has fetched it.
    pub secret_key: Option<SecretKey>,
    /// [`env::SECRET_KEY_ARN`], if set.
    pub secret_key_arn: Option<String>,
    /// [`env::MAX_ATTEMPTS`], 1 to [`MAX_KEPT_ATTEMPTS`].
    pub max_attempts: u32,
    /// [`env::SYNC_WAIT`], under [`MAX_SYNC_WAIT`].
    pub sync_wait: Duration,
    /// [`env::ALLOW_PRIVATE_TARGETS`]: false unless set to `true`/`1`, because on AWS a
    /// private address is the VPC or the metadata endpoint, never a subscriber.
    pub allow_private_targets: bool,
    /// [`env::INLINE_COMPLETION_EVENTS`].
    pub inline_completion_events: bool,
    /// [`env::COMPLETION_EVENTS`].
    pub completion_events: bool,
    /// [`env::SUBSCRIPTION_CACHE`].
    pub subscription_cache: Duration,
    /// [`env::MAX_RECEIVE_COUNT`], 1 to 1,000 (what SQS's redrive policy takes).
    pub max_receive_count: u32,
    /// The circuit breaker and automatic disabling ([`health_env`]'s variables).
    pub health: HealthPolicy,
    /// [`env::METRICS_NAMESPACE`].
    pub metrics_namespace: String,
}

impl std::fmt::Debug for FunctionEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionEnv")
            .field("aws", &self.aws)
            .field("public_url", &self.public_url)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("secret_key_arn", &self.secret_key_arn)
            .field("max_attempts", &self.max_attempts)
            .field("sync_wait", &self.sync_wait)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("inline_completion_events", &self.inline_completion_events)
            .field("completion_events", &self.completion_events)
            .field("subscription_cache", &self.subscription_cache)
            .field("max_receive_count", &self.max_receive_count)
            .field("health", &self.health)
            .field("metrics_namespace", &self.metrics_namespace)
            .finish()
    }
}

/// A setting that is missing where it is needed, or unreadable.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{0} is not set; this function needs it")]
    Missing(&'static str),
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Attempts per invocation when [`env::MAX_ATTEMPTS`] is unset (the local stack's default).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// [`env::SYNC_WAIT`] when unset: under API Gateway's 30 s integration timeout, so that a
/// waiting `start` answers 542 itself instead of the gateway answering 503.
pub const DEFAULT_SYNC_WAIT: &str = "PT25S";
/// [`env::SYNC_WAIT`] must be shorter than this. The functions that wait stop at 30 s (their
/// `Timeout` in template.yaml) and so does API Gateway's integration: a wait any longer is
/// answered by them (a 502 or 503) instead of the 542 a producer expects, and the invocations'
/// ids with it. The template's `SyncWait` pattern allows the same (at most 28.999... s).
pub const MAX_SYNC_WAIT: Duration = Duration::from_secs(29);
/// The longest [`env::SUBSCRIPTION_CACHE`]. Lambda keeps a warm function for hours, and until
/// its cache entry expires it delivers to a subscription as it read it: one deleted, disabled
/// or pointed elsewhere meanwhile still gets events. Five minutes bounds that to about what a
/// person changing a subscription waits before looking again; a cold read is half a read unit.
pub const MAX_SUBSCRIPTION_CACHE: Duration = Duration::from_secs(300);
/// The shortest secret key accepted, in bytes (HMAC-SHA256's block of entropy).
const MIN_SECRET_KEY_BYTES: usize = 32;
/// [`env::RETENTION_SUCCEEDED`] when unset (the local stack's default).
pub const DEFAULT_RETENTION_SUCCEEDED: &str = "PT24H";
/// [`env::RETENTION_FAILED`] when unset (the local stack's default).
pub const DEFAULT_RETENTION_FAILED: &str = "PT48H";

/// The key in `text` (base64 of at least [`MIN_SECRET_KEY_BYTES`] bytes), read from `name`.
fn decode_secret_key(name: &'static str, text: &str) -> Result<SecretKey, EnvError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| EnvError::Invalid {
            name,
            reason: format!("not base64: {e}"),
        })?;
    if bytes.len() < MIN_SECRET_KEY_BYTES {
        return Err(EnvError::Invalid {
            name,
            reason: format!(
                "{} bytes; at least {MIN_SECRET_KEY_BYTES} random bytes are needed",
                bytes.len()
            ),
        });
    }
    Ok(SecretKey::new(bytes))
}

/// Reads variable `name` as an ISO-8601 duration. The refusal names the variable once: the
/// duration's own error already names it, and [`EnvError::Invalid`] names it again.
fn duration(name: &'static str, text: &str) -> Result<IsoDuration, EnvError> {
    IsoDuration::parse(name, text.trim()).map_err(|e| EnvError::Invalid {
        name,
        reason: match e {
            triggerline::Error::Invalid { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

/// A retention variable: an ISO-8601 duration of at least a minute (DynamoDB deletes expired
/// items within about two days anyway; less than a minute is a mistake, not a policy).
fn retention(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<chrono::Duration, EnvError> {
    let text = get(name).unwrap_or_else(|| default.to_owned());
    let span = duration(name, &text)?.as_chrono();
    if span < chrono::Duration::minutes(1) {
        return Err(EnvError::Invalid {
            name,
            reason: format!("`{text}` is shorter than a minute"),
        });
    }
    // Ten years, as locally: data is not kept for ever by a slip of the unit.
    if span > chrono::Duration::days(3660) {
        return Err(EnvError::Invalid {
            name,
            reason: format!("`{text}` is longer than the most allowed, P3660D"),
        });
    }
    Ok(span)
}

impl FunctionEnv {
    /// Reads the process environment (once, in `main`).
    pub fn from_env() -> Result<FunctionEnv, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`FunctionEnv::from_env`] over any lookup (tests pass a map). Empty values count as
    /// unset, as in [`AwsSettings::from_lookup`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<FunctionEnv, EnvError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let secret_key = get(env::SECRET_KEY)
            .map(|text| decode_secret_key(env::SECRET_KEY, &text))
            .transpose()?;
        let secret_key_arn = get(env::SECRET_KEY_ARN).map(|arn| arn.trim().to_owned());
        if secret_key.is_some() && secret_key_arn.is_some() {
            // Two sources could disagree, and then which one signed what is anyone's guess.
            return Err(EnvError::Invalid {
                name: env::SECRET_KEY_ARN,
                reason: format!("set it or {}, not both", env::SECRET_KEY),
            });
        }
        let max_attempts = attempts(&get)?;
        let max_receive_count = count(
            &get,
            env::MAX_RECEIVE_COUNT,
            triggerline_aws::sqs::MAX_RECEIVE_COUNT,
        )?;
        let sync_wait_text = get(env::SYNC_WAIT).unwrap_or_else(|| DEFAULT_SYNC_WAIT.to_owned());
        let sync_wait =
            Duration::from_millis(duration(env::SYNC_WAIT, &sync_wait_text)?.as_millis());
        if sync_wait >= MAX_SYNC_WAIT {
            return Err(EnvError::Invalid {
                name: env::SYNC_WAIT,
                reason: format!(
                    "`{sync_wait_text}` must be under PT29S: the functions and API Gateway stop \
                     waiting at 30 s"
                ),
            });
        }
        let public_url = get(env::PUBLIC_URL)
            .map(|text| {
                triggerline::delivery::public_base_url(&text).map_err(|reason| EnvError::Invalid {
                    name: env::PUBLIC_URL,
                    reason,
                })
            })
            .transpose()?;
        let allow_private_targets = flag(&get, env::ALLOW_PRIVATE_TARGETS)?;
        let inline_completion_events = flag(&get, env::INLINE_COMPLETION_EVENTS)?;
        let completion_events = flag(&get, env::COMPLETION_EVENTS)?;
        let cache_text = get(env::SUBSCRIPTION_CACHE).unwrap_or_else(|| "PT5S".to_owned());
        let subscription_cache =
            Duration::from_millis(duration(env::SUBSCRIPTION_CACHE, &cache_text)?.as_millis());
        if subscription_cache > MAX_SUBSCRIPTION_CACHE {
            return Err(EnvError::Invalid {
                name: env::SUBSCRIPTION_CACHE,
                reason: format!(
                    "`{cache_text}` is longer than PT5M: a warm function would go on delivering \
                     to a deleted or disabled subscription for that long"
                ),
            });
        }
        let health = HealthPolicy::from_settings(
            get(health_env::CIRCUIT_FAILURES).as_deref(),
            get(health_env::CIRCUIT_COOL_DOWN).as_deref(),
            get(health_env::CIRCUIT_MAX_COOL_DOWN).as_deref(),
            get(health_env::DISABLE_AFTER).as_deref(),
        )
        .map_err(|e| EnvError::Invalid {
            name: e.name,
            reason: e.reason,
        })?;
        let mut aws = AwsSettings::from_lookup(&lookup);
        triggerline_aws::settings::event_source(&aws.event_source).map_err(|reason| {
            EnvError::Invalid {
                name: triggerline_aws::settings::env::EVENT_SOURCE,
                reason,
            }
        })?;
        if let Some(text) = get(triggerline_aws::settings::env::ORDER_RECHECK) {
            aws.order_recheck =
                triggerline_aws::settings::order_recheck(&text).map_err(|reason| {
                    EnvError::Invalid {
                        name: triggerline_aws::settings::env::ORDER_RECHECK,
                        reason,
                    }
                })?;
        }
        // No purge runs on AWS: the TTL written on every finished invocation is the retention.
        aws.retention = Some(InvocationTtl {
            succeeded: retention(&get, env::RETENTION_SUCCEEDED, DEFAULT_RETENTION_SUCCEEDED)?,
            failed: retention(&get, env::RETENTION_FAILED, DEFAULT_RETENTION_FAILED)?,
        });
        if aws.create_resources && !triggerline_aws::resources::BUILT_IN {
            return Err(EnvError::Invalid {
                name: triggerline_aws::settings::env::CREATE_RESOURCES,
                reason: triggerline_aws::resources::NotBuiltIn.to_string(),
            });
        }
        Ok(FunctionEnv {
            aws,
            public_url,
            secret_key,
            secret_key_arn,
            max_attempts,
            sync_wait,
            allow_private_targets,
            inline_completion_events,
            completion_events,
            subscription_cache,
            max_receive_count,
            health,
            metrics_namespace: get(env::METRICS_NAMESPACE).map_or_else(
                || emf::DEFAULT_NAMESPACE.to_owned(),
                |n| n.trim().to_owned(),
            ),
        })
    }

    /// The delivery policy these settings describe (`public_url` empty when unset: only the
    /// functions that send webhooks put it into anything).
    pub fn policy(&self) -> DeliveryPolicy {
        DeliveryPolicy {
            public_url: self.public_url.clone().unwrap_or_default(),
            max_attempts: self.max_attempts,
            event_source: self.aws.event_source.clone(),
            subscriber_bus: self.aws.subscriber_bus.clone(),
            // The functions hand nothing over in memory: the lease covers a synchronous start
            // written before its inline delivery (its safety-net message).
            lease: DEFAULT_LEASE,
            health: self.health.clone(),
        }
    }
    /// How the functions announce settled invocations: on Triggerline's bus when
    /// [`env::COMPLETION_EVENTS`] is on (else nowhere), to waiters that poll ([`PollingWatch`]).
    pub fn notifier(&self, events: Arc<dyn EventPublisher>) -> Notifier {
        Notifier {
            events: self.completion_events.then_some(events),
            watch: Arc::new(PollingWatch),
            event_source: self.aws.event_source.clone(),
            inline_completion_events: self.inline_completion_events,
            // SQS delivers by itself, and refuses ordered work (`orders_by_key`).
            poke: None,
        }
    }
}

/// [`env::MAX_ATTEMPTS`]: 1 to [`MAX_KEPT_ATTEMPTS`], the most attempts an invocation keeps
/// (more would not fit its DynamoDB item with the largest input and output).
fn attempts(get: &impl Fn(&str) -> Option<String>) -> Result<u32, EnvError> {
    let Some(text) = get(env::MAX_ATTEMPTS) else {
        return Ok(DEFAULT_MAX_ATTEMPTS);
    };
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_KEPT_ATTEMPTS).contains(&(*n as usize)))
        .ok_or_else(|| EnvError::Invalid {
            name: env::MAX_ATTEMPTS,
            reason: format!("`{text}` is not a count from 1 to {MAX_KEPT_ATTEMPTS}"),
        })
}

/// A count: `default` when unset, at least 1.
fn count(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u32,
) -> Result<u32, EnvError> {
    match get(name) {
        None => Ok(default),
        // 0 used to be taken as 1 without a word; the redrive policy it mirrors takes 1 to 1,000.
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| EnvError::Invalid {
                name,
                reason: format!("`{text}` is not a whole number from 1 to 1000"),
            }),
    }
}

/// A boolean variable: unset is false; `true`/`1` and `false`/`0` in any case.
fn flag(get: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<bool, EnvError> {
    match get(name) {
        None => Ok(false),
        Some(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(EnvError::Invalid {
                name,
                reason: format!("`{text}` is not true or false"),
            }),
        },
    }
}

/// The functions' logs: one JSON object per line on stdout, which Lambda ships to CloudWatch as
/// is; no colours (CloudWatch shows escape codes verbatim). The level is `RUST_LOG`, or else the
/// function's `AWS_LAMBDA_LOG_LEVEL` (Lambda's log-level control), `info` when neither is set.
/// It is one level for everything: per-target directives would need `EnvFilter` and its regex
/// engine in every bootstrap.
pub fn init_logging() {
    let level = ["RUST_LOG", "AWS_LAMBDA_LOG_LEVEL"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok())
        .map_or(Ok(LevelFilter::INFO), |text| {
            text.trim().parse::<LevelFilter>()
        });
    tracing_subscriber::fmt()
        .json()
        .with_max_level(level.clone().unwrap_or(LevelFilter::INFO))
        .with_ansi(false)
        .with_current_span(false)
        .init();
    if let Err(e) = level {
        tracing::warn!(error = %e, "RUST_LOG is not a level (trace, debug, info, warn, error, off); logging at info");
    }
}

/// A failure at start (the function then reports an init error and Lambda retries the start).
pub type BootError = Box<dyn std::error::Error + Send + Sync>;

/// What every function does at start, once: read its environment, install the metrics
/// recorder ([`emf`]: its lines are written when a handler returns, see [`emf::metered`]) and
/// configure the SDK from the variables the Lambda runtime sets ([`Clients::from_lambda_env`]).
/// No I/O: clients are built when an adapter first needs them. A failure is logged as a
/// structured line before it is returned, so it shows in the function's JSON logs, not only in
/// Lambda's init error.
pub fn boot() -> Result<(FunctionEnv, Clients), BootError> {
    let env = FunctionEnv::from_env().inspect_err(|e| {
        tracing::error!(error = %e, "invalid function environment");
    })?;
    emf::install(&env.metrics_namespace);
    let clients = Clients::from_lambda_env().inspect_err(|e| {
        tracing::error!(error = %e, "invalid function environment");
    })?;
    Ok((env, clients))
}

/// With [`triggerline_aws::settings::env::CREATE_RESOURCES`] (running a function against an
/// emulator), creates the tables if they are missing; otherwise does nothing. Every function
/// uses them. See [`triggerline_aws::resources`] for the builds that can.
pub async fn create_missing_tables(clients: &Clients, env: &FunctionEnv) -> Result<(), BootError> {
    triggerline_aws::resources::create_missing_tables(clients, &env.aws)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot create the tables"))
        .map_err(Into::into)
}

/// [`create_missing_tables`] for Triggerline's bus, for the functions that publish completion
/// events without the rest of the dispatcher (callback, sweep).
pub async fn create_missing_bus(clients: &Clients, env: &FunctionEnv) -> Result<(), BootError> {
    triggerline_aws::resources::create_missing_bus(clients, &env.aws)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot create the bus"))
        .map_err(Into::into)
}

/// Every adapter, for the dispatcher's functions (they use them all). With
/// [`triggerline_aws::settings::env::CREATE_RESOURCES`], missing resources are created first.
/// The one I/O of their cold start is here: a `GetQueueUrl`, only when
/// [`triggerline_aws::settings::env::WORK_QUEUE`] is a name rather than a URL (the template
/// passes the URL). Needs the key ([`credential_key`]): the dispatcher opens the subscriptions'
/// credentials to send them.
pub async fn connect(clients: &Clients, env: &FunctionEnv) -> Result<AwsBackend, BootError> {
    let credentials = credential_key(env)?;
    AwsBackend::connect(clients, &env.aws, credentials)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot connect the AWS adapters"))
        .map_err(Into::into)
}

/// The key subscription credentials are sealed with at rest, derived from the service key
/// ([`SecretKey::credential_key`]), for the functions that read or write subscriptions (the
/// subscription API, the dispatcher's intake and queue consumer). Needs the key, as
/// [`delivery`] does: [`env::SECRET_KEY`], or [`env::SECRET_KEY_ARN`] after
/// [`load_secret_key`].
pub fn credential_key(env: &FunctionEnv) -> Result<CredentialKey, EnvError> {
    secret_key(env).map(SecretKey::credential_key)
}

/// The service key, or which variable is missing (logged, as every failure at start is).
fn secret_key(env: &FunctionEnv) -> Result<&SecretKey, EnvError> {
    env.secret_key
        .as_ref()
        .ok_or(EnvError::Missing(if env.secret_key_arn.is_some() {
            "the key of TRIGGERLINE_SECRET_KEY_ARN (load_secret_key)"
        } else {
            env::SECRET_KEY_ARN
        }))
        .inspect_err(|e| tracing::error!(error = %e, "invalid function environment"))
}

/// For a function that needs the key: with [`env::SECRET_KEY_ARN`] set (the template sets it),
/// fetches the secret with the function's own role and puts the decoded key into `env`; with
/// [`env::SECRET_KEY`] instead (a function run by hand), or neither, does nothing. One call per
/// execution environment, at start: the key is never in the function's configuration.
pub async fn load_secret_key(clients: &Clients, env: &mut FunctionEnv) -> Result<(), BootError> {
    let Some(arn) = env.secret_key_arn.clone() else {
        return Ok(());
    };
    let text = SecretsManager::new(clients)
        .secret_string(&arn)
        .await
        .inspect_err(
            |e| tracing::error!(error = %e, secret = %arn, "cannot read the callback key"),
        )?;
    let key = decode_secret_key(env::SECRET_KEY_ARN, &text)
        .inspect_err(|e| tracing::error!(error = %e, secret = %arn, "invalid callback key"))?;
    env.secret_key = Some(key);
    Ok(())
}

/// The [`Delivery`] of a function that sends webhooks (the dispatcher's intake and queue
/// consumer): the AWS adapters, `client`, the wall clock and the [`PollingWatch`]. Needs the
/// key ([`env::SECRET_KEY`], or [`env::SECRET_KEY_ARN`] after [`load_secret_key`]: callback
/// secrets are derived from it, and every function that derives them must hold the same key)
/// and [`env::PUBLIC_URL`] (the callback URL sent to subscribers).
pub fn delivery(
    backend: &AwsBackend,
    client: Arc<dyn WebhookClient>,
    env: &FunctionEnv,
) -> Result<Delivery, EnvError> {
    let key = secret_key(env)?.clone();
    if env.public_url.is_none() {
        let missing = EnvError::Missing(env::PUBLIC_URL);
        tracing::error!(error = %missing, "invalid function environment");
        return Err(missing);
    }
    Ok(Delivery {
        catalog: Catalog::builtin(),
        // Subscriptions are written by another function, so cached ones expire.
        subscriptions: Arc::new(CachedSubscriptions::with_max_age(
            backend.subscriptions.clone(),
            env.subscription_cache,
        )),
        invocations: backend.invocations.clone(),
        queue: backend.queue.clone(),
        client,
        events: backend.events.clone(),
        clock: Arc::new(SystemClock),
        jitter: Arc::new(RandomJitter),
        key,
        policy: env.policy(),
        notifier: env.notifier(backend.events.clone()),
    })
}

/// What the dispatcher's intake and queue consumer both start with: the key (fetched with
/// [`load_secret_key`]), every adapter ([`connect`]) and the [`delivery`] over them, posting
/// through one pooled [`HttpWebhookClient`] that refuses private targets unless
/// [`env::ALLOW_PRIVATE_TARGETS`] allows them.
pub async fn delivering(
    env: &mut FunctionEnv,
    clients: &Clients,
) -> Result<(AwsBackend, Delivery), BootError> {
    load_secret_key(clients, env).await?;
    let backend = connect(clients, env).await?;
    let client = HttpWebhookClient::new(env.allow_private_targets);
    let delivery = delivery(&backend, Arc::new(client), env)?;
    Ok((backend, delivery))
}

/// The work queue of the dispatcher's intake (`dispatcher::Context::behind_api_gateway`), from
/// the `backend`'s.
///
/// The intake delivers what it leases to itself (an inline synchronous start, and a start whose
/// subscriptions are all EVENTBRIDGE), so its queue leaves that work marked unsent instead of
/// sending a backstop message ([`SqsDeliveryQueue::unsent_while_leased`]); the sweep recovers
/// it after a crash ([`recovery_queue`]). With a `sync_wait` under [`INLINE_WAIT_FLOOR`] a
/// synchronous start does not deliver inline but waits for the consumer by reading its
/// invocations, so they must be written before their work is sent: the queue then records
/// every accept first ([`SqsDeliveryQueue::recording_first`]) rather than leaving a
/// FIRE_AND_FORGET invocation unwritten until its outcome.
pub fn intake_queue(backend: &AwsBackend, sync_wait: Duration) -> SqsDeliveryQueue {
    let queue = SqsDeliveryQueue::clone(&backend.queue).unsent_while_leased();
    if sync_wait < INLINE_WAIT_FLOOR {
        queue.recording_first()
    } else {
        queue
    }
}

/// The queue the deadline sweep sends lost work to again (`recover_unsent`): the work queue,
/// and the ordered queue for work with an ordering key, over the invocation table. No
/// `GetQueueUrl` when the environment gives the queues' URLs, as the template does; no key and
/// no subscriptions table, which the sweep's role cannot read.
pub async fn recovery_queue(
    clients: &Clients,
    env: &FunctionEnv,
) -> Result<SqsDeliveryQueue, BootError> {
    let settings = &env.aws;
    let logged = |e: &triggerline::Error| tracing::error!(error = %e, "cannot find the work queue");
    let work = resolve_queue_url(clients.sqs(), &settings.work_queue)
        .await
        .inspect_err(logged)?;
    // Recovered work with an ordering key goes back to its key's queue.
    let ordered = resolve_queue_url(clients.sqs(), &settings.ordered_queue)
        .await
        .inspect_err(logged)?;
    let invocations = Arc::new(triggerline_aws::invocation_store(clients, settings));
    Ok(
        SqsDeliveryQueue::new(clients.sqs().clone(), work, invocations)
            .with_ordered_queue(ordered, settings.order_recheck),
    )
}

/// The callback's context: the invocation table and Triggerline's bus. No subscriptions, queue,
/// HTTP client or key: the binary carries no subscription decoding, SQS code or HTTP client,
/// and its role no access to the queue or the key (a presented secret is checked against the
/// stored hash).
pub fn completion(clients: &Clients, env: &FunctionEnv) -> Completion {
    Completion {
        catalog: Catalog::builtin(),
        invocations: Arc::new(triggerline_aws::invocation_store(clients, &env.aws)),
        clock: Arc::new(SystemClock),
        notifier: env.notifier(Arc::new(EventBridgePublisher::new(
            clients.clone(),
            &env.aws,
        ))),
    }
}

/// The deadline sweep's context: as [`completion`], without the catalog.
pub fn sweep(clients: &Clients, env: &FunctionEnv) -> Sweep {
    Sweep {
        invocations: Arc::new(triggerline_aws::invocation_store(clients, &env.aws)),
        clock: Arc::new(SystemClock),
        notifier: env.notifier(Arc::new(EventBridgePublisher::new(
            clients.clone(),
            &env.aws,
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<FunctionEnv, EnvError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        FunctionEnv::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_need_nothing_set() {
        let env = read(&[]).unwrap();
        assert_eq!(env.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(
            env.max_receive_count,
            triggerline_aws::sqs::MAX_RECEIVE_COUNT
        );
        assert_eq!(env.sync_wait, Duration::from_secs(25));
        assert!(!env.allow_private_targets);
        assert!(env.secret_key.is_none() && env.public_url.is_none());
        assert!(env.secret_key_arn.is_none());
        assert!(!env.completion_events, "completion events are opted into");
        // The local stack's retention, written as a TTL: nothing on AWS purges otherwise.
        assert_eq!(
            env.aws,
            AwsSettings {
                retention: Some(InvocationTtl {
                    succeeded: chrono::Duration::hours(24),
                    failed: chrono::Duration::hours(48),
                }),
                ..AwsSettings::default()
            }
        );
    }

    #[test]
    fn values_are_read_and_checked() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let env = read(&[
            (env::SECRET_KEY, &key),
            (env::PUBLIC_URL, "https://api.example.com"),
            (env::MAX_ATTEMPTS, "3"),
            (env::MAX_RECEIVE_COUNT, "7"),
            (env::SYNC_WAIT, "PT5S"),
            (env::ALLOW_PRIVATE_TARGETS, "TRUE"),
            (env::COMPLETION_EVENTS, "true"),
            (env::RETENTION_SUCCEEDED, "PT1H"),
            (env::RETENTION_FAILED, "P7D"),
            (triggerline_aws::settings::env::WORK_QUEUE, "https://sqs/q"),
        ])
        .unwrap();
        assert_eq!(
            env.aws.retention,
            Some(InvocationTtl {
                succeeded: chrono::Duration::hours(1),
                failed: chrono::Duration::days(7),
            })
        );
        assert!(env.secret_key.is_some());
        assert_eq!(env.max_attempts, 3);
        assert_eq!(env.max_receive_count, 7);
        assert_eq!(env.sync_wait, Duration::from_secs(5));
        assert!(env.allow_private_targets);
        assert!(env.completion_events);
        assert_eq!(env.aws.work_queue, "https://sqs/q");
        assert_eq!(env.policy().public_url, "https://api.example.com");
        assert_eq!(
            env.subscription_cache,
            Duration::from_secs(5),
            "the default"
        );
        for (text, age) in [("PT1S", 1), ("PT60S", 60), ("PT5M", 300)] {
            let env = read(&[(env::SUBSCRIPTION_CACHE, text)]).unwrap();
            assert_eq!(env.subscription_cache, Duration::from_secs(age), "{text}");
        }

        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        for bad in [
            (env::SECRET_KEY, short.as_str()),
            (env::SECRET_KEY, "not base64!"),
            (env::MAX_ATTEMPTS, "many"),
            (env::MAX_ATTEMPTS, "0"),
            (env::MAX_ATTEMPTS, "51"),
            (env::MAX_RECEIVE_COUNT, "-1"),
            (env::MAX_RECEIVE_COUNT, "0"),
            (env::MAX_RECEIVE_COUNT, "1001"),
            (env::PUBLIC_URL, "api.example.com"),
            (env::PUBLIC_URL, "https://api.example.com/?stage=prod"),
            (env::SYNC_WAIT, "25s"),
            (env::SYNC_WAIT, "PT29S"),
            (env::SYNC_WAIT, "PT1H"),
            (env::SYNC_WAIT, "P99999999D"),
            (env::ALLOW_PRIVATE_TARGETS, "yes"),
            (env::COMPLETION_EVENTS, "sometimes"),
            (env::RETENTION_SUCCEEDED, "24h"),
            (env::RETENTION_FAILED, "PT30S"),
            (env::SUBSCRIPTION_CACHE, "5s"),
            (env::SUBSCRIPTION_CACHE, "PT0S"),
            (env::SUBSCRIPTION_CACHE, "PT5M0.001S"),
            (env::SUBSCRIPTION_CACHE, "P1D"),
            (env::SUBSCRIPTION_CACHE, "P99999999D"),
        ] {
            match read(&[bad]) {
                Err(e @ EnvError::Invalid { name, .. }) => {
                    assert_eq!(name, bad.0);
                    let said = e.to_string();
                    assert_eq!(said.matches(name).count(), 1, "named once: {said}");
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    /// The template's `SyncWait` allows exactly the waits the functions take: a stack cannot be
    /// deployed with one they refuse at start, and a value set by hand in the console is held to
    /// the same bound.
    #[test]
    fn the_template_bounds_sync_wait_as_the_functions_do() {
        let allowed = template_pattern("SyncWait");
        for wait in [
            "PT1S",
            "PT25S",
            "PT28S",
            "PT28.999S",
            "PT29S",
            "PT30S",
            "PT60S",
            "PT1M",
        ] {
            assert_eq!(
                allowed.is_match(wait),
                read(&[(env::SYNC_WAIT, wait)]).is_ok(),
                "{wait}: the template and the functions disagree"
            );
        }
        assert!(allowed.is_match(DEFAULT_SYNC_WAIT));
    }

    /// The template's `property` of `parameter`, as written.
    fn template_property(parameter: &str, property: &str) -> &'static str {
        let template = include_str!("../../../template.yaml");
        template
            .split(&format!("\n  {parameter}:\n"))
            .nth(1)
            .and_then(|rest| {
                rest.lines()
                    .find_map(|l| l.trim().strip_prefix(&format!("{property}: ")))
            })
            .unwrap_or_else(|| panic!("{parameter} has no {property}"))
    }

    /// The template's `AllowedPattern` of `parameter`, as a regex (less the YAML string's
    /// quotes and its escaped backslashes).
    fn template_pattern(parameter: &str) -> regex_lite::Regex {
        let pattern = template_property(parameter, "AllowedPattern");
        regex_lite::Regex::new(&pattern.trim_matches('"').replace("\\\\", "\\")).unwrap()
    }

    /// A value the template lets through must start the functions: else a deploy succeeds and
    /// every function fails at its start.
    #[test]
    fn the_template_bounds_order_recheck_and_the_public_url_as_the_functions_do() {
        let allowed = template_pattern("OrderRecheck");
        for recheck in [
            "PT1S", "PT30S", "PT9999S", "PT10000S", "PT39999S", "PT42999S", "PT43000S", "PT43199S",
            "PT43200S", "PT43201S", "PT50000S", "PT1M", "PT99M", "PT699M", "PT719M", "PT720M",
            "PT721M", "PT999M", "PT1H", "PT12H", "PT13H", "PT0S", "PT0.5S",
        ] {
            assert_eq!(
                allowed.is_match(recheck),
                read(&[(triggerline_aws::settings::env::ORDER_RECHECK, recheck)]).is_ok(),
                "{recheck}: the template and the functions disagree"
            );
        }
        let most: usize = template_property("PublicUrl", "MaxLength").parse().unwrap();
        let url = |length: usize| format!("https://{}", "a".repeat(length - "https://".len()));
        assert!(read(&[(env::PUBLIC_URL, &url(most))]).is_ok());
        assert!(read(&[(env::PUBLIC_URL, &url(most + 1))]).is_err());
    }

    #[test]
    fn the_event_source_is_one_eventbridge_takes_in_the_template_and_the_functions() {
        let allowed = template_pattern("EventSource");
        let most: usize = template_property("EventSource", "MaxLength")
            .parse()
            .unwrap();
        for (source, ok) in [
            ("triggerline", true),
            ("com.example.triggerline", true),
            ("aws.triggerline", false),
            ("AWS.events", false),
            (&"a".repeat(256), true),
            (&"a".repeat(257), false),
            ("aws", true),
            ("awsome", true),
            ("a", true),
            ("aws-events", true),
        ] {
            let name = triggerline_aws::settings::env::EVENT_SOURCE;
            assert_eq!(read(&[(name, source)]).is_ok(), ok, "{source}");
            // The template's MaxLength holds the length, its pattern the rest.
            assert_eq!(
                allowed.is_match(source) && source.len() <= most,
                ok,
                "{source}: the template disagrees"
            );
        }
    }

    #[test]
    fn retention_is_a_minute_to_ten_years() {
        for (text, ok) in [
            ("PT59S", false),
            ("PT1M", true),
            ("P3660D", true),
            ("P3661D", false),
        ] {
            assert_eq!(
                read(&[(env::RETENTION_SUCCEEDED, text)]).is_ok(),
                ok,
                "{text}"
            );
        }
    }

    #[test]
    fn the_key_comes_from_one_place() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf";
        let env = read(&[(env::SECRET_KEY_ARN, arn)]).unwrap();
        assert_eq!(env.secret_key_arn.as_deref(), Some(arn));
        assert!(env.secret_key.is_none(), "fetched at start, not read here");
        match read(&[(env::SECRET_KEY_ARN, arn), (env::SECRET_KEY, &key)]) {
            Err(EnvError::Invalid { name, .. }) => assert_eq!(name, env::SECRET_KEY_ARN),
            other => panic!("both set gave {other:?}"),
        }
    }
}
