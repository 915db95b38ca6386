//! A heap-backed buffer pool: grows on demand up to a cap and recycles buffers, so that in
//! steady state receiving allocates nothing per message.

use std::fmt;
use std::ops::Deref;

use crate::sync::{Arc, Mutex, MutexGuard};

/// Counters of a [`BufferPool`]. The request counts saturate at `u64::MAX`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Most buffers that may exist at once (the cap).
    pub max_buffers: usize,
    /// Buffers handed out now (held by open or delivered messages).
    pub in_use: usize,
    /// Buffers kept for reuse now.
    pub idle: usize,
    /// Capacity in bytes of the buffers kept for reuse now (at most the pool's idle limit,
    /// see [`BufferPool::with_idle_limit`]).
    pub idle_bytes: usize,
    /// Most buffers ever handed out at once.
    pub high_water: usize,
    /// Requests served with a recycled buffer.
    pub hits: u64,
    /// Requests served with a new buffer (the pool grew).
    pub misses: u64,
    /// Requests refused because the cap was reached.
    pub exhausted: u64,
}

impl PoolStats {
    /// Whether no buffer is handed out (everything came back).
    pub const fn is_full(&self) -> bool {
        self.in_use == 0
    }
}

#[derive(Debug)]
struct State {
    free: Vec<Vec<u8>>,
    stats: PoolStats,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    retain_capacity: usize,
    /// Most bytes of idle buffers kept, all together.
    max_idle_bytes: usize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters inconsistent in a way
        // that matters more than losing the pool: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn give_back(&self, mut data: Vec<u8>) {
        let mut s = self.lock();
        s.stats.in_use -= 1;
        let cap = data.capacity();
        if cap != 0
            && cap <= self.retain_capacity
            && s.stats.idle_bytes.saturating_add(cap) <= self.max_idle_bytes
        {
            data.clear();
            s.free.push(data);
            s.stats.idle = s.free.len();
            s.stats.idle_bytes += cap;
            return;
        }
        // Freed outside the lock.
        drop(s);
        drop(data);
    }
}

/// A pool of heap buffers (`Vec<u8>`), shared by clones of this handle.
///
/// [`take`](Self::take) hands out a recycled buffer if one is idle (a *hit*), else a new one
/// while fewer than `max_buffers` exist (a *miss*), else `None`. A [`Buffer`] goes back to the
/// pool when dropped, keeping its capacity (buffers that grew past `retain_capacity` are freed
/// instead, and so is a buffer that would take the idle buffers past the idle limit, see
/// [`with_idle_limit`](Self::with_idle_limit)), so a steady flow of messages of similar sizes
/// allocates nothing.
///
/// ```
/// use mux_std::BufferPool;
/// let pool = BufferPool::new(2, 1 << 20);
/// let mut a = pool.take().unwrap();
/// a.extend_from_slice(b"hello");
/// let _b = pool.take().unwrap();
/// assert!(pool.take().is_none()); // cap reached
/// drop(a);
/// let c = pool.take().unwrap(); // recycled: no allocation
/// assert!(c.is_empty() && c.capacity() >= 5);
/// assert_eq!((pool.stats().hits, pool.stats().misses, pool.stats().exhausted), (1, 2, 1));
/// ```
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<Inner>,
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("stats", &self.stats())
            .finish()
    }
}

impl BufferPool {
    /// A pool of at most `max_buffers` buffers that keeps idle buffers of up to
    /// `retain_capacity` bytes for reuse (with no limit on their total: see
    /// [`with_idle_limit`](Self::with_idle_limit)).
    pub fn new(max_buffers: usize, retain_capacity: usize) -> Self {
        Self::with_idle_limit(max_buffers, retain_capacity, usize::MAX)
    }

    /// Like [`new`](Self::new), keeping at most `max_idle_bytes` of idle buffers in all (by
    /// capacity): a buffer returned while the idle ones hold that much is freed. Memory kept
    /// after a burst is thus bounded, while a steady flow still reuses its buffers.
    ///
    /// ```
    /// use mux_std::BufferPool;
    /// let pool = BufferPool::with_idle_limit(8, 1 << 20, 1000);
    /// let (mut a, mut b) = (pool.take().unwrap(), pool.take().unwrap());
    /// a.reserve(600);
    /// b.reserve(600);
    /// drop((a, b)); // the second one would take the idle bytes past 1000: freed
    /// assert_eq!(pool.stats().idle, 1);
    /// assert!(pool.stats().idle_bytes <= 1000);
    /// ```
    pub fn with_idle_limit(
        max_buffers: usize,
        retain_capacity: usize,
        max_idle_bytes: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    free: Vec::new(),
                    stats: PoolStats {
                        max_buffers,
                        ..PoolStats::default()
                    },
                }),
                retain_capacity,
                max_idle_bytes,
            }),
        }
    }

    /// An empty buffer, recycled if possible; `None` when `max_buffers` are handed out.
    pub fn take(&self) -> Option<Buffer> {
        let mut s = self.inner.lock();
        if s.stats.in_use >= s.stats.max_buffers {
            s.stats.exhausted = s.stats.exhausted.saturating_add(1);
            return None;
        }
        let data = match s.free.pop() {
            Some(v) => {
                s.stats.hits = s.stats.hits.saturating_add(1);
                s.stats.idle = s.free.len();
                s.stats.idle_bytes -= v.capacity();
                v
            }
            None => {
                s.stats.misses = s.stats.misses.saturating_add(1);
                Vec::new()
            }
        };
        s.stats.in_use += 1;
        s.stats.high_water = s.stats.high_water.max(s.stats.in_use);
        drop(s);
        Some(Buffer {
            data,
            pool: Some(self.inner.clone()),
        })
    }

    /// The counters.
    pub fn stats(&self) -> PoolStats {
        self.inner.lock().stats
    }

    /// Largest capacity an idle buffer may keep.
    pub fn retain_capacity(&self) -> usize {
        self.inner.retain_capacity
    }
}

/// A byte buffer from a [`BufferPool`]; goes back to the pool when dropped.
///
/// Dereferences to `[u8]`; [`extend_from_slice`](Self::extend_from_slice) appends.
pub struct Buffer {
    data: Vec<u8>,
    pool: Option<Arc<Inner>>,
}

impl Buffer {
    /// An empty buffer that belongs to no pool (for empty messages; allocates nothing).
    pub const fn empty() -> Self {
        Self {
            data: Vec::new(),
            pool: None,
        }
    }

    /// Appends bytes (the buffer grows like a `Vec`).
    #[inline]
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }

    /// Reserves room for at least `additional` more bytes.
    pub fn reserve(&mut self, additional: usize) {
        self.data.reserve(additional);
    }

    /// Bytes it can hold without growing.
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }

    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.data
    }

    /// Takes the bytes out as a `Vec`; the pool counts the buffer as returned but does not get
    /// it back (it will allocate a new one when needed).
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }
}

impl Deref for Buffer {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Default for Buffer {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.data.len())
            .field("pooled", &self.pool.is_some())
            .finish()
    }
}

impl PartialEq<[u8]> for Buffer {
    fn eq(&self, other: &[u8]) -> bool {
        self.data == other
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_buffers_are_not_kept() {
        let pool = BufferPool::new(4, 16);
        let mut b = pool.take().unwrap();
        b.extend_from_slice(&[1; 100]);
        drop(b);
        let s = pool.stats();
        assert_eq!((s.in_use, s.idle, s.high_water), (0, 0, 1));
        let v = pool.take().unwrap().into_vec();
        assert!(v.is_empty());
        assert_eq!(pool.stats().in_use, 0);
    }
}
