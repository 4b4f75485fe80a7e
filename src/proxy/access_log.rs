//! The access log: one line per request, in combined (default) or JSON-lines format, written
//! to stdout or a file by a dedicated thread so the request path never blocks on I/O.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::HttpRequest;

use crate::config::{AccessLogConfig, AccessLogFormat};

/// A handle to the log writer thread.
#[derive(Clone)]
pub struct AccessLog {
    tx: Sender<String>,
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
        let (tx, rx) = mpsc::channel::<String>();
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

    /// Begins the record of one request.
    pub fn record(self: &Arc<Self>, req: &HttpRequest, cluster: &str) -> Box<AccessRecord> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
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
    referer: String,
    user_agent: String,
    cluster: String,
    backend: String,
    status: u16,
}

impl AccessRecord {
    pub fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    pub fn set_backend(&mut self, name: &str) {
        name.clone_into(&mut self.backend);
    }

    /// Writes the line with the number of body bytes sent.
    pub fn finish(&self, bytes: u64) {
        let line = match self.log.format {
            AccessLogFormat::Combined => self.combined(bytes),
            AccessLogFormat::Json => self.json(bytes),
        };
        let _ = self.log.tx.send(line);
    }

    fn combined(&self, bytes: u64) -> String {
        let mut line = String::with_capacity(160);
        let _ = writeln!(
            line,
            "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\"",
            self.remote,
            clf_time(self.at),
            self.request_line,
            self.status,
            bytes,
            self.referer,
            self.user_agent
        );
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
            "referer": self.referer,
            "user_agent": self.user_agent,
        })
        .to_string();
        line.push('\n');
        line
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

    #[test]
    fn clf_dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_706_770);
        assert_eq!(clf_time(t), "26/Nov/2026:15:26:10 +0000");
        assert_eq!(clf_time(SystemTime::UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
