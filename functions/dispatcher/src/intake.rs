//! The intake routes: `POST /trigger-invocations/v1/start` and `/start-batch` (extensions),
//! `/test` and `/{id}/retry`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use triggerline::Error;
use triggerline::idempotency::{self, Keyed};
use triggerline::usecases::intake::{Intake, Started};
use triggerline::wire::{
    self, RunningInvocation, StartBatch, StartBatchResponse, StartInvocation, StartResponse,
    StartedInvocation, StillRunning, TestInvocation,
};
use triggerline_http::{ApiError, IdempotencyHeader, JsonBody, Traced};

/// `contentJson` is a JSON object or absent: SailPoint's SDK reads it back (the status list's
/// `startInvocationInput.contentJson`) as a map, so anything else stored would make every later
/// status list unreadable to it. (Found by schemathesis.)
fn content_is_an_object(content: Option<&serde_json::Value>) -> Result<(), ApiError> {
    match content {
        None | Some(serde_json::Value::Object(_)) => Ok(()),
        Some(_) => Err(Error::invalid("contentJson", "must be a JSON object").into()),
    }
}

/// SailPoint's status for "started but not finished within the wait".
const STILL_RUNNING: u16 = 542;

#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/trigger-invocations/v1/start",
    tag = "Invocations", operation_id = "startTriggerInvocation",
    summary = "Raise a real-time invocation (extension)",
    description = "The input is checked against the trigger's `inputSchema` first (400 naming the \
        first violation, nothing created). Not synchronous: queued durably, then 202 at once \
        (200 with no invocations when no enabled subscription matched). `isSynchronous`: held \
        until every invocation is complete (200) or the wait limit passes (542; it keeps running).",
    params(("traceparent" = Option<String>, Header, description = "W3C trace context: kept \
            with the invocations and sent with every delivery; without one (or an invalid one, \
            which is ignored) a new trace is started"),
        ("tracestate" = Option<String>, Header, description = "W3C trace state, passed on as \
            received (dropped when invalid, over 512 characters or 32 members)"),
        ("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 printable ASCII characters: within 24 h a repeat with the same \
            body answers the same and creates nothing (one that comes while the first is still \
            being accepted waits for it); another body is a 409")),
    request_body = StartInvocation,
    responses(
        (status = 200, description = "Nothing matched, or (synchronous) every invocation finished",
            body = StartResponse),
        (status = 202, description = "Queued", body = StartResponse),
        (status = 542, description = "Synchronous, and not finished within the wait limit",
            body = StillRunning))))]
pub async fn start(
    State(intake): State<Arc<Intake>>,
    IdempotencyHeader(key): IdempotencyHeader,
    Traced(trace): Traced,
    JsonBody(mut request): JsonBody<StartInvocation>,
) -> Result<Response, ApiError> {
    content_is_an_object(request.content_json.as_ref())?;
    request.trace = trace;
    let trigger_id = request.trigger_id.clone();
    let started = match key {
        Some((scope, key)) => {
            let keyed = Keyed::new(scope, key, "start", &request)?;
            Box::pin(intake.start_keyed(&keyed, request)).await?
        }
        // Boxed: the use case's future is large, and the layers above move theirs about.
        None => Box::pin(intake.start(request)).await?,
    };
    Ok(match started {
        Started::Queued(invocations) => {
            let status = if invocations.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            let body = StartResponse {
                invocations: invocations.iter().map(StartedInvocation::queued).collect(),
            };
            (status, Json(body)).into_response()
        }
        Started::Finished(invocations) => Json(StartResponse {
            invocations: invocations
                .iter()
                .map(StartedInvocation::finished)
                .collect(),
        })
        .into_response(),
        Started::StillRunning {
            submitted,
            invocations,
        } => {
            let body = StillRunning {
                message: "Invocation has been started but has not completed.".into(),
                date_submitted: submitted,
                trigger_id,
                invocations: invocations
                    .iter()
                    .map(|i| RunningInvocation {
                        id: i.id.clone(),
                        subscription_id: i.subscription_id.clone(),
                        status: i.state,
                        status_url: intake.delivery.status_url(&i.id),
                    })
                    .collect(),
            };
            let status = StatusCode::from_u16(STILL_RUNNING).unwrap_or(StatusCode::ACCEPTED);
            (status, Json(body)).into_response()
        }
    })
}

