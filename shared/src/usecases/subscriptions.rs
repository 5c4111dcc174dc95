//! Subscription use cases: create, list, replace (PUT), patch (JSON Patch), delete, signing
//! secret rotation, and the stateless filter check.

use std::sync::Arc;

use serde_json::Value;

use super::validate;
use crate::catalog::Catalog;
use crate::duration::IsoDuration;
use crate::error::ResourceKind;
use crate::jsonpath::{JsonPathFilter, check_filter};
use crate::limits;
use crate::model::{PreviousSigningSecret, Subscription};
use crate::ports::SubscriptionAdmin;
use crate::query::{Page, SubscriptionQuery};
use crate::time::{Clock, IdGenerator};
use crate::wire::{
    self, RotateSigningSecretRequest, SubscriptionPatchRequest, SubscriptionPostRequest,
    SubscriptionPutRequest, ValidateFilterInputDto, ValidateFilterOutputDto,
};
use crate::{Error, Result};

/// The deadline SailPoint (and its SDK) applies when none is given.
pub const DEFAULT_RESPONSE_DEADLINE: &str = "PT1H";

/// How long a rotated-out signing secret keeps signing when the request names no `gracePeriod`.
pub const DEFAULT_GRACE_PERIOD: &str = "PT24H";

/// The longest `gracePeriod` of a rotation, in days: long enough for a slow receiver's release
/// cycle, short enough that a secret rotated out because it leaked stops signing soon.
pub const MAX_GRACE_PERIOD_DAYS: u64 = 30;

/// The longest `gracePeriod` text looked at: every valid duration up to the maximum is far
/// shorter, and the error message quotes it.
const MAX_GRACE_PERIOD_CHARS: usize = 32;

/// How many times a PUT or PATCH is made again when a delivery wrote the subscription's health
/// between its read and its write.
const CONFLICT_TRIES: u32 = 3;

/// Top-level fields a JSON Patch may touch (SailPoint's list, less `workflowConfig`, which has no
/// model anywhere).
pub const PATCHABLE: &[&str] = &[
    "name",
    "description",
    "enabled",
    "type",
    "filter",
    "responseDeadline",
    "heartbeatTimeout",
    "httpConfig",
    "eventBridgeConfig",
];

