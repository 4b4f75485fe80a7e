//! Per-thread pool of connection buffers (a `director` patch, not in upstream actix-http).
//!
//! An idle keep-alive connection holds no read or write buffer: the dispatcher gives both back
//! here when it has nothing to read, write or serve, and takes them again when bytes arrive or a
//! response is encoded. Connections that are busy all the time (a load test) cycle through a
//! small, bounded set of buffers; thousands of idle connections hold none. This is what HAProxy
//! and nginx do with their per-connection buffers.

use std::cell::RefCell;

use bytes::BytesMut;

/// Buffers kept per thread, at most (each `capacity` bytes; 64 × 8 KiB = 512 KiB).
const POOL_LIMIT: usize = 64;

thread_local! {
    static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A cleared buffer with room for at least `capacity` bytes.
pub(crate) fn take(capacity: usize) -> BytesMut {
    POOL.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(capacity))
}

/// Gives `buf` back, leaving it empty and without an allocation. The pool keeps it if it is
/// not shared and reclaims its capacity without allocating, and the pool has room; otherwise
/// it is dropped. (A read buffer is often still shared with the request head actix-web keeps
/// for reuse: it is released all the same, so that an idle connection holds nothing, and the
/// memory goes when that head does. Keeping shared buffers instead cost 7.6 KiB per idle
/// connection in `bench/idle_conns.py`, against 3.2 KiB.)
pub(crate) fn give_back(buf: &mut BytesMut, capacity: usize) {
    if buf.capacity() == 0 {
        return;
    }
    let mut buf = std::mem::take(buf);
    buf.clear();
    if buf.capacity() > 2 * capacity || !buf.try_reclaim(capacity) {
        return;
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_LIMIT {
            pool.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_back_buffer_is_taken_again_without_allocating() {
        let mut buf = take(8192);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let ptr = buf.as_ptr();
        give_back(&mut buf, 8192);
        assert_eq!(buf.capacity(), 0);
        let again = take(8192);
        assert!(again.is_empty());
        assert!(again.capacity() >= 8192);
        assert_eq!(again.as_ptr(), ptr);
    }

    #[test]
    fn a_shared_buffer_is_released_but_not_pooled() {
        let mut buf = take(8192);
        buf.extend_from_slice(b"head");
        let head = buf.split_to(4).freeze();
        give_back(&mut buf, 8192);
        assert_eq!(buf.capacity(), 0, "the connection holds nothing");
        let fresh = take(8192);
        assert_ne!(fresh.as_ptr(), head.as_ptr());
    }
}
