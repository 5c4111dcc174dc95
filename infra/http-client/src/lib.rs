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
#![forbid(unsafe_code)]

use aws_smithy_http_client::{Builder, Connector, tls};
use aws_smithy_runtime::client::dns::TokioDnsResolver;
use aws_smithy_runtime_api::client::dns::SharedDnsResolver;
use aws_smithy_runtime_api::client::http::{SharedHttpClient, SharedHttpConnector};

/// Resolves names with tokio (the system resolver), keeping every address.
pub fn tokio_resolver() -> SharedDnsResolver {
    SharedDnsResolver::new(TokioDnsResolver::new())
}

/// The SDK clients' HTTP client: a connector per set of SDK timeouts, over `resolver`.
pub fn sdk_http_client(resolver: SharedDnsResolver) -> SharedHttpClient {
    Builder::new()
        .tls_provider(rustls())
        .build_with_resolver(resolver)
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
