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
//!   and [`yamux_peer`], the multiplexer a Rust user would pick instead; [`tokio_node`], our
//!   `AsyncNode` on the same runtime set-up as yamux;
//! - [`link`]: a link emulator (a socket pair paced at a given rate), and [`latency`]: small
//!   messages' latency while a bulk message goes, over it or the unpaced pair;
//! - [`alloc`]: a counting global allocator for allocations per message;
//! - [`timing`], [`machine`] and [`plot`]: medians, the machine's description and the SVG plot;
//! - [`baseline`]: saved report runs and the regression check against them.

pub mod alloc;
pub mod baseline;
pub mod e2e;
pub mod latency;
pub mod link;
pub mod machine;
pub mod plot;
pub mod read;
pub mod timing;
pub mod tokio_node;
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

/// Where in a 4096-byte page payloads start.
pub const SRC_PAGE_OFFSET: usize = 0;
/// Where in a 4096-byte page destination buffers start: half a page away from the payloads,
/// so that chunked copies never run into 4K aliasing (a store to the destination looking like
/// it may alias a later load of the source when their addresses agree in the low 12 bits).
/// Large `malloc` blocks from glibc all start at the same page offset; how much that layout
/// costs is measured separately by the report ("Layout sensitivity").
pub const DST_PAGE_OFFSET: usize = 2048;

/// A byte buffer whose first byte sits at a chosen offset within a 4096-byte page, so that
/// the relative placement of source and destination — which `memcpy` speed depends on — is
/// the same in every run instead of depending on the allocator's history.
pub struct PageBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl PageBuf {
    /// `len` zero bytes starting at `page_offset` (taken modulo 4096) within a page.
    pub fn zeroed(len: usize, page_offset: usize) -> Self {
        let raw = vec![0u8; len + 8192];
        let addr = raw.as_ptr() as usize;
        let start = (page_offset % 4096 + 4096 - addr % 4096) % 4096;
        Self { raw, start, len }
    }

    /// A copy of `data` starting at `page_offset` within a page.
    pub fn from_slice(data: &[u8], page_offset: usize) -> Self {
        let mut b = Self::zeroed(data.len(), page_offset);
        b.copy_from_slice(data);
        b
    }
}

impl std::ops::Deref for PageBuf {
    type Target = [u8];
    #[inline(always)]
    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for PageBuf {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

impl std::fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBuf")
            .field("len", &self.len)
            .field("page_offset", &(self.as_ptr() as usize % 4096))
            .finish()
    }
}
