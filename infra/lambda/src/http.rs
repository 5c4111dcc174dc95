//! A function's router as a Lambda behind API Gateway's HTTP API, answering with header names in
//! canonical case (`X-Total-Count`, `Content-Type`, `Retry-After`).
//!
//! `lambda_http` turns the router's response into API Gateway's JSON with the `HeaderMap`'s
//! names, which are always lowercase. Clients should not care, but the official SailPoint SDKs
//! hand response headers to users as a plain, case-sensitive dict, so
//! `headers.get("X-Total-Count")` found nothing. API Gateway passes the names through as the
//! function wrote them, so the function writes them as SailPoint does, and as the local server
//! does (hyper's `title_case_headers`: the same rule, [`canonical_name`]).
//!
//! It is start-up code, so it lives here rather than in the HTTP edge the routers share
//! (`triggerline-http`), which the local server links too.

use axum::Router;
use axum::extract::Request;
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, LambdaEvent, RequestExt};
use serde_json::Value;
use triggerline_http::JwtCaller;

/// Serves `router` as the function's handler until the runtime stops it (what
/// `lambda_http::run` does, with canonical header names and the JWT's caller).
pub async fn run(router: Router) -> Result<(), crate::BootError> {
    let router = prepared(router);
    lambda_http::lambda_runtime::run(lambda_http::service_fn(
        move |event: LambdaEvent<LambdaRequest>| handle(router.clone(), event),
    ))
    .await
}

/// `router` as `run` serves it.
fn prepared(router: Router) -> Router {
    router.layer(axum::middleware::map_request(with_jwt_caller))
}

/// Hands the caller API Gateway's JWT authorizer let in to the edge as a plain extension
/// ([`JwtCaller`]), so that the routers, which the local server serves too, read no Lambda
/// types.
async fn with_jwt_caller(mut request: Request) -> Request {
    if let Some(caller) = jwt_caller(&request) {
        request.extensions_mut().insert(caller);
    }
    request
}

/// The JWT's issuer and subject (`client_id` for a client-credentials token without a
/// subject), from API Gateway's request context.
fn jwt_caller(request: &Request) -> Option<JwtCaller> {
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
        return None;
    };
    let claims = &context.authorizer.as_ref()?.jwt.as_ref()?.claims;
    let subject = claims.get("sub").or_else(|| claims.get("client_id"))?;
    Some(JwtCaller {
        issuer: claims.get("iss").cloned().unwrap_or_default(),
        subject: subject.clone(),
    })
}

/// One invocation: the event through `lambda_http`'s own conversions and `router`, and the
/// answer as the JSON the runtime sends back, header names in canonical case.
pub async fn handle(
    router: Router,
    event: LambdaEvent<LambdaRequest>,
) -> Result<Value, lambda_http::Error> {
    let response = Adapter::from(router).oneshot(event).await?;
    let mut answer = serde_json::to_value(&response)?;
    for field in ["headers", "multiValueHeaders"] {
        if let Some(Value::Object(headers)) = answer.get_mut(field) {
            *headers = std::mem::take(headers)
                .into_iter()
                .map(|(name, value)| (canonical_name(&name), value))
                .collect();
        }
    }
    Ok(answer)
}

