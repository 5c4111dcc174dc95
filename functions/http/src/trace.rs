//! The W3C trace context of a request: its `traceparent` and `tracestate` headers, read once.
//! Never a rejection: per the spec an invalid context is ignored (the use case starts a new
//! trace), so a bad header costs the caller nothing.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use triggerline::trace::TraceContext;

/// The request's valid trace context, if it sent one.
#[derive(Debug, Clone, Default)]
pub struct Traced(pub Option<TraceContext>);

impl<S: Send + Sync> FromRequestParts<S> for Traced {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Traced(trace_of(&parts.headers)))
    }
}

/// The trace context of `headers`: exactly one `traceparent` (two are invalid, as the spec
/// says), and every `tracestate` header combined.
pub fn trace_of(headers: &HeaderMap) -> Option<TraceContext> {
    let mut parents = headers.get_all("traceparent").iter();
    let parent = parents.next()?.to_str().ok();
    if parents.next().is_some() {
        return None;
    }
    let states: Option<Vec<&str>> = headers
        .get_all("tracestate")
        .iter()
        .map(|v| v.to_str().ok())
        .collect();
    // A tracestate header that is not text makes the whole list invalid; the parent stands.
    let states = states.unwrap_or_else(|| vec!["\u{0}"]);
    TraceContext::parse(parent, &states)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;

    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn one_valid_traceparent_and_every_tracestate_header_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(GOOD));
        headers.append("tracestate", HeaderValue::from_static("a=1"));
        headers.append("tracestate", HeaderValue::from_static("b=2"));
        let trace = trace_of(&headers).unwrap();
        assert_eq!(trace.traceparent, GOOD);
        assert_eq!(trace.tracestate.as_deref(), Some("a=1,b=2"));
    }

    #[test]
    fn two_traceparents_or_none_or_junk_give_no_context() {
        assert!(trace_of(&HeaderMap::new()).is_none());
        let mut two = HeaderMap::new();
        two.append("traceparent", HeaderValue::from_static(GOOD));
        two.append("traceparent", HeaderValue::from_static(GOOD));
        assert!(trace_of(&two).is_none());
        let mut junk = HeaderMap::new();
        junk.insert("traceparent", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert!(trace_of(&junk).is_none());
    }

    #[test]
    fn a_tracestate_that_is_not_text_is_dropped_and_the_parent_kept() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(GOOD));
        headers.insert("tracestate", HeaderValue::from_bytes(b"a=\xff").unwrap());
        let trace = trace_of(&headers).unwrap();
        assert_eq!(trace.tracestate, None);
    }
}
