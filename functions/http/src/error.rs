//! The one place errors become HTTP responses.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use triggerline::Error;

/// SailPoint's error body, used for every 4xx and 5xx except 401 and 429 (whose shapes
/// SailPoint's spec fixes as `{"error"}` and `{"message"}`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponseDto {
    pub detail_code: String,
    pub tracking_id: String,
    pub messages: Vec<ErrorMessageDto>,
    pub causes: Vec<ErrorMessageDto>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessageDto {
    pub locale: Option<String>,
    pub locale_origin: Option<String>,
    pub text: String,
}

/// Everything a handler or extractor can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// A use case said no.
    Domain(Error),
    /// No token, or the wrong one.
    Unauthorized(&'static str),
    /// The body is over [`crate::MAX_BODY_BYTES`].
    PayloadTooLarge,
    /// Any other HTTP-level refusal (unknown route, wrong method, malformed path).
    Http(StatusCode, String),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Domain(e)
    }
}

fn tracking_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn detail_code(status: StatusCode) -> String {
    match status {
        StatusCode::BAD_REQUEST => "400.1 Bad Request Content".into(),
        StatusCode::NOT_FOUND => "404 Not found".into(),
        StatusCode::INTERNAL_SERVER_ERROR => "500.0 Internal Fault".into(),
        other => format!(
            "{} {}",
            other.as_u16(),
            other.canonical_reason().unwrap_or("Error")
        ),
    }
}

/// The most characters of an error message. Messages quote what they refuse (an id, a path, a
/// filter), and a request may carry up to 1 MiB of such text; an answer, and the log line beside
/// it, quote at most this much of it.
pub const MAX_MESSAGE_CHARS: usize = 1_000;

/// `text` cut to [`MAX_MESSAGE_CHARS`], saying how much was left out.
fn bounded(text: String) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => text,
        Some((end, _)) => {
            let left_out = text[end..].chars().count();
            format!("{}… ({left_out} more characters)", &text[..end])
        }
    }
}

/// Builds the `ErrorResponseDto` response for `status` with one message.
pub fn error_response(status: StatusCode, text: String) -> Response {
    let text = bounded(text);
    let tracking_id = tracking_id();
    if status.is_server_error() {
        tracing::error!(%tracking_id, status = status.as_u16(), "{text}");
    } else {
        tracing::debug!(%tracking_id, status = status.as_u16(), "{text}");
    }
    dto_response(status, tracking_id, text)
}

/// Marks a response whose error the mapping has logged, under its tracking id, so that a
/// request trace does not log the same failure again (the local server's `trace_layer`).
#[derive(Debug, Clone, Copy)]
pub struct Logged;

/// The `ErrorResponseDto` response itself, under a tracking id the caller has already logged.
fn dto_response(status: StatusCode, tracking_id: String, text: String) -> Response {
    let body = ErrorResponseDto {
        detail_code: detail_code(status),
        tracking_id,
        messages: vec![ErrorMessageDto {
            locale: Some("en-US".into()),
            locale_origin: Some("DEFAULT".into()),
            text,
        }],
        causes: vec![],
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.extensions_mut().insert(Logged);
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let domain = match self {
            ApiError::Unauthorized(why) => {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                    axum::Json(serde_json::json!({ "error": why })),
                )
                    .into_response();
            }
            ApiError::PayloadTooLarge => {
                return error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "body: the request body is larger than {} bytes",
                        crate::MAX_BODY_BYTES
                    ),
                );
            }
            ApiError::Http(status, text) => return error_response(status, text),
            ApiError::Domain(e) => e,
        };
        let status = match &domain {
            Error::Invalid { .. }
            | Error::SubscriptionLimit { .. }
            | Error::NotOpen { .. }
            | Error::DeadlinePassed { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthenticated => {
                return ApiError::Unauthorized("the invocation id or secret is wrong")
                    .into_response();
            }
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Conflict { .. }
            | Error::AlreadyExists { .. }
            | Error::IdempotencyKeyReused { .. } => StatusCode::CONFLICT,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if let Error::Unavailable(source) = &domain {
            // The cause goes to the logs only, under the tracking id of the generic answer.
            let tracking_id = tracking_id();
            tracing::error!(%tracking_id, error = %source, cause = ?source, "store unavailable");
            return dto_response(
                status,
                tracking_id,
                "The service is temporarily unavailable; retry later.".into(),
            );
        }
        error_response(status, domain.to_string())
    }
}

/// Middleware: an error response that is not JSON (axum's own rejections, a 405, a panic
/// caught upstream) is replaced by an `ErrorResponseDto`, so plain text never reaches a client.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let mut replaced = error_response(status, text);
    for (name, value) in parts.headers.iter() {
        if name == header::ALLOW || name == header::RETRY_AFTER {
            replaced.headers_mut().insert(name.clone(), value.clone());
        }
    }
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> (StatusCode, ErrorResponseDto) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn an_unavailable_store_answers_a_generic_message_and_keeps_its_cause_out() {
        let error = ApiError::Domain(Error::unavailable(std::io::Error::other("disk on fire")));
        let (status, dto) = body(error.into_response()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(dto.detail_code, "503 Service Unavailable");
        assert_eq!(dto.tracking_id.len(), 32);
        assert_eq!(dto.messages.len(), 1);
        assert_eq!(
            dto.messages[0].text,
            "The service is temporarily unavailable; retry later."
        );
        assert_eq!(dto.messages[0].locale.as_deref(), Some("en-US"));
        assert_eq!(dto.messages[0].locale_origin.as_deref(), Some("DEFAULT"));
        assert!(dto.causes.is_empty());
    }

    #[tokio::test]
    async fn a_message_quoting_a_huge_value_is_cut_and_says_so() {
        let id = "é".repeat(30_000);
        let error = ApiError::Domain(Error::invalid(
            "subscriptionIds",
            format!("`{id}` is not a subscription"),
        ));
        let (status, dto) = body(error.into_response()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let text = &dto.messages[0].text;
        assert!(text.starts_with("subscriptionIds: `éé"), "{text}");
        assert!(text.ends_with("… (29041 more characters)"), "{text}");
        assert_eq!(text.chars().count(), MAX_MESSAGE_CHARS + 25);
        // A message at the bound is left whole.
        let whole = "x".repeat(MAX_MESSAGE_CHARS);
        let error = ApiError::Http(StatusCode::NOT_FOUND, whole.clone());
        assert_eq!(body(error.into_response()).await.1.messages[0].text, whole);
    }

    #[tokio::test]
    async fn any_other_refusal_answers_its_own_text() {
        let error = ApiError::Http(StatusCode::NOT_FOUND, "no such route".into());
        let (status, dto) = body(error.into_response()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(dto.detail_code, "404 Not found");
        assert_eq!(dto.messages[0].text, "no such route");
        assert_eq!(dto.messages[0].locale.as_deref(), Some("en-US"));
        assert!(dto.causes.is_empty());
    }
}
