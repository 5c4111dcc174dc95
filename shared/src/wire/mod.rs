//! The SailPoint Event Trigger API's JSON, field for field (see `design/api.md` and
//! `design/triggers.md`). Requests deserialize into these types; responses serialize from them.
//! Names are SailPoint's, including the `Dto` suffixes, so that a reader can hold them next to
//! the published spec.

pub mod strict;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::CatalogEntry;
use crate::model::{
    self, DispatchMode, HttpAuth, InvocationState, InvocationType, SubscriptionType, Target,
    TriggerType,
};
use crate::secrets::{Secret, redacted_url};

/// An item of `GET /triggers/v1`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger<'a> {
    /// Unique identifier of the trigger.
    pub id: &'a str,
    /// Trigger Name.
    pub name: &'a str,
    #[serde(rename = "type")]
    pub trigger_type: TriggerType,
    /// Trigger Description.
    pub description: &'a str,
    /// The JSON schema of the payload that will be sent by the trigger to the subscribed service.
    #[cfg_attr(feature = "openapi", schema(value_type = String, content_media_type = "application/schema+json"))]
    pub input_schema: &'a str,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub example_input: &'a Value,
    /// The JSON schema of the response that will be sent by the subscribed service to the trigger
    /// in response to an event. This only applies to a trigger type of `REQUEST_RESPONSE`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, content_media_type = "application/schema+json"))]
    pub output_schema: Option<&'a str>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub example_output: Option<&'a Value>,
}

impl<'a> From<&'a CatalogEntry> for Trigger<'a> {
    fn from(e: &'a CatalogEntry) -> Self {
        Trigger {
            id: &e.trigger.id,
            name: &e.trigger.name,
            trigger_type: e.trigger.trigger_type,
            description: &e.trigger.description,
            input_schema: &e.input_schema_text,
            example_input: &e.trigger.example_input,
            output_schema: e.output_schema_text.as_deref(),
            example_output: e.trigger.example_output.as_ref(),
        }
    }
}

/// `httpConfig`, as sent and as answered (with secrets nulled and the URL's credentials
/// redacted). `Debug` shows the URL redacted too.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpConfig {
    #[cfg_attr(
        feature = "openapi",
        schema(
            format = "uri",
            max_length = 2048,
            example = "https://hr.example.com/hooks/identity"
        )
    )]
    /// URL of the external/custom integration: at most 2,048 bytes (`limits::MAX_URL_BYTES`).
    pub url: String,
    pub http_dispatch_mode: DispatchMode,
    #[serde(default)]
    pub http_authentication_type: Option<HttpAuthenticationType>,
    #[serde(default)]
    pub basic_auth_config: Option<BasicAuthConfig>,
    #[serde(default)]
    pub bearer_token_auth_config: Option<BearerTokenAuthConfig>,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("url", &redacted_url(&self.url))
            .field("http_dispatch_mode", &self.http_dispatch_mode)
            .field("http_authentication_type", &self.http_authentication_type)
            .field("basic_auth_config", &self.basic_auth_config)
            .field("bearer_token_auth_config", &self.bearer_token_auth_config)
            .finish()
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HttpAuthenticationType {
    NoAuth,
    BasicAuth,
    BearerToken,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuthConfig {
    /// The username to authenticate: at most 8,192 bytes (`limits::MAX_CREDENTIAL_BYTES`).
    #[cfg_attr(feature = "openapi", schema(max_length = 8192))]
    #[serde(default)]
    pub user_name: Option<String>,
    /// The password to authenticate, at most 8,192 bytes. On response, this field is set to
    /// null as to not return secrets.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 8192))]
    #[serde(default)]
    pub password: Option<Secret>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BearerTokenAuthConfig {
    /// Bearer token, at most 8,192 bytes (`limits::MAX_CREDENTIAL_BYTES`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 8192))]
    #[serde(default)]
    pub bearer_token: Option<Secret>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBridgeConfig {
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[0-9]{12}$", example = "123456789012")
    )]
    /// AWS Account Number (12-digit number) that has the EventBridge Partner Event Source Resource.
    pub aws_account: String,
    /// AWS Region that has the EventBridge Partner Event Source Resource. See
    /// https://docs.aws.amazon.com/general/latest/gr/rande.html for a full list of available
    /// values.
    #[cfg_attr(feature = "openapi", schema(example = "us-east-1"))]
    pub aws_region: String,
}

/// Body of `POST /trigger-subscriptions/v1`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "name": "New identities to HR",
    "triggerId": "idn:identity-created",
    "type": "HTTP",
    "httpConfig": {"url": "https://hr.example.com/hooks/identity", "httpDispatchMode": "SYNC",
        "httpAuthenticationType": "BEARER_TOKEN",
        "bearerTokenAuthConfig": {"bearerToken": "receiver-secret"}},
    "filter": "$[?($.identity.type == \"IDENTITY\")]"
})))]
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionPostRequest {
    /// Subscription name.
    pub name: String,
    /// Subscription description: at most 2,000 characters (`limits::MAX_DESCRIPTION_CHARS`).
    #[cfg_attr(feature = "openapi", schema(max_length = 2000))]
    #[serde(default)]
    pub description: Option<String>,
    /// ID of trigger subscribed to.
    pub trigger_id: String,
    #[serde(rename = "type")]
    pub subscription_type: SubscriptionType,
    /// Deadline for completing REQUEST_RESPONSE trigger invocation, represented in ISO-8601
    /// duration format.
    #[cfg_attr(feature = "openapi", schema(format = Duration, example = "PT1H"))]
    #[serde(default)]
    pub response_deadline: Option<String>,
    /// Extension: how long an acknowledged (ASYNC, DYNAMIC answered asynchronously,
    /// EVENTBRIDGE) invocation may go without a heartbeat before it times out, as an ISO-8601
    /// duration of at least PT1S and shorter than `responseDeadline`; null: no heartbeats.
    #[cfg_attr(feature = "openapi", schema(format = Duration, example = "PT30S"))]
    #[serde(default)]
    pub heartbeat_timeout: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
    #[serde(default)]
    pub event_bridge_config: Option<EventBridgeConfig>,
    /// Whether subscription should receive real-time trigger invocations or not. Test trigger
    /// invocations are always enabled regardless of this option.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// JSONPath filter to conditionally invoke trigger when expression evaluates to true.
    #[serde(default)]
    pub filter: Option<String>,
}

