//! Helpers shared by the workspace's tests and benchmarks (never published):
//!
//! - the payload rules the golden vectors and the tests use ([`rule_r`], [`stream_byte`]);
//! - the golden vectors in `tests/vectors/` ([`vector`], [`vectors_with_prefix`]);
//! - [`CountingAlloc`], a global allocator that counts what a path allocates;
//! - what a host expects from the sensor-node firmware ([`sensor`]), written independently of
//!   the firmware's own code so that the checks can catch its mistakes.
//!
//! ```
//! use mux_test_support::{rule_r, vector};
//! // A single-message vector: Start, Data carrying rule R's first byte, End (id 7).
//! let wire = vector("original-1.bin");
//! assert_eq!(wire.len(), 9 + (9 + 1) + 9);
//! assert_eq!(wire[18], rule_r(1)[0]);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Byte `i` of payload rule R, the rule of every single-message golden vector:
/// `(i·31 + 7) mod 251`.
pub fn rule_r_byte(i: usize) -> u8 {
    ((i * 31 + 7) % 251) as u8
}

/// A payload of `len` bytes following rule R.
pub fn rule_r(len: usize) -> Vec<u8> {
    (0..len).map(rule_r_byte).collect()
}

/// Byte `k` of message `id` in the many-message tests: rule R shifted by the id
/// (`(k·31 + 7 + id·13) mod 251`), so a byte delivered under the wrong id is caught.
pub fn stream_byte(id: u32, k: usize) -> u8 {
    ((k as u64 * 31 + 7 + u64::from(id) * 13) % 251) as u8
}

/// The folder of the golden vectors (`tests/vectors/`, written by the Go reference).
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

/// The golden capture `name` (e.g. `"original-1000.bin"`).
pub fn vector(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.bin` vector whose name starts with `prefix`, with its contents, sorted by name.
pub fn vectors_with_prefix(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let dir = vectors_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut out: Vec<_> = entries
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .into_string()
                .expect("a UTF-8 name")
        })
        .filter(|n| n.starts_with(prefix) && n.ends_with(".bin"))
        .map(|n| {
            let bytes = vector(&n);
            (n, bytes)
        })
        .collect();
    out.sort();
    out
}

/// The sensor-node demo's exchange as the host sees it (the protocol is documented in
/// `examples-embedded/sensor-app/src/protocol.rs`).
pub mod sensor {
    /// Size of the node's log dump.
    pub const LOG_LEN: usize = 20 * 1024;

    /// The node's log dump: 32-byte lines, line `i` being `L{i:04} ` then 25 letters
    /// `a + (i + k) % 26` (k = 0..25) and `\n`.
    pub fn expected_log() -> Vec<u8> {
        let mut out = Vec::with_capacity(LOG_LEN);
        for i in 0..LOG_LEN / 32 {
            out.extend_from_slice(format!("L{:04} ", i % 10_000).as_bytes());
            out.extend((0..25).map(|k| b'a' + ((i + k) % 26) as u8));
            out.push(b'\n');
        }
        out
    }

    /// A `config` upload of `len` bytes: the word `config ` then printable filler.
    pub fn config_blob(len: usize) -> Vec<u8> {
        let mut v = b"config ".to_vec();
        v.extend((0..len.saturating_sub(v.len())).map(|i| b'!' + (i * 7 % 90) as u8));
        v
    }

    /// FNV-1a, 32 bits: the checksum the node's `config` reply carries.
    pub fn fnv1a(bytes: &[u8]) -> u32 {
        bytes.iter().fold(0x811C_9DC5u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
    }
}

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Sizes of the first allocations after [`CountingAlloc::record_sizes`], to tell what grew.
static SIZES: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
/// Allocation count when recording began (`u64::MAX`: not recording).
static RECORD_FROM: AtomicU64 = AtomicU64::new(u64::MAX);

/// The system allocator, counting: allocations (`alloc`, `alloc_zeroed`, `realloc` calls),
/// bytes requested, bytes live and their peak, over every thread.
///
/// Install it in a test or bench binary (one per binary, and keep that binary's other tests
/// from allocating while it counts):
///
/// ```no_run
/// use mux_test_support::CountingAlloc;
/// #[global_allocator]
/// static GLOBAL: CountingAlloc = CountingAlloc;
///
/// let before = CountingAlloc::allocations();
/// let v = vec![0u8; 10];
/// assert_eq!(CountingAlloc::allocations() - before, 1);
/// # drop(v);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

impl CountingAlloc {
    /// Allocations so far.
    pub fn allocations() -> u64 {
        ALLOCATIONS.load(Ordering::Relaxed)
    }

    /// Bytes requested so far (a `realloc` counts its new size).
    pub fn bytes() -> u64 {
        BYTES.load(Ordering::Relaxed)
    }

    /// Bytes allocated and not yet freed.
    pub fn live_bytes() -> usize {
        LIVE.load(Ordering::Relaxed)
    }

    /// The most bytes live at once since the start or the last [`reset_peak`](Self::reset_peak).
    pub fn peak_bytes() -> usize {
        PEAK.load(Ordering::Relaxed)
    }

    /// Starts a new peak from the bytes live now.
    pub fn reset_peak() {
        PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Records the sizes of the next 16 allocations (read them with
    /// [`recorded_sizes`](Self::recorded_sizes)).
    pub fn record_sizes() {
        for s in &SIZES {
            s.store(0, Ordering::Relaxed);
        }
        RECORD_FROM.store(ALLOCATIONS.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The sizes recorded since [`record_sizes`](Self::record_sizes) (at most 16).
    pub fn recorded_sizes() -> Vec<u64> {
        let from = RECORD_FROM.load(Ordering::Relaxed);
        let n = ALLOCATIONS.load(Ordering::Relaxed).saturating_sub(from);
        SIZES
            .iter()
            .take(n.min(16) as usize)
            .map(|s| s.load(Ordering::Relaxed))
            .collect()
    }

    fn counted(size: usize) {
        let n = ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
        if let Some(slot) = n
            .checked_sub(RECORD_FROM.load(Ordering::Relaxed))
            .and_then(|i| SIZES.get(i as usize))
        {
            slot.store(size as u64, Ordering::Relaxed);
        }
    }

    fn grew(by: usize) {
        let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so it
// upholds `GlobalAlloc`'s contract exactly as `System` does; the counters are plain atomics
// and never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::counted(layout.size());
        Self::grew(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::counted(layout.size());
        Self::grew(layout.size());
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` (through this type) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::counted(new_size);
        if new_size >= layout.size() {
            Self::grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
