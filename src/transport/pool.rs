//! The one keep-alive pool: idle backend connections per worker, keyed by backend, with the
//! integrity rules that keep one client's bytes from reaching another.
//!
//! Hot path, single-threaded: each worker owns its pool (a thread-local), so checkout and
//! checkin are a `RefCell` borrow, never a lock or a cross-thread hop. The rules:
//! - a connection is pooled only when its exchange ended cleanly (the caller decides: complete
//!   response, no unread bytes, no framing doubt) and its backend is still in the topology;
//! - a connection is handed out only when it is younger than its cluster's `backend_keep_alive`
//!   ([`DEFAULT_BACKEND_KEEP_ALIVE`] unless configured) and not readable
//!   while idle: bytes or an EOF that arrived after the response ended mean the backend either
//!   closed it or sent something nobody asked for, and the next request must not read them.
//!   The check reads the reactor's cached readiness, so a clean reuse costs no syscall;
//! - a per-worker reaper closes idle connections that turned readable, grew old, or belong to
//!   a backend that left the topology, so nothing lingers in CLOSE_WAIT.
//!
//! Backends that bind a process to each open connection (php-fpm) also keep their open
//! connections within their capacity across workers ([`BackendConns::set_limit`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::{IdleState, TimedStream};
use crate::clock;
use crate::config::DEFAULT_BACKEND_KEEP_ALIVE;

/// Idle connections kept per backend and worker.
pub const MAX_IDLE_PER_BACKEND: usize = 256;

/// How long a backend caught sending bytes nobody asked for gets no connection reuse: a late
/// response that lands after the next request was written on a reused connection can't be
/// told from that request's answer, so once a backend has shown it does that, its
/// connections serve one request each.
pub const DISTRUST_PERIOD: Duration = Duration::from_secs(15 * 60);

/// How often each worker's reaper looks at its idle connections.
pub const REAP_INTERVAL: Duration = Duration::from_millis(500);

/// Read buffer size of a backend connection.
pub const READ_CHUNK: usize = 16 * 1024;

static NEXT_GROUP: AtomicU64 = AtomicU64::new(1);

/// The connections of one backend across all workers: its identity in every pool, whether it
/// has left the topology, and (for backends that hold a process per connection) how many are
/// open and idle against its capacity.
#[derive(Debug)]
pub struct BackendConns {
    id: u64,
    name: String,
    retired: AtomicBool,
    /// How long an idle connection may wait for reuse, in milliseconds.
    idle_timeout_ms: AtomicU64,
    /// Until when (milliseconds after [`epoch`]) its connections are not reused.
    distrusted_until_ms: AtomicU64,
    share: Option<IdleShare>,
}

/// The process's reference instant for timestamps kept in atomics.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis_since_epoch() -> u64 {
    u64::try_from(clock::elapsed_std(epoch()).as_millis()).unwrap_or(u64::MAX)
}

impl BackendConns {
    /// `limit_open`: keep open connections within the backend's capacity across workers
    /// (php-fpm keeps one process per open connection, idle or not).
    pub fn new(name: &str, limit_open: bool) -> Arc<BackendConns> {
        Arc::new(BackendConns {
            id: NEXT_GROUP.fetch_add(1, SeqCst),
            name: name.to_owned(),
            retired: AtomicBool::new(false),
            idle_timeout_ms: AtomicU64::new(DEFAULT_BACKEND_KEEP_ALIVE.as_millis() as u64),
            distrusted_until_ms: AtomicU64::new(0),
            share: limit_open.then(IdleShare::default),
        })
    }

    /// The backend left the topology: its idle connections are closed by every worker's
    /// reaper, and connections finishing their last exchange are closed instead of pooled.
    pub fn retire(&self) {
        self.retired.store(true, SeqCst);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(SeqCst)
    }

    /// The backend sent bytes nobody asked for (after a response, or on an idle connection):
    /// for [`DISTRUST_PERIOD`] from now its connections are used for one request each.
    pub fn distrust(&self) {
        let until = millis_since_epoch() + DISTRUST_PERIOD.as_millis() as u64;
        let before = self.distrusted_until_ms.swap(until, SeqCst);
        if before <= millis_since_epoch() {
            log::warn!(
                "backend '{}' sent bytes nobody asked for: its connections are not reused for {} min",
                self.name,
                DISTRUST_PERIOD.as_secs() / 60
            );
        }
    }

