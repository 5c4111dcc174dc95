//! The committed `docs/openapi.json` is the document the code generates.

#![allow(clippy::unwrap_used)]

const REGENERATE: &str = "cargo run -p triggerline-openapi -- docs/openapi.json";

#[test]
fn the_committed_document_is_the_generated_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read docs/openapi.json ({e}); write it with `{REGENERATE}`")
    });
    let generated = triggerline_openapi::json();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()))
            + 1;
        panic!(
            "docs/openapi.json differs from the document the code generates (first at line \
             {line}); regenerate it with `{REGENERATE}` and commit it"
        );
    }
}

#[test]
fn the_document_is_openapi_3_1_with_the_sailpoint_models() {
    let doc: serde_json::Value = serde_json::from_str(&triggerline_openapi::json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let schemas = &doc["components"]["schemas"];
    for name in [
        "Trigger",
        "Subscription",
        "SubscriptionPostRequest",
        "SubscriptionPutRequest",
        "HttpConfig",
        "EventBridgeConfig",
        "InvocationStatus",
        "TestInvocation",
        "CompleteInvocation",
        "ValidateFilterInputDto",
        "ValidateFilterOutputDto",
        "ErrorResponseDto",
        "ErrorMessageDto",
        "StillRunning",
    ] {
        assert!(schemas[name].is_object(), "no schema {name}");
    }
    // SailPoint's exact field names and enum values, as SDK 2.1.72 reads them.
    assert!(schemas["ValidateFilterOutputDto"]["properties"]["isValidJSONPath"].is_object());
    assert_eq!(
        schemas["HttpDispatchMode"]["enum"],
        serde_json::json!(["SYNC", "ASYNC", "DYNAMIC"])
    );
    assert_eq!(
        schemas["InvocationStatusType"]["enum"],
        serde_json::json!(["TEST", "REAL_TIME"])
    );
    assert_eq!(
        schemas["InvocationStatus"]["properties"]["created"]["format"],
        "date-time"
    );
    // Bearer for the management API; none for the callback.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(
        doc["paths"]["/trigger-invocations/v1/{id}/complete"]["post"]["security"],
        serde_json::json!([{}])
    );
    assert_eq!(
        doc["paths"]["/beta/trigger-invocations/{id}/complete"]["post"]["security"],
        serde_json::json!([{}])
    );
    // The error bodies.
    let start = &doc["paths"]["/trigger-invocations/v1/start"]["post"]["responses"];
    assert_eq!(
        start["542"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/StillRunning"
    );
    assert_eq!(start["401"]["$ref"], "#/components/responses/Unauthorized");
    let responses = &doc["components"]["responses"];
    assert_eq!(
        responses["Unauthorized"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorUnauthorized"
    );
    assert_eq!(
        responses["TooManyRequests"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorTooManyRequests"
    );
    assert_eq!(
        responses["BadRequest"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorResponseDto"
    );
    // The collection parameters carry the parser's limits.
    let params = doc["paths"]["/v2025/trigger-subscriptions"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["maximum"], triggerline::query::MAX_LIMIT);
    let filters = params.iter().find(|p| p["name"] == "filters").unwrap();
    assert!(
        filters["description"]
            .as_str()
            .unwrap()
            .contains("triggerId (eq)"),
        "{filters}"
    );
}

/// Every route that starts invocations takes the W3C trace headers (and the keyed ones an
/// `Idempotency-Key`), as the server does.
#[test]
fn the_routes_that_raise_invocations_list_the_headers_they_read() {
    let doc: serde_json::Value = serde_json::from_str(&triggerline_openapi::json()).unwrap();
    for (path, keyed) in [
        ("/trigger-invocations/v1/start", true),
        ("/trigger-invocations/v1/test", true),
        ("/trigger-invocations/v1/start-batch", false),
    ] {
        let names: Vec<&str> = doc["paths"][path]["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            names.contains(&"traceparent") && names.contains(&"tracestate"),
            "{path}: {names:?}"
        );
        assert_eq!(
            names.contains(&"Idempotency-Key"),
            keyed,
            "{path}: {names:?}"
        );
    }
}

/// A callback answers an unknown id with the 401 of a wrong secret (the routes' tests and the
/// black-box suite check that), so its operations list no 404; every other operation on an id
/// does.
#[test]
fn only_operations_that_answer_404_list_it() {
    let doc: serde_json::Value = serde_json::from_str(&triggerline_openapi::json()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let callback = path.ends_with("/complete") || path.ends_with("/heartbeat");
        for (method, op) in item.as_object().unwrap() {
            let lists_404 = op["responses"].get("404").is_some();
            if callback {
                assert!(!lists_404, "{method} {path} lists a 404 it never answers");
                assert!(op["responses"].get("401").is_some(), "{method} {path}");
            } else if path.contains('{') {
                assert!(lists_404, "{method} {path} answers 404 for an unknown id");
            }
        }
    }
}

#[test]
fn operation_ids_are_unique() {
    let doc: serde_json::Value = serde_json::from_str(&triggerline_openapi::json()).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}"));
            assert!(seen.insert(id.to_owned()), "{id} twice ({method} {path})");
        }
    }
}

#[test]
fn the_documented_lengths_are_the_limits_the_domain_holds() {
    use triggerline::limits::{MAX_CREDENTIAL_BYTES, MAX_DESCRIPTION_CHARS, MAX_URL_BYTES};
    let doc: serde_json::Value = serde_json::from_str(&triggerline_openapi::json()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let max = |schema: &str, property: &str| {
        schemas[schema]["properties"][property]["maxLength"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or_else(|| panic!("{schema}.{property} has no maxLength"))
    };
    assert_eq!(max("HttpConfig", "url"), MAX_URL_BYTES);
    assert_eq!(max("BasicAuthConfig", "userName"), MAX_CREDENTIAL_BYTES);
    assert_eq!(max("BasicAuthConfig", "password"), MAX_CREDENTIAL_BYTES);
    assert_eq!(
        max("BearerTokenAuthConfig", "bearerToken"),
        MAX_CREDENTIAL_BYTES
    );
    assert_eq!(
        max("SubscriptionPostRequest", "description"),
        MAX_DESCRIPTION_CHARS
    );
    assert_eq!(
        max("SubscriptionPutRequest", "description"),
        MAX_DESCRIPTION_CHARS
    );
}
