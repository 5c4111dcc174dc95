//! Helpers both stores share: attribute access, adapter-side failures, the retry of a write
//! that lost a race, and what a cancelled transaction says.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::AsyncSleep;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use triggerline::Error;

use crate::error::{AwsFailure, unavailable};

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

/// What one try of a write that can lose a race came to.
pub(crate) enum Try<T> {
    /// Settled: written, or refused for good (refusals travel as `Err`).
    Done(T),
    /// Lost a race (a transaction conflict, or the condition's subject changed under it):
    /// worth another try after a pause.
    Again,
}

/// Runs `attempt` until it is [`Try::Done`], at most [`MAX_TRIES`] times with a growing
/// pause ([`backoff`]) between tries; after that, `give_up`'s error.
pub(crate) async fn retry_on_conflict<T, F>(
    client: &Client,
    mut attempt: impl FnMut() -> F,
    give_up: impl FnOnce() -> Error,
) -> Result<T, Error>
where
    F: Future<Output = Result<Try<T>, Error>>,
{
    for tries in 0..MAX_TRIES {
        if tries > 0 {
            backoff(client, tries - 1).await;
        }
        if let Try::Done(done) = attempt().await? {
            return Ok(done);
        }
    }
    Err(give_up())
}

/// The answer of a conditional write whose failed condition leaves nothing to do (another
/// writer got there first): `Ok(())` then, as on success; any other failure is
/// [`Error::Unavailable`].
pub(crate) fn ok_if_condition_failed<O, E, R>(
    operation: &'static str,
    result: Result<O, SdkError<E, R>>,
) -> Result<(), Error>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(err)
            if err.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(())
        }
        Err(err) => Err(unavailable(operation, err)),
    }
}

/// What a `TransactWriteItems` came to, when it did not fail outright.
pub(crate) enum Transacted {
    Written,
    Cancelled(Cancellation),
}

/// Why DynamoDB cancelled a transaction: one reason code per item, in the request's order.
#[derive(Debug)]
pub(crate) struct Cancellation {
    codes: Vec<Option<String>>,
}

impl Cancellation {
    /// The emulator named no reasons (DynamoDB always does): the caller reads what the
    /// conditions looked at instead.
    pub(crate) fn unexplained(&self) -> bool {
        self.codes.is_empty()
    }

    /// Another transaction or write held one of the items: worth another try.
    pub(crate) fn conflict(&self) -> bool {
        self.codes
            .iter()
            .any(|code| code.as_deref() == Some("TransactionConflict"))
    }

    /// Whether the condition of item `index` failed.
    pub(crate) fn condition_failed(&self, index: usize) -> bool {
        self.codes.get(index).and_then(Option::as_deref) == Some("ConditionalCheckFailed")
    }

    /// The first item whose condition failed.
    pub(crate) fn first_condition_failed(&self) -> Option<usize> {
        (0..self.codes.len()).find(|&index| self.condition_failed(index))
    }
}

/// Sends a `TransactWriteItems` of `operation`; any failure other than a cancellation is
/// [`Error::Unavailable`].
pub(crate) async fn transact(
    request: TransactWriteItemsFluentBuilder,
    operation: &'static str,
) -> Result<Transacted, Error> {
    let err = match request.send().await {
        Ok(_) => return Ok(Transacted::Written),
        Err(err) => err,
    };
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            Ok(Transacted::Cancelled(Cancellation {
                codes: cancelled
                    .cancellation_reasons()
                    .iter()
                    .map(|reason| reason.code().map(str::to_owned))
                    .collect(),
            }))
        }
        _ => Err(unavailable(operation, err)),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn client() -> Client {
        Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build(),
        )
    }

    fn gave_up() -> Error {
        failure("test", "gave up")
    }

    #[tokio::test]
    async fn a_write_is_tried_until_done_and_at_most_max_tries() {
        let client = client();
        let tries = Cell::new(0);
        let done = retry_on_conflict(
            &client,
            || {
                tries.set(tries.get() + 1);
                let outcome = if tries.get() < 3 {
                    Try::Again
                } else {
                    Try::Done(tries.get())
                };
                async move { Ok(outcome) }
            },
            gave_up,
        )
        .await;
        assert!(matches!(done, Ok(3)), "{done:?}");

        tries.set(0);
        let contended = retry_on_conflict(
            &client,
            || {
                tries.set(tries.get() + 1);
                async { Ok(Try::<()>::Again) }
            },
            gave_up,
        )
        .await;
        assert!(
            matches!(contended, Err(Error::Unavailable(_))),
            "{contended:?}"
        );
        assert_eq!(tries.get(), MAX_TRIES);

        tries.set(0);
        let refused = retry_on_conflict(
            &client,
            || {
                tries.set(tries.get() + 1);
                async {
                    Err::<Try<()>, _>(Error::Conflict {
                        kind: triggerline::error::ResourceKind::Invocation,
                        id: "i".to_owned(),
                    })
                }
            },
            gave_up,
        )
        .await;
        assert!(
            matches!(refused, Err(Error::Conflict { .. })),
            "{refused:?}"
        );
        assert_eq!(tries.get(), 1, "a refusal is final");
    }

    fn cancellation(codes: &[Option<&str>]) -> Cancellation {
        Cancellation {
            codes: codes.iter().map(|c| c.map(str::to_owned)).collect(),
        }
    }

    #[test]
    fn a_cancellation_reads_its_reasons_by_position() {
        let cancelled = cancellation(&[Some("None"), Some("ConditionalCheckFailed"), None]);
        assert!(!cancelled.unexplained());
        assert!(!cancelled.conflict());
        assert!(!cancelled.condition_failed(0));
        assert!(cancelled.condition_failed(1));
        assert!(!cancelled.condition_failed(7));
        assert_eq!(cancelled.first_condition_failed(), Some(1));

        let conflict = cancellation(&[Some("TransactionConflict"), Some("None")]);
        assert!(conflict.conflict());
        assert_eq!(conflict.first_condition_failed(), None);

        assert!(cancellation(&[]).unexplained());
    }
}
