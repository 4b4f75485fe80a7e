//! Opening a file beneath a directory handle, the only way X-Sendfile opens files: resolution
//! starts at the root's open handle and may never leave it, so no rename or symlink swap made
//! while a request is being resolved can lead it out of the root.
//!
//! Two resolvers, one set of rules:
//! - `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` (Linux 5.6+): the kernel fails
//!   any step that leaves the directory with `EXDEV`.
//! - A component walk where `openat2` is missing or forbidden (older kernels; seccomp profiles
//!   such as older Docker defaults answer `ENOSYS` or `EPERM`): one `openat(O_NOFOLLOW)` per
//!   component from the directory's handle, `..` going back to the handle it came from (never
//!   above the start), symlinks read with `readlinkat` and resolved here, by hand.
//!
//! The rules: relative symlinks are followed as long as every step stays beneath the directory;
//! `..` above it, absolute paths and absolute symlinks (even ones pointing back inside) fail
//! with `EXDEV`; more than 40 symlinks in one open fail with `ELOOP`. `openat2` also refuses
//! `/proc` magic links (`ELOOP`); the walk never jumps through one either, since it only ever
//! resolves the text a link reads as. The file is opened read-only and non-blocking (a FIFO
//! opens at once instead of waiting for a writer; reads of regular files ignore the flag).
//!
//! Blocking: call from a blocking-pool thread, never from a worker.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use libc::c_int;

/// How many symlinks one open may pass through: the kernel's own limit (`MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// How often one walk tries a step again whose name changed between opening and reading it as
/// a symlink (someone is swapping it): after that, the step's error stands.
const MAX_RETRIES: usize = 3;

/// Flags of the file itself: read-only, non-blocking (a FIFO must not hold the thread), never
/// a controlling terminal.
const FILE_FLAGS: c_int = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

/// Flags of a directory handle (a root, or a step of the walk): a path-only handle where the
/// platform has one, which, like the kernel's own walk, needs search but not read permission.
#[cfg(target_os = "linux")]
pub const DIR_FLAGS: c_int = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
#[cfg(not(target_os = "linux"))]
pub const DIR_FLAGS: c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

/// How a path is resolved beneath a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolver {
    /// The kernel's `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`.
    Openat2,
    /// The `openat` component walk, for kernels or sandboxes without `openat2`.
    Walk,
}

/// Opens `rel` (relative; `.` for the directory itself) beneath `dir` for reading, with the
/// resolver this process can use. Errors are the OS's: `ENOENT`/`ENOTDIR` for what is not
/// there, `EXDEV` for a way out of `dir`, `ELOOP`, `EACCES`, ...
pub fn open(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<File> {
    open_with(preferred(dir), dir, rel)
}

/// Opens `rel` beneath `dir` with `resolver`; `openat2` falls back to the walk when it is
/// refused (`ENOSYS`, `EPERM`) or asks for a retry after a concurrent rename (`EAGAIN`).
pub fn open_with(resolver: Resolver, dir: BorrowedFd<'_>, rel: &Path) -> io::Result<File> {
    let path = c_string(rel.as_os_str().as_bytes())?;
    if resolver == Resolver::Openat2 {
        match openat2_beneath(dir, &path, FILE_FLAGS) {
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(libc::ENOSYS | libc::EPERM | libc::EAGAIN)
                ) => {}
            opened => return opened.map(File::from),
        }
    }
    walk(dir, rel.as_os_str().as_bytes()).map(File::from)
}

/// `openat2` when this process may use it (probed once, on the first directory opened in),
/// the walk otherwise.
fn preferred(dir: BorrowedFd<'_>) -> Resolver {
    static PREFERRED: OnceLock<Resolver> = OnceLock::new();
    *PREFERRED.get_or_init(|| match openat2_beneath(dir, c".", DIR_FLAGS) {
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
            log::warn!(
                "x-sendfile: openat2 is unavailable ({err}); files are opened with a component walk \
                 beneath each root instead"
            );
            Resolver::Walk
        }
        _ => Resolver::Openat2,
    })
}

/// One step of the walk.
#[derive(Debug)]
enum Step {
    /// `..`: back to the directory this one was entered from.
    Up,
    /// A name to open in the current directory.
    Name(CString),
}

/// The steps of `path` (relative, as bytes), in order, and whether it names a directory (ends
/// in `/` or `/.`). Empty and `.` components are no steps.
fn steps(path: &[u8]) -> io::Result<(Vec<Step>, bool)> {
    let names_dir = matches!(path.rsplit(|&b| b == b'/').next(), Some(b"" | b"."));
    let steps = path
        .split(|&b| b == b'/')
        .filter(|piece| !matches!(*piece, b"" | b"."))
        .map(|piece| match piece {
            b".." => Ok(Step::Up),
            name => c_string(name).map(Step::Name),
        })
        .collect::<io::Result<_>>()?;
    Ok((steps, names_dir))
}

