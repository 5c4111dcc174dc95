//! The web console: plain HTML, CSS and JavaScript modules under `assets/`, compiled into the
//! binary and served under `/console`. The console is a client of the public API on the same
//! origin (the token a person enters is sent as the API's bearer token), so this crate serves
//! files and nothing else: no route here reads or changes any Triggerline state.
//!
//! Cache policy: the files are not fingerprinted (there is no build step to rename them), so a
//! browser must revalidate each one (`Cache-Control: no-cache`) and gets a 304 when its `ETag`
//! still matches. A long max-age would let a browser mix modules of two releases after an
//! upgrade; revalidating costs one round trip per file, on loopback.
#![forbid(unsafe_code)]

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Where the console is mounted; `/console` itself redirects here so that the pages' relative
/// URLs resolve below it.
pub const BASE: &str = "/console/";

/// One file of `assets/`, by its path below that folder.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub path: &'static str,
    pub body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal),+ $(,)?) => {
        &[$(Asset {
            path: $path,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path)),
        }),+]
    };
}

/// Every file the console is made of. A file in `assets/` that is missing here is never
/// served; the crate's tests fail when the two differ.
pub const ASSETS: &[Asset] = assets![
    "index.html",
    "console.css",
    "favicon.svg",
    "js/api.js",
    "js/app.js",
    "js/dom.js",
    "js/format.js",
    "js/views/invocation.js",
    "js/views/invocations.js",
    "js/views/editor.js",
    "js/views/subscriptions.js",
    "js/views/triggers.js",
    "js/views/token.js",
];

/// The page may load only its own files and call only its own origin: the console holds an API
/// token, so no injected script or frame may reach it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The router of the console: `/console` (redirect), `/console/` (the page) and one route per
/// asset. Unknown paths below `/console/` are left unmatched, so the app's own fallback answers
/// them.
pub fn router() -> Router {
    let mut router = Router::new().route(
        BASE.trim_end_matches('/'),
        get(|| async { Redirect::permanent(BASE) }),
    );
    for asset in ASSETS {
        let served = Served::new(asset);
        let path = format!("{BASE}{}", asset.path);
        if asset.path == "index.html" {
            let index = served.clone();
            router = router.route(BASE, get(move |h: HeaderMap| index.clone().answer(h)));
        }
        router = router.route(&path, get(move |h: HeaderMap| served.clone().answer(h)));
    }
    router
}

/// An asset with the headers computed once, at start.
#[derive(Debug, Clone)]
struct Served {
    body: &'static [u8],
    content_type: HeaderValue,
    etag: HeaderValue,
}

impl Served {
    fn new(asset: &'static Asset) -> Self {
        let etag = format!("\"{:016x}\"", fnv1a(asset.body));
        Served {
            body: asset.body,
            content_type: HeaderValue::from_static(content_type(asset.path)),
            // Hex digits and quotes only: always a valid header value.
            etag: HeaderValue::try_from(etag).unwrap_or(HeaderValue::from_static("\"0\"")),
        }
    }

    async fn answer(self, request: HeaderMap) -> Response {
        let fresh = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| tag.trim() == self.etag || tag.trim() == "*");
        let headers = [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::ETAG, self.etag),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ];
        if fresh {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        let content_type: [(HeaderName, HeaderValue); 1] =
            [(header::CONTENT_TYPE, self.content_type)];
        (headers, content_type, self.body).into_response()
    }
}

/// The media type of an asset, by its extension (`nosniff` makes the browser trust it, and
/// module scripts are refused without a JavaScript type).
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// FNV-1a: a stable content hash for the `ETag` (not a security boundary: it only tells a
/// browser whether its copy is current).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("js/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("console.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("README"), "application/octet-stream");
    }

    #[test]
    fn etags_differ_when_the_bytes_do() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(fnv1a(b"console"), fnv1a(b"console"));
    }
}
