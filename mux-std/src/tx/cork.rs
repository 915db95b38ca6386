//! Autocorking: plain sends of small messages that come in a burst gather in the shared write
//! buffer and leave together; a lone send (a request, a reply, a periodic reading) is written
//! through at once.
//!
//! The policy, for each plain [`send`](super::Sender::send) of a small message (its frames fit
//! [`Config::coalesce_frame`](crate::Config::coalesce_frame)):
//! - while earlier sends of the burst wait in the buffer (the flusher is armed), it joins them;
//! - else, if the node received something since the previous send (a reply came: this send
//!   may be the next request of a ping-pong), or the previous send began
//!   [`Config::autocork`](crate::Config::autocork) or longer ago, it is written through;
//! - else (sends following each other faster than that, nothing heard in between) it starts a
//!   burst: its frames stay in the buffer and the flusher is armed.
//!
//! A burst's frames leave when the buffer fills (the send that fills it writes it, as with
//! [`send_buffered`](super::Sender::send_buffered)), when any other send writes (frames keep
//! their order), or when the flusher, a thread of the sender's own, finds that no send joined
//! the burst for one `autocork` interval: the last message of a burst waits for about two
//! intervals (plus the timer's slack) at most, a lone message not at all.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

/// The autocorking state of one sender, shared with its flusher thread.
#[derive(Debug)]
pub(crate) struct Cork {
    /// Sends closer together than this form a burst; a burst idle this long is flushed.
    gap: Duration,
    /// Largest payload that may be corked (its frames fit the coalescing limit).
    pub(super) small_max: usize,
    /// When the clock of `last` started.
    epoch: Instant,
    /// When the latest send that was not part of an armed burst began (ns since `epoch`).
    last: AtomicU64,
    /// Reads the node's reader made (moves when anything arrives); `None` for a sender
    /// without a receiver.
    arrivals: Option<Arc<AtomicU64>>,
    /// `arrivals` as the latest send saw it.
    heard: AtomicU64,
    /// Sends that joined a burst (the flusher watches it move).
    joined: AtomicU64,
    /// Frames wait in the buffer for the flusher.
    armed: AtomicBool,
    /// The sender is gone: the flusher exits.
    gone: AtomicBool,
    /// Where the flusher sleeps.
    sleep: Mutex<()>,
    wake: Condvar,
}

impl Cork {
    /// A cork with burst gap `gap` for payloads up to `small_max` bytes.
    pub(crate) fn new(gap: Duration, small_max: usize, arrivals: Option<Arc<AtomicU64>>) -> Self {
        let heard = arrivals.as_ref().map_or(0, |a| a.load(Ordering::Relaxed));
        Self {
            gap,
            small_max,
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            arrivals,
            heard: AtomicU64::new(heard),
            joined: AtomicU64::new(0),
            armed: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// Whether a plain send of `len` payload bytes is corked (goes into the buffer and leaves
    /// with its burst) rather than written through.
    #[inline]
    pub(crate) fn corks(&self, len: usize) -> bool {
        if len > self.small_max {
            return false;
        }
        if self.armed.load(Ordering::Acquire) {
            return true;
        }
        let now = self.now_ns();
        let prev = self.last.swap(now, Ordering::Relaxed);
        if let Some(a) = &self.arrivals {
            let seen = a.load(Ordering::Relaxed);
            if self.heard.swap(seen, Ordering::Relaxed) != seen {
                return false; // a reply came: write the next request through
            }
        }
        prev != 0 && now.saturating_sub(prev) < self.gap_ns()
    }

    /// A corked send's frames are in the buffer: the flusher will see them out. `true` if
    /// this send started the burst (armed the flusher).
    #[inline]
    pub(crate) fn joined(&self) -> bool {
        // A load and a store: senders racing here may lose an increment, but the count still
        // moves, which is all the flusher looks for.
        let n = self.joined.load(Ordering::Relaxed);
        self.joined.store(n.wrapping_add(1), Ordering::Relaxed);
        // Seen armed: the flusher disarms only before it writes the buffer, which holds this
        // send's frames already (or a later send arms it again).
        if self.armed.load(Ordering::Acquire) {
            return false;
        }
        if !self.armed.swap(true, Ordering::AcqRel) {
            // Taking the flusher's lock orders this with its check of `armed`.
            drop(self.sleep.lock().unwrap_or_else(|e| e.into_inner()));
            self.wake.notify_one();
            return true;
        }
        false
    }

    /// A flusher of its own (the tokio sender's task) is about to write the buffer: sends
    /// corked from here on arm it again.
    #[cfg(feature = "tokio")]
    pub(crate) fn disarm(&self) {
        self.armed.store(false, Ordering::Release);
    }

    /// The sender is gone: the flusher exits (the sender's own close flushed).
    pub(crate) fn stop(&self) {
        self.gone.store(true, Ordering::Release);
        drop(self.sleep.lock().unwrap_or_else(|e| e.into_inner()));
        self.wake.notify_all();
    }

    fn now_ns(&self) -> u64 {
        // At least 1, so that 0 means "no send yet".
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX) | 1
    }

    fn gap_ns(&self) -> u64 {
        u64::try_from(self.gap.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Sleeps until armed; `false` once the sender is gone.
    fn wait_armed(&self) -> bool {
        let mut g = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.gone.load(Ordering::Acquire) {
                return false;
            }
            if self.armed.load(Ordering::Acquire) {
                return true;
            }
            g = self.wake.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Sleeps until no send joined the burst for one gap; `false` once the sender is gone.
    fn wait_idle(&self) -> bool {
        let mut seen = self.joined.load(Ordering::Relaxed);
        loop {
            let g = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
            if self.gone.load(Ordering::Acquire) {
                return false;
            }
            drop(self.wake.wait_timeout(g, self.gap));
            if self.gone.load(Ordering::Acquire) {
                return false;
            }
            let now = self.joined.load(Ordering::Relaxed);
            if now == seen {
                return true;
            }
            seen = now;
        }
    }
}

/// Starts the flusher of `cork`: each time a burst is armed it waits until the burst is idle,
/// disarms it and calls `flush` (which writes the shared buffer under the write lock and
/// returns `false` once the sender is gone).
pub(crate) fn spawn_flusher(
    cork: &Arc<Cork>,
    flush: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<()> {
    let cork: Weak<Cork> = Arc::downgrade(cork);
    thread::Builder::new()
        .name("mux-autocork".into())
        .spawn(move || {
            loop {
                let Some(c) = cork.upgrade() else { return };
                if !c.wait_armed() || !c.wait_idle() {
                    return;
                }
                // Disarmed before the buffer is written: a send corked from here on arms
                // again, so its frames are never left behind.
                c.armed.store(false, Ordering::Release);
                drop(c);
                if !flush() {
                    return;
                }
            }
        })
        .map(drop)
}
