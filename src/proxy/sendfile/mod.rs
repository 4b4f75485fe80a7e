//! X-Sendfile: serving the local file a backend names in `X-Sendfile` or `X-Accel-Redirect`
//! instead of the backend's body.
//!
//! Owns the whole client response for that file: confinement to the configured roots, the method
//! check, validators and conditional requests, byte ranges (single and `multipart/byteranges`),
//! the MIME type and the body reader. Hot path, and pure of actix's service machinery: [`serve`]
//! resolves to a [`FileResponse`] that the pipeline turns into its response. The worker thread
//! never touches the disk: the open and `fstat` run on the runtime's blocking pool, and so do
//! the body's reads.
//!
//! Parts: `resolve` (confinement, 404/403) over `roots` (the roots' open handles) and `beneath`
//! (opening beneath a handle: `openat2`, or a component walk where it is unavailable),
//! `conditional` (ETag, Last-Modified, preconditions, If-Range), `ranges` (the Range header),
//! `multipart` (byteranges bodies), `mime` (Content-Type by extension), `body` (the reader);
//! this file decides the status in RFC 9110 §13.2.2 order.
//!
//! Zero-copy `sendfile(2)` is out of reach: actix-web's body API hands the server `Bytes`, never a
//! file descriptor, so the file is read in large chunks with positioned reads instead.

mod beneath;
mod body;
pub mod conditional;
mod mime;
mod multipart;
pub mod ranges;
mod resolve;
mod roots;
#[cfg(test)]
mod swapper;
#[cfg(test)]
mod tests;

use std::ffi::OsStr;
use std::future::Future;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};

pub use body::{FileBody, FilePiece};
pub use resolve::SendfileError;

use body::Segment;
use conditional::{Precondition, Validators};
use ranges::RangeRequest;
use resolve::ConfinedFile;

/// The complete client response for an X-Sendfile target.
#[derive(Debug)]
pub struct FileResponse {
    pub status: StatusCode,
    /// Headers to send (Content-Type, ETag, Last-Modified, Accept-Ranges, Content-Range, Allow,
    /// ...); never Content-Length (the body size says it).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: FileBody,
    /// HEAD only: the Content-Length the same GET would carry (the body itself is empty), for a
    /// pipeline that wants to advertise it; `None` otherwise.
    pub head_content_length: Option<u64>,
}

/// Resolves and serves `target` for a request. The returned future borrows nothing (what it
/// needs of the arguments is copied), so the caller may drop what they came from before
/// awaiting it; it opens the file on the blocking pool.
pub fn serve(
    target: &[u8],
    roots: &[PathBuf],
    method: &Method,
    headers: &HeaderMap,
) -> impl Future<Output = FileResponse> + 'static {
    let allowed = method == Method::GET || method == Method::HEAD;
    let is_head = method == Method::HEAD;
    let (target, roots, headers) = (target.to_vec(), roots.to_vec(), deciding_headers(headers));
    async move {
        if !allowed {
            return FileResponse::empty(StatusCode::METHOD_NOT_ALLOWED)
                .with_static_header(header::ALLOW, "GET, HEAD");
        }
        match confine(target, roots).await {
            Ok((target, confined)) => {
                respond(Path::new(OsStr::from_bytes(&target)), confined, is_head, &headers)
            }
            Err(err) => FileResponse::empty(err.status()),
        }
    }
}

/// The request headers that decide the response (preconditions, ranges), copied so that the
/// response can be decided after the file is opened elsewhere.
fn deciding_headers(headers: &HeaderMap) -> HeaderMap {
    const DECIDING: [HeaderName; 6] = [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
        header::RANGE,
    ];
    let mut deciding = HeaderMap::new();
    for name in DECIDING {
        for value in headers.get_all(&name) {
            deciding.append(name.clone(), value.clone());
        }
    }
    deciding
}

