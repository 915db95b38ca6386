//! Benchmarks of the mux crates: the seed's write-path table and beyond, each figure beside its
//! physical floor (a plain copy of the same bytes) measured in the same run.
//!
//! The workloads live here so that the criterion benches (`cargo bench -p mux-benches`) and the
//! `report` binary (`cargo run --release -p mux-benches --bin report`) measure exactly the same
//! code:
//!
//! - [`write`](mod@write): one message framed into an in-memory buffer reused every iteration, through the
//!   public blocking API, and the floor (`copy_from_slice` of the payload into that buffer);
//! - [`read`]: the same streams decoded and reassembled from memory, and the floor (a copy of
//!   the payload into a buffer);
//! - [`e2e`]: messages between two threads over a Unix socket pair: the raw pair, our crates,
//!   and [`yamux_peer`], the multiplexer a Rust user would pick instead;
//! - [`alloc`]: a counting global allocator for allocations per message;
//! - [`timing`], [`machine`] and [`plot`]: medians, the machine's description and the SVG plot.

pub mod alloc;
pub mod e2e;
pub mod machine;
pub mod plot;
pub mod read;
pub mod timing;
pub mod write;
pub mod yamux_peer;

/// The three sizes of the seed's table: 1 KiB, 64 KiB, 1 MiB.
pub const SEED_SIZES: [usize; 3] = [1 << 10, 1 << 16, 1 << 20];

/// The sizes of the plot (time per message against size).
pub const PLOT_SIZES: [usize; 9] = [
    64,
    256,
    1 << 10,
    1 << 12,
    1 << 14,
    1 << 16,
    1 << 18,
    1 << 20,
    4 << 20,
];

/// A payload of `len` pseudo-random bytes (deterministic: the same for every run).
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            // xorshift64: cheap, and no byte pattern a copy routine could exploit.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A human-readable size: `1 KiB`, `64 KiB`, `1 MiB`, or bytes.
pub fn size_name(len: usize) -> String {
    if len >= 1 << 20 && len.is_multiple_of(1 << 20) {
        format!("{} MiB", len >> 20)
    } else if len >= 1 << 10 && len.is_multiple_of(1 << 10) {
        format!("{} KiB", len >> 10)
    } else {
        format!("{len} B")
    }
}
