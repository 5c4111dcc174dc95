//! The console router in-process: what a browser gets for each path, and that the compiled-in
//! asset table, the files under `assets/` and the references between them agree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use triggerline_console::{ASSETS, content_type, router};

async fn get(path: &str, if_none_match: Option<&str>) -> axum::response::Response {
    let mut request = Request::get(path);
    if let Some(tag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    router()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible")
}

fn header_of(response: &axum::response::Response, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ASCII header")
}

async fn body(response: axum::response::Response) -> Vec<u8> {
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec()
}

#[tokio::test]
async fn console_without_a_slash_redirects_to_the_page() {
    let response = get("/console", None).await;

    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header_of(&response, header::LOCATION), "/console/");
}

#[tokio::test]
async fn the_page_is_html_that_must_be_revalidated() {
    let response = get("/console/", None).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_of(&response, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
    assert_eq!(
        header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
        "nosniff"
    );
    let csp = header_of(&response, header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(header_of(&response, header::ETAG).starts_with('"'));
    let html = String::from_utf8(body(response).await).expect("UTF-8");
    assert!(html.contains(r#"<script type="module" src="js/app.js">"#));
}

#[tokio::test]
async fn every_asset_is_served_with_the_type_of_its_extension() {
    for asset in ASSETS {
        let response = get(&format!("/console/{}", asset.path), None).await;

        assert_eq!(response.status(), StatusCode::OK, "{}", asset.path);
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            content_type(asset.path),
            "{}",
            asset.path
        );
        assert_eq!(body(response).await, asset.body, "{}", asset.path);
    }
}

#[tokio::test]
async fn a_current_copy_gets_304_and_a_stale_one_the_file() {
    let first = get("/console/js/app.js", None).await;
    let etag = header_of(&first, header::ETAG).to_owned();

    let revalidated = get("/console/js/app.js", Some(&etag)).await;
    let stale = get("/console/js/app.js", Some("\"0000000000000000\"")).await;

    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header_of(&revalidated, header::ETAG), etag);
    assert!(body(revalidated).await.is_empty());
    assert_eq!(stale.status(), StatusCode::OK);
    assert!(!body(stale).await.is_empty());
}

#[tokio::test]
async fn an_unknown_path_is_left_to_the_app() {
    let response = get("/console/js/missing.js", None).await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

fn assets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

fn files_under(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("assets dir") {
        let entry = entry.expect("dir entry");
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().expect("file type").is_dir() {
            files_under(&entry.path(), &format!("{name}/"), out);
        } else {
            out.insert(name);
        }
    }
}

#[test]
fn the_asset_table_lists_exactly_the_files_of_assets() {
    let mut on_disk = BTreeSet::new();
    files_under(&assets_dir(), "", &mut on_disk);
    let listed: BTreeSet<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();

    assert_eq!(listed, on_disk);
}

/// `from "./x.js"`, `from "../x.js"`, `src="x"`, `href="x"`: every relative reference of an
/// asset, resolved against the asset's own folder.
fn references(asset: &str, text: &str) -> Vec<String> {
    let base: Vec<&str> = asset.split('/').collect();
    let base = &base[..base.len() - 1];
    let mut found = Vec::new();
    for marker in ["from \"", "src=\"", "href=\""] {
        for (at, _) in text.match_indices(marker) {
            let rest = &text[at + marker.len()..];
            let Some(end) = rest.find('"') else { continue };
            let target = &rest[..end];
            if target.starts_with('#') || target.contains(':') || target.contains('$') {
                continue;
            }
            let mut parts: Vec<&str> = base.to_vec();
            for part in target.split('/') {
                match part {
                    "." => {}
                    ".." => {
                        parts.pop();
                    }
                    other => parts.push(other),
                }
            }
            found.push(parts.join("/"));
        }
    }
    found
}

#[test]
fn every_import_and_link_of_an_asset_names_a_served_asset() {
    let listed: BTreeSet<&str> = ASSETS.iter().map(|a| a.path).collect();
    let mut checked = 0;
    for asset in ASSETS {
        let Ok(text) = std::str::from_utf8(asset.body) else {
            continue;
        };
        for target in references(asset.path, text) {
            assert!(
                listed.contains(target.as_str()),
                "{} refers to {target}, which is not served",
                asset.path
            );
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} references found");
}
