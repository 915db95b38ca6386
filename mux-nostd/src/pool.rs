//! A static block pool shared between interrupt handlers and thread mode.
//!
//! `Pool<BLOCKS, SIZE>` holds `BLOCKS` blocks of `SIZE` bytes and is meant to be declared
//! `static`: its constructor is `const` and its all-zero initial state lands in `.bss`, so it
//! costs RAM only (`BLOCKS × SIZE` bytes plus `2 × BLOCKS` bytes of links and about 16 bytes
//! of counters) and no flash. The free list and counters are guarded by [`critical_section`],
//! which works on every target including `thumbv6m` (no atomic compare-and-swap): one short
//! critical section per append (however many blocks it takes) and one per release, never
//! around a copy. A [`Chain`] owns a linked list of blocks and gives them back when dropped, so
//! a leak is a bug the counters show.
//!
//! The links between blocks are `AtomicU16` used with plain loads and stores (no CAS): a link
//! is written only by the critical section that hands a block out or takes it back, or read by
//! the block's one owner.
//!
//! This is the only module with `unsafe` code: handing out the bytes of a block to the one
//! chain that owns it.

#![allow(unsafe_code)]

use core::cell::{RefCell, UnsafeCell};
use core::sync::atomic::{AtomicU16, Ordering::Relaxed};

use critical_section::Mutex;

const NIL: u16 = u16::MAX;

/// Links and the free-list head are stored as `index + 1`, so that "none" ([`NIL`]) is stored
/// as 0 and an all-zero pool is a valid full pool: a `static` pool then lives in `.bss` and
/// costs no flash.
#[inline(always)]
const fn enc(block: u16) -> u16 {
    block.wrapping_add(1)
}

#[inline(always)]
const fn dec(stored: u16) -> u16 {
    stored.wrapping_sub(1)
}

/// Counters of a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolStats {
    /// Blocks in the pool.
    pub blocks: u16,
    /// Bytes per block.
    pub block_size: u32,
    /// Blocks handed out now.
    pub in_use: u16,
    /// Most blocks ever handed out at once.
    pub high_water: u16,
    /// Requests refused because no block was free.
    pub exhausted: u32,
}

impl PoolStats {
    /// Blocks free now.
    pub const fn free(&self) -> u16 {
        self.blocks - self.in_use
    }
}

struct Meta {
    /// Head (stored with [`enc`]) of the list of returned blocks.
    free_head: u16,
    /// Blocks `fresh..BLOCKS` were never handed out (so an all-zero state is a full pool).
    fresh: u16,
    in_use: u16,
    high_water: u16,
    exhausted: u32,
}

/// A pool of `BLOCKS` blocks of `SIZE` bytes, shared between interrupt handlers and thread mode.
///
/// Meant to be declared `static`: its constructor is `const` and its all-zero initial state
/// lands in `.bss`, so it costs RAM only (`BLOCKS × SIZE` bytes plus `2 × BLOCKS` bytes of
/// links and about 16 bytes of counters) and no flash. The free list and counters are guarded
/// by [`critical_section`], which works on every target including `thumbv6m` (no atomic
/// compare-and-swap): one short critical section per append (however many blocks it takes)
/// and one per release, never around a copy. A [`Chain`] owns a linked list of blocks and
/// gives them back when dropped, so a leak is a bug the counters show.
///
/// ```
/// use mux_nostd::{Chain, Pool};
/// static POOL: Pool<8, 64> = Pool::new();
/// let mut c = Chain::new(&POOL);
/// c.extend_from_slice(&[7u8; 100]).unwrap(); // two blocks
/// assert_eq!(POOL.stats().in_use, 2);
/// drop(c);
/// assert_eq!(POOL.stats().in_use, 0);
/// ```
pub struct Pool<const BLOCKS: usize, const SIZE: usize> {
    data: [UnsafeCell<[u8; SIZE]>; BLOCKS],
    /// For a free block: the next free block. For a block in a chain: the next in the chain.
    link: [AtomicU16; BLOCKS],
    meta: Mutex<RefCell<Meta>>,
}

// SAFETY: the bookkeeping is behind a critical-section mutex. The bytes of a block are only
// reached through the one `Chain` that owns it (the pool never hands a block to two owners
// until it is given back), and a `Chain` needs `&mut self` to write them, so sharing the pool
// between threads or interrupt handlers cannot create aliasing mutable access.
unsafe impl<const BLOCKS: usize, const SIZE: usize> Sync for Pool<BLOCKS, SIZE> {}

