//! The `Content-Type` of a served file, chosen by its extension from a built-in table.
//!
//! Text types carry `; charset=utf-8`; anything unknown is `application/octet-stream`.

use std::path::Path;

/// What a file with an unknown or missing extension is served as.
pub const DEFAULT_TYPE: &str = "application/octet-stream";

/// The MIME type for `path`, by its (case-insensitive) extension.
pub fn content_type_for(path: &Path) -> &'static str {
    let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
        return DEFAULT_TYPE;
    };
    // Extensions are short; one that doesn't fit is unknown anyway.
    let mut lower = [0u8; 16];
    let Some(buf) = lower.get_mut(..extension.len()) else {
        return DEFAULT_TYPE;
    };
    buf.copy_from_slice(extension.as_bytes());
    buf.make_ascii_lowercase();
    by_lowercase_extension(buf).unwrap_or(DEFAULT_TYPE)
}

fn by_lowercase_extension(extension: &[u8]) -> Option<&'static str> {
    let mime = match extension {
        // Text
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"css" => "text/css; charset=utf-8",
        b"js" | b"mjs" => "text/javascript; charset=utf-8",
        b"txt" | b"text" | b"log" => "text/plain; charset=utf-8",
        b"csv" => "text/csv; charset=utf-8",
        b"tsv" => "text/tab-separated-values; charset=utf-8",
        b"md" | b"markdown" => "text/markdown; charset=utf-8",
        b"vtt" => "text/vtt; charset=utf-8",
        b"ics" => "text/calendar; charset=utf-8",
        // Structured data
        b"json" | b"map" => "application/json",
        b"webmanifest" => "application/manifest+json",
        b"xml" => "application/xml",
        b"rss" => "application/rss+xml",
        b"atom" => "application/atom+xml",
        b"yaml" | b"yml" => "application/yaml",
        b"wasm" => "application/wasm",
        b"pdf" => "application/pdf",
        // Images
        b"svg" | b"svgz" => "image/svg+xml",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"webp" => "image/webp",
        b"avif" => "image/avif",
        b"ico" => "image/x-icon",
        b"bmp" => "image/bmp",
        b"tif" | b"tiff" => "image/tiff",
        // Archives
        b"zip" => "application/zip",
        b"gz" | b"tgz" => "application/gzip",
        b"tar" => "application/x-tar",
        b"bz2" => "application/x-bzip2",
        b"xz" => "application/x-xz",
        b"zst" => "application/zstd",
        b"7z" => "application/x-7z-compressed",
        // Audio and video
        b"mp4" | b"m4v" => "video/mp4",
        b"webm" => "video/webm",
        b"ogv" => "video/ogg",
        b"mov" => "video/quicktime",
        b"mp3" => "audio/mpeg",
        b"ogg" | b"oga" | b"opus" => "audio/ogg",
        b"wav" => "audio/wav",
        b"flac" => "audio/flac",
        b"m4a" => "audio/mp4",
        // Fonts
        b"woff" => "font/woff",
        b"woff2" => "font/woff2",
        b"ttf" => "font/ttf",
        b"otf" => "font/otf",
        _ => return None,
    };
    Some(mime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_of(name: &str) -> &'static str {
        content_type_for(Path::new(name))
    }

    #[test]
    fn common_extensions_have_their_types() {
        assert_eq!(type_of("/srv/index.html"), "text/html; charset=utf-8");
        assert_eq!(type_of("/srv/app.mjs"), "text/javascript; charset=utf-8");
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
        assert_eq!(type_of("/srv/blob.xyz"), DEFAULT_TYPE);
        assert_eq!(type_of("/srv/Makefile"), DEFAULT_TYPE);
        assert_eq!(type_of("/srv/.hidden"), DEFAULT_TYPE);
        assert_eq!(type_of("/srv/file.averyveryverylongextension"), DEFAULT_TYPE);
        assert_eq!(type_of("/srv/file.ünï"), DEFAULT_TYPE);
    }
}