/// Body of `PUT /trigger-subscriptions/v1/{id}`, and the document a JSON Patch is applied to.
/// Nothing is required (SailPoint's spec); `id` and `triggerId` are accepted only to refuse a
/// change to them. Unset fields serialize as null, so that a patch may `replace` or `remove` an
/// optional field whether or not it has a value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionPutRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<String>,
    /// Subscription name.
    #[serde(default)]
    pub name: Option<String>,
    /// Subscription description: at most 2,000 characters (`limits::MAX_DESCRIPTION_CHARS`).
    #[cfg_attr(feature = "openapi", schema(max_length = 2000))]
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "type", default)]
    pub subscription_type: Option<SubscriptionType>,
    /// Deadline for completing REQUEST_RESPONSE trigger invocation, represented in ISO-8601
    /// duration format.
    #[cfg_attr(feature = "openapi", schema(format = Duration, example = "PT1H"))]
    #[serde(default)]
    pub response_deadline: Option<String>,
    /// Extension: how long an acknowledged (ASYNC, DYNAMIC answered asynchronously,
    /// EVENTBRIDGE) invocation may go without a heartbeat before it times out, as an ISO-8601
    /// duration of at least PT1S and shorter than `responseDeadline`; null: no heartbeats.
    #[cfg_attr(feature = "openapi", schema(format = Duration, example = "PT30S"))]
    #[serde(default)]
    pub heartbeat_timeout: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
    #[serde(default)]
    pub event_bridge_config: Option<EventBridgeConfig>,
    /// Whether subscription should receive real-time trigger invocations or not. Test trigger
    /// invocations are always enabled regardless of this option.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// JSONPath filter to conditionally invoke trigger when expression evaluates to true.
    #[serde(default)]
    pub filter: Option<String>,
}

/// One operation of a `PATCH /trigger-subscriptions/v1/{id}` body (RFC 6902).
pub type SubscriptionPatchRequest = json_patch::Patch;

