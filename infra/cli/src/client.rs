//! The HTTP client of the management API: one place that turns transport failures and error
//! bodies (`ErrorResponseDto`, 401 `{error}`, 429/542 `{message}`) into [`Error`]s.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::args::{Connection, Sensitive};
use crate::error::{Error, Result};

/// Well over the server's synchronous wait (`--sync-wait`, PT25S by default; on AWS under 29 s),
/// so that a synchronous `invoke` gets its 200 or 542 rather than a client-side timeout. A local
/// server set to wait longer (up to PT10M) outlasts it: `status ID --wait` follows from there.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An answer the caller reads itself (a 2xx, or a status the caller asked to see).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// `Value::Null` for an empty body.
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    token: Option<Sensitive>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(connection: &Connection) -> Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| Error::usage("--url", format!("cannot build an HTTP client: {e}")))?;
        Ok(Api {
            base: connection.url.as_str().trim_end_matches('/').to_owned(),
            token: connection.api_token.clone(),
            http,
        })
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        Ok(self.send(Method::GET, path, query, None, &[]).await?.body)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer> {
        self.send(Method::POST, path, &[], Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, operations: &Value) -> Result<Value> {
        let request = self
            .request(Method::PATCH, path, &[])
            .header("Content-Type", "application/json-patch+json")
            .body(operations.to_string());
        Ok(self.finish(Method::PATCH, path, request, &[]).await?.body)
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        self.send(Method::DELETE, path, &[], None, &[]).await?;
        Ok(())
    }

    /// Sends a request; a status in `accept` (or any 2xx) is returned, anything else is an error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        accept: &[StatusCode],
    ) -> Result<Answer> {
        let mut request = self.request(method.clone(), path, query);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.finish(method, path, request, accept).await
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        request
    }

    async fn finish(
        &self,
        method: Method,
        path: &str,
        request: reqwest::RequestBuilder,
        accept: &[StatusCode],
    ) -> Result<Answer> {
        let response = request
            .send()
            .await
            .map_err(|source| self.transport(source))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|source| self.transport(source))?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            crate::output::parse_json(&text).map_err(|e| Error::BadResponse {
                path: path.to_owned(),
                reason: format!("{status} with a body that is not JSON ({e})"),
            })?
        };
        if status.is_success() || accept.contains(&status) {
            return Ok(Answer { status, body });
        }
        let message = error_message(&body).unwrap_or_else(|| text.trim().to_owned());
        if status == StatusCode::UNAUTHORIZED {
            let message = if self.token.is_none() {
                "no token was sent".to_owned()
            } else {
                message
            };
            return Err(Error::Unauthorized { message });
        }
        Err(Error::Refused {
            method: method.to_string(),
            path: path.to_owned(),
            status: status.as_u16(),
            message,
        })
    }

    fn transport(&self, source: reqwest::Error) -> Error {
        let mut reason = source.to_string();
        let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&source);
        while let Some(inner) = cause {
            reason = inner.to_string();
            cause = inner.source();
        }
        if source.is_timeout() {
            reason = "timed out".to_owned();
        }
        Error::Unreachable {
            url: self.base.clone(),
            reason,
            source,
        }
    }
}

/// The text of an error body: `ErrorResponseDto`'s messages, or the `error` / `message` field
/// of the 401 and 429 bodies.
pub fn error_message(body: &Value) -> Option<String> {
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        let texts: Vec<&str> = messages
            .iter()
            .filter_map(|m| m.get("text").and_then(Value::as_str))
            .collect();
        if !texts.is_empty() {
            return Some(crate::output::printable(&texts.join("; ")));
        }
    }
    ["error", "message"]
        .iter()
        .find_map(|key| body.get(key).and_then(Value::as_str))
        .map(crate::output::printable)
}

/// A SailPoint filter matching one id (`id eq "…"`); the ids Triggerline makes never hold a
/// quote, and one that does could only be a typo.
pub fn eq_filter(field: &str, value: &str) -> Result<String> {
    if value.contains('"') || value.contains('\\') {
        return Err(Error::usage(
            field,
            "must not contain quotes or backslashes",
        ));
    }
    Ok(format!("{field} eq \"{value}\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_message_reads_each_error_body_shape() {
        let dto = json!({"detailCode": "400.1 Bad Request Content", "messages": [
            {"locale": "en-US", "text": "triggerId: unknown trigger"},
            {"locale": "en-US", "text": "name: required"}]});
        assert_eq!(
            error_message(&dto).as_deref(),
            Some("triggerId: unknown trigger; name: required")
        );
        assert_eq!(
            error_message(&json!({"error": "JWT validation failed"})).as_deref(),
            Some("JWT validation failed")
        );
        assert_eq!(
            error_message(&json!({"message": "Too Many Requests"})).as_deref(),
            Some("Too Many Requests")
        );
        assert_eq!(error_message(&json!({"other": 1})), None);
    }

    #[test]
    fn eq_filter_refuses_quotes() {
        assert_eq!(eq_filter("id", "abc").unwrap(), r#"id eq "abc""#);
        assert!(eq_filter("id", r#"a" or "b"#).is_err());
    }
}
