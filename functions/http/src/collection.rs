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

/// Every list takes these and nothing else: another parameter is a 400 naming it, not
/// ignored (a misspelt `filter=` would otherwise list everything).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
        let duplicate = text
            .strip_prefix("duplicate field `")
            .and_then(|rest| rest.strip_suffix('`'));
        let unknown = text
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once("`, expected "));
        let message = match (duplicate, unknown) {
            (Some(name), _) => format!("{name}: is given more than once; give it once"),
            // Named when it reads as a name; an empty, long or unprintable one is not echoed.
            (None, Some((name, expected)))
                if (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                format!("{name}: is not a parameter here; expected {expected}")
            }
            (None, Some((_, expected))) => {
                format!("query: holds a parameter that is not one here; expected {expected}")
            }
            (None, None) => format!("query: {text}"),
        };
        ApiError::Http(StatusCode::BAD_REQUEST, message)
    })
}

/// The most a page's JSON may take, once written into a Lambda response: AWS Lambda answers a
/// synchronous invocation with at most 6 MiB, the body being a JSON string inside its envelope
/// (so each `"` and `\\` of it takes two bytes there); 64 KiB are left for the envelope and the
/// headers. The local server holds its pages to the same, so that both answer alike.
pub const MAX_PAGE_BYTES: usize = 6 * 1024 * 1024 - 64 * 1024;

/// 200 with the items, and `X-Total-Count` when the caller asked for `count=true`. A page that
/// would not fit an answer ([`MAX_PAGE_BYTES`]: 250 invocations of 128 KiB inputs are some 32
/// MiB) is a 400 naming `limit`, with the most items of this page that fit, rather than the
/// 5xx AWS would answer.
pub fn listed<T: Serialize>(items: Vec<T>, total: Option<usize>) -> Response {
    let body = match serde_json::to_vec(&items) {
        Ok(body) => body,
        // The wire types serialize to JSON without fail; answered as a 500 all the same.
        Err(e) => {
            return ApiError::Http(StatusCode::INTERNAL_SERVER_ERROR, format!("body: {e}"))
                .into_response();
        }
    };
    let size = answer_bytes(&body);
    if size > MAX_PAGE_BYTES {
        return too_large(&items, size).into_response();
    }
    let mut response = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(total) = total {
        response
            .headers_mut()
            .insert("X-Total-Count", HeaderValue::from(total));
    }
    response
}

/// What `json` takes as a JSON string: one more byte for each character escaped there.
fn answer_bytes(json: &[u8]) -> usize {
    json.len() + json.iter().filter(|&&b| b == b'"' || b == b'\\').count()
}

/// The refusal of a page of `items` that comes to `size` bytes.
fn too_large<T: Serialize>(items: &[T], size: usize) -> ApiError {
    let mut used: usize = 2; // the brackets
    let fit = items
        .iter()
        .take_while(|item| {
            let bytes = serde_json::to_vec(item).map_or(usize::MAX, |b| answer_bytes(&b));
            used = used.saturating_add(bytes).saturating_add(1);
            used <= MAX_PAGE_BYTES
        })
        .count()
        .max(1);
    ApiError::Domain(triggerline::Error::invalid(
        "limit",
        format!(
            "this page of {} items comes to {:.1} MB, more than the {:.1} MB an answer may \
             carry; ask for at most {fit} at a time (limit={fit})",
            items.len(),
            size as f64 / 1e6,
            MAX_PAGE_BYTES as f64 / 1e6
        ),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod page_tests {
    use super::*;

    #[tokio::test]
    async fn a_page_too_large_for_an_answer_is_a_400_naming_limit_with_what_fits() {
        // 50 items of 128 Ki quotes: each is written `\"` in JSON (256 KiB), and each of those
        // two bytes is escaped again in the Lambda envelope: 512 KiB an item there.
        let item = "\"".repeat(128 * 1024);
        let response = listed(vec![item.clone(); 50], Some(50));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        // 11 of those fit in 6 MiB less 64 KiB.
        assert!(text.contains("limit: this page of 50 items"), "{text}");
        assert!(
            text.contains("ask for at most 11 at a time (limit=11)"),
            "{text}"
        );

        let fits = listed(vec![item; 11], Some(50));
        assert_eq!(fits.status(), StatusCode::OK);
        assert_eq!(fits.headers()["X-Total-Count"], "50");
        assert_eq!(fits.headers()["content-type"], "application/json");
    }
}
