//! The domain's one error type. Variants carry data, not prose; `functions/http` maps each one to
//! a status code and an `ErrorResponseDto` in exactly one place.

use std::fmt;

/// Every way a use case can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is not acceptable; `field` names the offending field (a JSON path such as
    /// `httpConfig.url`, or a query parameter such as `filters`).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },

    /// The named resource does not exist.
    #[error("{kind} {id} was not found")]
    NotFound { kind: ResourceKind, id: String },

    /// The trigger already holds as many subscriptions as its type allows.
    #[error(
        "triggerId: trigger {trigger_id} already has {limit} subscription(s), the most a {trigger_type} trigger takes (existing: {existing})"
    )]
    SubscriptionLimit {
        trigger_id: String,
        trigger_type: crate::model::TriggerType,
        limit: usize,
        /// Id of an existing subscription, so the caller knows which one is in the way.
        existing: String,
    },

    /// A conditional write lost: the record changed between read and write.
    #[error("{kind} {id} was changed concurrently; retry the request")]
    Conflict { kind: ResourceKind, id: String },

    /// An `Idempotency-Key` came again with a different request (`in_progress: false`), or
    /// while the request that first used it still holds it after the wait for it
    /// (`in_progress: true`).
    #[error("Idempotency-Key: {}", reused(.key, *.in_progress))]
    IdempotencyKeyReused { key: String, in_progress: bool },

    /// A record with this id already exists (create-if-absent failed).
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: ResourceKind, id: String },

    /// The invocation is no longer open (complete-if-open failed).
    #[error("invocation {id} is already {status}")]
    NotOpen {
        id: String,
        status: crate::model::InvocationState,
    },

    /// The caller did not prove who it is (a callback with an unknown id or a wrong secret:
    /// the same answer for both, so it never tells whether an id exists).
    #[error("the invocation id or secret is wrong")]
    Unauthenticated,

    /// The invocation's response deadline has passed.
    #[error("invocation {id} is past its deadline ({deadline})")]
    DeadlinePassed { id: String, deadline: String },

    /// A value is larger than Triggerline stores or sends (`crate::limits`): `name` is the
    /// limit's constant, `limit` its bytes.
    #[error("{field}: {size} bytes is over the limit of {limit} bytes ({name})")]
    TooLarge {
        field: String,
        size: usize,
        limit: usize,
        name: &'static str,
    },

    /// A storage or transport failure the caller cannot fix; the detail goes to the logs only.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The error of a field inside `path` (a member of a batch: `starts[2]`): the fields of
    /// [`Error::Invalid`] and [`Error::TooLarge`] are named from the outer body. Other errors
    /// name no field and are returned as they are.
    pub fn within(self, path: &str) -> Self {
        match self {
            Error::Invalid { field, reason } => Error::Invalid {
                field: format!("{path}.{field}"),
                reason,
            },
            Error::TooLarge {
                field,
                size,
                limit,
                name,
            } => Error::TooLarge {
                field: format!("{path}.{field}"),
                size,
                limit,
                name,
            },
            other => other,
        }
    }

    /// Wraps an adapter's native failure.
    pub fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Unavailable(Box::new(source))
    }
}

/// What kind of record an error talks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Trigger,
    Subscription,
    Invocation,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceKind::Trigger => "trigger",
            ResourceKind::Subscription => "subscription",
            ResourceKind::Invocation => "invocation",
        })
    }
}

fn reused(key: &str, in_progress: bool) -> String {
    if in_progress {
        format!("`{key}` belongs to a request that is still in progress; repeat it later")
    } else {
        format!("`{key}` was already used with a different request in the last 24 hours")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
