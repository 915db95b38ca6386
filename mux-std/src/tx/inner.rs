//! The state behind the write lock and the blocking sender's holds.

use std::io::{self, IoSlice, Write};

use crate::link::Sink;
use std::time::Duration;

use mux_nostd::Outgoing;

use crate::adaptive::Pace;

use crate::config::Config;
use crate::error::SendError;
use crate::observe::TxHistograms;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{Arc, Condvar};

#[cfg(mux_shuttle)]
use shuttle::thread;
#[cfg(not(mux_shuttle))]
use std::thread;

use super::batch::*;
use super::coalescer::*;
use super::cursor::*;
use super::hold::*;
use super::stats::*;

/// The state behind the write lock.
pub(crate) struct TxInner<W> {
    /// The sink, behind the serial link profile's encoder if [`Config::link`] says so.
    pub(crate) io: Option<Sink<W>>,
    pub(crate) co: Coalescer,
    pub(crate) link: Link,
    /// Ids of messages whose Start is written and whose last frame is not.
    pub(crate) sending: Vec<u32>,
    pub(crate) stats: Arc<TxStats>,
    /// Async sends only: the message of a hold in progress. If its future is dropped mid-hold
    /// this stays set, and the next holder settles it (finishes the frame, writes Abort).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) owed: Option<Outgoing>,
    /// A sender that must not leave its frames buffered left them for the next holder
    /// because others were waiting: the next holder writes them even if it is buffered.
    pub(super) owe_flush: bool,
    /// [`Config::hold_budget`].
    pub(crate) budget: usize,
    /// [`Config::max_sending`] (at least 1): most messages in `sending` plus the one of the
    /// hold in progress.
    pub(super) max_sending: usize,
    /// Blocking senders waiting for a message to end before they start theirs
    /// ([`Sender::wait_for_slot`]); counted under the lock.
    pub(super) slot_waiters: usize,
    /// Wakes them: a message left `sending`, or the link changed.
    pub(super) slot_freed: Arc<Condvar>,
    /// Times write calls under Adaptive.
    pub(crate) pace: Pace,
}

impl<W> TxInner<W> {
    pub(crate) fn new(io: W, config: &Config) -> Self {
        Self {
            io: Some(Sink::new(io, config)),
            co: Coalescer::new(config),
            link: Link::Open,
            sending: Vec::new(),
            stats: Arc::new(TxStats {
                hist: TxHistograms::new(config.histograms),
                ..TxStats::default()
            }),
            owed: None,
            owe_flush: false,
            budget: config.hold_budget,
            max_sending: config.sending_cap(),
            slot_waiters: 0,
            slot_freed: Arc::new(Condvar::new()),
            pace: Pace::new(config.strategy),
        }
    }

    /// Whether a new message may start now: fewer than [`Config::max_sending`] are under
    /// way besides it (its own hold is not in `sending`), so the peer, which sees at most
    /// those plus this one open, never has more than `max_sending` of ours in flight.
    #[inline]
    pub(crate) fn slot_free(&self) -> bool {
        self.sending.len() < self.max_sending
    }

    /// A message left `sending`, or the link changed: wakes the senders waiting for a slot.
    #[inline]
    pub(crate) fn slots_changed(&self) {
        if self.slot_waiters > 0 {
            self.slot_freed.notify_all();
        }
    }

    /// After a hold: whether to write the shared buffer now. While others wait, the last of
    /// them writes it; a buffered send leaves it unless an earlier one is owed.
    #[inline]
    pub(crate) fn should_flush(&mut self, buffered: bool, others_waiting: bool) -> bool {
        if others_waiting {
            if !buffered {
                self.set_owe_flush(true);
            }
            return false;
        }
        if buffered && !self.owe_flush {
            return false;
        }
        self.set_owe_flush(false);
        true
    }

    pub(super) fn set_owe_flush(&mut self, owe: bool) {
        self.owe_flush = owe;
    }

