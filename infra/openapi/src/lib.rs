//! Triggerline's OpenAPI 3.1 document, generated from the code it describes.
//!
//! Each function crate describes its handlers with `#[utoipa::path]` (in their v1 form,
//! `/triggers/v1`, …) and the wire types derive their schemas, all behind the crates' `openapi`
//! feature, so the Lambda packages carry none of it. [`document`] merges those descriptions,
//! expands every route into each form [`triggerline_http::Versioned`] mounts it at (the same
//! [`path_forms`]), adds the answers every route shares (`ErrorResponseDto`, 401 `{error}`,
//! 429 `{message}`) and the security schemes, and describes the local server's own
//! `/health`, `/openapi.json` and `/metrics`.
//!
//! The local server serves [`json`] at `GET /openapi.json`; `docs/openapi.json` is the same text,
//! written by `cargo run -p triggerline-openapi -- docs/openapi.json`.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use triggerline_http::{ErrorResponseDto, PREFIXES, path_forms};
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, OperationBuilder, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, ObjectBuilder, RefOr, Response, ResponseBuilder, Type,
};

/// The path of the document on the local server.
pub const DOCUMENT_PATH: &str = "/openapi.json";

/// The local server's health check.
pub const HEALTH_PATH: &str = "/health";

/// The local server's Prometheus metrics (on AWS, CloudWatch has them: no such route).
pub const METRICS_PATH: &str = "/metrics";

/// The name of the bearer security scheme of the management API.
const BEARER: &str = "bearer";

/// The bearer scheme of `/metrics` when `--metrics-token` is set: not the management token.
const METRICS_BEARER: &str = "metricsToken";

/// The body of a 401: SailPoint's spec fixes it as `{"error": …}`, not an `ErrorResponseDto`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct ErrorUnauthorized {
    /// Why the request was refused.
    error: String,
}

/// The body of a 429: SailPoint's spec fixes it as `{"message": …}`, with `Retry-After`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct ErrorTooManyRequests {
    /// Why the request was refused.
    message: String,
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Triggerline",
        description = "Event triggers, wire-compatible with the SailPoint Event Trigger API \
            (SDK `sailpoint` 2.1.72), plus Triggerline's extensions: `start`, the status of one \
            invocation with its attempts, `retry`, and each subscription's Standard Webhooks \
            `signingSecret` with its rotation (`rotate-secret`). Every route is served at its `/…/v1` path and under the prefixes \
            `/beta`, `/v2024`, `/v2025`, `/v2026` (`/beta/triggers`, \
            `/v2025/trigger-subscriptions/{id}`, …). The `X-SailPoint-Experimental` header older \
            SDKs send is accepted and ignored. Request bodies over 1 MiB get 413, and bodies \
            sent with a `Content-Encoding` 415.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:8080", description = "The local server's default address")),
    components(schemas(ErrorResponseDto, ErrorUnauthorized, ErrorTooManyRequests)),
    tags(
        (name = "Triggers", description = "The trigger catalog"),
        (name = "Subscriptions", description = "Who receives which trigger, and how"),
        (name = "Invocations", description = "Raising events, and what became of each delivery"),
        (name = "Service", description = "The local server's own routes"),
    ),
)]
struct Base;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut api = Base::openapi();
    api.merge(subscription_api::ApiDoc::openapi());
    api.merge(status_query::ApiDoc::openapi());
    api.merge(dispatcher::ApiDoc::openapi());
    api.merge(invocation_complete::ApiDoc::openapi());

    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    components.add_security_scheme(
        METRICS_BEARER,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    for (name, response) in shared_responses() {
        components
            .responses
            .insert(name.to_owned(), response.into());
    }
    api.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);

    let mut paths = BTreeMap::new();
    for (path, mut item) in std::mem::take(&mut api.paths.paths) {
        add_shared_answers(&path, &mut item);
        for (form, item) in expand(&path, item) {
            paths.insert(form, item);
        }
    }
    paths.insert(HEALTH_PATH.to_owned(), health());
    paths.insert(DOCUMENT_PATH.to_owned(), this_document());
    paths.insert(METRICS_PATH.to_owned(), metrics());
    api.paths.paths = paths;
    api
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn json() -> String {
    // Serializing these plain maps and strings cannot fail.
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// `GET /openapi.json`: the document, made once per process. No token: the document is public.
pub fn router() -> axum::Router {
    static DOCUMENT: LazyLock<String> = LazyLock::new(json);
    axum::Router::new().route(
        DOCUMENT_PATH,
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                DOCUMENT.as_str(),
            )
        }),
    )
}

