//! The access log: one line per request, in combined (default) or JSON-lines format, written
//! to stdout or a file by a dedicated thread so the request path never blocks on I/O.
//!
//! The queue to that thread holds at most [`QUEUE_LINES`] lines: when the writer falls behind
//! (a slow disk, a blocked stdout), further lines are dropped and counted in
//! [`dropped_lines`] rather than making a worker wait or the queue grow without bound.
//! Client-supplied text is escaped: in the combined format as nginx does (`"`, `\`, control
//! bytes and bytes from 0x7f as `\xHH`), so a line can't be split or forged; in JSON by
//! `serde_json`.
//!
//! Besides the request and its answer, a record holds what an operator needs to tell where a
//! request's time went and who ended it, as HAProxy's `httplog` does: the request ID, the
//! cluster, backend and bucket, the timers (queue wait, connect, response head, total; from
//! the request's own clocks, read only at phase changes), the retries and a two-letter
//! termination state. A record dropped before it was written (the client went away while
//! the request waited) is written then, as a client abort in the phase it was in.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::HttpRequest;

use super::error::ProxyError;
use super::trace::TraceHeaders;
use crate::config::{AccessLogConfig, AccessLogFormat};

/// Lines the queue to the writer thread holds at most.
pub const QUEUE_LINES: usize = 64 * 1024;

/// Lines dropped because the queue was full, since the process started.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Access log lines dropped since the process started because the writer fell behind (the
/// `director_access_log_dropped_total` metric).
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// A handle to the log writer thread.
#[derive(Clone)]
pub struct AccessLog {
    tx: SyncSender<String>,
    format: AccessLogFormat,
}

impl AccessLog {
    /// Starts the writer thread; `None` when the log is disabled.
    pub fn start(config: &AccessLogConfig) -> io::Result<Option<Arc<AccessLog>>> {
        if !config.enabled {
            return Ok(None);
        }
        let mut out: Box<dyn Write + Send> = match &config.path {
            None => Box::new(io::stdout()),
            Some(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        };
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE_LINES);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                while let Ok(line) = rx.recv() {
                    let mut ok = out.write_all(line.as_bytes()).is_ok();
                    // Write whatever else is queued before flushing once.
                    while let Ok(line) = rx.try_recv() {
                        ok &= out.write_all(line.as_bytes()).is_ok();
                    }
                    if !(ok && out.flush().is_ok()) {
                        log::error!("access log: write failed");
                    }
                }
            })?;
        Ok(Some(Arc::new(AccessLog {
            tx,
            format: config.format,
        })))
    }

    /// Queues `line` for the writer, or drops and counts it when the queue is full (or the
    /// writer is gone): never blocks.
    fn send(&self, line: String) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A log whose lines queue in the returned receiver, and a record in it (tests).
    #[cfg(test)]
    pub fn test_record() -> (Box<AccessRecord>, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::sync_channel(8);
        let log = Arc::new(AccessLog {
            tx,
            format: AccessLogFormat::Combined,
        });
        (Box::new(AccessRecord::new(log)), rx)
    }

    /// Begins the record of one request.
    pub fn record(self: &Arc<Self>, req: &HttpRequest, cluster: &str) -> Box<AccessRecord> {
        // Raw bytes: a value with obs-text is logged escaped rather than replaced by `-`.
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map_or_else(|| b"-".to_vec(), |v| v.as_bytes().to_vec())
        };
        let mut record = Box::new(AccessRecord::new(self.clone()));
        record.remote = req
            .peer_addr()
            .map_or_else(|| "-".to_owned(), |a| a.ip().to_string());
        record.request_line = format!("{} {} {:?}", req.method(), req.uri(), req.version());
        record.referer = header("referer");
        record.user_agent = header("user-agent");
        record.cluster = cluster.to_owned();
        record
    }
}

/// Who ended a request and in which phase, as HAProxy's two-letter termination state (the
/// README's "Termination states" lists them): `--` for a normal end.
pub type Termination = [u8; 2];

/// The termination state of a request that failed with `e` in `phase` (`H` waiting for the
/// response head, `D` relaying the body).
pub fn termination(e: &ProxyError, phase: u8) -> Termination {
    match e {
        ProxyError::Connect(cause) if cause.kind() == io::ErrorKind::TimedOut => *b"sC",
        ProxyError::Connect(_) => *b"SC",
        ProxyError::LocalResource(_) => *b"RC",
        ProxyError::Timeout(_) => [b's', phase],
        ProxyError::BadResponse(_) | ProxyError::Io(_) | ProxyError::Stale => [b'S', phase],
        ProxyError::ClientBody(_) => [b'C', phase],
        ProxyError::ClientTimeout => [b'c', phase],
        ProxyError::BadRequest(_) | ProxyError::LengthRequired => *b"PR",
    }
}

