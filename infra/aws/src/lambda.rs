//! What the Lambda functions share at start: their settings from the environment (read once, in
//! `main`) and the pieces of the delivery use case that differ on AWS from the local stack.

use std::time::Duration;

use async_trait::async_trait;
use triggerline::ports::{InvocationWatch, WatchSubscription};

/// Environment variables of the functions (besides [`crate::settings::env`]).
pub mod env {
    /// Base URL of the API (callback URLs are `{public_url}/trigger-invocations/v1/{id}/complete`).
    pub const PUBLIC_URL: &str = "TRIGGERLINE_PUBLIC_URL";
    /// Base64 of at least 32 random bytes: the key callback secrets are derived from.
    pub const SECRET_KEY: &str = "TRIGGERLINE_SECRET_KEY";
    /// Delivery attempts per invocation, the first included (default 8).
    pub const MAX_ATTEMPTS: &str = "TRIGGERLINE_MAX_ATTEMPTS";
    /// How long a synchronous `start` waits before answering 542 (ISO-8601, default PT25S).
    pub const SYNC_WAIT: &str = "TRIGGERLINE_SYNC_WAIT";
    /// Whether deliveries may go to private addresses (default false on AWS).
    pub const ALLOW_PRIVATE_TARGETS: &str = "TRIGGERLINE_ALLOW_PRIVATE_TARGETS";
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
