//! Helpers both stores share: attribute access, adapter-side failures and retry pauses.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::AsyncSleep;
use aws_sdk_dynamodb::types::AttributeValue;
use triggerline::Error;

use crate::error::AwsFailure;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// How often a write that lost a transaction conflict (or raced a concurrent change of the
/// very condition it checks) is tried again before giving up as unavailable.
pub(crate) const MAX_TRIES: u32 = 8;

/// A failure of this adapter itself (not of the SDK call), as [`Error::Unavailable`].
pub(crate) fn failure(operation: &'static str, detail: impl std::fmt::Display) -> Error {
    Error::unavailable(AwsFailure {
        operation,
        detail: detail.to_string(),
    })
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string attribute, if present and a string.
pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// A number attribute, if present and an integer.
pub(crate) fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn now_epoch_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Waits a little before retry `attempt` (growing, with jitter so that racers spread out),
/// on the SDK's own sleep so that this crate needs no runtime of its own.
pub(crate) async fn backoff(client: &Client, attempt: u32) {
    let Some(sleep) = client.config().sleep_impl() else {
        return;
    };
    let jitter = u64::from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            % 10,
    );
    let base = 5u64 << attempt.min(5);
    sleep.sleep(Duration::from_millis(base + jitter)).await;
}
