//! One handler per endpoint: parse, call one use case, map the result.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use triggerline::query::{SubscriptionQuery, TriggerQuery};
use triggerline::usecases::{subscriptions, triggers};
use triggerline::wire::{
    self, RotateSigningSecretRequest, SubscriptionPatchRequest, SubscriptionPostRequest,
    SubscriptionPutRequest, ValidateFilterInputDto, ValidateFilterOutputDto,
};
use triggerline_http::{ApiError, Collection, JsonBody, JsonBodyOrDefault, listed};

use crate::AppState;

#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/triggers/v1", tag = "Triggers",
    operation_id = "listTriggers", summary = "List the trigger catalog", params(TriggerQuery),
    responses((status = 200, description = "The triggers", body = [wire::Trigger<'static>],
        headers(("X-Total-Count" = u32, description = "Matching items, when `count=true`"))))))]
pub async fn list_triggers(
    State(state): State<AppState>,
    Collection(params): Collection,
) -> Result<Response, ApiError> {
    let query = TriggerQuery::parse(&params)?;
    let page = triggers::list(state.catalog, &query);
    let items: Vec<wire::Trigger> = page.items.into_iter().map(wire::Trigger::from).collect();
    Ok(listed(items, page.total))
}

#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/trigger-subscriptions/v1",
    tag = "Subscriptions", operation_id = "createSubscription", summary = "Create a subscription",
    request_body = SubscriptionPostRequest,
    responses((status = 201, description = "The subscription, with its `signingSecret` (this once)",
        body = wire::Subscription))))]
pub async fn create_subscription(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<SubscriptionPostRequest>,
) -> Result<Response, ApiError> {
    let created = state.subscriptions.create(request).await?;
    let body = wire::Subscription {
        signing_secret: Some(created.signing_secret.clone()),
        ..wire::Subscription::from_model(&created)
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/trigger-subscriptions/v1",
    tag = "Subscriptions", operation_id = "listSubscriptions", summary = "List subscriptions",
    params(SubscriptionQuery),
    responses((status = 200, description = "The subscriptions", body = [wire::Subscription],
        headers(("X-Total-Count" = u32, description = "Matching items, when `count=true`"))))))]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    Collection(params): Collection,
) -> Result<Response, ApiError> {
    let query = SubscriptionQuery::parse(&params)?;
    let page = state.subscriptions.list(&query).await?;
    let items: Vec<_> = page
        .items
        .iter()
        .map(wire::Subscription::from_model)
        .collect();
    Ok(listed(items, page.total))
}

#[cfg_attr(feature = "openapi", utoipa::path(put, path = "/trigger-subscriptions/v1/{id}",
    tag = "Subscriptions", operation_id = "updateSubscription", summary = "Replace a subscription",
    description = "Replaces the subscription; `id` and `triggerId` cannot change. A secret sent \
        as null or left out keeps the stored one.",
    params(("id" = String, Path, description = "Subscription id")),
    request_body = SubscriptionPutRequest,
    responses((status = 200, description = "The subscription", body = wire::Subscription))))]
pub async fn replace_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<SubscriptionPutRequest>,
) -> Result<Json<wire::Subscription>, ApiError> {
    let updated = state.subscriptions.replace(&id, request).await?;
    Ok(Json(wire::Subscription::from_model(&updated)))
}

#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/trigger-subscriptions/v1/{id}",
    tag = "Subscriptions", operation_id = "patchSubscription",
    summary = "Change a subscription with a JSON Patch",
    params(("id" = String, Path, description = "Subscription id")),
    request_body(content(
        ([wire::JsonPatchOperation] = "application/json-patch+json"),
        ([wire::JsonPatchOperation] = "application/json"))),
    responses((status = 200, description = "The subscription", body = wire::Subscription))))]
pub async fn patch_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<SubscriptionPatchRequest>,
) -> Result<Json<wire::Subscription>, ApiError> {
    let updated = state.subscriptions.patch(&id, patch).await?;
    Ok(Json(wire::Subscription::from_model(&updated)))
}

#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/trigger-subscriptions/v1/{id}",
    tag = "Subscriptions", operation_id = "deleteSubscription", summary = "Delete a subscription",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 204, description = "Deleted"))))]
pub async fn delete_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.subscriptions.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg_attr(feature = "openapi", utoipa::path(post,
    path = "/trigger-subscriptions/v1/{id}/rotate-secret", tag = "Subscriptions",
    operation_id = "rotateSubscriptionSigningSecret",
    summary = "Give a subscription a new signing secret (extension)",
    description = "Answers the new `signingSecret` (this once). For `gracePeriod` (default PT24H, \
        up to P30D; PT0S: none) deliveries carry two signatures in `webhook-signature`, the new \
        secret's and the previous one's, so receivers can switch without a gap; then only the \
        new one. Rotating again in a grace period makes the current secret the previous one. \
        The body may be left out.",
    params(("id" = String, Path, description = "Subscription id")),
    request_body(content = Option<RotateSigningSecretRequest>, description = "Optional"),
    responses((status = 200, description = "The subscription, with its new `signingSecret` \
        (this once)", body = wire::Subscription))))]
pub async fn rotate_signing_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBodyOrDefault(request): JsonBodyOrDefault<RotateSigningSecretRequest>,
) -> Result<Json<wire::Subscription>, ApiError> {
    let rotated = state
        .subscriptions
        .rotate_signing_secret(&id, request)
        .await?;
    Ok(Json(wire::Subscription {
        signing_secret: Some(rotated.signing_secret.clone()),
        ..wire::Subscription::from_model(&rotated)
    }))
}

#[cfg_attr(feature = "openapi", utoipa::path(post,
    path = "/trigger-subscriptions/v1/validate-filter", tag = "Subscriptions",
    operation_id = "testSubscriptionFilter", summary = "Check a filter against an input",
    request_body = ValidateFilterInputDto,
    responses((status = 200, description = "Whether the filter parses and selects something",
        body = ValidateFilterOutputDto))))]
pub async fn validate_filter(
    JsonBody(request): JsonBody<ValidateFilterInputDto>,
) -> Result<Json<ValidateFilterOutputDto>, ApiError> {
    Ok(Json(subscriptions::validate_filter(&request)?))
}
