//! Whole-message receive: the [`Demux`] with each open message collected in a pool [`Chain`].

use crate::demux::{Demux, Limits, RawEvent};
use crate::error::ProtocolError;
use crate::metrics::RxMetrics;
use crate::pool::{Chain, Pool, PoolStats};

/// A complete message. Its blocks go back to the pool when it is dropped.
#[derive(Debug)]
pub struct Message<'p, const BLOCKS: usize, const SIZE: usize> {
    id: u32,
    body: Chain<'p, BLOCKS, SIZE>,
}

impl<'p, const BLOCKS: usize, const SIZE: usize> Message<'p, BLOCKS, SIZE> {
    /// The message id.
    pub const fn id(&self) -> u32 {
        self.id
    }

    /// The payload.
    pub const fn body(&self) -> &Chain<'p, BLOCKS, SIZE> {
        &self.body
    }

    /// Payload size.
    pub const fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether the payload is empty.
    pub const fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

/// What a [`Reassembler`] delivers.
#[derive(Debug)]
pub enum Received<'p, const BLOCKS: usize, const SIZE: usize> {
    /// A complete message.
    Message(Message<'p, BLOCKS, SIZE>),
    /// The peer aborted this message; what had arrived of it was released.
    Aborted {
        /// The message id.
        id: u32,
    },
    /// A protocol error (the stream stays in sync).
    Error(ProtocolError),
}

/// Collects whole messages: up to `N` open at once, their bytes in a shared [`Pool`].
///
/// RAM: the pool (see [`Pool::RAM_BYTES`]) plus `size_of::<Reassembler<..>>()`, about
/// `20 × N + 152` bytes on 32-bit targets (each open message: its id, byte count and block
/// chain).
#[derive(Debug)]
pub struct Reassembler<'p, const N: usize, const BLOCKS: usize, const SIZE: usize> {
    demux: Demux<Option<Chain<'p, BLOCKS, SIZE>>, N>,
    pool: &'p Pool<BLOCKS, SIZE>,
    #[cfg(feature = "histograms")]
    pool_use: crate::Histogram,
}

impl<'p, const N: usize, const BLOCKS: usize, const SIZE: usize> Reassembler<'p, N, BLOCKS, SIZE> {
    /// A reassembler drawing buffers from `pool`.
    pub const fn new(pool: &'p Pool<BLOCKS, SIZE>, limits: Limits) -> Self {
        Self {
            demux: Demux::new(limits),
            pool,
            #[cfg(feature = "histograms")]
            pool_use: crate::Histogram::new(),
        }
    }

    /// Pool blocks in use each time a message completed, its own blocks included (feature
    /// `histograms`): how close to exhaustion the pool runs.
    #[cfg(feature = "histograms")]
    pub const fn pool_use(&self) -> &crate::Histogram {
        &self.pool_use
    }

    /// Receive counters.
    pub const fn metrics(&self) -> &RxMetrics {
        self.demux.metrics()
    }

    /// When the input fed next arrived: see [`Demux::set_now_us`](crate::Demux::set_now_us)
    /// (the Start-to-End times in `RxMetrics::start_to_end_us`).
    #[inline]
    pub fn set_now_us(&mut self, now_us: u32) {
        self.demux.set_now_us(now_us);
    }

    /// The pool's counters.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Messages open now.
    pub fn open_count(&self) -> usize {
        self.demux.open_count()
    }

