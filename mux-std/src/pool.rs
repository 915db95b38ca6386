//! A heap-backed buffer pool: grows on demand up to a cap and recycles buffers, so that in
//! steady state receiving allocates nothing per message.

use std::fmt;
use std::ops::Deref;

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Arc, Mutex, MutexGuard};
use crossbeam_utils::CachePadded;

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

/// The side that hands buffers out.
#[derive(Debug, Default)]
struct TakeSide {
    /// Idle buffers, handed out from the end.
    free: Vec<Vec<u8>>,
    /// Capacity in bytes of `free`.
    idle_bytes: usize,
    /// Requests served (hits and misses: buffers handed out ever).
    taken: u64,
    hits: u64,
    misses: u64,
    exhausted: u64,
    high_water: usize,
    /// [`Inner::returned`] when last read: it only grows, so `taken` minus this bounds the
    /// buffers in use from above, and the giving side's counter is read only when that bound
    /// reaches the cap or the high-water mark.
    returned_seen: u64,
}

/// The side buffers come back to.
#[derive(Debug, Default)]
struct GiveSide {
    /// Idle buffers returned since the take side last took them all.
    free: Vec<Vec<u8>>,
    /// Capacity in bytes of `free`.
    idle_bytes: usize,
    /// The take side's `idle_bytes` when it last took the returned buffers: it only
    /// shrinks until the next time (buffers are handed out), so this bounds it from above
    /// without a look at the take side.
    take_idle_bytes: usize,
}

/// The pool's state, in two halves with a lock each, so that a thread taking buffers (a
/// reader) and threads giving them back (receivers dropping messages) do not contend for one
/// lock per buffer: returned buffers gather on the give side and the take side moves them
/// all over in one swap when it runs out. The lock order is take side, then give side.
/// The two sides and what each writes sit on cache lines of their own: a reader taking
/// buffers and a receiver giving them back do not pull the same line back and forth.
#[derive(Debug)]
struct Inner {
    take: CachePadded<Mutex<TakeSide>>,
    /// The take side's `idle_bytes`, written under its lock; read by the give side without
    /// it, when the bound it keeps itself says the idle limit is reached (it grows only in a
    /// swap, under both locks, so a giver never reads it too low).
    take_idle_now: CachePadded<AtomicUsize>,
    give: CachePadded<Mutex<GiveSide>>,
    /// Buffers given back ever (a buffer is in use from its take to its give-back). Written
    /// under the give side's lock; read by the take side for the cap, without that lock.
    returned: CachePadded<AtomicU64>,
    max_buffers: usize,
    retain_capacity: usize,
    /// Most bytes of idle buffers kept, all together.
    max_idle_bytes: usize,
}