/// A JSON Patch operation (RFC 6902) as the OpenAPI document shows an item of
/// [`SubscriptionPatchRequest`], which `json_patch` parses. Patchable paths: `/name`,
/// `/description`, `/enabled`, `/type`, `/filter`, `/responseDeadline`, `/heartbeatTimeout`, `/httpConfig`,
/// `/eventBridgeConfig` (and below them). For `/enabled` the strings `"true"`/`"false"` and the
/// integers `1`/`0` count as booleans, since the SDK cannot send a JSON boolean here.
#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = SubscriptionPatchRequestInner)]
#[allow(dead_code)]
pub struct JsonPatchOperation {
    op: JsonPatchOp,
    /// A JSON Pointer to the field the operation acts on.
    path: String,
    /// The value to add or replace with (add, replace, test).
    #[schema(value_type = Option<Value>)]
    value: Option<Value>,
    /// A JSON Pointer to the value to move or copy (move, copy).
    from: Option<String>,
}

#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum JsonPatchOp {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

/// A subscription as every endpoint answers it. Secrets are always null, except
/// `signingSecret` in the answer to the create that made it (and to a `rotate-secret`, the new
/// one), and credentials in the URL's
/// userinfo are redacted (`https://user:*****@host/`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Subscription ID.
    pub id: String,
    /// Subscription name.
    pub name: String,
    /// Subscription description.
    pub description: Option<String>,
    /// ID of trigger subscribed to.
    pub trigger_id: String,
    /// Trigger name of trigger subscribed to.
    pub trigger_name: String,
    #[serde(rename = "type")]
    pub subscription_type: SubscriptionType,
    /// Deadline for completing REQUEST_RESPONSE trigger invocation, represented in ISO-8601
    /// duration format.
    #[cfg_attr(feature = "openapi", schema(format = Duration, example = "PT1H"))]
    pub response_deadline: String,
    /// Extension: how long an acknowledged invocation may go without a heartbeat
    /// (`POST /trigger-invocations/v1/{id}/heartbeat`); null: no heartbeats required.
    #[cfg_attr(feature = "openapi", schema(format = Duration, example = "PT30S"))]
    #[serde(default)]
    pub heartbeat_timeout: Option<String>,
    pub http_config: Option<HttpConfig>,
    pub event_bridge_config: Option<EventBridgeConfig>,
    /// Whether subscription should receive real-time trigger invocations or not. Test trigger
    /// invocations are always enabled regardless of this option.
    pub enabled: bool,
    /// JSONPath filter to conditionally invoke trigger when expression evaluates to true.
    pub filter: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^whsec_"))]
    /// Extension: the Standard Webhooks signing key, present only in the 201 of the create and
    /// the 200 of a `rotate-secret`.
    pub signing_secret: Option<Secret>,
    /// Extension: what the delivery record says about the receiver (endpoint health).
    #[serde(default)]
    pub health: SubscriptionHealth,
    /// Extension: why Triggerline disabled the subscription (a 410 Gone, or failing for the
    /// whole disabling period); null when it did not. Enabling it again clears it.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// Extension: when Triggerline disabled the subscription.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    #[serde(default)]
    pub disabled_at: Option<String>,
}

/// Extension: a subscription's endpoint health. After consecutive failed attempts (5 by
/// default) the circuit opens and deliveries wait, without spending attempts, for a cool-down
/// that doubles with each opening in a row (30 s to 10 min by default); then one probe
/// delivery goes, whose success closes the circuit.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionHealth {
    /// CLOSED: deliveries go. OPEN: they wait until `openUntil`. HALF_OPEN: one probe delivery
    /// is on its way (until `openUntil` at most), the others wait for its outcome.
    pub circuit: crate::health::Circuit,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The first failure since the last success.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub failing_since: Option<String>,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub open_until: Option<String>,
    /// The last transition (opened, closed, disabled, enabled again).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub changed: Option<String>,
}

impl SubscriptionHealth {
    pub fn from_model(h: &crate::health::Health) -> Self {
        let time =
            |t: &Option<chrono::DateTime<chrono::Utc>>| t.as_ref().map(crate::time::format_time);
        SubscriptionHealth {
            circuit: h.circuit,
            consecutive_failures: h.consecutive_failures,
            failing_since: time(&h.failing_since),
            open_until: time(&h.open_until),
            changed: time(&h.changed),
        }
    }
}

