//! The outbound HTTP/TLS stack of a process: the AWS SDK's own hyper connector, on rustls with
//! ring, resolving names through a [`SharedDnsResolver`]. The SDK clients and the Secrets Manager
//! call (`triggerline-aws`) and the webhook client (`triggerline-webhook`) all build their
//! connectors here.
//!
//! Why a crate of its own: the connector's code is generic (over the resolver, and all of hyper
//! under it), and Rust instantiates generic code in the crate that calls it. A binary that talks
//! to AWS and posts webhooks (the dispatcher) shares one copy only when both adapters call into
//! one crate upstream of them both; built in each adapter crate, the copies were 38 kB more of the
//! dispatcher's bootstrap, which has a few kB of headroom.
//!
//! Every connector parses the native root certificates into a trust store of its own (the SDK
//! reads the files once per process and keeps only their contents; `TlsContext` shares no parsed
//! store), and the SDK's own HTTP client builds a throwaway connector for each SDK client. So a
//! process builds as few as it can: [`AwsHttpClient`] is one connector per set of timeouts for
//! every SDK client and the Secrets Manager call, and the webhook client has its own only because
//! its resolver differs.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_http_client::{Connector, tls};
use aws_smithy_runtime::client::dns::TokioDnsResolver;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::dns::SharedDnsResolver;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// Resolves names with tokio (the system resolver), keeping every address.
pub fn tokio_resolver() -> SharedDnsResolver {
    SharedDnsResolver::new(TokioDnsResolver::new())
}

/// The HTTP client of the SDK clients of one configuration, whose connectors the Secrets Manager
/// call borrows ([`AwsHttpClient::connector`]): one connector over [`tokio_resolver`] per set of
/// connector timeouts, built when first asked for.
///
/// The SDK's own `Builder::build_with_resolver` client keeps the same cache, but also builds a
/// throwaway connector each time an SDK client is created (to load the certificates early), and
/// nothing outside the SDK can reach its connectors. Clones share the connectors.
#[derive(Debug, Clone, Default)]
pub struct AwsHttpClient {
    connectors: Arc<Mutex<Vec<(ConnectorKey, SharedHttpConnector)>>>,
}

/// What a connector is built from, besides the resolver: the SDK's timeouts for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConnectorKey {
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
}

impl AwsHttpClient {
    /// The connector for `settings`, built on first use and shared afterwards.
    pub fn connector(&self, settings: &HttpConnectorSettings) -> SharedHttpConnector {
        let key = ConnectorKey {
            connect_timeout: settings.connect_timeout(),
            read_timeout: settings.read_timeout(),
        };
        // Poisoning cannot leave the list half-updated (one push), so a poisoned lock is usable.
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, connector)) = connectors.iter().find(|(k, _)| *k == key) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(
            Connector::builder()
                .connector_settings(settings.clone())
                .tls_provider(rustls())
                .build_with_resolver(tokio_resolver()),
        );
        connectors.push((key, connector.clone()));
        connector
    }

    /// For the SDK's configuration (`SdkConfig::http_client`).
    pub fn shared(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.clone())
    }
}

impl HttpClient for AwsHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector(settings)
    }

    // What the SDK's hyper client reports (the user agent's `http` metadata).
    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some("1.x".into())))
    }
}

/// One pooled connector (keep-alive, `TCP_NODELAY`, no proxy, no redirects) over `resolver`,
/// keeping at most `pool_max_idle_per_host` idle connections per host (`None`: hyper's default).
pub fn connector(
    resolver: SharedDnsResolver,
    pool_max_idle_per_host: Option<usize>,
) -> SharedHttpConnector {
    let mut builder = Connector::builder();
    builder.set_pool_max_idle_per_host(pool_max_idle_per_host);
    SharedHttpConnector::new(builder.tls_provider(rustls()).build_with_resolver(resolver))
}

/// rustls on ring: no aws-lc to build.
fn rustls() -> tls::Provider {
    tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)
}
