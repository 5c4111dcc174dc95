//! SailPoint collection parameters (`limit`, `offset`, `count`, `filters`, `sorters`) from the
//! query string, and the list response with `X-Total-Count`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use triggerline::query::RawCollection;

use crate::ApiError;

/// The raw collection parameters; the endpoint's use case parses them into a typed query.
#[derive(Debug, Clone, Default)]
pub struct Collection(pub RawCollection);

#[derive(Deserialize)]
struct Params {
    limit: Option<String>,
    offset: Option<String>,
    count: Option<String>,
    filters: Option<String>,
    sorters: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Collection {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let p: Params = query_params(parts)?;
        Ok(Collection(RawCollection {
            limit: p.limit,
            offset: p.offset,
            count: p.count,
            filters: p.filters,
            sorters: p.sorters,
        }))
    }
}

/// Query parameters as an [`ErrorResponseDto`](crate::ErrorResponseDto)-answering extractor
/// (axum's `Query` refuses in plain text). Unknown parameters are ignored.
#[derive(Debug, Clone, Default)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        query_params(parts).map(QueryParams)
    }
}

fn query_params<T: serde::de::DeserializeOwned>(parts: &Parts) -> Result<T, ApiError> {
    serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).map_err(|e| {
        let text = e.to_string();
        // serde words a repeated parameter as "duplicate field `limit`": the message then
        // starts with the parameter's name, as every other refusal of a field does.
        let message = match text
            .strip_prefix("duplicate field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            Some(name) => format!("{name}: is given more than once; give it once"),
            None => format!("query: {text}"),
        };
        ApiError::Http(StatusCode::BAD_REQUEST, message)
    })
}

/// 200 with the items, and `X-Total-Count` when the caller asked for `count=true`.
pub fn listed<T: Serialize>(items: Vec<T>, total: Option<usize>) -> Response {
    let mut response = axum::Json(items).into_response();
    if let Some(total) = total {
        response
            .headers_mut()
            .insert("X-Total-Count", HeaderValue::from(total));
    }
    response
}