impl Subscription {
    /// The public view: secrets nulled.
    pub fn from_model(s: &model::Subscription) -> Self {
        let (http_config, event_bridge_config) = match &s.target {
            Target::Http(h) => (Some(HttpConfig::redacted(h)), None),
            Target::EventBridge(e) => (
                None,
                Some(EventBridgeConfig {
                    aws_account: e.aws_account.clone(),
                    aws_region: e.aws_region.clone(),
                }),
            ),
        };
        Subscription {
            id: s.id.clone(),
            name: s.name.clone(),
            description: s.description.clone(),
            trigger_id: s.trigger_id.clone(),
            trigger_name: s.trigger_name.clone(),
            subscription_type: s.subscription_type(),
            response_deadline: s.response_deadline.as_str().to_owned(),
            heartbeat_timeout: s.heartbeat_timeout.as_ref().map(|t| t.as_str().to_owned()),
            http_config,
            event_bridge_config,
            enabled: s.enabled,
            filter: s.filter.as_ref().map(|f| f.as_str().to_owned()),
            signing_secret: None,
            health: SubscriptionHealth::from_model(&s.health),
            disabled_reason: s.health.disabled.as_ref().map(|d| d.reason.clone()),
            disabled_at: s
                .health
                .disabled
                .as_ref()
                .map(|d| crate::time::format_time(&d.at)),
        }
    }

    /// The view a JSON Patch applies to: the fields a PUT takes.
    pub fn patch_document(&self) -> SubscriptionPutRequest {
        SubscriptionPutRequest {
            id: None,
            trigger_id: None,
            name: Some(self.name.clone()),
            description: self.description.clone(),
            subscription_type: Some(self.subscription_type),
            response_deadline: Some(self.response_deadline.clone()),
            heartbeat_timeout: self.heartbeat_timeout.clone(),
            http_config: self.http_config.clone(),
            event_bridge_config: self.event_bridge_config.clone(),
            enabled: Some(self.enabled),
            filter: self.filter.clone(),
        }
    }
}

impl HttpConfig {
    fn redacted(h: &model::HttpTarget) -> Self {
        let (auth_type, basic, bearer) = match &h.auth {
            HttpAuth::None => (HttpAuthenticationType::NoAuth, None, None),
            HttpAuth::Basic { user_name, .. } => (
                HttpAuthenticationType::BasicAuth,
                Some(BasicAuthConfig {
                    user_name: Some(user_name.clone()),
                    password: None,
                }),
                None,
            ),
            HttpAuth::Bearer { .. } => (
                HttpAuthenticationType::BearerToken,
                None,
                Some(BearerTokenAuthConfig { bearer_token: None }),
            ),
        };
        HttpConfig {
            url: redacted_url(&h.url).into_owned(),
            http_dispatch_mode: h.mode,
            http_authentication_type: Some(auth_type),
            basic_auth_config: basic,
            bearer_token_auth_config: bearer,
        }
    }
}

/// Body of `POST /trigger-subscriptions/v1/validate-filter`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "input": {"identity": {"type": "IDENTITY"}}, "filter": "$.identity"
})))]
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateFilterInputDto {
    /// Mock input to evaluate filter expression against.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: serde_json::Map<String, Value>,
    /// JSONPath filter to conditionally invoke trigger when expression evaluates to true.
    pub filter: String,
}

/// Extension: body of `POST /trigger-subscriptions/v1/{id}/rotate-secret`. The body itself is
/// optional: none, or `{}`, rotates with the default grace period.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"gracePeriod": "PT24H"})))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateSigningSecretRequest {
    /// How long the previous signing secret keeps signing beside the new one (deliveries carry
    /// both signatures): an ISO-8601 duration from PT0S (dropped at once) to P30D. Default
    /// PT24H.
    #[cfg_attr(feature = "openapi", schema(format = Duration, example = "PT24H"))]
    pub grace_period: Option<String>,
}

/// Answer of `validate-filter`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateFilterOutputDto {
    /// When this field is true, the filter expression is valid against the input.
    pub is_valid: bool,
    /// When this field is true, the filter expression is using a valid JSON path.
    #[serde(rename = "isValidJSONPath")]
    pub is_valid_json_path: bool,
    /// When this field is true, the filter expression is using an existing path.
    pub is_path_exist: bool,
}

/// `startInvocationInput` of an invocation status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartInvocationInput {
    /// Trigger ID
    pub trigger_id: String,
    /// Trigger input payload. Its schema is defined in the trigger definition.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: model::LazyJson,
    /// JSON map of invocation metadata
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub content_json: model::LazyJson,
}

