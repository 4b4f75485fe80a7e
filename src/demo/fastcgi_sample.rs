//! The demo's FastCGI responder: a stand-in for php-fpm built on the project's own codec
//! ([`crate::proto::fastcgi`]), so `--demo` balances FastCGI without PHP installed.
//!
//! It plays the application side: BEGIN_REQUEST, PARAMS and STDIN in; a CGI response out
//! (`Status:`, a few headers, a small HTML page that names the sample and echoes the request's
//! `REQUEST_URI` and `SCRIPT_NAME`) as STDOUT records, then END_REQUEST. One request at a time
//! per connection (`FCGI_MPXS_CONNS` is 0), several in turn when the web server sets
//! `FCGI_KEEP_CONN`; without it the connection closes after the answer, as the specification
//! asks. GET_VALUES is answered, other management records get UNKNOWN_TYPE.
//!
//! A front controller's view of the path: a last segment `missing` answers 404, `broken` 500
//! (with a line on STDERR, which director logs); a `SCRIPT_FILENAME` ending in `ping.php` (the
//! health check) answers `pong` at once. Everything else is a 200 page after a varied delay.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Connection, Latency, Listener};
use crate::proto::fastcgi::{self, ProtocolStatus, Record, RecordDecoder, RecordType, Role};

/// Most PARAMS bytes one request may send (php-fpm's own limit is of this order).
const MAX_PARAMS_LEN: usize = 1024 * 1024;

/// What GET_VALUES reports.
const MAX_CONNS: &str = "64";

/// Serves `listener` as the FastCGI sample named `name`.
pub(super) fn spawn(listener: Listener, name: &str, latency: Latency) {
    let sample = Arc::new(FastCgiSample {
        name: name.into(),
        latency,
        served: AtomicU64::new(0),
    });
    listener.spawn_accept_loop(move |connection| {
        let sample = sample.clone();
        tokio::spawn(async move {
            if let Err(e) = sample.converse(connection).await {
                log::debug!("demo FastCGI sample {}: {e}", sample.name);
            }
        });
    });
}

struct FastCgiSample {
    name: Box<str>,
    latency: Latency,
    served: AtomicU64,
}

/// The request being received on a connection.
#[derive(Debug)]
struct Exchange {
    id: u16,
    keep_conn: bool,
    params: BytesMut,
    params_done: bool,
    body_len: u64,
}

/// What a record asks of the connection.
#[derive(Debug)]
enum Step {
    Nothing,
    /// Bytes to send at once (management answers, refusals).
    Send(BytesMut),
    /// The request is complete: answer it.
    Answer(Exchange),
    /// The web server gave up on the request: end it.
    Abort(Exchange),
}

impl FastCgiSample {
    async fn converse(&self, mut connection: Box<dyn Connection>) -> io::Result<()> {
        let mut decoder = RecordDecoder::unrestricted();
        let mut input = BytesMut::with_capacity(16 * 1024);
        let mut current: Option<Exchange> = None;
        let mut on_this_connection = 0u64;
        loop {
            while let Some(record) = decoder.decode(&mut input).map_err(invalid)? {
                let (keep_conn, out) = match on_record(record, &mut current)? {
                    Step::Nothing => continue,
                    Step::Send(out) => (true, out),
                    Step::Abort(exchange) => {
                        let mut out = BytesMut::new();
                        fastcgi::end_request(&mut out, exchange.id, 0, ProtocolStatus::RequestComplete);
                        (exchange.keep_conn, out)
                    }
                    Step::Answer(exchange) => {
                        on_this_connection += 1;
                        (
                            exchange.keep_conn,
                            self.answer(&exchange, on_this_connection).await?,
                        )
                    }
                };
                connection.write_all(&out).await?;
                if !keep_conn {
                    return connection.shutdown().await;
                }
            }
            if connection.read_buf(&mut input).await? == 0 {
                return decoder.finish().map_err(invalid);
            }
        }
    }