    /// Decodes from the front of `input`: bytes consumed and what they completed, if anything.
    #[inline]
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Received<'p, BLOCKS, SIZE>>) {
        // Bulk path: whole Data frames of the message being received, straight into its chain.
        let pool = self.pool;
        let (n, refused) = self.demux.data_run(input, |body, chunk| {
            body.get_or_insert_with(|| Chain::new(pool))
                .extend_from_slice(chunk)
                .is_ok()
        });
        if let Some(id) = refused {
            return (n, Some(self.pool_exhausted(id)));
        }
        if n > 0 {
            return (n, None);
        }
        let (n, ev) = self.demux.step_after_run(input);
        (n, ev.and_then(|ev| self.on_event(ev, input)))
    }

    /// The link lost frames before the input that follows: see
    /// [`Demux::link_gap`](crate::Demux::link_gap) (the messages open now are reported
    /// [`ProtocolError::Lost`] and their blocks released).
    pub fn link_gap(&mut self, missing: u16) {
        self.demux.link_gap(missing);
    }

    /// Feeds all of `input`, calling `on` for everything received.
    pub fn feed_all(&mut self, mut input: &[u8], mut on: impl FnMut(Received<'p, BLOCKS, SIZE>)) {
        while !input.is_empty() {
            let (n, item) = self.feed(input);
            input = &input[n..];
            if let Some(item) = item {
                on(item);
            }
        }
    }

    /// At end of stream, repeatedly until `None`: a truncation error, then one
    /// [`ProtocolError::Unfinished`] per message still open (its buffers released).
    pub fn finish(&mut self) -> Option<Received<'p, BLOCKS, SIZE>> {
        loop {
            let ev = self.demux.finish_raw()?;
            if let Some(r) = self.on_event(ev, &[]) {
                return Some(r);
            }
        }
    }

    /// The current message `id` got no pool block: it is dropped (its blocks go back).
    #[cold]
    fn pool_exhausted(&mut self, id: u32) -> Received<'p, BLOCKS, SIZE> {
        let error = ProtocolError::PoolExhausted { id };
        drop(self.demux.drop_current(error));
        Received::Error(error)
    }

    #[inline]
    fn on_event(
        &mut self,
        ev: RawEvent<Option<Chain<'p, BLOCKS, SIZE>>>,
        input: &[u8],
    ) -> Option<Received<'p, BLOCKS, SIZE>> {
        match ev {
            RawEvent::Started { .. } => None,
            RawEvent::Data { id, chunk } => {
                let pool = self.pool;
                let body = self
                    .demux
                    .current_mut()?
                    .get_or_insert_with(|| Chain::new(pool));
                if body.extend_from_slice(&input[chunk]).is_ok() {
                    return None;
                }
                Some(self.pool_exhausted(id))
            }
            RawEvent::Completed { id, value } => {
                let body = value.unwrap_or_else(|| Chain::new(self.pool));
                #[cfg(feature = "histograms")]
                self.pool_use.record(u32::from(self.pool.stats().in_use));
                Some(Received::Message(Message { id, body }))
            }
            RawEvent::Aborted { id, .. } => Some(Received::Aborted { id }),
            RawEvent::Error { error, .. } => Some(Received::Error(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_ram_is_per_entry_cost_times_capacity_plus_a_constant() {
        // Documented in the README: about (12 + size_of::<T>()) × N + 152 bytes (an entry
        // is an id, a byte count and a `T`, plus room for one rejected id).
        // The `histograms` feature adds two histograms (message sizes, Start-to-End times) and
        // the time of the input to the counters, and the time of its Start to each entry.
        let (hist, timed) = if cfg!(feature = "histograms") {
            (2 * core::mem::size_of::<crate::Histogram>() + 8, 4)
        } else {
            (0, 0)
        };
        let per = |n: usize, t: usize| (12 + timed + t) * n + 152 + hist;
        assert!(core::mem::size_of::<Demux<(), 8>>() <= per(8, 0));
        assert!(core::mem::size_of::<Demux<(), 64>>() <= per(64, 0));
        let chain = core::mem::size_of::<Option<Chain<'static, 4, 4>>>();
        // The reassembler adds its pool-use histogram.
        assert!(
            core::mem::size_of::<Reassembler<'static, 16, 4, 4>>() <= per(16, chain) + 8 + hist
        );
        // Growing the table by one entry costs one entry and one rejected id (up to the
        // alignment of the whole).
        let d8 = core::mem::size_of::<Demux<u64, 8>>();
        let d10 = core::mem::size_of::<Demux<u64, 10>>();
        let entry = if cfg!(feature = "histograms") { 24 } else { 16 };
        assert_eq!(d10 - d8, 2 * (entry + 4));
    }
}