/// The phases a request goes through, for the termination state of one that ends early.
mod phase {
    /// Routing, the cache, until admission.
    pub const REQUEST: u8 = b'R';
    /// Waiting in a bucket's queue.
    pub const QUEUE: u8 = b'Q';
    /// Connecting to the backend, sending the request, waiting for the response head.
    pub const HEADERS: u8 = b'H';
    /// Relaying the response body.
    pub const DATA: u8 = b'D';
}

/// What is known about one request so far; written when the response ends.
pub struct AccessRecord {
    log: Arc<AccessLog>,
    started: Instant,
    at: SystemTime,
    remote: String,
    request_line: String,
    referer: Vec<u8>,
    user_agent: Vec<u8>,
    cluster: String,
    backend: String,
    status: u16,
    request_id: Option<actix_web::http::header::HeaderValue>,
    trace_id: Option<String>,
    bucket: String,
    /// Time spent in bucket queues (HAProxy `Tw`); `None` until admission.
    queue: Option<Duration>,
    /// Connecting to the backend that answered (`Tc`; zero for a pooled connection).
    connect: Option<Duration>,
    /// From the connection being ready to the response head (`Tr`).
    response: Option<Duration>,
    retries: u32,
    termination: Option<Termination>,
    phase: u8,
    written: bool,
    /// Bytes the client sent through a tunnel (an upgraded connection); `None` otherwise.
    bytes_in: Option<u64>,
}

impl AccessRecord {
    /// A record with every request field empty.
    fn new(log: Arc<AccessLog>) -> AccessRecord {
        AccessRecord {
            log,
            started: Instant::now(),
            at: SystemTime::now(),
            remote: String::new(),
            request_line: String::new(),
            referer: Vec::new(),
            user_agent: Vec::new(),
            cluster: String::new(),
            backend: String::new(),
            status: 0,
            request_id: None,
            trace_id: None,
            bucket: String::new(),
            queue: None,
            connect: None,
            response: None,
            retries: 0,
            termination: None,
            phase: phase::REQUEST,
            written: false,
            bytes_in: None,
        }
    }

    /// The request's ID and trace.
    pub fn set_trace(&mut self, trace: &TraceHeaders) {
        self.request_id = trace.request_id().map(|(_, v)| v.clone());
        self.trace_id = trace.trace_id().map(str::to_owned);
    }

    /// The bucket the request was classified into.
    pub fn set_bucket(&mut self, name: &str) {
        name.clone_into(&mut self.bucket);
    }

    /// The request waits in a queue.
    pub fn queued(&mut self) {
        self.phase = phase::QUEUE;
    }

    /// The request was admitted after waiting `waited` (zero: at once).
    pub fn admitted(&mut self, waited: Duration) {
        self.queue = Some(self.queue.unwrap_or_default() + waited);
        self.phase = phase::HEADERS;
    }

    /// The backend's response head arrived, `elapsed` after the attempt began, of which
    /// `connect` went into opening the connection (`None`: a pooled one).
    pub fn responded(&mut self, connect: Option<Duration>, elapsed: Duration) {
        let connect = connect.unwrap_or_default();
        self.connect = Some(connect);
        self.response = Some(elapsed.saturating_sub(connect));
        self.phase = phase::DATA;
    }

    /// Another backend is tried.
    pub fn retried(&mut self) {
        self.retries += 1;
    }

    /// Who ended the request, if it did not end normally; the first cause recorded wins.
    pub fn terminate(&mut self, termination: Termination) {
        self.termination.get_or_insert(termination);
    }

    /// The request failed with `e` in its current phase.
    pub fn failed(&mut self, e: &ProxyError) {
        self.terminate(termination(e, self.phase));
    }

    /// The client went away in the current phase.
    pub fn client_aborted(&mut self) {
        self.terminate([b'C', self.phase]);
    }

    /// The status sent to the client.
    pub fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    /// The backend that served the request.
    pub fn set_backend(&mut self, name: &str) {
        name.clone_into(&mut self.backend);
    }

    /// The bytes a client sent through its tunnel (logged as `bytes_in`).
    pub fn set_bytes_in(&mut self, bytes: u64) {
        self.bytes_in = Some(bytes);
    }

    /// Writes the line with the number of body bytes sent.
    pub fn finish(&mut self, bytes: u64) {
        self.written = true;
        let line = match self.log.format {
            AccessLogFormat::Combined => self.combined(bytes),
            AccessLogFormat::Json => self.json(bytes),
        };
        self.log.send(line);
    }