/// `completeInvocationInput` of an invocation status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompleteInvocationInput {
    pub localized_error: Option<LocalizedMessage>,
    /// Trigger output that completed the invocation. Its schema is defined in the trigger
    /// definition.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output: Option<Value>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalizedMessage {
    /// Message locale
    pub locale: String,
    /// Message text
    pub message: String,
}

impl LocalizedMessage {
    pub fn en_us(message: impl Into<String>) -> Self {
        LocalizedMessage {
            locale: "en-US".into(),
            message: message.into(),
        }
    }
}

/// An item of `GET /trigger-invocations/v1/status`, and (with `attempts`) the answer of
/// `GET /trigger-invocations/v1/{id}/status`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationStatus {
    /// Invocation ID
    pub id: String,
    /// Trigger ID
    pub trigger_id: String,
    /// Subscription ID
    pub subscription_id: String,
    /// Subscription name
    pub subscription_name: String,
    #[serde(rename = "type")]
    pub invocation_type: InvocationType,
    /// Invocation created timestamp. ISO-8601 in UTC.
    #[serde(with = "crate::time::rfc3339")]
    pub created: DateTime<Utc>,
    /// Invocation completed timestamp; empty fields imply invocation is in-flight or not completed.
    /// ISO-8601 in UTC.
    #[serde(with = "crate::time::rfc3339::option")]
    pub completed: Option<DateTime<Utc>>,
    pub start_invocation_input: StartInvocationInput,
    pub complete_invocation_input: Option<CompleteInvocationInput>,
    /// Extension: where the invocation is in its lifecycle.
    pub status: InvocationState,
    /// Extension: when an open REQUEST_RESPONSE invocation times out.
    #[serde(with = "crate::time::rfc3339::option")]
    pub deadline: Option<DateTime<Utc>>,
    /// Extension: `sync`, `async` or `dynamic` for HTTP REQUEST_RESPONSE invocations.
    pub response_mode: Option<DispatchMode>,
    /// Extension, detail only: every delivery attempt.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempts: Option<Vec<model::Attempt>>,
    /// Extension, detail only: the W3C `traceparent` the invocation was raised with (or the
    /// one Triggerline started for it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub traceparent: Option<String>,
    /// Extension, detail only: the W3C `tracestate` that came with it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tracestate: Option<String>,
    /// Extension: the heartbeat timeout copied from the subscription at creation; absent when
    /// the invocation needs no heartbeats.
    #[cfg_attr(feature = "openapi", schema(format = Duration, example = "PT30S"))]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub heartbeat_timeout: Option<String>,
    /// Extension: when the last heartbeat came; absent before the first.
    #[serde(
        with = "crate::time::rfc3339::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// Extension: when the open invocation times out unless a heartbeat (or the completion)
    /// comes first; absent until its first acknowledgement.
    #[serde(
        with = "crate::time::rfc3339::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub heartbeat_due: Option<DateTime<Utc>>,
}

impl InvocationStatus {
    /// The list view (no attempts).
    pub fn summary(i: &model::Invocation) -> Self {
        let complete_invocation_input = match (i.trigger_type, i.completed) {
            (TriggerType::RequestResponse, Some(_)) => Some(CompleteInvocationInput {
                localized_error: i.error.as_ref().map(LocalizedMessage::en_us),
                output: i.output.clone(),
            }),
            _ => None,
        };
        InvocationStatus {
            id: i.id.clone(),
            trigger_id: i.trigger_id.clone(),
            subscription_id: i.subscription_id.clone(),
            subscription_name: i.subscription_name.clone(),
            invocation_type: i.invocation_type,
            created: i.created,
            completed: i.completed,
            start_invocation_input: StartInvocationInput {
                trigger_id: i.trigger_id.clone(),
                // Shared, not copied: a page of statuses holds each input once.
                input: i.input.clone(),
                content_json: i.content_json.clone(),
            },
            complete_invocation_input,
            status: i.state,
            deadline: i.deadline,
            response_mode: i.response_mode,
            attempts: None,
            traceparent: None,
            tracestate: None,
            heartbeat_timeout: i.heartbeat.as_ref().map(|h| h.timeout.as_str().to_owned()),
            last_heartbeat: i.heartbeat.as_ref().and_then(|h| h.last),
            heartbeat_due: i.heartbeat.as_ref().and_then(|h| h.due),
        }
    }

