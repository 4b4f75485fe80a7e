//! Test helper, shared by `beneath`'s unit tests and `tests/it/sendfile.rs` (which includes this
//! file by path): a thread that keeps swapping a directory for a symlink, to race opens with.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A thread that exchanges `dir/swap` and `dir/swap-alt` atomically (`renameat2` with
/// `RENAME_EXCHANGE`) as fast as it can, until stopped or dropped.
pub struct Swapper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Swapper {
    /// Starts swapping `dir/swap` and `dir/swap-alt` (both must exist).
    pub fn start(dir: &Path) -> Swapper {
        let c_path = |name: &str| CString::new(dir.join(name).as_os_str().as_bytes()).expect("no NUL");
        let (swap, alt) = (c_path("swap"), c_path("swap-alt"));
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut swaps = 0;
            while !stopped.load(Ordering::Relaxed) {
                // SAFETY: both paths are NUL-terminated and outlive the call.
                let exchanged = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        swap.as_ptr(),
                        libc::AT_FDCWD,
                        alt.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(exchanged, 0, "renameat2: {}", io::Error::last_os_error());
                swaps += 1;
            }
            swaps
        });
        Swapper {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops swapping; how many swaps were made.
    pub fn stop(mut self) -> u64 {
        self.halt().expect("the swapping thread failed")
    }

    fn halt(&mut self) -> std::thread::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(Ok(0), JoinHandle::join)
    }
}

impl Drop for Swapper {
    /// A test that fails early leaves no thread spinning.
    fn drop(&mut self) {
        let _ = self.halt();
    }
}
