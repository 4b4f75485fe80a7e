//! How many client connections director serves at once: the open-file limit it raises at
//! start-up, and the connection limit derived from it the way HAProxy derives `maxconn` from
//! `ulimit -n` (control plane, start-up only).
//!
//! Each client connection may need a backend connection too, so the derived limit is
//! `(soft limit - reserve) / 2`; the reserve covers the listeners, the admin connections,
//! health probes, log and state files. Accepting beyond the limit would only fail later with
//! EMFILE, in the middle of someone's request.

use std::io;

/// File descriptors kept back for everything that is not a client or backend connection.
pub const FD_RESERVE: u64 = 256;

/// The open-file limit (`RLIMIT_NOFILE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// The current open-file limit.
pub fn nofile_limit() -> io::Result<NofileLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(NofileLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// Raises the soft open-file limit to the hard one (as nginx's `worker_rlimit_nofile` and
/// HAProxy do); an unlimited hard limit is capped at the kernel's `nr_open`. Returns the
/// limit before and after.
pub fn raise_nofile_limit() -> io::Result<(NofileLimit, NofileLimit)> {
    let before = nofile_limit()?;
    let target = match before.hard {
        libc::RLIM_INFINITY => nr_open().unwrap_or(1 << 20),
        hard => hard,
    };
    if before.soft >= target {
        return Ok((before, before));
    }
    let limit = libc::rlimit {
        rlim_cur: target,
        rlim_max: before.hard,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((before, nofile_limit()?))
}

/// The kernel's ceiling for any open-file limit.
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The client connections `soft` open files allow: one file for the client, one for its
/// backend, after [`FD_RESERVE`]; at least 1.
pub fn derived_max_connections(soft: u64) -> usize {
    let pairs = soft.saturating_sub(FD_RESERVE) / 2;
    usize::try_from(pairs).unwrap_or(usize::MAX).max(1)
}

/// A total split evenly over `workers` (actix-server limits each worker); at least 1 each.
pub fn per_worker(total: usize, workers: usize) -> usize {
    (total / workers.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_connections_from_the_open_file_limit() {
        assert_eq!(derived_max_connections(1024), 384);
        assert_eq!(derived_max_connections(1_048_576), 524_160);
        assert_eq!(derived_max_connections(100), 1, "never 0");
        assert_eq!(per_worker(384, 2), 192);
        assert_eq!(per_worker(5, 2), 2, "the total is not exceeded");
        assert_eq!(per_worker(1, 4), 1);
    }

    #[test]
    fn reads_and_raises_the_limit() {
        let now = nofile_limit().expect("getrlimit");
        assert!(now.soft <= now.hard);
        let (before, after) = raise_nofile_limit().expect("setrlimit");
        assert_eq!(before.hard, after.hard);
        assert!(after.soft >= before.soft);
        assert!(after.soft == after.hard || before.hard == libc::RLIM_INFINITY);
    }
}