    /// The detail view, with every attempt.
    pub fn detail(i: &model::Invocation) -> Self {
        InvocationStatus {
            attempts: Some(i.attempts.clone()),
            traceparent: i.trace.as_ref().map(|t| t.traceparent.clone()),
            tracestate: i.trace.as_ref().and_then(|t| t.tracestate.clone()),
            ..Self::summary(i)
        }
    }
}

/// Body of `POST /trigger-invocations/v1/start` (extension): how producers raise real-time
/// invocations.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "triggerId": "idn:identity-created",
    "input": {"identity": {"type": "IDENTITY", "id": "2c91808a", "name": "Ann"},
        "attributes": {}}
})))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartInvocation {
    pub trigger_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default)]
    pub content_json: Option<Value>,
    #[serde(default)]
    pub is_synchronous: Option<bool>,
    #[cfg_attr(feature = "openapi", schema(format = Duration, example = "PT10M"))]
    /// ISO-8601 duration to wait before delivering.
    #[serde(default)]
    pub delay: Option<String>,
    #[cfg_attr(feature = "openapi", schema(example = json!(1764777600000_i64)))]
    /// Epoch milliseconds before which nothing is delivered.
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// Extension: invocations of one subscription with the same key are delivered one at a
    /// time, in the order they were accepted: the next is sent only when the previous one is
    /// finished (completed, failed or timed out). 1 to 255 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 255, example = "order-4711")
    )]
    #[serde(default)]
    pub ordering_key: Option<String>,
    /// The W3C trace context of the request (its `traceparent` and `tracestate` headers, or a
    /// `Trigger Invocation Requested` event's detail fields); not part of the body.
    #[serde(skip)]
    pub trace: Option<crate::trace::TraceContext>,
}

/// Body of `POST /trigger-invocations/v1/start-batch` (extension): several starts in one
/// request, for producers that raise events faster than one request each can carry. Each start
/// is what `/start` takes, queued (not synchronous).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"starts": [
    {"triggerId": "idn:identity-created",
     "input": {"identity": {"type": "IDENTITY", "id": "2c91808a", "name": "Ann"}, "attributes": {}}},
    {"triggerId": "idn:identity-created",
     "input": {"identity": {"type": "IDENTITY", "id": "2c91808b", "name": "Bo"}, "attributes": {}}}
]})))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartBatch {
    /// 1 to [`crate::limits::MAX_BATCH_STARTS`] starts, raised in this order.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub starts: Vec<StartInvocation>,
}

/// Body of `POST /trigger-invocations/v1/test`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "triggerId": "idn:identity-created", "contentJson": {}
})))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestInvocation {
    /// Trigger ID
    pub trigger_id: String,
    /// Mock input to use for test invocation. This must adhere to the input schema defined in the
    /// trigger being invoked. If this property is omitted, then the default trigger sample payload
    /// will be sent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default)]
    pub input: Option<Value>,
    /// JSON map of invocation metadata.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default)]
    pub content_json: Option<Value>,
    /// Only send the test event to the subscription IDs listed. If omitted, the test event will be
    /// sent to all subscribers.
    #[serde(default)]
    pub subscription_ids: Option<Vec<String>>,
    /// The W3C trace context of the request (its `traceparent` and `tracestate` headers); not
    /// part of the body.
    #[serde(skip)]
    pub trace: Option<crate::trace::TraceContext>,
}

/// An item of the answer to `/test`: what a caller needs to complete a test invocation itself.
/// `Debug` leaves the callback secret out.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    /// Invocation ID
    pub id: String,
    /// Trigger ID
    pub trigger_id: String,
    /// Unique invocation secret.
    pub secret: String,
    /// JSON map of invocation metadata.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub content_json: Value,
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("id", &self.id)
            .field("trigger_id", &self.trigger_id)
            .field("secret", &"<redacted>")
            .field("content_json", &self.content_json)
            .finish()
    }
}

/// Body of `POST /trigger-invocations/v1/{id}/complete`. `output` is required by SailPoint's
/// spec even with `error`; it is accepted when missing, since nothing depends on it then.
/// `Debug` leaves the callback secret out.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompleteInvocation {
    /// Unique invocation secret that was generated when the invocation was created. Required to
    /// authenticate to the endpoint.
    pub secret: String,
    /// Trigger output to complete the invocation. Its schema is defined in the trigger definition.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default)]
    pub output: Option<Value>,
    /// The error message to indicate a failed invocation or error if any.
    #[serde(default)]
    pub error: Option<String>,
    /// The W3C trace context of the callback request (its `traceparent` header); not part of
    /// the body.
    #[serde(skip)]
    pub trace: Option<crate::trace::TraceContext>,
}

