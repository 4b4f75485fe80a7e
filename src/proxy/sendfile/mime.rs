//! The `Content-Type` of a served file, chosen by its extension from `mime_guess`'s table.
//!
//! Text types carry `; charset=utf-8`; JavaScript is `text/javascript` (RFC 9239) whatever the
//! table says; anything unknown is `application/octet-stream`.

use std::path::Path;

use actix_web::http::header::HeaderValue;

/// What a file with an unknown or missing extension is served as.
pub const DEFAULT_TYPE: &str = "application/octet-stream";

/// The `Content-Type` for `path`, by its (case-insensitive) extension.
pub fn content_type_for(path: &Path) -> HeaderValue {
    let Some(mime) = mime_guess::from_path(path).first_raw() else {
        return HeaderValue::from_static(DEFAULT_TYPE);
    };
    // The table still calls `.mjs` by the obsolete name.
    let mime = match mime {
        "application/javascript" => "text/javascript",
        other => other,
    };
    if !mime.starts_with("text/") {
        return HeaderValue::from_static(mime);
    }
    HeaderValue::try_from(format!("{mime}; charset=utf-8"))
        .unwrap_or_else(|_| HeaderValue::from_static(DEFAULT_TYPE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_of(name: &str) -> String {
        let value = content_type_for(Path::new(name));
        value.to_str().expect("ASCII").to_owned()
    }

    #[test]
    fn common_extensions_have_their_types() {
        assert_eq!(type_of("/srv/index.html"), "text/html; charset=utf-8");
        assert_eq!(type_of("/srv/app.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(type_of("/srv/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(type_of("/srv/style.css"), "text/css; charset=utf-8");
        assert_eq!(type_of("/srv/data.json"), "application/json");
        assert_eq!(type_of("/srv/logo.svg"), "image/svg+xml");
        assert_eq!(type_of("/srv/photo.jpeg"), "image/jpeg");
        assert_eq!(type_of("/srv/font.woff2"), "font/woff2");
        assert_eq!(type_of("/srv/module.wasm"), "application/wasm");
        assert_eq!(type_of("/srv/archive.tar.gz"), "application/gzip");
        assert_eq!(type_of("/srv/clip.mp4"), "video/mp4");
    }

    #[test]
    fn extensions_match_case_insensitively() {
        assert_eq!(type_of("/srv/PHOTO.PNG"), "image/png");
        assert_eq!(type_of("/srv/Readme.Md"), "text/markdown; charset=utf-8");
    }

    #[test]
    fn unknown_missing_or_odd_extensions_get_the_default() {
        assert_eq!(type_of("/srv/blob.nosuchtype"), DEFAULT_TYPE);
        assert_eq!(type_of("/srv/Makefile"), DEFAULT_TYPE);
        assert_eq!(type_of("/srv/.hidden"), DEFAULT_TYPE);
        assert_eq!(type_of("/srv/file.averyveryverylongextension"), DEFAULT_TYPE);
        assert_eq!(type_of("/srv/file.ünï"), DEFAULT_TYPE);
    }
}
