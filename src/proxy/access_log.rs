//! The access log: one line per request, in combined (default) or JSON-lines format, written
//! to stdout or a file by a dedicated thread so the request path never blocks on I/O.
//!
//! The queue to that thread holds at most [`QUEUE_LINES`] lines: when the writer falls behind
//! (a slow disk, a blocked stdout), further lines are dropped and counted in
//! [`dropped_lines`] rather than making a worker wait or the queue grow without bound.
//! Client-supplied text is escaped: in the combined format as nginx does (`"`, `\`, control
//! bytes and bytes from 0x7f as `\xHH`), so a line can't be split or forged; in JSON by
//! `serde_json`.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::HttpRequest;

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

    /// Begins the record of one request.
    pub fn record(self: &Arc<Self>, req: &HttpRequest, cluster: &str) -> Box<AccessRecord> {
        // Raw bytes: a value with obs-text is logged escaped rather than replaced by `-`.
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map_or_else(|| b"-".to_vec(), |v| v.as_bytes().to_vec())
        };
        Box::new(AccessRecord {
            log: self.clone(),
            started: Instant::now(),
            at: SystemTime::now(),
            remote: req
                .peer_addr()
                .map_or_else(|| "-".to_owned(), |a| a.ip().to_string()),
            request_line: format!("{} {} {:?}", req.method(), req.uri(), req.version()),
            referer: header("referer"),
            user_agent: header("user-agent"),
            cluster: cluster.to_owned(),
            backend: String::new(),
            status: 0,
        })
    }
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
}

impl AccessRecord {
    /// The status sent to the client.
    pub fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    /// The backend that served the request.
    pub fn set_backend(&mut self, name: &str) {
        name.clone_into(&mut self.backend);
    }

    /// Writes the line with the number of body bytes sent.
    pub fn finish(&self, bytes: u64) {
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
        line.push_str("\"\n");
        line
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
            "duration_ms": self.started.elapsed().as_secs_f64() * 1000.0,
            "cluster": self.cluster,
            "backend": self.backend,
            "referer": String::from_utf8_lossy(&self.referer),
            "user_agent": String::from_utf8_lossy(&self.user_agent),
        })
        .to_string();
        line.push('\n');
        line
    }
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
        AccessRecord {
            log,
            started: Instant::now(),
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_706_770),
            remote: "192.0.2.1".to_owned(),
            request_line: "GET /a\"b\\c\nd\x1be HTTP/1.1".to_owned(),
            referer: b"-".to_vec(),
            user_agent: b"ua\" \"forged\x7f\xc3\xa9".to_vec(),
            cluster: "c".to_owned(),
            backend: "b".to_owned(),
            status: 200,
        }
    }

    #[test]
    fn client_text_is_escaped_as_nginx_does_and_exact_in_json() {
        let (log, _rx) = queue(AccessLogFormat::Combined, 1);
        let record = hostile_record(log);
        let line = record.combined(5);
        assert_eq!(
            line,
            "192.0.2.1 - - [26/Nov/2026:15:26:10 +0000] \"GET /a\\x22b\\x5Cc\\x0Ad\\x1Be HTTP/1.1\" \
             200 5 \"-\" \"ua\\x22 \\x22forged\\x7F\\xC3\\xA9\"\n"
        );
        assert_eq!(line.matches('\n').count(), 1, "one line");
        assert_eq!(line.matches('"').count(), 6, "three quoted fields");
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
        assert!(line.ends_with("\"-\" \"caf\\xC3\\xA9 \\xFF\"\n"), "{line}");
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let (log, rx) = queue(AccessLogFormat::Combined, 2);
        let record = hostile_record(log.clone());
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