    /// Whether connections to the backend may be reused now.
    pub fn is_trusted(&self) -> bool {
        self.distrusted_until_ms.load(Relaxed) <= millis_since_epoch()
    }

    /// How long an idle connection may wait for reuse before it is closed.
    pub fn set_idle_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.idle_timeout_ms.store(ms, SeqCst);
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.load(Relaxed))
    }

    /// The backend's capacity (0 = unlimited), for backends that limit open connections.
    pub fn set_limit(&self, limit: u32) {
        if let Some(share) = &self.share {
            share.limit.store(limit as usize, SeqCst);
        }
    }

    /// Open connections to the backend in all workers (0 unless limited).
    pub fn open(&self) -> usize {
        self.share.as_ref().map_or(0, |s| s.open.load(SeqCst))
    }
}

/// A connection to a backend with its read buffer. Dropping it closes it.
pub struct Conn {
    pub io: TimedStream,
    /// Bytes read and not consumed yet.
    pub buf: BytesMut,
    /// Counts the connection open in its backend's [`IdleShare`], if limited.
    _open: Option<OpenGuard>,
}

impl Conn {
    /// Wraps a fresh connection to the backend of `group`.
    pub fn new(io: TimedStream, group: &Arc<BackendConns>) -> Conn {
        let open = group.share.as_ref().map(|share| {
            share.open.fetch_add(1, SeqCst);
            if share.over_limit() && share.idle.load(SeqCst) > 0 {
                share.release.notify_one();
            }
            OpenGuard(group.clone())
        });
        Conn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            _open: open,
        }
    }
}

struct OpenGuard(Arc<BackendConns>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Some(share) = &self.0.share {
            share.open.fetch_sub(1, SeqCst);
        }
    }
}

/// Open and idle connections of a limited backend across workers, and the signal that asks a
/// worker to close an idle one.
///
/// With a backend's `capacity` equal to its process count, admission keeps the requests in
/// flight within it; but an idle connection pooled on one worker still holds a process that
/// another worker's new connection would wait for. So a worker that opens a connection beyond
/// the limit asks another worker to close an idle one, and a connection finishing while the
/// limit is exceeded is closed instead of pooled. Within the limit nothing is closed.
#[derive(Debug, Default)]
struct IdleShare {
    idle: AtomicUsize,
    open: AtomicUsize,
    /// 0 = unlimited.
    limit: AtomicUsize,
    release: tokio::sync::Notify,
}

impl IdleShare {
    fn over_limit(&self) -> bool {
        let limit = self.limit.load(SeqCst);
        limit > 0 && self.open.load(SeqCst) > limit
    }
}

/// An idle connection in a pool.
struct Idle {
    conn: Conn,
    since: Instant,
    group: Arc<BackendConns>,
    _counted: IdleMark,
}

/// Counts a connection idle in its backend's share (limited backends) while it is pooled.
struct IdleMark(Arc<BackendConns>);

impl IdleMark {
    fn new(group: &Arc<BackendConns>) -> IdleMark {
        if let Some(share) = &group.share {
            share.idle.fetch_add(1, SeqCst);
        }
        IdleMark(group.clone())
    }
}

impl Drop for IdleMark {
    fn drop(&mut self) {
        if let Some(share) = &self.0.share {
            share.idle.fetch_sub(1, SeqCst);
        }
    }
}

/// One worker's idle connections.
#[derive(Default)]
pub struct Pool {
    /// Keyed by backend ids, numbers from one process-wide counter that no client chooses:
    /// foldhash (what actix-http's header map uses) instead of the default SipHash, which is
    /// made for keys an attacker picks and cost more than the rest of a lookup.
    idle: RefCell<HashMap<u64, Vec<Idle>, foldhash::fast::RandomState>>,
    reaping: Cell<bool>,
    /// Backends whose release requests this worker serves.
    watched: RefCell<Vec<u64>>,
}

thread_local! {
    static POOL: Rc<Pool> = Rc::default();
}