    fn combined(&self, bytes: u64) -> String {
        let mut line = String::with_capacity(160);
        let _ = write!(line, "{} - - [{}] \"", self.remote, clf_time(self.at));
        escape_into(&mut line, self.request_line.as_bytes());
        let _ = write!(line, "\" {} {} \"", self.status, bytes);
        escape_into(&mut line, &self.referer);
        line.push_str("\" \"");
        escape_into(&mut line, &self.user_agent);
        line.push_str("\" rid=\"");
        match &self.request_id {
            Some(id) => escape_into(&mut line, id.as_bytes()),
            None => line.push('-'),
        }
        let dash = |s: &str| if s.is_empty() { "-" } else { s }.to_owned();
        let ms = |d: Option<Duration>| d.map_or(-1, |d| d.as_millis() as i64);
        let _ = writeln!(
            line,
            "\" trace={} cluster={} backend={} bucket={} timers={}/{}/{}/{} retries={} term={}",
            self.trace_id.as_deref().unwrap_or("-"),
            dash(&self.cluster),
            dash(&self.backend),
            dash(&self.bucket),
            ms(self.queue),
            ms(self.connect),
            ms(self.response),
            self.started.elapsed().as_millis(),
            self.retries,
            self.termination_text(),
        );
        if let Some(n) = self.bytes_in {
            // A tunnel's other direction, after the line's fields (parsers of the line as
            // it was keep working).
            line.pop();
            let _ = writeln!(line, " bytes_in={n}");
        }
        line
    }

    fn termination_text(&self) -> &str {
        let code = self.termination.as_ref().map_or(&b"--"[..], |t| &t[..]);
        std::str::from_utf8(code).unwrap_or("??")
    }

    fn json(&self, bytes: u64) -> String {
        let secs = self
            .at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut line = serde_json::json!({
            "time": secs,
            "remote": self.remote,
            "request": self.request_line,
            "status": self.status,
            "bytes": bytes,
            "duration_ms": ms(self.started.elapsed()),
            "cluster": self.cluster,
            "backend": self.backend,
            "referer": String::from_utf8_lossy(&self.referer),
            "user_agent": String::from_utf8_lossy(&self.user_agent),
            "request_id": self.request_id.as_ref().map(|v| String::from_utf8_lossy(v.as_bytes())),
            "trace_id": self.trace_id,
            "bucket": self.bucket,
            "queue_ms": self.queue.map(ms),
            "connect_ms": self.connect.map(ms),
            "ttfb_ms": self.response.map(ms),
            "retries": self.retries,
            "termination": self.termination_text(),
        })
        .to_string();
        if let Some(n) = self.bytes_in {
            line.pop();
            let _ = write!(line, ",\"bytes_in\":{n}}}");
        }
        line.push('\n');
        line
    }
}

impl Drop for AccessRecord {
    /// A request dropped before its line was written ended early: the client went away while
    /// it waited (queued, or for the backend). Logged as nginx's 499 unless a status was set.
    fn drop(&mut self) {
        if self.written {
            return;
        }
        self.client_aborted();
        if self.status == 0 {
            self.status = 499;
        }
        self.finish(0);
    }
}

/// Milliseconds with microsecond precision.
fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// Appends `bytes` as nginx writes a variable into a log line (`escape=default`): `"`, `\`,
/// control bytes and bytes from 0x7f become `\xHH`, the rest is copied.
fn escape_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\' {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
}