/// The subscription use cases over their dependencies.
#[derive(Debug, Clone)]
pub struct Subscriptions {
    store: Arc<dyn SubscriptionAdmin>,
    catalog: &'static Catalog,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl Subscriptions {
    pub fn new(
        store: Arc<dyn SubscriptionAdmin>,
        catalog: &'static Catalog,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Subscriptions {
            store,
            catalog,
            clock,
            ids,
        }
    }

    /// Validates and stores a new subscription. The result holds the signing secret, which the
    /// caller shows once.
    pub async fn create(&self, request: SubscriptionPostRequest) -> Result<Subscription> {
        let entry = self.catalog.require("triggerId", &request.trigger_id)?;
        let name = validate::name("name", request.name)?;
        let target = validate::target(
            request.subscription_type,
            request.http_config,
            request.event_bridge_config,
            None,
        )?;
        let response_deadline = deadline(request.response_deadline.as_deref())?;
        let heartbeat_timeout =
            heartbeat_timeout(request.heartbeat_timeout.as_deref(), &response_deadline)?;
        let filter = filter(request.filter.as_deref())?;
        let now = self.clock.now();
        let subscription = Subscription {
            id: self.ids.id(),
            name,
            description: validate::description("description", request.description, None)?,
            trigger_id: entry.trigger.id.clone(),
            trigger_name: entry.trigger.name.clone(),
            target,
            response_deadline,
            enabled: request.enabled.unwrap_or(true),
            filter,
            signing_secret: format!("whsec_{}", self.ids.secret(32)).into(),
            previous_signing_secret: None,
            created: now,
            modified: now,
            version: 1,
            heartbeat_timeout,
            health: Default::default(),
        };
        self.store
            .create(
                &subscription,
                entry.trigger.trigger_type.max_subscriptions(),
            )
            .await?;
        Ok(subscription)
    }

    pub async fn list(&self, query: &SubscriptionQuery) -> Result<Page<Subscription>> {
        self.store.list(query).await
    }

    /// PUT: replaces the subscription's fields. `name` and `type` left out keep their stored
    /// values (a subscription cannot exist without them); every other field left out takes its
    /// default (`responseDeadline` PT1H, `enabled` true, the rest none), as a replacement should.
    pub async fn replace(&self, id: &str, request: SubscriptionPutRequest) -> Result<Subscription> {
        let mut tries = 0;
        loop {
            let current = self.get(id).await?;
            match self.apply(current, request.clone()).await {
                // Deliveries write a subscription's health between a read and this write; a
                // replacement applies as well to the newer record, so it is made again.
                Err(Error::Conflict { .. }) if tries < CONFLICT_TRIES => tries += 1,
                result => return result,
            }
        }
    }

    /// PATCH: applies RFC 6902 operations to the subscription's PUT view, then validates the
    /// result exactly as a PUT.
    pub async fn patch(&self, id: &str, patch: SubscriptionPatchRequest) -> Result<Subscription> {
        if patch.0.len() > limits::MAX_PATCH_OPERATIONS {
            return Err(Error::invalid(
                "body",
                format!(
                    "a patch holds at most {} operations (MAX_PATCH_OPERATIONS); this one has {}",
                    limits::MAX_PATCH_OPERATIONS,
                    patch.0.len()
                ),
            ));
        }
        for (i, op) in patch.0.iter().enumerate() {
            check_patch_path(i, op)?;
        }
        let mut tries = 0;
        loop {
            let current = self.get(id).await?;
            let request = patched(&current, &patch)?;
            match self.apply(current, request).await {
                // As in `replace`: the patch is applied again to the newer record.
                Err(Error::Conflict { .. }) if tries < CONFLICT_TRIES => tries += 1,
                result => return result,
            }
        }
    }
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.store.delete(id).await
    }

    /// Gives the subscription a new signing secret. The current one becomes the previous
    /// secret, which signs beside the new one until `gracePeriod` (default PT24H; PT0S drops
    /// it at once) has passed; a secret rotated out earlier is dropped, so deliveries carry at
    /// most two signatures. The result holds the new secret, which the caller shows once.
    pub async fn rotate_signing_secret(
        &self,
        id: &str,
        request: RotateSigningSecretRequest,
    ) -> Result<Subscription> {
        let grace = grace_period(request.grace_period.as_deref())?;
        let current = self.get(id).await?;
        let now = self.clock.now();
        let previous = (grace > chrono::Duration::zero()).then(|| PreviousSigningSecret {
            secret: current.signing_secret.clone(),
            until: now + grace,
        });
        let rotated = Subscription {
            signing_secret: format!("whsec_{}", self.ids.secret(32)).into(),
            previous_signing_secret: previous,
            modified: now,
            // One per write since creation: u64 is never reached.
            version: current.version + 1,
            ..current.clone()
        };
        self.store.replace(&rotated, current.version).await?;
        Ok(rotated)
    }

    async fn get(&self, id: &str) -> Result<Subscription> {
        self.store.get(id).await?.ok_or_else(|| Error::NotFound {
            kind: ResourceKind::Subscription,
            id: id.to_owned(),
        })
    }

    async fn apply(
        &self,
        current: Subscription,
        request: SubscriptionPutRequest,
    ) -> Result<Subscription> {
        if let Some(id) = request.id.as_deref().filter(|id| *id != current.id) {
            return Err(Error::invalid(
                "id",
                format!("cannot change (`{id}` ≠ `{}`)", current.id),
            ));
        }
        if let Some(t) = request
            .trigger_id
            .as_deref()
            .filter(|t| *t != current.trigger_id)
        {
            return Err(Error::invalid(
                "triggerId",
                format!("cannot change (`{t}` ≠ `{}`)", current.trigger_id),
            ));
        }
        let kind = request
            .subscription_type
            .unwrap_or_else(|| current.subscription_type());
        let name = match request.name {
            Some(name) => validate::name("name", name)?,
            None => current.name.clone(),
        };
        let target = validate::target(
            kind,
            request.http_config,
            request.event_bridge_config,
            Some(&current.target),
        )?;
        let response_deadline = deadline(request.response_deadline.as_deref())?;
        let heartbeat_timeout =
            heartbeat_timeout(request.heartbeat_timeout.as_deref(), &response_deadline)?;
        let now = self.clock.now();
        let mut updated = Subscription {
            name,
            description: validate::description(
                "description",
                request.description,
                current.description.as_deref(),
            )?,
            target,
            response_deadline,
            heartbeat_timeout,
            enabled: request.enabled.unwrap_or(true),
            filter: filter(request.filter.as_deref())?,
            // A rotated-out secret whose grace period is over is not kept at rest any longer.
            previous_signing_secret: current
                .previous_signing_secret
                .clone()
                .filter(|p| now < p.until),
            modified: now,
            // One per write since creation: u64 is never reached.
            version: current.version + 1,
            ..current.clone()
        };
        crate::health::on_enabled(&mut updated, current.enabled, now);
        self.store.replace(&updated, current.version).await?;
        Ok(updated)
    }
}