    /// The records that answer `exchange`, after the sample's latency.
    async fn answer(&self, exchange: &Exchange, on_this_connection: u64) -> io::Result<BytesMut> {
        let params = fastcgi::parse_pairs(&exchange.params).map_err(invalid)?;
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| *n == name.as_bytes())
                .map_or(String::new(), |(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let (uri, script_filename) = (param("REQUEST_URI"), param("SCRIPT_FILENAME"));
        let mut out = BytesMut::with_capacity(2048);
        let id = exchange.id;
        if script_filename.ends_with("ping.php") {
            let head = "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\npong\n";
            fastcgi::stream(&mut out, RecordType::Stdout, id, head.as_bytes());
        } else {
            tokio::time::sleep(self.latency.next()).await;
            let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
            let path = uri.split('?').next().unwrap_or_default();
            let (status, reason) = match path.rsplit('/').next() {
                Some("missing") => (404, "Not Found"),
                Some("broken") => (500, "Internal Server Error"),
                _ => (200, "OK"),
            };
            if status == 500 {
                let complaint = format!("{}: {path} failed on purpose (demo)\n", self.name);
                // Like php-fpm, no empty record ends STDERR: director logs each record as a line.
                fastcgi::stream(&mut out, RecordType::Stderr, id, complaint.as_bytes());
            }
            let rows = [
                ("REQUEST_METHOD", param("REQUEST_METHOD")),
                ("REQUEST_URI", uri.clone()),
                ("SCRIPT_NAME", param("SCRIPT_NAME")),
                ("SCRIPT_FILENAME", script_filename),
                ("request body", format!("{} bytes", exchange.body_len)),
                (
                    "request",
                    format!("#{n} here, #{on_this_connection} on this connection"),
                ),
            ];
            let page = page(&self.name, status, reason, &rows);
            let head = format!(
                "Status: {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Cache-Control: no-store\r\nX-Demo-Backend: {}\r\n\r\n",
                self.name
            );
            fastcgi::stream(&mut out, RecordType::Stdout, id, head.as_bytes());
            fastcgi::stream(&mut out, RecordType::Stdout, id, page.as_bytes());
        }
        fastcgi::end_stream(&mut out, RecordType::Stdout, id);
        fastcgi::end_request(&mut out, id, 0, ProtocolStatus::RequestComplete);
        Ok(out)
    }
}

/// Applies one record from the web server to the connection's state.
fn on_record(record: Record, current: &mut Option<Exchange>) -> io::Result<Step> {
    let id = record.request_id;
    let is_current = current.as_ref().is_some_and(|e| e.id == id);
    Ok(match record.kind {
        RecordType::BeginRequest if id != fastcgi::NULL_REQUEST_ID => {
            let begin = fastcgi::parse_begin_request(&record.content).map_err(invalid)?;
            let refusal = if current.is_some() {
                Some(ProtocolStatus::CantMpxConn)
            } else if begin.role != Role::Responder {
                Some(ProtocolStatus::UnknownRole)
            } else {
                None
            };
            match refusal {
                Some(status) => {
                    let mut out = BytesMut::new();
                    fastcgi::end_request(&mut out, id, 0, status);
                    Step::Send(out)
                }
                None => {
                    *current = Some(Exchange {
                        id,
                        keep_conn: begin.keep_conn,
                        params: BytesMut::new(),
                        params_done: false,
                        body_len: 0,
                    });
                    Step::Nothing
                }
            }
        }
        RecordType::Params if is_current => {
            let Some(exchange) = current.as_mut() else {
                return Ok(Step::Nothing);
            };
            if record.content.is_empty() {
                exchange.params_done = true;
            } else if !exchange.params_done {
                if exchange.params.len() + record.content.len() > MAX_PARAMS_LEN {
                    return Err(invalid("PARAMS longer than the sample accepts"));
                }
                exchange.params.extend_from_slice(&record.content);
            }
            Step::Nothing
        }
        RecordType::Stdin if is_current => match current.as_mut() {
            Some(exchange) if !record.content.is_empty() => {
                exchange.body_len += record.content.len() as u64;
                Step::Nothing
            }
            _ => current.take().map_or(Step::Nothing, Step::Answer),
        },
        RecordType::AbortRequest if is_current => current.take().map_or(Step::Nothing, Step::Abort),
        RecordType::GetValues => {
            let asked = fastcgi::parse_pairs(&record.content).map_err(invalid)?;
            let known = [
                (fastcgi::VAR_MAX_CONNS, MAX_CONNS),
                (fastcgi::VAR_MAX_REQS, MAX_CONNS),
                (fastcgi::VAR_MPXS_CONNS, "0"),
            ];
            let answers = known
                .iter()
                .filter(|(name, _)| asked.iter().any(|(n, _)| n == name));
            let mut out = BytesMut::new();
            fastcgi::get_values_result(&mut out, answers.map(|&(n, v)| (n, v))).map_err(invalid)?;
            Step::Send(out)
        }
        kind if id == fastcgi::NULL_REQUEST_ID => {
            let mut out = BytesMut::new();
            fastcgi::unknown_type(&mut out, kind.as_u8());
            Step::Send(out)
        }
        // Records for requests that aren't active are ignored, as the specification asks.
        _ => Step::Nothing,
    })
}

/// The HTML page of an answer, with every echoed value escaped.
fn page(name: &str, status: u16, reason: &str, rows: &[(&str, String)]) -> String {
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{name} — director demo</title></head>\n\
         <body>\n<h1>{name}: {status} {reason}</h1>\n\
         <p>A FastCGI responder built into <code>director --demo</code> (no PHP involved).</p>\n<table>\n"
    );
    for (label, value) in rows {
        html.push_str(&format!("<tr><th>{label}</th><td>{}</td></tr>\n", escape(value)));
    }
    html.push_str("</table>\n</body></html>\n");
    html
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: RecordType, request_id: u16, content: &[u8]) -> Record {
        Record {
            kind,
            request_id,
            content: bytes::Bytes::copy_from_slice(content),
        }
    }

    fn begin(id: u16, role: u16, keep_conn: bool) -> Record {
        let [r0, r1] = role.to_be_bytes();
        record(
            RecordType::BeginRequest,
            id,
            &[r0, r1, u8::from(keep_conn), 0, 0, 0, 0, 0],
        )
    }

    #[test]
    fn a_request_is_answered_when_stdin_ends() {
        let mut current = None;
        assert!(matches!(
            on_record(begin(1, 1, true), &mut current),
            Ok(Step::Nothing)
        ));
        let mut params = BytesMut::new();
        fastcgi::encode_pair(&mut params, b"REQUEST_URI", b"/php/x").expect("pair");
        assert!(matches!(
            on_record(record(RecordType::Params, 1, &params), &mut current),
            Ok(Step::Nothing)
        ));
        assert!(matches!(
            on_record(record(RecordType::Params, 1, b""), &mut current),
            Ok(Step::Nothing)
        ));
        assert!(matches!(
            on_record(record(RecordType::Stdin, 1, b"abc"), &mut current),
            Ok(Step::Nothing)
        ));
        match on_record(record(RecordType::Stdin, 1, b""), &mut current) {
            Ok(Step::Answer(e)) => {
                assert_eq!((e.id, e.keep_conn, e.body_len), (1, true, 3));
                assert_eq!(
                    fastcgi::parse_pairs(&e.params).expect("pairs"),
                    [(&b"REQUEST_URI"[..], &b"/php/x"[..])]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(current.is_none());
    }

    #[test]
    fn refuses_a_second_request_and_other_roles() {
        let mut current = None;
        let _ = on_record(begin(1, 1, true), &mut current);
        let Ok(Step::Send(out)) = on_record(begin(2, 1, true), &mut current) else {
            panic!("a second request is refused");
        };
        let mut expected = BytesMut::new();
        fastcgi::end_request(&mut expected, 2, 0, ProtocolStatus::CantMpxConn);
        assert_eq!(out, expected);
        let mut idle = None;
        let Ok(Step::Send(out)) = on_record(begin(3, 2, false), &mut idle) else {
            panic!("the authorizer role is refused");
        };
        let mut expected = BytesMut::new();
        fastcgi::end_request(&mut expected, 3, 0, ProtocolStatus::UnknownRole);
        assert_eq!(out, expected);
    }

    #[test]
    fn management_records_are_answered() {
        let mut query = BytesMut::new();
        fastcgi::get_values(&mut query, [fastcgi::VAR_MPXS_CONNS]).expect("query");
        let mut decoder = RecordDecoder::unrestricted();
        let query = decoder.decode(&mut query).expect("decode").expect("record");
        let Ok(Step::Send(out)) = on_record(query, &mut None) else {
            panic!("GET_VALUES is answered");
        };
        let mut expected = BytesMut::new();
        fastcgi::get_values_result(&mut expected, [(fastcgi::VAR_MPXS_CONNS, "0")]).expect("answer");
        assert_eq!(out, expected);
        let Ok(Step::Send(out)) = on_record(record(RecordType::Other(42), 0, b""), &mut None) else {
            panic!("an unknown management type is answered");
        };
        let mut expected = BytesMut::new();
        fastcgi::unknown_type(&mut expected, 42);
        assert_eq!(out, expected);
    }

    #[test]
    fn echoed_values_are_escaped() {
        let html = page("php01", 200, "OK", &[("REQUEST_URI", "/<script>&\"'".to_owned())]);
        assert!(html.contains("/&lt;script&gt;&amp;&quot;&#39;"), "{html}");
        assert!(!html.contains("<script>"));
    }
}
