//! The SDK clients, built once per process from the standard AWS environment (`AWS_REGION`,
//! credentials, `AWS_ENDPOINT_URL` for an emulator) and shared by every adapter.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;

/// One client per service, cheap to clone (they share one connection pool each).
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    /// The configuration they were built from (region-specific clients are derived from it).
    pub config: SdkConfig,
}

impl Clients {
    /// Loads the standard AWS configuration chain. Throttling and transient errors are retried
    /// by the SDK's standard mode (3 attempts, exponential backoff with jitter); a call gives up
    /// after 5 s so that an outage becomes a prompt 503, not a hung request.
    pub async fn from_env() -> Clients {
        Clients::from_config(Clients::loader().load().await)
    }

    /// The configuration loader [`Clients::from_env`] uses, for callers that override parts of
    /// it (the tests point it at an emulator with fixed credentials).
    pub fn loader() -> aws_config::ConfigLoader {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_attempt_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_secs(5))
                    .build(),
            )
    }

    /// Clients over an already loaded configuration (tests add interceptors or endpoints).
    pub fn from_config(config: SdkConfig) -> Clients {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            eventbridge: aws_sdk_eventbridge::Client::new(&config),
            config,
        }
    }
}
