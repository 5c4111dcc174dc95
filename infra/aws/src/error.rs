//! How AWS failures reach the domain. Conditional failures are mapped where they happen (they
//! have an API meaning: conflict, not found, not open); everything else becomes
//! [`Error::Unavailable`], whose detail goes to the logs under a tracking id and never into a
//! response body.

use std::fmt;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use triggerline::Error;

/// An AWS call that failed for a reason the caller cannot fix.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {detail}")]
pub struct AwsFailure {
    pub operation: &'static str,
    pub detail: String,
}

/// Wraps any SDK error of `operation` as [`Error::Unavailable`].
pub fn unavailable<E, R>(operation: &'static str, error: SdkError<E, R>) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    Error::unavailable(AwsFailure {
        operation,
        detail: DisplayErrorContext(&error).to_string(),
    })
}

/// A stored item that does not read back as the model (a schema drift or a hand edit).
pub fn corrupt(operation: &'static str, detail: impl fmt::Display) -> Error {
    Error::unavailable(AwsFailure {
        operation,
        detail: format!("unreadable item: {detail}"),
    })
}