/// The walk: `path` (relative) opened beneath `start`, one component at a time, following no
/// symlink implicitly (`O_NOFOLLOW`): a component that turns out to be a symlink is read and
/// its target's components take its place, so whatever each name is at the moment it is
/// opened, nothing is ever reached that isn't beneath `start`.
fn walk(start: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    if path.first() == Some(&b'/') {
        return Err(escape());
    }
    let (path_steps, mut names_dir) = steps(path)?;
    // Pending steps, the next one last.
    let mut pending: Vec<Step> = path_steps.into_iter().rev().collect();
    // The directories entered below `start`, innermost last; `..` pops one.
    let mut entered: Vec<OwnedFd> = Vec::new();
    let (mut symlinks, mut retries) = (0, 0);
    while let Some(step) = pending.pop() {
        let here = entered.last().map_or(start, |dir| dir.as_fd());
        let name = match step {
            Step::Up => {
                entered.pop().ok_or_else(escape)?;
                continue;
            }
            Step::Name(name) => name,
        };
        let last = pending.is_empty();
        let flags = match (last, names_dir) {
            (false, _) => DIR_FLAGS,
            (true, false) => FILE_FLAGS,
            (true, true) => FILE_FLAGS | libc::O_DIRECTORY,
        };
        let err = match openat(here, &name, flags | libc::O_NOFOLLOW) {
            Ok(fd) if last => return Ok(fd),
            Ok(dir) => {
                entered.push(dir);
                continue;
            }
            Err(err) => err,
        };
        // A symlink opened with O_NOFOLLOW fails with ELOOP (ENOTDIR with O_DIRECTORY); those
        // errors from anything else stand as they are.
        if !matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) {
            return Err(err);
        }
        let target = match readlinkat(here, &name) {
            Ok(target) => target,
            // Not a symlink (now): the error stands, unless the name was swapped between the
            // two calls, which another try tells.
            Err(not_link) if not_link.raw_os_error() == Some(libc::EINVAL) => {
                if retries == MAX_RETRIES {
                    return Err(err);
                }
                retries += 1;
                pending.push(Step::Name(name));
                continue;
            }
            Err(other) => return Err(other),
        };
        symlinks += 1;
        if symlinks > MAX_SYMLINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        if target.first() == Some(&b'/') {
            return Err(escape());
        }
        let (link_steps, link_names_dir) = steps(&target)?;
        names_dir |= last && link_names_dir;
        pending.extend(link_steps.into_iter().rev());
    }
    // No name left to open ("", ".", "a/..", a link to "."): the directory itself.
    let here = entered.last().map_or(start, |dir| dir.as_fd());
    openat(here, c".", FILE_FLAGS | libc::O_DIRECTORY)
}

/// The error of a step out of the directory, as `openat2` reports it.
fn escape() -> io::Error {
    io::Error::from_raw_os_error(libc::EXDEV)
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Runs a system call that returns -1 on failure, again while it is interrupted.
fn retry_interrupted<T: Copy + PartialEq + From<i8>>(mut call: impl FnMut() -> T) -> io::Result<T> {
    loop {
        let result = call();
        if result != T::from(-1) {
            return Ok(result);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Takes ownership of a descriptor a successful open just returned.
fn owned(fd: c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open call and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: c_int) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is an open descriptor.
    retry_interrupted(|| unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(owned)
}

fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    // Link targets are shorter than PATH_MAX; one that fills the buffer is cut, so refused.
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let len = retry_interrupted(|| {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `name` is NUL-terminated.
        unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
    })?;
    let len = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    if len >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(len);
    Ok(buf)
}

#[cfg(target_os = "linux")]
fn openat2_beneath(dir: BorrowedFd<'_>, path: &CStr, flags: c_int) -> io::Result<OwnedFd> {
    // SAFETY: `open_how` is three integers, for which all zeroes is the default; its fields
    // are set below (the struct is non-exhaustive, so it can't be written as a literal).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    let fd = retry_interrupted(|| {
        // SAFETY: `path` is NUL-terminated and `how` is a valid `open_how` of the size passed;
        // both outlive the call; `dir` is an open descriptor.
        unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        }
    })?;
    let fd = c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    Ok(owned(fd))
}

/// No `openat2` off Linux: the walk does it all.
#[cfg(not(target_os = "linux"))]
fn openat2_beneath(_dir: BorrowedFd<'_>, _path: &CStr, _flags: c_int) -> io::Result<OwnedFd> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

#[cfg(test)]
mod tests;
