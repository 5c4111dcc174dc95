//! The AWS stack's HTTP API serves what the document describes: every `RouteKey` of
//! `template.yaml` is an operation of the document, and every operation is a route there, but
//! the two the local server alone serves. A route added to a function's router but not to the
//! template would answer locally and be a 404 behind API Gateway.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

/// Served by the local server only: API Gateway has no route to them (the health check, the
/// document and the Prometheus metrics are the local process's own).
const LOCAL_ONLY: [(&str, &str); 3] = [
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
];

/// `(METHOD, path)` of every `RouteKey: "METHOD path"` in the template's text.
fn template_routes() -> BTreeSet<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    text.split("RouteKey: \"")
        .skip(1)
        .map(|rest| {
            let key = &rest[..rest.find('"').unwrap()];
            let (method, path) = key.split_once(' ').unwrap();
            (method.to_owned(), path.to_owned())
        })
        .collect()
}

fn documented_operations() -> BTreeSet<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(&triggerline_openapi::json()).unwrap();
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect()
}

#[test]
fn every_documented_operation_is_a_route_of_the_template_and_the_reverse() {
    let routes = template_routes();
    let documented = documented_operations();
    assert!(routes.len() > 50, "found only {} RouteKeys", routes.len());
    let local_only: BTreeSet<(String, String)> = LOCAL_ONLY
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = documented
        .difference(&routes)
        .filter(|op| !local_only.contains(*op))
        .collect();
    assert!(
        missing.is_empty(),
        "documented, but not routed by template.yaml: {missing:?}"
    );
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routed by template.yaml, but not in the document: {undocumented:?}"
    );
}