#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/trigger-invocations/v1/start-batch",
    tag = "Invocations", operation_id = "startTriggerInvocationBatch",
    summary = "Raise several real-time invocations in one request (extension)",
    description = "Up to 100 starts, each what `/start` takes and queued as `/start` queues it \
        (`isSynchronous` is refused). Every start is checked first: one bad start is a 400 \
        naming it (`starts[2].input`) and nothing is created. The answer lists each start's \
        invocations in the request's order: 202 when any were queued, 200 when none matched. \
        The 1 MiB body limit is for the whole batch; matched, its starts raise at most 1,000 \
        invocations (400 naming `starts`) carrying at most 6.25 MiB of input, each start's \
        counted once per matching subscription (413). No `Idempotency-Key` (400): a batch that \
        failed may be sent again, and its starts accepted before the failure are raised twice \
        (delivery is at least once).",
    params(("traceparent" = Option<String>, Header, description = "W3C trace context: kept \
            with every start's invocations and sent with every delivery"),
        ("tracestate" = Option<String>, Header, description = "W3C trace state, passed on as \
            received (dropped when invalid, over 512 characters or 32 members)")),
    request_body = StartBatch,
    responses(
        (status = 200, description = "No start matched a subscription", body = StartBatchResponse),
        (status = 202, description = "Queued", body = StartBatchResponse))))]
pub async fn start_batch(
    State(intake): State<Arc<Intake>>,
    IdempotencyHeader(key): IdempotencyHeader,
    Traced(trace): Traced,
    JsonBody(mut batch): JsonBody<StartBatch>,
) -> Result<Response, ApiError> {
    if key.is_some() {
        return Err(Error::invalid(
            idempotency::HEADER,
            "not taken by /start-batch; send starts that need one to /start",
        )
        .into());
    }
    for (i, start) in batch.starts.iter_mut().enumerate() {
        content_is_an_object(start.content_json.as_ref()).map_err(|_| {
            Error::invalid(format!("starts[{i}].contentJson"), "must be a JSON object")
        })?;
        start.trace.clone_from(&trace);
    }
    let started = Box::pin(intake.start_batch(batch)).await?;
    let status = if started.iter().all(Vec::is_empty) {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let body = StartBatchResponse {
        starts: started
            .iter()
            .map(|invocations| StartResponse {
                invocations: invocations.iter().map(StartedInvocation::queued).collect(),
            })
            .collect(),
    };
    Ok((status, Json(body)).into_response())
}

#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/trigger-invocations/v1/{id}/retry",
    tag = "Invocations", operation_id = "retryTriggerInvocation",
    summary = "Deliver a FAILED invocation again, as the same invocation (extension)",
    description = "A FAILED invocation only, back to PENDING with a fresh deadline of the same \
        length and a new round of attempts; its earlier attempts are kept. An invocation keeps \
        at most 50 attempts: a retry whose round could pass that is refused (400 naming `id`).",
    params(("id" = String, Path, description = "Invocation id (1 to 128 bytes)")),
    responses((status = 202, description = "Queued", body = StartResponse))))]
pub async fn retry(
    State(intake): State<Arc<Intake>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let invocation = intake.retry(&id).await?;
    let body = StartResponse {
        invocations: vec![StartedInvocation::queued(&invocation)],
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/trigger-invocations/v1/test",
    tag = "Invocations", operation_id = "startTestTriggerInvocation",
    summary = "Send a test invocation",
    description = "`input` defaults to the trigger's `exampleInput`; disabled subscriptions \
        receive tests too.",
    params(("traceparent" = Option<String>, Header, description = "W3C trace context: kept \
            with the invocations and sent with every delivery; without one (or an invalid one, \
            which is ignored) a new trace is started"),
        ("tracestate" = Option<String>, Header, description = "W3C trace state, passed on as \
            received (dropped when invalid, over 512 characters or 32 members)"),
        ("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 printable ASCII characters: within 24 h a repeat with the same \
            body answers the same and creates nothing (one that comes while the first is still \
            being accepted waits for it); another body is a 409")),
    request_body = TestInvocation,
    responses(
        (status = 200, description = "The invocations started", body = [wire::Invocation]),
        (status = 204, description = "No subscription matched"))))]
pub async fn test(
    State(intake): State<Arc<Intake>>,
    IdempotencyHeader(key): IdempotencyHeader,
    Traced(trace): Traced,
    JsonBody(mut request): JsonBody<TestInvocation>,
) -> Result<Response, ApiError> {
    content_is_an_object(request.content_json.as_ref())?;
    request.trace = trace;
    let started = match key {
        Some((scope, key)) => {
            let keyed = Keyed::new(scope, key, "test", &request)?;
            intake.test_keyed(&keyed, request).await?
        }
        None => intake.test(request).await?,
    };
    if started.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let body: Vec<wire::Invocation> = started
        .into_iter()
        .map(|(i, secret)| wire::Invocation {
            id: i.id,
            trigger_id: i.trigger_id,
            secret,
            content_json: i.content_json.into_value(),
        })
        .collect();
    Ok(Json(body).into_response())
}