impl std::fmt::Debug for CompleteInvocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompleteInvocation")
            .field("secret", &"<redacted>")
            .field("output", &self.output)
            .field("error", &self.error)
            .field("trace", &self.trace)
            .finish()
    }
}

/// Body of `POST /trigger-invocations/v1/{id}/heartbeat` (extension): the subscriber of an
/// acknowledged invocation says it is still working. `Debug` leaves the secret out.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatRequest {
    /// The invocation's secret, as for the completion.
    pub secret: String,
}

impl std::fmt::Debug for HeartbeatRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatRequest")
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The 200 answer of a heartbeat: when the next one is due at the latest.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// Invocation ID
    pub id: String,
    /// The invocation times out unless the next heartbeat (or the completion) comes before
    /// this. Never after `deadline`.
    #[serde(with = "crate::time::rfc3339")]
    pub heartbeat_due: DateTime<Utc>,
    /// The response deadline, which heartbeats never move.
    #[serde(with = "crate::time::rfc3339::option")]
    pub deadline: Option<DateTime<Utc>>,
}

/// An invocation as `/start` answers it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartedInvocation {
    pub id: String,
    pub trigger_id: String,
    pub subscription_id: String,
    pub subscription_name: String,
    pub status: InvocationState,
    /// Left out of a queued answer; in a finished one always there, `null` when the subscriber
    /// gave none (as `error` is when it did), so that a client can read both keys of every
    /// finished invocation.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output: Option<Option<Value>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<LocalizedMessage>))]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<Option<LocalizedMessage>>,
}

impl StartedInvocation {
    pub fn queued(i: &model::Invocation) -> Self {
        StartedInvocation {
            id: i.id.clone(),
            trigger_id: i.trigger_id.clone(),
            subscription_id: i.subscription_id.clone(),
            subscription_name: i.subscription_name.clone(),
            status: i.state,
            output: None,
            error: None,
        }
    }

    pub fn finished(i: &model::Invocation) -> Self {
        StartedInvocation {
            output: Some(i.output.clone()),
            error: Some(i.error.as_ref().map(LocalizedMessage::en_us)),
            ..Self::queued(i)
        }
    }
}

/// The answer to `/start`: 202 (queued), 200 (synchronous, all finished).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartResponse {
    pub invocations: Vec<StartedInvocation>,
}

/// The answer to `/start-batch`: one [`StartResponse`] per start, in the request's order. 202
/// when anything was queued, 200 when no start matched a subscription.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartBatchResponse {
    pub starts: Vec<StartResponse>,
}

/// The 542 answer of a synchronous `/start` whose invocations outlived the wait limit.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StillRunning {
    pub message: String,
    #[serde(with = "crate::time::rfc3339")]
    pub date_submitted: DateTime<Utc>,
    pub trigger_id: String,
    pub invocations: Vec<RunningInvocation>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningInvocation {
    pub id: String,
    pub subscription_id: String,
    pub status: InvocationState,
    /// Extension: `GET` it with `?wait=PT20S` to hold until the invocation is finished.
    pub status_url: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::delivery::tests::invocation;
    use crate::model::LazyJson;

    /// A status shares its invocation's input and content instead of copying them: a page of
    /// 250 statuses with 8 KB inputs took half as long again with a copy of each (measured in
    /// docs/performance.md, 2026-12-06), and the text is what it was all the same.
    #[test]
    fn a_status_shares_the_invocations_input_and_writes_it_unchanged() {
        let invocation = invocation("idn:identity-created", None);
        let status = InvocationStatus::summary(&invocation);
        let start = &status.start_invocation_input;
        assert!(LazyJson::ptr_eq(&start.input, &invocation.input));
        assert!(LazyJson::ptr_eq(
            &start.content_json,
            &invocation.content_json
        ));

        let written = serde_json::to_value(&status).unwrap();
        assert_eq!(
            written["startInvocationInput"],
            json!({"triggerId": "idn:identity-created",
                   "input": *invocation.input,
                   "contentJson": {}})
        );
        let read: InvocationStatus = serde_json::from_value(written).unwrap();
        assert_eq!(*read.start_invocation_input.input, *invocation.input);
    }
}