impl<const BLOCKS: usize, const SIZE: usize> core::fmt::Debug for Pool<BLOCKS, SIZE> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool")
            .field("stats", &self.stats())
            .finish()
    }
}

impl<const BLOCKS: usize, const SIZE: usize> Default for Pool<BLOCKS, SIZE> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const BLOCKS: usize, const SIZE: usize> Pool<BLOCKS, SIZE> {
    /// RAM taken by the pool: the blocks and the bookkeeping.
    pub const RAM_BYTES: usize = core::mem::size_of::<Self>();

    /// A full pool. `const`, so it can initialise a `static`.
    pub const fn new() -> Self {
        assert!(BLOCKS < NIL as usize, "a pool holds at most 65534 blocks");
        assert!(
            SIZE > 0 && SIZE <= u32::MAX as usize,
            "block size must fit u32"
        );
        Self {
            data: [const { UnsafeCell::new([0; SIZE]) }; BLOCKS],
            link: [const { AtomicU16::new(0) }; BLOCKS],
            meta: Mutex::new(RefCell::new(Meta {
                free_head: enc(NIL),
                fresh: 0,
                in_use: 0,
                high_water: 0,
                exhausted: 0,
            })),
        }
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        critical_section::with(|cs| {
            let m = self.meta.borrow_ref(cs);
            PoolStats {
                blocks: BLOCKS as u16,
                block_size: SIZE as u32,
                in_use: m.in_use,
                high_water: m.high_water,
                exhausted: m.exhausted,
            }
        })
    }

    /// Takes `count` blocks at once (all or none), links them in order after `prev` (if
    /// any) and returns the first.
    fn alloc_chain(&self, prev: u16, count: usize) -> Option<u16> {
        critical_section::with(|cs| {
            let mut m = self.meta.borrow_ref_mut(cs);
            if BLOCKS - (m.in_use as usize) < count {
                m.exhausted = m.exhausted.saturating_add(1);
                return None;
            }
            let mut first = NIL;
            let mut last = prev;
            for _ in 0..count {
                let b = if dec(m.free_head) != NIL {
                    let b = dec(m.free_head);
                    m.free_head = self.link[b as usize].load(Relaxed);
                    b
                } else {
                    m.fresh += 1;
                    m.fresh - 1
                };
                if last != NIL {
                    self.link[last as usize].store(enc(b), Relaxed);
                }
                if first == NIL {
                    first = b;
                }
                last = b;
            }
            self.link[last as usize].store(enc(NIL), Relaxed);
            m.in_use += count as u16;
            m.high_water = m.high_water.max(m.in_use);
            Some(first)
        })
    }

    /// Gives back a chain of `count` blocks from `head` to `tail`.
    fn free_chain(&self, head: u16, tail: u16, count: usize) {
        critical_section::with(|cs| {
            let mut m = self.meta.borrow_ref_mut(cs);
            self.link[tail as usize].store(m.free_head, Relaxed);
            m.free_head = enc(head);
            m.in_use -= count as u16;
        })
    }

    /// The block after `block` in its owner's chain.
    #[inline]
    fn next_of(&self, block: u16) -> u16 {
        dec(self.link[block as usize].load(Relaxed))
    }
}

/// A message body held in a linked list of pool blocks; given back to the pool when dropped.
pub struct Chain<'p, const BLOCKS: usize, const SIZE: usize> {
    pool: &'p Pool<BLOCKS, SIZE>,
    head: u16,
    tail: u16,
    len: u32,
}

impl<const BLOCKS: usize, const SIZE: usize> core::fmt::Debug for Chain<'_, BLOCKS, SIZE> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Chain")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// The pool had no free block for a [`Chain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Exhausted;

