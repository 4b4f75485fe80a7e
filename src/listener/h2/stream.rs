//! One HTTP/2 stream: its request as actix-http's [`Request`] (`:authority` as `Host`, the
//! target in origin form), the app's answer sent within the client's flow-control window, and
//! the end of the request when the client resets the stream.
//!
//! Hot path.

use std::cell::RefCell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::error::PayloadError;
use actix_http::header::{self, HeaderMap, HeaderValue};
use actix_http::BoxedPayloadStream;
use actix_http::{HttpMessage, Method, Payload, Request, Response, ResponseHead, StatusCode, Uri, Version};
use actix_service::Service;
use bytes::Bytes;
use futures_util::Stream;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use tokio::time::{timeout_at, Instant};

use super::{H2Settings, OpenStream};
use crate::listener::conn::REQUEST_LINE_TOO_LONG;
use crate::listener::https_policy::HttpsPolicy;
use crate::transport::client_abort::ThroughAbort;

/// Serves one stream: `req` through `app`, the answer to `respond`.
pub(super) async fn serve<S, B>(
    req: http02::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    app: Rc<S>,
    peer: Option<SocketAddr>,
    settings: H2Settings,
    _open: OpenStream,
    policy: Option<Arc<HttpsPolicy>>,
) where
    S: Service<Request> + 'static,
    S::Error: Into<Response<BoxBody>>,
    S::Response: Into<Response<B>>,
    B: MessageBody + 'static,
{
    let Some(request) = request(req, peer, settings.max_request_line) else {
        let refusal = Response::with_body(StatusCode::URI_TOO_LONG, REQUEST_LINE_TOO_LONG);
        let mut refusal = refusal.map_into_boxed_body();
        refusal.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return send(
            refusal,
            respond,
            false,
            &ThroughAbort::default(),
            settings.send_timeout,
        )
        .await;
    };
    // The request's own flag (HTTP/1 keeps one per connection): its cluster sets it for
    // `on_client_abort: ignore`.
    let through_abort = ThroughAbort::default();
    request.extensions_mut().insert(through_abort.clone());
    if let Some(policy) = policy {
        request.extensions_mut().insert(policy);
    }
    let is_head = request.method() == Method::HEAD;
    let answer = app.call(request);
    let mut answer = pin!(answer);
    let reset = poll_fn(|cx| respond.poll_reset(cx).map(|_| ()));
    // The reset first: it also fails the request body, and the answer to that must not win.
    let answered = tokio::select! {
        biased;
        () = reset => None,
        answer = &mut answer => Some(answer),
    };
    match answered {
        Some(Ok(res)) => {
            send(
                res.into(),
                respond,
                is_head,
                &through_abort,
                settings.send_timeout,
            )
            .await
        }
        Some(Err(err)) => {
            send(
                err.into(),
                respond,
                is_head,
                &through_abort,
                settings.send_timeout,
            )
            .await
        }
        // The client reset the stream before the answer: the request ends here (dropping its
        // future frees what it holds), unless it goes on to its end.
        None if through_abort.is_set() => {
            if let Ok(res) = answer.await {
                drain(res.into().into_body()).await;
            }
        }
        None => log::debug!("HTTP/2 stream reset by the client before its answer"),
    }
}