/// `x-total-count` → `X-Total-Count`: each dash-separated word capitalised, as hyper's
/// `title_case_headers` writes names on the local server.
pub fn canonical_name(name: &str) -> String {
    let mut capitalise = true;
    name.chars()
        .map(|c| {
            let out = if capitalise {
                c.to_ascii_uppercase()
            } else {
                c
            };
            capitalise = c == '-';
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::StatusCode;
    use axum::routing::get;

    use super::*;

    #[test]
    fn names_are_capitalised_word_by_word() {
        assert_eq!(canonical_name("x-total-count"), "X-Total-Count");
        assert_eq!(canonical_name("content-type"), "Content-Type");
        assert_eq!(canonical_name("retry-after"), "Retry-After");
        assert_eq!(canonical_name("location"), "Location");
        assert_eq!(canonical_name("X-Total-Count"), "X-Total-Count");
    }

    /// An API Gateway HTTP API (payload 2.0) request for `path`.
    fn event(path: &str) -> LambdaEvent<LambdaRequest> {
        with_claims(path, None)
    }

    /// As [`event`], with an `Idempotency-Key` and, when given, the claims of the JWT API
    /// Gateway's authorizer accepted.
    fn with_claims(path: &str, claims: Option<Value>) -> LambdaEvent<LambdaRequest> {
        let mut event = serde_json::json!({
            "version": "2.0",
            "routeKey": format!("GET {path}"),
            "rawPath": path,
            "rawQueryString": "count=true",
            "headers": {"accept": "application/json", "host": "127.0.0.1"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "a1b2c3d4e5", "domainName": "127.0.0.1",
                "domainPrefix": "127",
                "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
                "requestId": "JKJgcoALvHcEXLw=", "routeKey": format!("GET {path}"),
                "stage": "$default", "time": "14/Mar/2025:09:26:53 +0000",
                "timeEpoch": 1741944413271_u64
            },
            "isBase64Encoded": false
        });
        if let Some(claims) = claims {
            event["headers"]["idempotency-key"] = "key-1".into();
            event["headers"]["authorization"] = "Bearer a.b.c".into();
            event["requestContext"]["authorizer"] =
                serde_json::json!({"jwt": {"claims": claims, "scopes": ["triggerline/write"]}});
        }
        LambdaEvent::new(
            serde_json::from_value(event).unwrap(),
            lambda_http::Context::default(),
        )
    }

    #[tokio::test]
    async fn the_raw_answer_carries_canonical_header_names() {
        let router = Router::new().route(
            "/things",
            get(|| async {
                let mut listed = triggerline_http::listed(vec![1, 2], Some(2));
                listed
                    .headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("5"));
                listed
            }),
        );

        let answer = handle(router, event("/things")).await.unwrap();
        // What the runtime posts back to Lambda, byte for byte.
        let raw = serde_json::to_string(&answer).unwrap();

        assert_eq!(answer["statusCode"], StatusCode::OK.as_u16());
        assert!(raw.contains(r#""X-Total-Count":"2""#), "{raw}");
        assert!(
            raw.contains(r#""Content-Type":"application/json""#),
            "{raw}"
        );
        assert!(raw.contains(r#""Retry-After":"5""#), "{raw}");
        assert!(!raw.contains("x-total-count"), "{raw}");
        assert!(!raw.contains("content-type"), "{raw}");
        assert_eq!(answer["body"], "[1,2]");
    }

    #[tokio::test]
    async fn an_idempotency_key_is_scoped_by_the_jwt_api_gateway_let_in() {
        let router = prepared(Router::new().route(
            "/start",
            get(|triggerline_http::IdempotencyHeader(key)| async move {
                key.map(|(scope, _)| scope).unwrap_or_default()
            }),
        ));
        let scope = |claims: Value| {
            let router = router.clone();
            async move {
                let answer = handle(router, with_claims("/start", Some(claims)))
                    .await
                    .unwrap();
                answer["body"].as_str().unwrap().to_owned()
            }
        };

        let issuer = "https://issuer.example.com";
        let alice = scope(serde_json::json!({"iss": issuer, "sub": "alice"})).await;
        let bob = scope(serde_json::json!({"iss": issuer, "sub": "bob"})).await;
        let client = scope(serde_json::json!({"iss": issuer, "client_id": "app-7"})).await;
        assert_eq!(alice, format!("jwt:{issuer}:alice"));
        assert_eq!(bob, format!("jwt:{issuer}:bob"));
        assert_eq!(client, format!("jwt:{issuer}:app-7"));
        // Without a subject the bearer token's digest scopes it, as on the local server.
        let anonymous = scope(serde_json::json!({"iss": issuer})).await;
        assert!(!anonymous.starts_with("jwt:"), "{anonymous}");
        assert!(!anonymous.is_empty());
    }
}
