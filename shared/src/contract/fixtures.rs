//! Test values the suites share: real catalog triggers, realistic subscriptions and
//! invocations at fixed times, and list queries parsed as the API parses them.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use crate::catalog::Catalog;
use crate::duration::IsoDuration;
use crate::jsonpath::JsonPathFilter;
use crate::model::{
    Attempt, AttemptOutcome, DispatchMode, EventBridgeTarget, HttpAuth, HttpTarget, Invocation,
    InvocationState, InvocationType, LazyJson, Subscription, Target, TriggerType,
};
use crate::query::{ListQuery, Page, QueryField, RawCollection};

/// FIRE_AND_FORGET, 50 subscriptions at most.
pub(super) const IDENTITY_CREATED: &str = "idn:identity-created";
/// REQUEST_RESPONSE, one subscription at most.
pub(super) const PRE_APPROVAL: &str = "idn:access-request-pre-approval";
/// REQUEST_RESPONSE, one subscription at most.
pub(super) const DYNAMIC_APPROVER: &str = "idn:access-request-dynamic-approver";
/// FIRE_AND_FORGET.
pub(super) const POST_APPROVAL: &str = "idn:access-request-post-approval";
/// FIRE_AND_FORGET.
pub(super) const IDENTITY_DELETED: &str = "idn:identity-deleted";

/// A fixed instant with millisecond precision (what the wire keeps), plus `minutes`.
pub(super) fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 9, 26, 53).unwrap()
        + Duration::milliseconds(271)
        + Duration::minutes(minutes)
}

pub(super) fn trigger(id: &str) -> &'static crate::model::Trigger {
    &Catalog::builtin()
        .get(id)
        .unwrap_or_else(|| panic!("{id} is not in the built-in catalog"))
        .trigger
}

/// The catalog's limit for the trigger, as the create use case passes it.
pub(super) fn limit_of(trigger_id: &str) -> usize {
    trigger(trigger_id).trigger_type.max_subscriptions()
}

/// An enabled HTTP subscription with basic auth and a filter.
pub(super) fn http_subscription(id: &str, trigger_id: &str) -> Subscription {
    let request_response = trigger(trigger_id).trigger_type == TriggerType::RequestResponse;
    Subscription {
        heartbeat_timeout: None,
        health: Default::default(),
        id: id.to_owned(),
        name: format!("HR audit webhook ({id})"),
        description: Some("Forwards identity events to the HR audit service".to_owned()),
        trigger_id: trigger_id.to_owned(),
        trigger_name: trigger(trigger_id).name.clone(),
        target: Target::Http(HttpTarget {
            url: "https://hooks.example.com/sailpoint/events?tenant=acme".to_owned(),
            mode: if request_response {
                DispatchMode::Async
            } else {
                DispatchMode::Sync
            },
            auth: HttpAuth::Basic {
                user_name: "triggerline".to_owned(),
                password: "c0rrect-h0rse-battery".into(),
            },
        }),
        response_deadline: IsoDuration::parse("responseDeadline", "PT1H").unwrap(),
        enabled: true,
        filter: Some(
            JsonPathFilter::parse("filter", r#"$[?($.identity.type == "IDENTITY")]"#).unwrap(),
        ),
        signing_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwQ3pXb7yV4gE=".into(),
        previous_signing_secret: None,
        created: at(0),
        modified: at(0),
        version: 1,
    }
}

/// A disabled EventBridge subscription without filter or description.
pub(super) fn eventbridge_subscription(id: &str, trigger_id: &str) -> Subscription {
    Subscription {
        name: format!("Partner event bus ({id})"),
        description: None,
        target: Target::EventBridge(EventBridgeTarget {
            aws_account: "123456789012".to_owned(),
            aws_region: "eu-west-1".to_owned(),
        }),
        response_deadline: IsoDuration::parse("responseDeadline", "PT30M").unwrap(),
        enabled: false,
        filter: None,
        ..http_subscription(id, trigger_id)
    }
}

/// An invocation of `trigger_id` for a subscription, created `created` minutes after [`at`]`(0)`
/// and completed `completed` minutes after it (open while `None`).
pub(super) fn invocation(
    id: &str,
    trigger_id: &str,
    subscription: (&str, &str),
    created: i64,
    completed: Option<i64>,
) -> Invocation {
    let t = trigger(trigger_id);
    let request_response = t.trigger_type == TriggerType::RequestResponse;
    Invocation {
        heartbeat: None,
        id: id.to_owned(),
        trigger_id: trigger_id.to_owned(),
        trigger_type: t.trigger_type,
        subscription_id: subscription.0.to_owned(),
        subscription_name: subscription.1.to_owned(),
        invocation_type: InvocationType::RealTime,
        response_mode: request_response.then_some(DispatchMode::Sync),
        state: if completed.is_some() {
            InvocationState::Completed
        } else {
            InvocationState::Pending
        },
        created: at(created),
        completed: completed.map(at),
        deadline: request_response.then(|| at(created + 60)),
        input: LazyJson::from(t.example_input.clone()),
        content_json: LazyJson::from(json!({"workflowId": 1234, "tenant": "acme"})),
        output: completed.and(t.example_output.clone()),
        error: None,
        ordering_key: None,
        secret_hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            .to_owned(),
        attempts: vec![Attempt {
            started_at: at(created),
            target: "hooks.example.com".to_owned(),
            status_code: Some(200),
            duration_ms: 42,
            outcome: AttemptOutcome::Completed,
            error: None,
        }],
        // Kept by every store as written (the trace context travels in the invocation).
        trace: Some(crate::trace::TraceContext {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
            tracestate: Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".to_owned()),
        }),
    }
}

/// A list query from collection parameters as they would arrive in a query string, e.g.
/// `q(&[("filters", r#"id eq "x""#), ("sorters", "-created")])`.
pub(super) fn q<F: QueryField>(params: &[(&str, &str)]) -> ListQuery<F> {
    let mut raw = RawCollection::default();
    for (name, value) in params {
        let slot = match *name {
            "limit" => &mut raw.limit,
            "offset" => &mut raw.offset,
            "count" => &mut raw.count,
            "filters" => &mut raw.filters,
            "sorters" => &mut raw.sorters,
            other => panic!("`{other}` is not a collection parameter"),
        };
        *slot = Some((*value).to_owned());
    }
    ListQuery::parse(&raw).unwrap_or_else(|e| panic!("query {params:?} does not parse: {e}"))
}

/// Collection parameters, and the ids a list must return for them, in order.
pub(super) type ListCase<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

pub(super) fn subscription_ids(page: &Page<Subscription>) -> Vec<&str> {
    page.items.iter().map(|s| s.id.as_str()).collect()
}

pub(super) fn invocation_ids(page: &Page<Invocation>) -> Vec<&str> {
    page.items.iter().map(|i| i.id.as_str()).collect()
}

pub(super) fn sorted_ids<S: std::borrow::Borrow<Subscription>>(subscriptions: &[S]) -> Vec<&str> {
    let mut ids: Vec<&str> = subscriptions
        .iter()
        .map(|s| s.borrow().id.as_str())
        .collect();
    ids.sort_unstable();
    ids
}

pub(super) fn approval() -> Value {
    json!({"approved": true, "comment": "Within policy", "approver": "AcmeCorpExternalIntegration"})
}

/// Minutes (from [`at`]) around which the sweep check's deadlines lie: long before every other
/// check's, so their invocations never count.
pub(super) const SWEEP: i64 = -10_000;
