//! `JsonBody<T>`: the request body as `T`, or a 400 naming the field that was wrong;
//! `JsonBodyOrDefault<T>` the same for bodies that may be left out.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_ENCODING;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use triggerline::Error;
use triggerline::wire::strict::{self, Strict};

use crate::ApiError;

/// Deserializes the body whatever its `Content-Type` (receivers and SDKs differ: the SDK sends
/// `application/json-patch+json` for PATCH), reporting the JSON path of the first problem.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        parse(&bytes).map(JsonBody).map_err(ApiError::Domain)
    }
}

/// As [`JsonBody`], but an empty body (or one of only whitespace, or `null`) is
/// `T::default()`: for requests whose every field is optional, so that a client may send no
/// body at all.
#[derive(Debug, Clone)]
pub struct JsonBodyOrDefault<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for JsonBodyOrDefault<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBodyOrDefault(T::default()));
        }
        // `null` too, as the OpenAPI document describes an optional body.
        parse::<Option<T>>(&bytes)
            .map(|body| JsonBodyOrDefault(body.unwrap_or_default()))
            .map_err(ApiError::Domain)
    }
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    // A compressed body would otherwise be read as JSON and refused as "not valid JSON", which
    // sends its sender looking in the wrong place; the status says what is wrong (RFC 9110
    // 15.5.16). No SDK compresses requests, so none are decoded.
    if let Some(coding) = req.headers().get(CONTENT_ENCODING) {
        let coding = String::from_utf8_lossy(coding.as_bytes());
        let coding = coding.trim();
        if !coding.is_empty() && !coding.eq_ignore_ascii_case("identity") {
            return Err(ApiError::Http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Encoding: `{coding}` is not supported; send the body uncompressed"
                ),
            ));
        }
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::Http(
                rejection.status(),
                format!("body: {}", rejection.body_text()),
            )
        }
    })?;
    Ok(without_bom(bytes))
}

/// The UTF-8 byte-order mark some Windows tools write before a file's text.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `bytes` without a leading byte-order mark. RFC 8259 (8.1) lets a parser ignore one, and a
/// body saved by such a tool and sent as it is would otherwise be "not valid JSON" although
/// its JSON is.
fn without_bom(bytes: Bytes) -> Bytes {
    if bytes.starts_with(BOM) {
        bytes.slice(BOM.len()..)
    } else {
        bytes
    }
}