/// The PUT request a JSON Patch makes of `current`'s PUT view.
fn patched(
    current: &Subscription,
    patch: &SubscriptionPatchRequest,
) -> Result<SubscriptionPutRequest> {
    let mut document =
        serde_json::to_value(wire::Subscription::from_model(current).patch_document())
            .map_err(|e| Error::invalid("body", e.to_string()))?;
    // `patch_unsafe`: on a failure the document is dropped, so nothing needs undoing, and
    // json-patch's undo panics on some patches it applied (a `move` into a parent followed
    // by a failing op: "unable to undo applied patches"), which a request must never do.
    // One operation at a time, so that a document grown past what a PUT may send is refused
    // before the next operation can double it again.
    for (i, op) in patch.0.iter().enumerate() {
        json_patch::patch_unsafe(&mut document, std::slice::from_ref(op)).map_err(|e| {
            Error::invalid(
                format!("[{i}].path"),
                format!("`{}`: {}", op.path(), e.kind),
            )
        })?;
        let grows = matches!(
            op,
            json_patch::PatchOperation::Add(_)
                | json_patch::PatchOperation::Replace(_)
                | json_patch::PatchOperation::Copy(_)
        );
        if grows && limits::json_bytes_within(&document, limits::MAX_PATCHED_BYTES).is_none() {
            return Err(Error::invalid(
                format!("[{i}]"),
                format!(
                    "the patched subscription would be over {} bytes (MAX_PATCHED_BYTES), more \
                     than a PUT may send",
                    limits::MAX_PATCHED_BYTES
                ),
            ));
        }
    }
    // A PUT without `name` or `type` keeps the stored one (SailPoint's PUT requires no field),
    // but a patch's result is the whole subscription, where both are required: removing one
    // (or setting it to null, or moving it away) must not answer 200 with the field unchanged.
    for required in ["name", "type"] {
        if document.get(required).is_none_or(Value::is_null) {
            return Err(Error::invalid(
                required,
                "is required in a subscription; a patch may replace it but not remove it",
            ));
        }
    }
    coerce_boolean(&mut document, "enabled")?;
    let request: SubscriptionPutRequest =
        serde_path_to_error::deserialize(crate::wire::strict::Strict(document))
            .map_err(|e| Error::invalid(e.path().to_string(), e.inner().to_string()))?;
    Ok(request)
}

/// `validate-filter`: a bad expression is an answer (`isValidJSONPath: false`), not an error; a
/// filter over a limit is the 400 naming `filter` that saving it would get.
pub fn validate_filter(request: &ValidateFilterInputDto) -> Result<ValidateFilterOutputDto> {
    let check = check_filter(&request.filter, &Value::Object(request.input.clone()))?;
    Ok(ValidateFilterOutputDto {
        is_valid: check.is_valid(),
        is_valid_json_path: check.is_valid_json_path,
        is_path_exist: check.is_path_exist,
    })
}

/// The shortest `responseDeadline` taken, as for [`MIN_HEARTBEAT_TIMEOUT_MILLIS`]: an
/// invocation with a shorter one times out before a subscriber could call back, so every start
/// of the trigger would fail.
pub const MIN_RESPONSE_DEADLINE_MILLIS: u64 = 1000;

fn deadline(text: Option<&str>) -> Result<IsoDuration> {
    let text = text.unwrap_or(DEFAULT_RESPONSE_DEADLINE);
    let deadline = IsoDuration::parse_bounded("responseDeadline", text)?;
    if deadline.as_millis() < MIN_RESPONSE_DEADLINE_MILLIS {
        return Err(Error::invalid(
            "responseDeadline",
            format!("`{text}` is shorter than the least allowed, PT1S"),
        ));
    }
    Ok(deadline)
}

/// `gracePeriod`: an ISO-8601 duration from PT0S to [`MAX_GRACE_PERIOD_DAYS`] days.
fn grace_period(text: Option<&str>) -> Result<chrono::Duration> {
    const FIELD: &str = "gracePeriod";
    let text = text.unwrap_or(DEFAULT_GRACE_PERIOD);
    if text.len() > MAX_GRACE_PERIOD_CHARS {
        return Err(Error::invalid(
            FIELD,
            format!(
                "is longer than {MAX_GRACE_PERIOD_CHARS} characters; give an ISO-8601 duration \
                 from PT0S to P{MAX_GRACE_PERIOD_DAYS}D"
            ),
        ));
    }
    let millis = IsoDuration::parse_millis_or_zero(FIELD, text)?;
    if millis > MAX_GRACE_PERIOD_DAYS * 86_400_000 {
        return Err(Error::invalid(
            FIELD,
            format!("`{text}` is longer than the most allowed, P{MAX_GRACE_PERIOD_DAYS}D"),
        ));
    }
    // At most 30 days in milliseconds: far inside i64.
    Ok(chrono::Duration::milliseconds(millis as i64))
}