/// The request of `req`, or `None` when its request line would be too long for HTTP/1
/// (`414`, as the HTTP/1 guard answers).
fn request(
    req: http02::Request<RecvStream>,
    peer: Option<SocketAddr>,
    max_request_line: usize,
) -> Option<Request> {
    let (parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if parts.method.as_str().len() + 1 + target + 1 + "HTTP/1.1".len() > max_request_line {
        return None;
    }
    let payload = match body.is_end_stream() {
        true => Payload::None,
        false => {
            let body: BoxedPayloadStream = Box::pin(RequestBody(body));
            Payload::Stream { payload: body }
        }
    };
    let mut request = Request::with_payload(payload);
    let head = request.head_mut();
    head.method = parts.method;
    head.version = Version::HTTP_2;
    head.peer_addr = peer;
    let mut headers = HeaderMap::from(parts.headers);
    // `:authority` is the request's host (RFC 9113 §8.3.1): routing, the backend's `Host` and
    // FastCGI's `SERVER_NAME` read it from there, as for HTTP/1.1.
    if let Some(authority) = parts.uri.authority() {
        let host = authority.as_str().rsplit('@').next().unwrap_or_default();
        if let Ok(value) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, value);
        }
    }
    head.headers = headers;
    head.uri = match parts.uri.path_and_query() {
        Some(pq) => Uri::from(pq.clone()),
        None => parts.uri,
    };
    Some(request)
}

/// A request body: h2's data frames, their window given back as director takes them.
struct RequestBody(RecvStream);

impl Stream for RequestBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let body = &mut self.get_mut().0;
        match ready!(body.poll_data(cx)) {
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                Poll::Ready(Some(Ok(chunk)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(PayloadError::Http2Payload(e)))),
            None => Poll::Ready(None),
        }
    }
}

/// Sends `res` on the stream; a HEAD request gets the head only.
async fn send<B: MessageBody>(
    res: Response<B>,
    mut respond: SendResponse<Bytes>,
    is_head: bool,
    through_abort: &ThroughAbort,
    send_timeout: Duration,
) {
    let (res, body) = res.into_parts();
    let mut size = body.size();
    let head = response_head(res.head(), &mut size);
    let ends = is_head || size.is_eof();
    let stream = match respond.send_response(head, ends) {
        Ok(stream) => stream,
        Err(e) => {
            log::debug!("HTTP/2 response head not sent: {e}");
            if through_abort.is_set() {
                drain(body).await;
            }
            return;
        }
    };
    match size {
        _ if !ends => send_body(body, stream, through_abort, send_timeout).await,
        // Polled to its end as HTTP/1 does for HEAD (its encoder drops the bytes), so that
        // a relayed body ends as a finished one.
        BodySize::Stream | BodySize::Sized(_) => drain(body).await,
        BodySize::None => {}
    }
}

/// Why a body stopped before its end.
enum Stopped {
    /// The stream was reset, by the client or with the connection.
    Reset,
    /// The client granted no window for `send_timeout`.
    Stalled,
}

/// Sends `body` chunk by chunk, each within the window the client grants: the next chunk is
/// polled only once the previous one was handed to h2, so a slow client holds director (and,
/// through the relayed body, the backend) back instead of having its response buffered.
async fn send_body<B: MessageBody>(
    body: B,
    mut stream: SendStream<Bytes>,
    through_abort: &ThroughAbort,
    send_timeout: Duration,
) {
    let mut body = pin!(body);
    loop {
        let next = poll_fn(|cx| match body.as_mut().poll_next(cx) {
            Poll::Ready(next) => Poll::Ready(Ok(next)),
            // A reset stream ends a body that waits for its backend, too.
            Poll::Pending => stream.poll_reset(cx).map(|_| Err(Stopped::Reset)),
        })
        .await;
        let stopped = match next {
            Ok(Some(Ok(chunk))) => match send_chunk(&mut stream, chunk, send_timeout).await {
                Ok(()) => continue,
                Err(stopped) => stopped,
            },
            Ok(None) => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Ok(Some(Err(e))) => {
                log::debug!("HTTP/2 response body failed: {}", e.into());
                stream.send_reset(Reason::INTERNAL_ERROR);
                return;
            }
            Err(stopped) => stopped,
        };
        match stopped {
            Stopped::Reset if through_abort.is_set() => drain(body).await,
            Stopped::Reset => log::debug!("HTTP/2 stream reset by the client during its answer"),
            Stopped::Stalled => {
                log::info!("HTTP/2 client granted no window for {send_timeout:?}: stream reset");
                stream.send_reset(Reason::CANCEL);
            }
        }
        return;
    }
}