impl<'p, const BLOCKS: usize, const SIZE: usize> Chain<'p, BLOCKS, SIZE> {
    /// An empty chain (takes no block until data is added).
    pub const fn new(pool: &'p Pool<BLOCKS, SIZE>) -> Self {
        Self {
            pool,
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    /// Bytes held.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether no byte is held.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `data`, taking the blocks it needs from the pool in one step. On `Err` nothing
    /// was appended.
    #[inline]
    pub fn extend_from_slice(&mut self, data: &[u8]) -> Result<(), Exhausted> {
        let used = self.len as usize % SIZE;
        // The common case: the bytes fit in the tail block (every chunk but one in a block's
        // worth of small Data frames).
        if used != 0 && data.len() <= SIZE - used {
            self.block_mut(self.tail)[used..used + data.len()].copy_from_slice(data);
            self.len += data.len() as u32;
            return Ok(());
        }
        self.extend_across(data, used)
    }

    /// [`extend_from_slice`](Self::extend_from_slice) when the bytes need new blocks.
    #[inline(never)]
    fn extend_across(&mut self, mut data: &[u8], used: usize) -> Result<(), Exhausted> {
        if data.is_empty() {
            return Ok(());
        }
        let room = if self.head != NIL && used != 0 {
            SIZE - used
        } else {
            0
        };
        let new_blocks = data.len().saturating_sub(room).div_ceil(SIZE);
        let (mut block, mut at) = (self.tail, used);
        if new_blocks > 0 {
            let first = self
                .pool
                .alloc_chain(self.tail, new_blocks)
                .ok_or(Exhausted)?;
            if self.head == NIL {
                self.head = first;
            }
            if room == 0 {
                (block, at) = (first, 0);
            }
        }
        loop {
            let take = (SIZE - at).min(data.len());
            self.block_mut(block)[at..at + take].copy_from_slice(&data[..take]);
            self.len += take as u32;
            self.tail = block;
            data = &data[take..];
            if data.is_empty() {
                return Ok(());
            }
            (block, at) = (self.pool.next_of(block), 0);
        }
    }

    /// The bytes of `block`, one of this chain's blocks.
    #[inline]
    fn block_mut(&mut self, block: u16) -> &mut [u8; SIZE] {
        // SAFETY: `block` belongs to this chain (callers pass its tail or a block
        // `alloc_chain` just handed out for it): it is given back only by `Drop`, so no other
        // chain holds it, and `&mut self` excludes readers of this chain. The returned
        // reference borrows `self` mutably, so it is the only one to the block's bytes.
        unsafe { &mut *self.pool.data[block as usize].get() }
    }

    /// The bytes, block by block.
    pub fn chunks(&self) -> ChainChunks<'_, 'p, BLOCKS, SIZE> {
        ChainChunks {
            chain: self,
            block: self.head,
            left: self.len as usize,
        }
    }

    /// The bytes as one slice, when they fit one block (always true for messages up to `SIZE`
    /// bytes).
    pub fn as_slice(&self) -> Option<&[u8]> {
        match self.len as usize {
            0 => Some(&[]),
            n if n <= SIZE => self.chunks().next(),
            _ => None,
        }
    }

    /// Copies the bytes into `out`, returning how many were copied (`min(len, out.len())`).
    pub fn copy_to(&self, out: &mut [u8]) -> usize {
        let mut at = 0;
        for c in self.chunks() {
            let n = c.len().min(out.len() - at);
            out[at..at + n].copy_from_slice(&c[..n]);
            at += n;
            if at == out.len() {
                break;
            }
        }
        at
    }

    /// Whether the bytes equal `other`.
    pub fn eq_slice(&self, mut other: &[u8]) -> bool {
        if other.len() != self.len() {
            return false;
        }
        for c in self.chunks() {
            if other[..c.len()] != *c {
                return false;
            }
            other = &other[c.len()..];
        }
        true
    }
}

impl<const BLOCKS: usize, const SIZE: usize> Drop for Chain<'_, BLOCKS, SIZE> {
    fn drop(&mut self) {
        if self.head != NIL {
            let blocks = (self.len as usize).div_ceil(SIZE);
            self.pool.free_chain(self.head, self.tail, blocks);
        }
    }
}

/// Iterator over the blocks of a [`Chain`].
pub struct ChainChunks<'c, 'p, const BLOCKS: usize, const SIZE: usize> {
    chain: &'c Chain<'p, BLOCKS, SIZE>,
    block: u16,
    left: usize,
}

impl<'c, const BLOCKS: usize, const SIZE: usize> Iterator for ChainChunks<'c, '_, BLOCKS, SIZE> {
    type Item = &'c [u8];