/// This worker's pool.
pub fn local() -> Rc<Pool> {
    POOL.with(Rc::clone)
}

/// Why a pooled connection was not handed out.
fn unusable(entry: &mut Idle, now: Instant) -> Option<&'static str> {
    if entry.group.is_retired() {
        return Some("backend left the topology");
    }
    if now.duration_since(entry.since) >= entry.group.idle_timeout() {
        return Some("idle timeout");
    }
    match entry.conn.io.idle_state() {
        IdleState::Quiet => None,
        IdleState::Closed => Some("closed by the backend"),
        IdleState::Unexpected => {
            log::warn!(
                "backend '{}': bytes arrived on an idle keep-alive connection; closing it",
                entry.group.name
            );
            entry.group.distrust();
            Some("unexpected bytes")
        }
        IdleState::Failed => Some("socket error"),
    }
}

impl Pool {
    /// The most recently used idle connection to `group`'s backend that is fit for a new
    /// request; unfit ones met on the way are closed.
    pub fn checkout(&self, group: &BackendConns) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&group.id)?;
        if !group.is_trusted() {
            list.clear();
            return None;
        }
        let now = clock::now_std();
        while let Some(mut entry) = list.pop() {
            match unusable(&mut entry, now) {
                None => return Some(entry.conn),
                Some(why) => log::debug!("backend '{}': pooled connection dropped: {why}", group.name),
            }
        }
        None
    }

    /// Keeps `conn`, whose last exchange ended cleanly, for reuse by this worker — unless the
    /// backend left the topology, already has enough idle connections here, or (limited
    /// backends) has more connections open than it serves at once.
    pub fn checkin(self: &Rc<Self>, group: &Arc<BackendConns>, conn: Conn) {
        if group.is_retired() || !conn.buf.is_empty() || !group.is_trusted() {
            return;
        }
        // Counted idle before the limit is checked, while a worker that opens a connection
        // counts it before it looks for idle ones: with sequentially consistent counters at
        // least one of the two sees the other, so an idle connection over the limit is always
        // closed by one side.
        let entry = Idle {
            _counted: IdleMark::new(group),
            conn,
            since: clock::now_std(),
            group: group.clone(),
        };
        if group.share.as_ref().is_some_and(IdleShare::over_limit) {
            return;
        }
        {
            let mut idle = self.idle.borrow_mut();
            let list = idle.entry(group.id).or_default();
            if list.len() >= MAX_IDLE_PER_BACKEND {
                return;
            }
            list.push(entry);
        }
        if !self.reaping.replace(true) {
            actix_rt::spawn(reap(Rc::downgrade(self)));
        }
        if group.share.is_some() && !self.watched.borrow().contains(&group.id) {
            self.watched.borrow_mut().push(group.id);
            actix_rt::spawn(serve_releases(Rc::downgrade(self), group.clone()));
        }
    }

    /// Idle connections in this worker's pool, for tests and stats.
    pub fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }

    /// Closes every idle connection that is no longer fit for reuse.
    fn reap_once(&self) {
        let now = clock::now_std();
        let mut idle = self.idle.borrow_mut();
        idle.retain(|_, list| {
            list.retain_mut(|entry| unusable(entry, now).is_none());
            // A distrusted backend's connections must not wait for a reuse that won't come.
            !list.is_empty() && list[0].group.is_trusted()
        });
    }

    /// Closes one idle connection to `group`'s backend, if this worker has one.
    fn close_one(&self, group: &BackendConns) -> bool {
        let mut idle = self.idle.borrow_mut();
        idle.get_mut(&group.id).and_then(Vec::pop).is_some()
    }
}

/// The worker's reaper: runs while the pool lives.
async fn reap(pool: Weak<Pool>) {
    let mut ticks = tokio::time::interval(REAP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.reap_once();
    }
}

