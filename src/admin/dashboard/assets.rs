//! The dashboard's static files (`static/`), embedded in the binary and served under
//! `/static/...` so that the pages work without internet access and without files next to the
//! binary.
//!
//! Control plane. Pages link each asset with its content hash (`?v=...`): such a URL never
//! changes meaning, so it is cached for a year; any other request revalidates with the `ETag`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

/// One embedded file.
pub struct Asset {
    /// The path below `/static/`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    /// FNV-1a of `bytes`, computed at compile time: the `?v=` of the URL and the `ETag`.
    pub hash: u64,
}

macro_rules! asset {
    ($path:literal, $content_type:literal) => {
        Asset {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/static/", $path)),
            hash: fnv1a(include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/static/",
                $path
            ))),
        }
    };
}

/// Every file served under `/static/`.
pub static ASSETS: &[Asset] = &[
    asset!("dashboard.css", "text/css; charset=utf-8"),
    asset!("common.js", "text/javascript; charset=utf-8"),
    asset!("overview.js", "text/javascript; charset=utf-8"),
    asset!("live.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("uplot/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    asset!("uplot/uPlot.min.css", "text/css; charset=utf-8"),
    asset!("uplot/LICENSE", "text/plain; charset=utf-8"),
];

/// Cache lifetime of a versioned URL (`?v=<hash>`).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Any other URL: the browser may keep it but asks again (a cheap 304).
const REVALIDATE: &str = "no-cache";

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The embedded file at `path` (below `/static/`).
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The versioned URL of an embedded file, for the templates. An unknown name is a bug in a
/// template; it still gets a URL (which answers 404) rather than a panic.
pub fn url(path: &str) -> String {
    match find(path) {
        Some(asset) => format!("/static/{}?v={:016x}", asset.path, asset.hash),
        None => format!("/static/{path}"),
    }
}

/// `GET /static/{path}`: the file with its content type, `ETag` and cache header; 304 when the
/// browser's copy is current; 404 for anything not embedded.
pub async fn serve(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let Some(asset) = find(&path) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such file\n");
    };
    let etag = format!("\"{:016x}\"", asset.hash);
    let versioned = req
        .query_string()
        .split('&')
        .any(|pair| pair == format!("v={:016x}", asset.hash));
    let cache = if versioned { IMMUTABLE } else { REVALIDATE };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ));
    if fresh {
        return res.finish();
    }
    res.content_type(asset.content_type).body(asset.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;
    use actix_web::test::{call_service, init_service, read_body, TestRequest};
    use actix_web::App;

    #[actix_web::test]
    async fn assets_have_their_content_type_and_cache_header() {
        let app = init_service(App::new().route("/static/{path:.*}", web::get().to(serve))).await;
        for (path, content_type) in [
            ("dashboard.css", "text/css; charset=utf-8"),
            ("overview.js", "text/javascript; charset=utf-8"),
            ("live.js", "text/javascript; charset=utf-8"),
            ("uplot/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
            ("uplot/uPlot.min.css", "text/css; charset=utf-8"),
            ("favicon.svg", "image/svg+xml"),
        ] {
            let versioned = url(path);
            let res = call_service(&app, TestRequest::get().uri(&versioned).to_request()).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(
                res.headers().get(header::CONTENT_TYPE).unwrap(),
                content_type,
                "{path}"
            );
            assert_eq!(
                res.headers().get(header::CACHE_CONTROL).unwrap(),
                IMMUTABLE,
                "{path}"
            );
            let body = read_body(res).await;
            assert_eq!(body, find(path).unwrap().bytes, "{path}");
        }
        let res = call_service(&app, TestRequest::get().uri("/static/live.js").to_request()).await;
        assert_eq!(res.headers().get(header::CACHE_CONTROL).unwrap(), REVALIDATE);
        let etag = res.headers().get(header::ETAG).unwrap().clone();
        let again = TestRequest::get()
            .uri("/static/live.js")
            .insert_header((header::IF_NONE_MATCH, etag))
            .to_request();
        assert_eq!(call_service(&app, again).await.status(), StatusCode::NOT_MODIFIED);
        for missing in ["/static/nope.js", "/static/../Cargo.toml", "/static/uplot/README"] {
            let res = call_service(&app, TestRequest::get().uri(missing).to_request()).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{missing}");
        }
    }

    #[test]
    fn versioned_urls_change_with_the_content() {
        assert!(url("live.js").starts_with("/static/live.js?v="));
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(url("nope.js"), "/static/nope.js");
    }
}
