//! One handler per endpoint: parse, call one use case, map the result.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use triggerline::query::{SubscriptionQuery, TriggerQuery};
use triggerline::usecases::{subscriptions, triggers};
use triggerline::wire::{
    self, SubscriptionPatchRequest, SubscriptionPostRequest, SubscriptionPutRequest,
    ValidateFilterInputDto, ValidateFilterOutputDto,
};
use triggerline_http::{ApiError, Collection, JsonBody, listed};

use crate::AppState;

pub async fn list_triggers(
    State(state): State<AppState>,
    Collection(params): Collection,
) -> Result<Response, ApiError> {
    let query = TriggerQuery::parse(&params)?;
    let page = triggers::list(state.catalog, &query);
    let items: Vec<wire::Trigger> = page.items.into_iter().map(wire::Trigger::from).collect();
    Ok(listed(items, page.total))
}

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

pub async fn replace_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<SubscriptionPutRequest>,
) -> Result<Json<wire::Subscription>, ApiError> {
    let updated = state.subscriptions.replace(&id, request).await?;
    Ok(Json(wire::Subscription::from_model(&updated)))
}

pub async fn patch_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<SubscriptionPatchRequest>,
) -> Result<Json<wire::Subscription>, ApiError> {
    let updated = state.subscriptions.patch(&id, patch).await?;
    Ok(Json(wire::Subscription::from_model(&updated)))
}

pub async fn delete_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.subscriptions.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn validate_filter(
    JsonBody(request): JsonBody<ValidateFilterInputDto>,
) -> Result<Json<ValidateFilterOutputDto>, ApiError> {
    Ok(Json(subscriptions::validate_filter(&request)?))
}