    /// Checks the link before a hold; on failure the message is no longer under way.
    pub(crate) fn usable(&mut self, id: u32, started: bool) -> Result<(), SendError> {
        let e = match self.link {
            Link::Open => return Ok(()),
            Link::Broken => SendError::Broken,
            Link::Closed => SendError::Closed,
        };
        if started {
            self.forget(id);
        }
        Err(e)
    }

    pub(crate) fn forget(&mut self, id: u32) {
        if let Some(i) = self.sending.iter().position(|&x| x == id) {
            self.sending.swap_remove(i);
            self.slots_changed();
        }
    }

    /// Bookkeeping after a message's last frame. (The async sender's.)
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn finished(&mut self, out: &Outgoing) {
        self.forget(out.id());
        if out.is_cancelled() {
            bump(&self.stats.aborted, 1);
        } else {
            bump(&self.stats.messages, 1);
            bump(&self.stats.bytes, u64::from(out.total()));
            let total = out.total() as usize;
            self.stats.hist.message(total, out.frame_count());
        }
    }

    /// Bookkeeping after the last frame of a blocking send of `total` bytes; `listed`: it
    /// is in `sending` (it ended a hold unfinished).
    #[inline]
    pub(crate) fn completed(&mut self, id: u32, total: usize, frames: u32, listed: bool) {
        if listed {
            self.forget(id);
        }
        bump(&self.stats.messages, 1);
        bump(&self.stats.bytes, total as u64);
        self.stats.hist.message(total, frames);
    }

    /// A write not on behalf of one message failed: the link is broken.
    pub(crate) fn link_failed(&mut self, e: io::Error) -> SendError {
        self.link = Link::Broken;
        self.stats.broken.store(true, Ordering::Relaxed);
        self.slots_changed();
        SendError::Io(e)
    }

    /// A write failed: the error goes to the caller, the link is broken for everyone else.
    pub(crate) fn broke(&mut self, id: u32, e: io::Error) -> SendError {
        self.link = Link::Broken;
        self.stats.broken.store(true, Ordering::Relaxed);
        self.forget(id);
        self.slots_changed();
        SendError::Io(e)
    }

    /// Whether message `id` is under way (its Start written, its last frame not): a new
    /// message with this id would splice into it.
    #[inline]
    pub(crate) fn in_flight(&self, id: u32) -> bool {
        self.sending.contains(&id)
    }
}

impl<W: Write> TxInner<W> {
    /// A send that had written its Start gave up waiting for the lock (cancelled or timed
    /// out): its Abort goes into the shared buffer now (it sits at a frame boundary).
    pub(crate) fn orphaned(&mut self, id: u32) {
        let Some(i) = self.sending.iter().position(|&x| x == id) else {
            return; // already ended, e.g. by close
        };
        self.sending.swap_remove(i);
        self.slots_changed();
        self.abort_here(id);
    }

    /// Ends message `id` (at a frame boundary, no longer in `sending`) with an Abort in the
    /// shared buffer, owed to the wire even by a buffered send. A write error (the buffer
    /// was full) breaks the link, which then owes nothing.
    pub(super) fn abort_here(&mut self, id: u32) {
        if self.link == Link::Open {
            match self.push_abort(id) {
                Ok(()) => self.set_owe_flush(true),
                Err(e) => drop(self.link_failed(e)),
            }
        }
        bump(&self.stats.aborted, 1);
    }

    /// Buffers an Abort for `id`, writing the shared buffer out first if it is full (it
    /// keeps to its capacity).
    pub(super) fn push_abort(&mut self, id: u32) -> io::Result<()> {
        if !self.co.push_abort(id) {
            self.flush_pending()?;
            // Cannot fail: the buffer is empty now and holds at least one header.
            let _ = self.co.push_abort(id);
        }
        Ok(())
    }