    fn next(&mut self) -> Option<&'c [u8]> {
        if self.left == 0 || self.block == NIL {
            return None;
        }
        let n = self.left.min(SIZE);
        // SAFETY: `block` belongs to the chain borrowed for `'c`; writes need `&mut Chain`, so
        // none can happen while this shared borrow lives.
        let bytes = unsafe { &*self.chain.pool.data[self.block as usize].get() };
        self.left -= n;
        self.block = if self.left > 0 {
            self.chain.pool.next_of(self.block)
        } else {
            NIL
        };
        Some(&bytes[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_recycle_blocks_and_count() {
        let pool: Pool<4, 8> = Pool::new();
        let mut a = Chain::new(&pool);
        a.extend_from_slice(b"0123456789").unwrap();
        let mut b = Chain::new(&pool);
        b.extend_from_slice(b"abcdefghijklmnop").unwrap();
        assert_eq!(pool.stats().in_use, 4);
        let mut c = Chain::new(&pool);
        assert_eq!(c.extend_from_slice(b"x"), Err(Exhausted));
        assert!(a.eq_slice(b"0123456789"));
        assert!(b.eq_slice(b"abcdefghijklmnop"));
        assert_eq!(a.as_slice(), None);
        drop(a);
        c.extend_from_slice(b"xyz").unwrap();
        assert_eq!(c.as_slice(), Some(&b"xyz"[..]));
        let mut out = [0u8; 20];
        assert_eq!(b.copy_to(&mut out), 16);
        assert_eq!(&out[..16], b"abcdefghijklmnop");
        drop((b, c));
        let s = pool.stats();
        assert_eq!(
            (s.in_use, s.high_water, s.exhausted, s.free()),
            (0, 4, 1, 4)
        );
    }

    #[test]
    fn appends_fill_the_tail_block_exactly_then_take_new_ones() {
        let pool: Pool<4, 8> = Pool::new();
        let mut c = Chain::new(&pool);
        let mut want = Vec::new();
        // Into the tail block (3 + 5 fills it exactly), a new one (1), the tail again (7,
        // filling it), across two new ones (9), then empty appends anywhere.
        for (i, n) in [3usize, 5, 1, 7, 0, 9, 0].into_iter().enumerate() {
            let part: Vec<u8> = (0..n).map(|k| (i * 16 + k) as u8).collect();
            c.extend_from_slice(&part).unwrap();
            want.extend_from_slice(&part);
            assert_eq!(c.len(), want.len());
            assert!(c.eq_slice(&want), "after {n} bytes");
        }
        assert_eq!(pool.stats().in_use, 4); // 25 bytes in blocks of 8
        assert_eq!(c.extend_from_slice(&[1; 8]), Err(Exhausted));
        assert!(c.eq_slice(&want), "nothing appended on Err");
        c.extend_from_slice(&[9; 7]).unwrap(); // fits the tail's 7 bytes left
        want.extend_from_slice(&[9; 7]);
        assert!(c.eq_slice(&want));
    }

    #[test]
    fn a_new_pool_is_all_zeros_so_a_static_one_lands_in_bss() {
        let pool: Pool<4, 8> = Pool::new();
        assert!(pool.link.iter().all(|l| l.load(Relaxed) == 0));
        critical_section::with(|cs| {
            let m = pool.meta.borrow_ref(cs);
            let fields = (m.free_head, m.fresh, m.in_use, m.high_water, m.exhausted);
            assert_eq!(fields, (0, 0, 0, 0, 0));
        });
        // SAFETY: no chain exists, so nobody else refers to the blocks.
        assert!(pool.data.iter().all(|b| unsafe { *b.get() } == [0; 8]));
    }

    #[test]
    fn ram_cost_is_the_blocks_the_links_and_a_few_counters() {
        // Documented: B × S + 2 × B + 16 bytes on 32-bit targets; 8 more here for the wider
        // RefCell flag of a 64-bit host.
        let extra = 16 + 2 * (core::mem::size_of::<usize>() - 4);
        assert_eq!(Pool::<8, 64>::RAM_BYTES, 8 * 64 + 2 * 8 + extra);
        assert_eq!(Pool::<100, 256>::RAM_BYTES, 100 * 256 + 2 * 100 + extra);
    }

    #[test]
    fn static_pool_shared_across_threads() {
        static POOL: Pool<16, 32> = Pool::new();
        let threads: heapless::Vec<_, 4> = (0..4u8)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..if cfg!(miri) { 25 } else { 200u32 } {
                        let mut c = Chain::new(&POOL);
                        let data = [t.wrapping_add(i as u8); 40];
                        if c.extend_from_slice(&data).is_ok() {
                            assert!(c.eq_slice(&data));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = POOL.stats();
        assert_eq!(s.in_use, 0);
        assert!(s.high_water >= 2 && s.high_water <= 16);
    }
}