/// The shortest `heartbeatTimeout` taken: the sweep runs every minute on AWS, so shorter
/// timeouts would only be honoured to the sweep's resolution anyway; one second keeps tests and
/// local runs quick.
pub const MIN_HEARTBEAT_TIMEOUT_MILLIS: u64 = 1000;

/// `heartbeatTimeout`: a bounded ISO-8601 duration of at least a second, shorter than the
/// response deadline (a heartbeat timer that never fires before the deadline is a mistake).
fn heartbeat_timeout(
    text: Option<&str>,
    response_deadline: &IsoDuration,
) -> Result<Option<IsoDuration>> {
    let Some(text) = text else {
        return Ok(None);
    };
    let timeout = IsoDuration::parse_bounded("heartbeatTimeout", text)?;
    if timeout.as_millis() < MIN_HEARTBEAT_TIMEOUT_MILLIS {
        return Err(Error::invalid(
            "heartbeatTimeout",
            format!("`{text}` is shorter than the least allowed, PT1S"),
        ));
    }
    if timeout.as_millis() >= response_deadline.as_millis() {
        return Err(Error::invalid(
            "heartbeatTimeout",
            format!("`{text}` must be shorter than responseDeadline ({response_deadline})"),
        ));
    }
    Ok(Some(timeout))
}

fn filter(text: Option<&str>) -> Result<Option<JsonPathFilter>> {
    text.map(|f| JsonPathFilter::parse("filter", f)).transpose()
}

fn check_patch_path(index: usize, op: &json_patch::PatchOperation) -> Result<()> {
    use json_patch::PatchOperation as Op;
    let mut paths = vec![op.path().to_string()];
    match op {
        Op::Move(m) => paths.push(m.from.to_string()),
        Op::Copy(c) => paths.push(c.from.to_string()),
        _ => {}
    }
    for path in paths {
        let top = path.trim_start_matches('/').split('/').next().unwrap_or("");
        if !PATCHABLE.contains(&top) {
            return Err(Error::invalid(
                format!("[{index}].path"),
                format!(
                    "`{path}` cannot be patched; patchable: {}",
                    PATCHABLE.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The Python SDK cannot send a JSON boolean in a patch value, so for boolean fields the strings
/// "true"/"false" and the integers 1/0 are taken as booleans.
fn coerce_boolean(document: &mut Value, field: &str) -> Result<()> {
    let Some(value) = document.get_mut(field) else {
        return Ok(());
    };
    let coerced = match &*value {
        Value::Bool(_) | Value::Null => return Ok(()),
        Value::String(s) if s == "true" => true,
        Value::String(s) if s == "false" => false,
        Value::Number(n) if n.as_u64() == Some(1) => true,
        Value::Number(n) if n.as_u64() == Some(0) => false,
        other => {
            return Err(Error::invalid(
                field,
                format!("`{other}` is not a boolean (true, false, \"true\", \"false\", 1 or 0)"),
            ));
        }
    };
    *value = Value::Bool(coerced);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sdk_style_boolean_strings_and_ints_are_coerced() {
        for (given, expected) in [(json!("false"), false), (json!(1), true), (json!(0), false)] {
            let mut doc = json!({"enabled": given});
            coerce_boolean(&mut doc, "enabled").unwrap();
            assert_eq!(doc["enabled"], json!(expected));
        }
        let mut doc = json!({"enabled": "x"});
        assert!(
            coerce_boolean(&mut doc, "enabled")
                .unwrap_err()
                .to_string()
                .starts_with("enabled:")
        );
    }

    #[test]
    fn patch_paths_outside_the_patchable_fields_are_refused() {
        let patch: SubscriptionPatchRequest = serde_json::from_value(json!([
            {"op": "replace", "path": "/httpConfig/url", "value": "https://x"},
            {"op": "replace", "path": "/triggerId", "value": "idn:other"}
        ]))
        .unwrap();
        assert!(check_patch_path(0, &patch.0[0]).is_ok());
        let err = check_patch_path(1, &patch.0[1]).unwrap_err().to_string();
        assert!(
            err.starts_with("[1].path: `/triggerId` cannot be patched"),
            "{err}"
        );
    }

    #[test]
    fn heartbeat_timeouts_are_bounded_and_shorter_than_the_deadline() {
        let hour = IsoDuration::parse("responseDeadline", "PT1H").unwrap();
        assert_eq!(heartbeat_timeout(None, &hour).unwrap(), None);
        assert_eq!(
            heartbeat_timeout(Some("PT30S"), &hour)
                .unwrap()
                .map(|t| t.as_millis()),
            Some(30_000)
        );
        for bad in ["PT1H", "PT2H", "PT0.5S", "30", "P99999D", "PT0S"] {
            let err = heartbeat_timeout(Some(bad), &hour).unwrap_err().to_string();
            assert!(err.starts_with("heartbeatTimeout:"), "{bad}: {err}");
        }
    }
}