    /// Before closing: Abort for every message under way (they are all at frame boundaries,
    /// since a hold always ends on one). Returns their ids, and the error of a write of the
    /// shared buffer made to make room (the Aborts after it are not buffered).
    pub(super) fn abort_all(&mut self) -> (Vec<u32>, io::Result<()>) {
        let ids = std::mem::take(&mut self.sending);
        self.slots_changed();
        let mut r = Ok(());
        for &id in &ids {
            if r.is_ok() {
                r = self.push_abort(id);
            }
            bump(&self.stats.aborted, 1);
        }
        (ids, r)
    }

    /// One hold of the write lock for `msg` (the shared [`Hold`] routine, written with
    /// blocking calls): writes its frames (or, while others wait or for a buffered send,
    /// copies the small ones into the shared buffer) until the message is done, a contender
    /// is owed the lock, or `how.stop` says stop. Every write call gathers up to `F` frames;
    /// `V` is its slice count (`2F + 2`).
    #[inline]
    pub(super) fn hold<const F: usize, const V: usize>(
        &mut self,
        msg: &mut Cursor,
        payload: &[u8],
        how: &mut How<'_, dyn FnMut() -> Option<SendError> + '_>,
    ) -> io::Result<HoldEnd> {
        const { assert!(V >= 2 * F + 2) };
        let Self {
            io,
            co,
            stats,
            budget,
            ..
        } = self;
        let Some(io) = io.as_mut() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let mut hold = Hold::new(*budget);
        let mut batch = Batch::<F>::new();
        loop {
            if let Some(end) = hold.next(msg, co, payload, how, &mut batch) {
                return Ok(end);
            }
            let n = {
                let mut iov = [IoSlice::new(&[]); V];
                let (k, len) = Hold::slices(&batch, &mut iov, co, msg, payload);
                how.pace.write(io, &iov[..k], len, &stats.writes)?
            };
            hold.wrote(msg, co, &batch, n);
        }
    }

    /// Writes the frames of a small message (the shared buffer is empty): usually one call
    /// takes them all, otherwise the slices move on by what was written. `None`: no sink.
    #[inline]
    pub(super) fn write_small(&mut self, frames: &SmallFrames<'_>) -> Option<io::Result<()>> {
        let Self {
            io, stats, pace, ..
        } = self;
        let io = io.as_mut()?;
        let mut iov = [
            IoSlice::new(&frames.heads),
            IoSlice::new(frames.body),
            IoSlice::new(frames.end()),
        ];
        let mut left: &mut [IoSlice<'_>] = if frames.end.is_some() {
            &mut iov
        } else {
            &mut iov[..1]
        };
        let mut len = frames.wire_len();
        while len > 0 {
            match pace.write(io, left, len, &stats.writes) {
                Ok(n) if n == len => break,
                Ok(n) => {
                    IoSlice::advance_slices(&mut left, n);
                    len -= n;
                }
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(()))
    }

    /// Writes the shared buffer out.
    #[inline]
    pub(super) fn flush_buf(&mut self) -> io::Result<()> {
        if self.co.pending().is_empty() {
            return Ok(());
        }
        self.flush_pending()
    }

    #[cold]
    pub(super) fn flush_pending(&mut self) -> io::Result<()> {
        let Self {
            io,
            co,
            stats,
            pace,
            ..
        } = self;
        let Some(io) = io.as_mut() else {
            return Ok(());
        };
        while !co.pending().is_empty() {
            let p = co.pending();
            let p = &p[..p.len().min(pace.cap(p.len()).max(1))];
            let n = pace.write(io, &[IoSlice::new(p)], p.len(), &stats.writes)?;
            co.sent(n);
        }
        Ok(())
    }
}

#[inline]
pub(crate) fn write_some<W: Write>(
    io: &mut W,
    iov: &[IoSlice<'_>],
    writes: &AtomicU64,
) -> io::Result<usize> {
    loop {
        bump(writes, 1);
        match io.write_vectored(iov) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Yields first (holds and hand-overs are short), then sleeps 50 µs doubling to 800 µs.
pub(super) fn back_off(tries: &mut u32) {
    *tries += 1;
    if *tries < 64 {
        thread::yield_now();
    } else {
        thread::sleep(Duration::from_micros(50 << (*tries - 64).min(4)));
    }
}