/// Closes one of this worker's idle connections to a limited backend per release request;
/// passes the request on when it has none but others still do.
async fn serve_releases(pool: Weak<Pool>, group: Arc<BackendConns>) {
    let Some(share) = &group.share else {
        return;
    };
    loop {
        share.release.notified().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        if group.is_retired() {
            return;
        }
        if !pool.close_one(&group) && share.idle.load(SeqCst) > 0 && share.over_limit() {
            share.release.notify_one();
            // Let another worker's watcher take it.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Stream;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (Conn, TcpStream, Arc<BackendConns>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let group = BackendConns::new("b", false);
        let io = TimedStream::new(Stream::Tcp(client), Duration::from_secs(1));
        (Conn::new(io, &group), server, group)
    }

    #[actix_rt::test]
    async fn a_quiet_connection_is_reused_last_in_first_out() {
        let pool = Rc::new(Pool::default());
        let (a, _sa, group) = pair().await;
        pool.checkin(&group, a);
        assert_eq!(pool.idle_count(), 1);
        assert!(pool.checkout(&group).is_some());
        assert!(pool.checkout(&group).is_none());
    }

    #[actix_rt::test]
    async fn late_bytes_or_a_close_while_idle_make_a_connection_unusable() {
        let pool = Rc::new(Pool::default());
        let (a, mut server_a, group) = pair().await;
        pool.checkin(&group, a);
        server_a.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        // Seen by the checkout or already closed by the reaper.
        crate::test_util::eventually_sync(|| {
            let mut idle = pool.idle.borrow_mut();
            let entry = idle.get_mut(&group.id).and_then(|l| l.last_mut());
            entry.is_none_or(|e| e.conn.io.idle_state() != IdleState::Quiet)
        })
        .await;
        assert!(pool.checkout(&group).is_none(), "late bytes: not handed out");

        let (b, server_b, _) = pair().await;
        pool.checkin(&group, b);
        drop(server_b);
        crate::test_util::eventually_sync(|| {
            pool.reap_once();
            pool.idle_count() == 0
        })
        .await;
    }

    #[actix_rt::test]
    async fn a_backend_that_sent_unasked_bytes_gets_no_reuse_for_a_while() {
        let pool = Rc::new(Pool::default());
        let (a, mut server_a, group) = pair().await;
        let (b, _sb, _) = pair().await;
        pool.checkin(&group, a);
        pool.checkin(&group, b);
        server_a.write_all(b"late").await.unwrap();
        crate::test_util::eventually_sync(|| {
            pool.reap_once();
            !group.is_trusted()
        })
        .await;
        assert_eq!(pool.idle_count(), 0, "its other idle connections go too");
        let (c, _sc, _) = pair().await;
        pool.checkin(&group, c);
        assert_eq!(pool.idle_count(), 0, "not pooled while distrusted");
        assert!(pool.checkout(&group).is_none());
    }

    #[actix_rt::test]
    async fn retired_backends_lose_their_connections() {
        let pool = Rc::new(Pool::default());
        let (a, _sa, group) = pair().await;
        pool.checkin(&group, a);
        group.retire();
        pool.reap_once();
        assert_eq!(pool.idle_count(), 0);
        let (b, _sb, _) = pair().await;
        pool.checkin(&group, b);
        assert_eq!(pool.idle_count(), 0, "not pooled after retirement");
    }

    #[actix_rt::test]
    async fn connections_with_unread_bytes_are_not_pooled() {
        let pool = Rc::new(Pool::default());
        let (mut a, _sa, group) = pair().await;
        a.buf.extend_from_slice(b"x");
        pool.checkin(&group, a);
        assert_eq!(pool.idle_count(), 0);
    }

    #[actix_rt::test]
    async fn limited_backends_keep_open_connections_within_capacity() {
        let pool = Rc::new(Pool::default());
        let group = BackendConns::new("php", true);
        group.set_limit(1);
        let (a, _sa, _) = pair().await;
        let (b, _sb, _) = pair().await;
        let a = Conn::new(a.io, &group);
        let b = Conn::new(b.io, &group);
        assert_eq!(group.open(), 2);
        pool.checkin(&group, a);
        assert_eq!(pool.idle_count(), 0, "over the limit: closed, not pooled");
        assert_eq!(group.open(), 1);
        pool.checkin(&group, b);
        assert_eq!(pool.idle_count(), 1, "within the limit: pooled");
        let b = pool.checkout(&group).expect("pooled");
        assert_eq!(group.share.as_ref().unwrap().idle.load(SeqCst), 0);
        drop(b);
        assert_eq!(group.open(), 0);
    }
}