/// Hands `chunk` to h2 piece by piece as the client's window allows.
async fn send_chunk(
    stream: &mut SendStream<Bytes>,
    mut chunk: Bytes,
    send_timeout: Duration,
) -> Result<(), Stopped> {
    while !chunk.is_empty() {
        stream.reserve_capacity(chunk.len());
        let mut granted = stream.capacity();
        let deadline = Instant::now() + send_timeout;
        while granted == 0 {
            granted = match timeout_at(deadline, poll_fn(|cx| stream.poll_capacity(cx))).await {
                Ok(Some(Ok(n))) => n,
                Ok(Some(Err(_)) | None) => return Err(Stopped::Reset),
                Err(_) => return Err(Stopped::Stalled),
            };
        }
        let piece = chunk.split_to(granted.min(chunk.len()));
        stream.send_data(piece, false).map_err(|_| Stopped::Reset)?;
    }
    Ok(())
}

/// Reads `body` to its end, dropping its bytes.
async fn drain<B: MessageBody>(body: B) {
    let mut body = pin!(body);
    while let Some(Ok(_)) = poll_fn(|cx| body.as_mut().poll_next(cx)).await {}
}

/// The HTTP/2 head for `head`: without the fields HTTP/2 forbids (RFC 9113 §8.2.2), with the
/// body's length and a `Date`.
fn response_head(head: &ResponseHead, size: &mut BodySize) -> http02::Response<()> {
    if head.status == StatusCode::NO_CONTENT || head.status.is_informational() {
        *size = BodySize::None;
    }
    // Ready-made HTTP/1 lines are set only for HTTP/1 requests (`proxy::response::relay`).
    debug_assert!(
        head.raw_headers().is_empty(),
        "HTTP/1 header lines on an HTTP/2 response"
    );
    let mut res = http02::Response::new(());
    *res.status_mut() = head.status;
    *res.version_mut() = Version::HTTP_2;
    let headers = res.headers_mut();
    headers.reserve(head.headers.len() + 2);
    let sized = matches!(size, BodySize::Sized(_));
    let mut has_date = false;
    for (name, value) in head.headers.iter() {
        match *name {
            header::CONNECTION | header::TRANSFER_ENCODING | header::UPGRADE | header::TE => continue,
            header::CONTENT_LENGTH if sized => continue,
            header::DATE => has_date = true,
            _ if matches!(name.as_str(), "keep-alive" | "proxy-connection") => continue,
            _ => {}
        }
        headers.append(name.clone(), value.clone());
    }
    if let BodySize::Sized(n) = size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(*n));
    }
    if !has_date {
        headers.insert(header::DATE, date());
    }
    res
}

thread_local! {
    /// The `Date` value of the current second.
    static DATE: RefCell<(u64, HeaderValue)> = const { RefCell::new((0, HeaderValue::from_static(""))) };
}

/// `Date` for now, formatted once a second per thread.
fn date() -> HeaderValue {
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let text = httpdate::fmt_http_date(now);
            if let Ok(value) = HeaderValue::from_str(&text) {
                *cached = (second, value);
            }
        }
        cached.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_are_not_sent_over_http2() {
        let mut res = Response::new(StatusCode::OK);
        for (name, value) in [
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-connection", "close"),
            ("te", "trailers"),
            ("content-length", "99"),
            ("x-kept", "1"),
        ] {
            res.headers_mut().append(
                header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let mut size = BodySize::Sized(5);
        let head = response_head(res.head(), &mut size);
        let names: Vec<_> = head.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(head.headers()["content-length"], "5");
        assert_eq!(head.headers()["x-kept"], "1");
        assert!(head.headers().contains_key("date"));
        assert_eq!(names.len(), 3, "{names:?}");
    }
}
