use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::duration::IsoDuration;
use crate::health::Health;
use crate::jsonpath::JsonPathFilter;
use crate::secrets::{Secret, redacted_url};

/// SailPoint's subscription types. Only `HTTP` and `EVENTBRIDGE` are served; the others exist so
/// that a client sending them gets a clear answer instead of a parse error.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubscriptionType {
    Http,
    Eventbridge,
    Inline,
    Script,
    Workflow,
}

impl SubscriptionType {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionType::Http => "HTTP",
            SubscriptionType::Eventbridge => "EVENTBRIDGE",
            SubscriptionType::Inline => "INLINE",
            SubscriptionType::Script => "SCRIPT",
            SubscriptionType::Workflow => "WORKFLOW",
        }
    }
}

/// How an HTTP subscriber answers a REQUEST_RESPONSE invocation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = HttpDispatchMode))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DispatchMode {
    Sync,
    Async,
    Dynamic,
}

/// A subscriber's service and how to reach it. Secrets are kept here (the dispatcher needs them)
/// and never leave through the API: [`crate::wire::Subscription`] nulls them. They are
/// [`Secret`]s, and the URL shows redacted in `Debug`, so that logging a subscription shows no
/// credential; the stores keep them sealed ([`crate::secrets::CredentialKey`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub trigger_id: String,
    pub trigger_name: String,
    pub target: Target,
    pub response_deadline: IsoDuration,
    pub enabled: bool,
    pub filter: Option<JsonPathFilter>,
    /// Standard Webhooks signing key (`whsec_…`), shown once at creation.
    pub signing_secret: Secret,
    /// The signing secret a rotation replaced, which still signs beside `signing_secret` until
    /// its grace period ends. Absent in records written before rotation existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_signing_secret: Option<PreviousSigningSecret>,
    #[serde(with = "crate::time::rfc3339")]
    pub created: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339")]
    pub modified: DateTime<Utc>,
    /// Bumped on every write; updates are conditional on it.
    pub version: u64,
    /// How long an acknowledged invocation may go without a heartbeat (shorter than
    /// `response_deadline`); `None`: no heartbeats required. Absent from bodies stored before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout: Option<IsoDuration>,
    /// Endpoint health (extension): the circuit breaker, and why Triggerline disabled the
    /// subscription. Absent from bodies stored before, and from healthy ones.
    #[serde(default, skip_serializing_if = "Health::is_default")]
    pub health: Health,
}

impl Subscription {
    pub fn subscription_type(&self) -> SubscriptionType {
        match self.target {
            Target::Http(_) => SubscriptionType::Http,
            Target::EventBridge(_) => SubscriptionType::Eventbridge,
        }
    }

    /// The secrets a delivery at `now` is signed with: the current one, then the previous one
    /// while its grace period lasts (`now` before `until`). Never more than two.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&Secret> {
        let mut secrets = vec![&self.signing_secret];
        if let Some(previous) = self
            .previous_signing_secret
            .as_ref()
            .filter(|p| now < p.until)
        {
            secrets.push(&previous.secret);
        }
        secrets
    }
}

/// A replaced signing secret and the end of its grace period (exclusive), during which
/// deliveries carry its signature too, so that receivers can switch secrets without a gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousSigningSecret {
    pub secret: Secret,
    #[serde(with = "crate::time::rfc3339")]
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Target {
    #[serde(rename = "HTTP")]
    Http(HttpTarget),
    #[serde(rename = "EVENTBRIDGE")]
    EventBridge(EventBridgeTarget),
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpTarget {
    /// May carry credentials in its userinfo (`https://user:password@host/…`), which the
    /// webhook client turns into a Basic `Authorization` header.
    pub url: String,
    pub mode: DispatchMode,
    pub auth: HttpAuth,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTarget")
            .field("url", &redacted_url(&self.url))
            .field("mode", &self.mode)
            .field("auth", &self.auth)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum HttpAuth {
    None,
    Basic { user_name: String, password: Secret },
    Bearer { token: Secret },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBridgeTarget {
    pub aws_account: String,
    pub aws_region: String,
}
