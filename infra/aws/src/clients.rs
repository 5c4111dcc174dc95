//! The SDK clients, built from one configuration per process and shared by every adapter.
//!
//! Two ways in: [`Clients::from_env`] runs `aws-config`'s standard chain (profiles, SSO, web
//! identity, IMDS: what a developer's machine or a container needs), and
//! [`Clients::from_lambda_env`] reads only the variables the Lambda runtime sets. The second
//! never calls the chain, so a function binary carries none of its providers (STS, IMDS,
//! profile parsing): a third of a megabyte of every bootstrap, and no lookups at cold start.
//!
//! A client is built on first use, so a function links only the services it calls: the status
//! query never touches SQS or EventBridge, and its binary has no code for them.

use std::sync::OnceLock;
use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::http::{HttpConnectorSettings, SharedHttpConnector};
use triggerline_http_client::AwsHttpClient;

/// The Lambda runtime's region variable, and the standard fallback.
const REGION_VARS: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];
/// The standard endpoint override (an emulator); unset on AWS.
const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL";

/// One client per service, each cheap to clone; all share the configuration's connection pool.
#[derive(Debug, Clone)]
pub struct Clients {
    config: SdkConfig,
    /// The configuration's HTTP client when this process built it ([`Clients::from_env`],
    /// [`Clients::from_lambda_env`]); else one of its own. The Secrets Manager call takes its
    /// connector from here, so a function parses the TLS roots once for it and the SDK clients.
    http: AwsHttpClient,
    pub(crate) dynamodb: OnceLock<aws_sdk_dynamodb::Client>,
    pub(crate) sqs: OnceLock<aws_sdk_sqs::Client>,
    pub(crate) eventbridge: OnceLock<aws_sdk_eventbridge::Client>,
}

/// The Lambda environment lacks a variable [`Clients::from_lambda_env`] needs.
#[derive(Debug, thiserror::Error)]
#[error("AWS_REGION is not set (the Lambda runtime sets it)")]
pub struct MissingRegion;

impl Clients {
    /// Loads the standard AWS configuration chain. Throttling and transient errors are retried
    /// by the SDK's standard mode (3 attempts, exponential backoff with jitter); a call gives up
    /// after 5 s so that an outage becomes a prompt 503, not a hung request.
    pub async fn from_env() -> Clients {
        let http = AwsHttpClient::default();
        let config = Clients::loader_over(&http).load().await;
        Clients::from_parts(config, http)
    }

    /// The configuration loader [`Clients::from_env`] uses, for callers that override parts of
    /// it (the tests point it at an emulator with fixed credentials).
    pub fn loader() -> aws_config::ConfigLoader {
        Clients::loader_over(&AwsHttpClient::default())
    }

    fn loader_over(http: &AwsHttpClient) -> aws_config::ConfigLoader {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(http.shared())
            .retry_config(retry_config())
            .timeout_config(timeout_config())
    }

    /// The configuration of a Lambda function, from what the runtime puts in its environment:
    /// `AWS_REGION`, and the role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`, which the runtime keeps valid for the execution environment's life.
    /// `AWS_ENDPOINT_URL` is honoured (running a function against an emulator). Same HTTP
    /// client, retries and timeouts as [`Clients::from_env`].
    pub fn from_lambda_env() -> Result<Clients, MissingRegion> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let region = REGION_VARS.into_iter().find_map(var).ok_or(MissingRegion)?;
        let http = AwsHttpClient::default();
        let mut config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(SharedCredentialsProvider::new(
                EnvironmentVariableCredentialsProvider::new(),
            ))
            .http_client(http.shared())
            .retry_config(retry_config())
            .timeout_config(timeout_config());
        if let Some(endpoint) = var(ENDPOINT_VAR) {
            config = config.endpoint_url(endpoint);
        }
        Ok(Clients::from_parts(config.build(), http))
    }

    /// Clients over an already loaded configuration (tests add interceptors or endpoints).
    pub fn from_config(config: SdkConfig) -> Clients {
        Clients::from_parts(config, AwsHttpClient::default())
    }

    fn from_parts(config: SdkConfig, http: AwsHttpClient) -> Clients {
        Clients {
            config,
            http,
            dynamodb: OnceLock::new(),
            sqs: OnceLock::new(),
            eventbridge: OnceLock::new(),
        }
    }

    /// The configuration the clients are built from (region-specific clients derive from it).
    pub fn config(&self) -> &SdkConfig {
        &self.config
    }

    /// The connector the SDK clients use for the configuration's timeouts, for calls made
    /// outside the SDK (Secrets Manager).
    pub(crate) fn connector(&self) -> SharedHttpConnector {
        let timeouts = self.config.timeout_config();
        let mut settings = HttpConnectorSettings::builder();
        settings
            .set_connect_timeout(timeouts.and_then(|t| t.connect_timeout()))
            .set_read_timeout(timeouts.and_then(|t| t.read_timeout()));
        self.http.connector(&settings.build())
    }

    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        self.dynamodb
            .get_or_init(|| aws_sdk_dynamodb::Client::new(&self.config))
    }

    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.sqs
            .get_or_init(|| aws_sdk_sqs::Client::new(&self.config))
    }

    pub fn eventbridge(&self) -> &aws_sdk_eventbridge::Client {
        self.eventbridge
            .get_or_init(|| aws_sdk_eventbridge::Client::new(&self.config))
    }
}

fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build()
}