/// `26/Nov/2026:15:26:10 +0000` (UTC).
fn clf_time(at: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A log whose queue holds `capacity` lines, and the receiving end of that queue.
    fn queue(format: AccessLogFormat, capacity: usize) -> (Arc<AccessLog>, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::sync_channel(capacity);
        (Arc::new(AccessLog { tx, format }), rx)
    }

    fn hostile_record(log: Arc<AccessLog>) -> AccessRecord {
        let mut record = AccessRecord::new(log);
        record.at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_706_770);
        record.remote = "192.0.2.1".to_owned();
        record.request_line = "GET /a\"b\\c\nd\x1be HTTP/1.1".to_owned();
        record.referer = b"-".to_vec();
        record.user_agent = b"ua\" \"forged\x7f\xc3\xa9".to_vec();
        record.cluster = "c".to_owned();
        record.backend = "b".to_owned();
        record.status = 200;
        record.written = true; // the tests write it themselves, or not at all
        record
    }

    #[test]
    fn client_text_is_escaped_as_nginx_does_and_exact_in_json() {
        let (log, _rx) = queue(AccessLogFormat::Combined, 1);
        let record = hostile_record(log);
        let line = record.combined(5);
        assert_eq!(
            line,
            "192.0.2.1 - - [26/Nov/2026:15:26:10 +0000] \"GET /a\\x22b\\x5Cc\\x0Ad\\x1Be HTTP/1.1\" \
             200 5 \"-\" \"ua\\x22 \\x22forged\\x7F\\xC3\\xA9\" rid=\"-\" trace=- cluster=c backend=b \
             bucket=- timers=-1/-1/-1/0 retries=0 term=--\n"
        );
        assert_eq!(line.matches('\n').count(), 1, "one line");
        assert_eq!(line.matches('"').count(), 8, "four quoted fields");
        let line = record.json(5);
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line:?}"
        );
        let doc: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(doc["request"], "GET /a\"b\\c\nd\x1be HTTP/1.1");
        assert_eq!(doc["user_agent"], "ua\" \"forged\x7f\u{e9}");
    }

    #[test]
    fn header_values_with_obs_text_are_kept_not_dashed() {
        let (log, _rx) = queue(AccessLogFormat::Json, 1);
        let ua = actix_web::http::header::HeaderValue::from_bytes(b"caf\xc3\xa9 \xff").expect("obs-text");
        let req = actix_web::test::TestRequest::get()
            .uri("/x?q=1")
            .insert_header(("user-agent", ua))
            .to_http_request();
        let record = log.record(&req, "c");
        let doc: serde_json::Value = serde_json::from_str(&record.json(0)).expect("valid JSON");
        assert_eq!(doc["user_agent"], "caf\u{e9} \u{fffd}");
        assert_eq!(doc["referer"], "-");
        let line = record.combined(0);
        assert!(line.contains("\"-\" \"caf\\xC3\\xA9 \\xFF\" rid="), "{line}");
    }

    #[test]
    fn timers_retries_termination_and_ids_are_written() {
        let (log, rx) = queue(AccessLogFormat::Combined, 4);
        let mut record = hostile_record(log);
        record.written = false;
        record.request_id = Some(actix_web::http::header::HeaderValue::from_static("id\"1"));
        record.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        record.set_bucket("vip");
        record.started = Instant::now() - Duration::from_secs(30);
        record.queued();
        record.admitted(Duration::from_millis(5));
        record.responded(Some(Duration::from_millis(1)), Duration::from_millis(21));
        record.retried();
        let line = record.combined(5);
        assert!(
            line.contains(
                " rid=\"id\\x221\" trace=4bf92f3577b34da6a3ce929d0e0e4736 cluster=c backend=b bucket=vip \
                 timers=5/1/20/300"
            ),
            "{line}"
        );
        assert!(line.ends_with(" retries=1 term=--\n"), "{line}");
        let doc: serde_json::Value = serde_json::from_str(&record.json(5)).expect("valid JSON");
        assert_eq!(doc["request_id"], "id\"1");
        assert_eq!(doc["queue_ms"], 5.0);
        assert_eq!(doc["connect_ms"], 1.0);
        assert_eq!(doc["ttfb_ms"], 20.0);
        assert_eq!(doc["retries"], 1);
        // Dropped unwritten in the data phase: a client abort, written once.
        drop(record);
        let line = rx.try_recv().expect("written on drop");
        assert!(
            line.ends_with(" term=CD\n") && line.contains("\" 200 0 "),
            "{line}"
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_request_dropped_while_queued_is_a_499_client_abort() {
        let (log, rx) = queue(AccessLogFormat::Json, 2);
        let req = actix_web::test::TestRequest::get().to_http_request();
        let mut record = log.record(&req, "c");
        record.queued();
        drop(record);
        let doc: serde_json::Value = serde_json::from_str(&rx.try_recv().expect("line")).expect("JSON");
        assert_eq!(
            (doc["status"].as_u64(), doc["termination"].as_str()),
            (Some(499), Some("CQ"))
        );
        assert!(doc["queue_ms"].is_null(), "never admitted");
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let (log, rx) = queue(AccessLogFormat::Combined, 2);
        let mut record = hostile_record(log.clone());
        let before = dropped_lines();
        for _ in 0..5 {
            record.finish(1);
        }
        assert_eq!(dropped_lines() - before, 3);
        assert_eq!(rx.try_iter().count(), 2, "the queue kept what fit");
        record.finish(1);
        assert_eq!(rx.try_iter().count(), 1, "room again once the writer caught up");
        assert_eq!(dropped_lines() - before, 3);
    }

    #[test]
    fn clf_dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_706_770);
        assert_eq!(clf_time(t), "26/Nov/2026:15:26:10 +0000");
        assert_eq!(clf_time(SystemTime::UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