/// The response for the opened file at `path`.
fn respond(path: &Path, confined: ConfinedFile, is_head: bool, headers: &HeaderMap) -> FileResponse {
    let ConfinedFile { file, metadata } = confined;
    let validators = Validators::of(&metadata);
    match conditional::evaluate(headers, &validators) {
        Precondition::Failed => return FileResponse::empty(StatusCode::PRECONDITION_FAILED),
        Precondition::NotModified => {
            return FileResponse::empty(StatusCode::NOT_MODIFIED).with_validators(&validators)
        }
        Precondition::Proceed => {}
    }

    let size = metadata.len();
    let content_type = mime::content_type_for(path);
    let representation = FileResponse::empty(StatusCode::OK)
        .with_validators(&validators)
        .with_static_header(header::ACCEPT_RANGES, "bytes");
    if is_head {
        return FileResponse {
            head_content_length: Some(size),
            ..representation.with_header(header::CONTENT_TYPE, content_type)
        };
    }
    match requested_ranges(headers, &validators, size) {
        RangeRequest::Ignored => representation
            .with_header(header::CONTENT_TYPE, content_type)
            .with_body(FileBody::new(file, vec![Segment::whole_file(size)])),
        RangeRequest::Unsatisfiable => FileResponse::empty(StatusCode::RANGE_NOT_SATISFIABLE)
            .with_text_header(header::CONTENT_RANGE, ranges::unsatisfied_content_range(size)),
        RangeRequest::Satisfiable(ranges) => {
            let partial = representation.with_status(StatusCode::PARTIAL_CONTENT);
            match ranges.as_slice() {
                [range] => partial
                    .with_header(header::CONTENT_TYPE, content_type)
                    .with_text_header(header::CONTENT_RANGE, range.content_range(size))
                    .with_body(FileBody::new(file, vec![Segment::file_range(*range)])),
                _ => {
                    let boundary = multipart::new_boundary();
                    let part_type = content_type.to_str().unwrap_or(mime::DEFAULT_TYPE);
                    let segments = multipart::segments(&ranges, size, part_type, &boundary);
                    partial
                        .with_text_header(header::CONTENT_TYPE, multipart::content_type(&boundary))
                        .with_body(FileBody::new(file, segments))
                }
            }
        }
    }
}

/// The target and its open file, or why not (logged: refusals as warnings); opened on the
/// blocking pool.
async fn confine(target: Vec<u8>, roots: Vec<PathBuf>) -> Result<(Vec<u8>, ConfinedFile), SendfileError> {
    let open = move || {
        let confined = resolve::target_path(&target).and_then(|path| resolve::open_within(path, &roots));
        match confined {
            Ok(confined) => Ok((target, confined)),
            Err(err) => {
                match err {
                    SendfileError::NotFound => log::debug!("x-sendfile {}: {err}", target.escape_ascii()),
                    _ => log::warn!("x-sendfile {}: refused, {err}", target.escape_ascii()),
                }
                Err(err)
            }
        }
    };
    let opened = match body::blocking(open) {
        Ok(opening) => opening.await.map_err(std::io::Error::other),
        Err(no_runtime) => Err(no_runtime),
    };
    opened.unwrap_or_else(|lost| {
        log::warn!("x-sendfile: the open did not complete: {lost}");
        Err(SendfileError::Unreadable(lost))
    })
}

/// The ranges a GET asks for, if it carries exactly one `Range` and `If-Range` (if any) holds.
fn requested_ranges(headers: &HeaderMap, validators: &Validators, size: u64) -> RangeRequest {
    let mut values = headers.get_all(header::RANGE);
    match (values.next(), values.next()) {
        (Some(range), None) if conditional::if_range_holds(headers, validators) => {
            ranges::resolve(range.as_bytes(), size)
        }
        _ => RangeRequest::Ignored,
    }
}

impl FileResponse {
    fn empty(status: StatusCode) -> Self {
        FileResponse {
            status,
            headers: Vec::new(),
            body: FileBody::empty(),
            head_content_length: None,
        }
    }

    fn with_status(self, status: StatusCode) -> Self {
        FileResponse { status, ..self }
    }

    fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn with_static_header(self, name: HeaderName, value: &'static str) -> Self {
        self.with_header(name, HeaderValue::from_static(value))
    }

    /// Adds a header built here from ASCII (dates, tags, numbers), so it is always a valid value.
    fn with_text_header(self, name: HeaderName, value: String) -> Self {
        match HeaderValue::try_from(value) {
            Ok(value) => self.with_header(name, value),
            Err(_) => self,
        }
    }

    fn with_validators(self, validators: &Validators) -> Self {
        let response = self.with_text_header(header::ETAG, validators.etag());
        match validators.last_modified() {
            Some(date) => response.with_text_header(header::LAST_MODIFIED, date),
            None => response,
        }
    }

    fn with_body(self, body: FileBody) -> Self {
        FileResponse { body, ..self }
    }

    /// The first value of header `name`, if any.
    pub fn header(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value)
    }
}
