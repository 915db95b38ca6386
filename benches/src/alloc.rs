//! A counting global allocator: how many allocations a path makes per message.
//!
//! Install it in a binary with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`
//! and read [`allocations`] before and after the work. The count covers every thread.

pub use mux_test_support::CountingAlloc;

/// Allocations made so far by all threads (0 when [`CountingAlloc`] is not installed).
pub fn allocations() -> u64 {
    CountingAlloc::allocations()
}

/// Bytes requested so far by all threads.
pub fn allocated_bytes() -> u64 {
    CountingAlloc::bytes()
}

/// Allocations (and bytes) per call of `f`, over `calls` calls after one warm-up call.
pub fn per_call<R>(calls: u64, mut f: impl FnMut() -> R) -> (f64, f64) {
    std::hint::black_box(f());
    let (a0, b0) = (allocations(), allocated_bytes());
    for _ in 0..calls {
        std::hint::black_box(f());
    }
    let (a1, b1) = (allocations(), allocated_bytes());
    (
        (a1 - a0) as f64 / calls as f64,
        (b1 - b0) as f64 / calls as f64,
    )
}