/// The answers every route may give, by name under `components/responses`.
fn shared_responses() -> Vec<(&'static str, Response)> {
    let dto = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorResponseDto",
                    ))))
                    .build(),
            )
            .build()
    };
    let shaped = |description: &str, schema: &str, header: (&str, &str)| {
        ResponseBuilder::new()
            .description(description)
            .header(
                header.0,
                utoipa::openapi::HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some(header.1))
                    .build(),
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        schema,
                    ))))
                    .build(),
            )
            .build()
    };
    vec![
        (
            "BadRequest",
            dto("The request is not acceptable; the message names the field"),
        ),
        (
            "Unauthorized",
            shaped(
                "No bearer token, or the wrong one (the callback: unknown id or wrong secret)",
                "ErrorUnauthorized",
                ("WWW-Authenticate", "`Bearer`"),
            ),
        ),
        ("NotFound", dto("No such resource")),
        (
            "Conflict",
            dto(
                "The subscription changed concurrently (retry the request), or an \
                 Idempotency-Key was used with another request or is still in progress",
            ),
        ),
        (
            "PayloadTooLarge",
            dto("The body is over 1 MiB, or a value is over its limit (the message names it)"),
        ),
        (
            "UnsupportedMediaType",
            dto(
                "The body was sent with a `Content-Encoding` (gzip, br, ...); none is decoded, so \
                 send it uncompressed",
            ),
        ),
        (
            "RequestTimeout",
            dto(
                "The body did not arrive within the client timeout of the request (the local \
                 server's `--client-timeout`); the connection is closed",
            ),
        ),
        (
            "TooManyRequests",
            shaped(
                "Rate-limited",
                "ErrorTooManyRequests",
                ("Retry-After", "Seconds to wait"),
            ),
        ),
        (
            "InternalError",
            dto("An unexpected error; the cause is logged under the `trackingId`"),
        ),
        (
            "Unavailable",
            dto(
                "The store is unavailable, or (the local server, with `Retry-After`) too many \
                 request bodies are being received at once; retry later",
            ),
        ),
    ]
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = (HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
        (HttpMethod::Options, item.options.as_mut()),
        (HttpMethod::Head, item.head.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
        (HttpMethod::Trace, item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
}

/// Adds the shared answers each operation of `path` can give.
fn add_shared_answers(path: &str, item: &mut PathItem) {
    let subscription_item = path.starts_with("/trigger-subscriptions/v1/{");
    for (method, op) in operations(item) {
        let mut shared = vec![
            ("400", "BadRequest"),
            ("401", "Unauthorized"),
            ("429", "TooManyRequests"),
            ("500", "InternalError"),
            ("503", "Unavailable"),
        ];
        if op.request_body.is_some() {
            shared.push(("413", "PayloadTooLarge"));
            shared.push(("408", "RequestTimeout"));
            shared.push(("415", "UnsupportedMediaType"));
        }
        // A callback answers an unknown id as it answers a wrong secret (401), so that it does
        // not tell a caller without the secret which ids exist.
        let callback = path.ends_with("/complete") || path.ends_with("/heartbeat");
        if path.contains('{') && !callback {
            shared.push(("404", "NotFound"));
        }
        // Writes conditional on the stored version (a rotation is one too).
        if subscription_item
            && (matches!(method, HttpMethod::Put | HttpMethod::Patch)
                || path.ends_with("/rotate-secret"))
        {
            shared.push(("409", "Conflict"));
        }
        // An `Idempotency-Key` reused with another body, or while its first request runs.
        if path == "/trigger-invocations/v1/start" || path == "/trigger-invocations/v1/test" {
            shared.push(("409", "Conflict"));
        }
        for (status, name) in shared {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| {
                    RefOr::Ref(utoipa::openapi::Ref::new(format!(
                        "#/components/responses/{name}"
                    )))
                });
        }
    }
}

/// `item` at every form of `path` (`/{resource}/v1{rest}`), with operation ids made unique by
/// the prefix (`listTriggers`, `listTriggersBeta`, `listTriggersV2024`, …).
fn expand(path: &str, item: PathItem) -> Vec<(String, PathItem)> {
    let Some((resource, rest)) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once("/v1"))
        .filter(|(_, rest)| rest.is_empty() || rest.starts_with('/'))
    else {
        return vec![(path.to_owned(), item)];
    };
    let suffixes = std::iter::once(String::new()).chain(PREFIXES.iter().map(|p| capitalized(p)));
    path_forms(resource, rest)
        .into_iter()
        .zip(suffixes)
        .map(|(form, suffix)| {
            let mut item = item.clone();
            for (_, op) in operations(&mut item) {
                if let Some(id) = op.operation_id.as_mut() {
                    id.push_str(&suffix);
                }
            }
            (form, item)
        })
        .collect()
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn public_get(operation_id: &str, summary: &str, response: Response) -> PathItem {
    let op = OperationBuilder::new()
        .tag("Service")
        .operation_id(Some(operation_id))
        .summary(Some(summary))
        .security(SecurityRequirement::default())
        .response("200", response)
        .build();
    PathItem::new(HttpMethod::Get, op)
}

fn health() -> PathItem {
    let body = ObjectBuilder::new()
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["ok"])),
        )
        .required("status");
    public_get(
        "getHealth",
        "Whether the server is up (no token)",
        ResponseBuilder::new()
            .description("Up")
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(body)).build(),
            )
            .build(),
    )
}

fn this_document() -> PathItem {
    public_get(
        "getOpenApiDocument",
        "This OpenAPI document (no token)",
        ResponseBuilder::new()
            .description("The OpenAPI 3.1 document")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                    .build(),
            )
            .build(),
    )
}

fn metrics() -> PathItem {
    let text = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "text/plain",
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            )
            .build()
    };
    let op = OperationBuilder::new()
        .tag("Service")
        .operation_id(Some("getMetrics"))
        .summary(Some("Prometheus metrics (local server)"))
        .description(Some(
            "The counters, histograms and gauges of the README's metrics table, in Prometheus' \
             text format 0.0.4. Open, or behind `--metrics-token` (its own bearer token, not \
             the management API's) when one is set. The AWS stack has no such route: its \
             functions write CloudWatch metrics.",
        ))
        .security(SecurityRequirement::default())
        .security(SecurityRequirement::new(
            METRICS_BEARER,
            Vec::<String>::new(),
        ))
        .response("200", text("The metrics"))
        .response(
            "401",
            RefOr::Ref(utoipa::openapi::Ref::new(
                "#/components/responses/Unauthorized",
            )),
        )
        .response("503", text("Metrics are off in this process"))
        .build();
    PathItem::new(HttpMethod::Get, op)
}