/// Locks `m`. A panic while holding one of the pool's locks cannot leave the counters
/// inconsistent in a way that matters more than losing the pool: keep going.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn give_back(&self, mut data: Vec<u8>) {
        let cap = data.capacity();
        let mut g = lock(&self.give);
        // Counted under the give side's lock, so that `stats` (which holds both locks) sees
        // a returned buffer either in `returned` and an idle list, or in neither. Only this
        // lock's holder writes it: a load and a store, not a read-modify-write.
        let returned = self.returned.load(Ordering::Relaxed);
        self.returned.store(returned + 1, Ordering::Release);
        if cap != 0 && cap <= self.retain_capacity {
            // Never below the idle bytes of both sides, so the limit holds: first the bound
            // kept here, then (near the limit) the take side's figure as it is now.
            let fits = |take_idle: usize| {
                g.idle_bytes.saturating_add(take_idle).saturating_add(cap) <= self.max_idle_bytes
            };
            if fits(g.take_idle_bytes) || fits(self.take_idle_now.load(Ordering::Acquire)) {
                data.clear();
                g.free.push(data);
                g.idle_bytes += cap;
                return;
            }
        }
        // Freed outside the lock.
        drop(g);
        drop(data);
    }

    /// Buffers in use now, with the take side locked (`taken` cannot change meanwhile).
    fn in_use(&self, t: &TakeSide) -> usize {
        (t.taken - self.returned.load(Ordering::Acquire)) as usize
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
                take: CachePadded::new(Mutex::new(TakeSide::default())),
                take_idle_now: CachePadded::new(AtomicUsize::new(0)),
                give: CachePadded::new(Mutex::new(GiveSide::default())),
                returned: CachePadded::new(AtomicU64::new(0)),
                max_buffers,
                retain_capacity,
                max_idle_bytes,
            }),
        }
    }

    /// An empty buffer, recycled if possible; `None` when `max_buffers` are handed out.
    pub fn take(&self) -> Option<Buffer> {
        let inner = &*self.inner;
        let mut t = lock(&inner.take);
        let mut in_use = (t.taken - t.returned_seen) as usize;
        if in_use >= inner.max_buffers || in_use >= t.high_water {
            // The bound may be too high: the count as it is now.
            t.returned_seen = inner.returned.load(Ordering::Acquire);
            in_use = (t.taken - t.returned_seen) as usize;
        }
        if in_use >= inner.max_buffers {
            t.exhausted = t.exhausted.saturating_add(1);
            return None;
        }
        if t.free.is_empty() {
            // Everything given back since the last time, in one swap (both vectors keep
            // their capacity).
            let mut g = lock(&inner.give);
            if !g.free.is_empty() {
                std::mem::swap(&mut t.free, &mut g.free);
                t.idle_bytes += std::mem::take(&mut g.idle_bytes);
                inner.take_idle_now.store(t.idle_bytes, Ordering::Release);
            }
            g.take_idle_bytes = t.idle_bytes;
        }
        let data = match t.free.pop() {
            Some(v) => {
                t.hits = t.hits.saturating_add(1);
                t.idle_bytes -= v.capacity();
                inner.take_idle_now.store(t.idle_bytes, Ordering::Release);
                v
            }
            None => {
                t.misses = t.misses.saturating_add(1);
                Vec::new()
            }
        };
        t.taken += 1;
        t.high_water = t.high_water.max(in_use + 1);
        drop(t);
        Some(Buffer {
            data,
            pool: Some(self.inner.clone()),
        })
    }

    /// The counters.
    pub fn stats(&self) -> PoolStats {
        let inner = &*self.inner;
        let t = lock(&inner.take);
        let g = lock(&inner.give);
        PoolStats {
            max_buffers: inner.max_buffers,
            in_use: inner.in_use(&t),
            idle: t.free.len() + g.free.len(),
            idle_bytes: t.idle_bytes + g.idle_bytes,
            high_water: t.high_water,
            hits: t.hits,
            misses: t.misses,
            exhausted: t.exhausted,
        }
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

    #[test]
    fn buffers_given_back_on_another_thread_come_back_and_are_counted() {
        let pool = BufferPool::new(16, 1 << 20);
        let bufs: Vec<Buffer> = (0..10u8)
            .map(|i| {
                let mut b = pool.take().unwrap();
                b.extend_from_slice(&[i; 100]);
                b
            })
            .collect();
        assert_eq!(pool.stats().in_use, 10);
        std::thread::spawn(move || drop(bufs)).join().unwrap();
        let s = pool.stats();
        assert_eq!((s.in_use, s.idle, s.high_water), (0, 10, 10), "{s:?}");
        let again: Vec<Buffer> = (0..10).map(|_| pool.take().unwrap()).collect();
        assert!(again.iter().all(|b| b.is_empty() && b.capacity() >= 100));
        let s = pool.stats();
        assert_eq!(
            (s.hits, s.misses, s.in_use, s.idle),
            (10, 10, 10, 0),
            "{s:?}"
        );
    }

    #[test]
    fn the_idle_limit_counts_the_buffers_of_both_sides() {
        let limit = 500;
        let pool = BufferPool::with_idle_limit(16, 1 << 20, limit);
        let fill = |n: usize| -> Vec<Buffer> {
            (0..n)
                .map(|_| {
                    let mut b = pool.take().unwrap();
                    b.reserve(100);
                    b
                })
                .collect()
        };
        let mut out = fill(10);
        let rest = out.split_off(5);
        drop(out);
        let s = pool.stats();
        assert_eq!((s.idle, s.idle_bytes), (5, 500), "{s:?}");
        // The idle buffers move to the take side, one goes out: 400 bytes idle there while
        // five more come back to the other side.
        let one = fill(1);
        drop(rest);
        // One of the five fits beside the take side's 400 bytes (the give side looks at
        // them as they are now, not as they were at the swap), the rest are freed.
        let s = pool.stats();
        assert_eq!((s.idle, s.idle_bytes), (5, limit), "{s:?}");
        drop(one);
        let s = pool.stats();
        assert!(s.idle_bytes <= limit && s.in_use == 0, "{s:?}");
    }
}