/// Parses `bytes` as `T`; the error's field is the JSON path (`httpConfig.url`) of the problem.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    // Most bodies are valid: parse them without tracking the path, which costs an allocation
    // per nested field, and go over a bad body again only to name where it went wrong.
    if let Ok(value) = strict::from_slice(bytes) {
        if let Some((path, number)) = triggerline::numbers::integer_beyond_64_bits(bytes) {
            let field = if path.is_empty() {
                "body".to_owned()
            } else {
                path
            };
            return Err(Error::invalid(
                field,
                format!(
                    "`{number}` is an integer beyond 64 bits, which would not arrive as sent \
                     (it would be rounded); send it as a string"
                ),
            ));
        }
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: Result<T, _> = serde_path_to_error::deserialize(Strict(&mut de));
    if value.is_ok() {
        de.end().map_err(|e| {
            let message = strip_position(&e.to_string());
            Error::invalid("body", format!("the body is not valid JSON: {message}"))
        })?;
    }
    value.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = strip_position(&inner.to_string());
        let parent = if path == "." { String::new() } else { path };
        if inner.is_syntax() || inner.is_eof() {
            // serde_json reports a value other than a string or an object where an enum's
            // name goes (`"type": null`) as a syntax error ("expected value") although the
            // body is valid JSON.
            if !parent.is_empty()
                && message.starts_with("expected value")
                && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
            {
                return Error::invalid(
                    parent,
                    "invalid type: expected a string naming one of its values",
                );
            }
            // Where it is known, the field is named (a lone surrogate, invalid UTF-8 or
            // nesting past the limit inside `input.x`).
            let field = if parent.is_empty() || inner.is_eof() {
                "body".to_owned()
            } else {
                parent
            };
            return Error::invalid(field, format!("the body is not valid JSON: {message}"));
        }
        // serde reports a missing field at its parent; name the field itself.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            let full = if parent.is_empty() {
                field.to_owned()
            } else {
                format!("{parent}.{field}")
            };
            return Error::invalid(full, "is required");
        }
        let field = if parent.is_empty() {
            "body".to_owned()
        } else {
            parent
        };
        Error::invalid(field, message)
    })
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        url: String,
        mode: Mode,
    }

    #[derive(Debug, Deserialize)]
    enum Mode {
        #[serde(rename = "SYNC")]
        Sync,
    }

    fn err(body: &str) -> String {
        parse::<Outer>(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err(r#"{"inner": null}"#), "name: is required");
        assert_eq!(
            err(r#"{"name": "n", "inner": {"mode": "SYNC"}}"#),
            "inner.url: is required"
        );
        assert!(err(r#"{"name": 5}"#).starts_with("name: invalid type: integer `5`"));
        assert!(
            err(r#"{"name": "n", "inner": {"url": "u", "mode": "FAST"}}"#)
                .starts_with("inner.mode: unknown variant `FAST`")
        );
        for wrong in ["null", "0", "[]", "true"] {
            assert_eq!(
                err(&format!(
                    r#"{{"name": "n", "inner": {{"url": "u", "mode": {wrong}}}}}"#
                )),
                "inner.mode: invalid type: expected a string naming one of its values"
            );
        }
        assert!(err(r#"{"name": "#).starts_with("body: the body is not valid JSON"));
        assert!(err(r#"{"name": "n"} trailing"#).starts_with("body: the body is not valid JSON"));
        // Not an enum's value: what is wrong, where it is.
        let surrogate = err(r#"{"name": "\ud800"}"#);
        assert!(
            surrogate.starts_with("name: the body is not valid JSON: "),
            "{surrogate}"
        );
        let invalid_utf8 = parse::<Outer>(b"{\"name\": \"n\xff\"}")
            .unwrap_err()
            .to_string();
        assert!(
            invalid_utf8.starts_with("name: the body is not valid JSON: invalid unicode"),
            "{invalid_utf8}"
        );
    }

    #[test]
    fn an_integer_beyond_64_bits_is_refused_naming_where_it_is() {
        let refused = |body: &str| {
            parse::<serde_json::Value>(body.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused(r#"{"input": {"ids": [1, 123456789012345678901234567890]}}"#),
            "input.ids[1]: `123456789012345678901234567890` is an integer beyond 64 bits, which \
             would not arrive as sent (it would be rounded); send it as a string"
        );
        assert!(refused(r#"{"a\"b": -99999999999999999999}"#).starts_with("a\"b: `-9999"));
        assert!(refused("18446744073709551616").starts_with("body: "));
        // Nineteen digits, one below i64::MIN.
        assert!(refused(r#"{"n": -9223372036854775809}"#).starts_with("n: "));
        // What 64 bits hold, floats, and digits in strings pass.
        for fine in [
            r#"{"n": 18446744073709551615, "m": -9223372036854775808}"#,
            r#"{"f": 1.23456789012345678901234567890e5, "s": "123456789012345678901234567890"}"#,
            r#"{"k": {"12345678901234567890123": 1}}"#,
        ] {
            assert!(
                parse::<serde_json::Value>(fine.as_bytes()).is_ok(),
                "{fine}"
            );
        }
    }

    async fn body_of(bytes: &'static [u8]) -> Result<Option<String>, String> {
        #[derive(Debug, Default, Deserialize)]
        struct Named {
            name: Option<String>,
        }
        let request = Request::new(axum::body::Body::from(bytes));
        JsonBodyOrDefault::<Named>::from_request(request, &())
            .await
            .map(|JsonBodyOrDefault(body)| body.name)
            .map_err(|e| format!("{e:?}"))
    }

    #[tokio::test]
    async fn a_leading_byte_order_mark_is_skipped() {
        assert_eq!(
            body_of(b"\xEF\xBB\xBF{\"name\": \"n\"}").await,
            Ok(Some("n".to_owned()))
        );
        // A mark alone is an empty body; one anywhere else is still not JSON.
        assert_eq!(body_of(b"\xEF\xBB\xBF").await, Ok(None));
        let inside = body_of(b"{\"name\": \"n\"}\xEF\xBB\xBF").await.unwrap_err();
        assert!(inside.contains("not valid JSON"), "{inside}");
        let twice = body_of(b"\xEF\xBB\xBF\xEF\xBB\xBF{}").await.unwrap_err();
        assert!(twice.contains("not valid JSON"), "{twice}");
    }
}
