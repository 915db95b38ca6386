//! The queue between the reader thread and its [`Receiver`](crate::Receiver)s: bounded, many
//! receivers, and moved in batches at both ends. The reader gathers the items of what it read
//! and hands them over with one lock and at most one wake-up per batch (a batch ends when the
//! reader is about to read again, or at [`BATCH`] items), instead of one channel operation and
//! one wake-up per message. Receivers take items one at a time from a cache of their own
//! (shared by the clones of one receiver, never touched by the reader), which they refill by
//! swapping it with everything the reader has queued: one lock of the reader's queue per
//! batch on that side too.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Most items the reader gathers before it hands them over, whatever is left of its read.
pub(crate) const BATCH: usize = 256;

struct State<T> {
    items: VecDeque<T>,
    /// The sender is gone: once `items` is empty, receivers see the end.
    closed: bool,
    /// Live receivers; at 0 the sender stops.
    receivers: usize,
    /// Receivers waiting for an item.
    waiting: usize,
    /// The sender waits for room (it is woken once the queue is down to half).
    sender_waiting: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The receivers' cache: items taken from `state` in one swap, handed out one by one.
    cache: Mutex<VecDeque<T>>,
    /// Signalled when items arrive or the sender goes.
    ready: Condvar,
    /// Signalled when room is made or the last receiver goes.
    room: Condvar,
    cap: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cache(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A queue of at most `cap` items (0 means 1): its sending and its receiving end. Half of
/// them wait in the reader's queue, half in the receivers' cache.
pub(crate) fn bounded<T>(cap: usize) -> (QueueTx<T>, QueueRx<T>) {
    let cap = cap.max(2) / 2;
    let shared = Arc::new(Shared {
        cache: Mutex::new(VecDeque::with_capacity(cap.min(BATCH * 4))),
        state: Mutex::new(State {
            items: VecDeque::with_capacity(cap.min(BATCH * 4)),
            closed: false,
            receivers: 1,
            waiting: 0,
            sender_waiting: false,
        }),
        ready: Condvar::new(),
        room: Condvar::new(),
        cap,
    });
    (
        QueueTx {
            shared: Arc::clone(&shared),
            batch: VecDeque::with_capacity(BATCH.min(cap.max(1))),
            limit: BATCH.min(cap),
        },
        QueueRx { shared },
    )
}

/// The reader's end: gathers items and hands them over in batches.
pub(crate) struct QueueTx<T> {
    shared: Arc<Shared<T>>,
    batch: VecDeque<T>,
    /// Items of a full batch ([`BATCH`], or the queue's capacity if smaller): kept here, so
    /// that the reader does not read a line of the shared state that receivers write.
    limit: usize,
}

impl<T> QueueTx<T> {
    /// Whether the next [`push`](Self::push) hands the batch over.
    pub(crate) fn flushes_next(&self) -> bool {
        self.batch.len() + 1 >= self.limit
    }

    /// Adds `item` to the batch (handing the batch over when full); `false` once every
    /// receiver is gone.
    pub(crate) fn push(&mut self, item: T) -> bool {
        self.batch.push_back(item);
        self.batch.len() < self.limit || self.flush()
    }

    /// Hands the batch over, waiting for room while the queue is full; `false` (the batch
    /// dropped) once every receiver is gone.
    pub(crate) fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return self.shared.lock().receivers > 0;
        }
        let mut st = self.shared.lock();
        if st.receivers > 0 && self.batch.len() <= self.shared.cap.saturating_sub(st.items.len()) {
            // The whole batch fits (the usual case): moved in one piece.
            let wake = st.waiting > 0;
            st.items.append(&mut self.batch);
            drop(st);
            if wake {
                self.shared.ready.notify_one();
            }
            return true;
        }
        let mut items = self.batch.drain(..);
        loop {
            if st.receivers == 0 {
                return false;
            }
            let room = self.shared.cap.saturating_sub(st.items.len());
            let before = st.items.len();
            st.items.extend(items.by_ref().take(room));
            let wake = st.items.len() > before && st.waiting > 0;
            if items.len() == 0 {
                // Woken after the lock is released, so that the receiver does not wake into
                // a lock still held.
                drop(st);
                if wake {
                    self.shared.ready.notify_one();
                }
                return true;
            }
            if wake {
                self.shared.ready.notify_one();
            }
            st.sender_waiting = true;
            st = self.shared.room.wait(st).unwrap_or_else(|e| e.into_inner());
            st.sender_waiting = false;
        }
    }
}

impl<T> Drop for QueueTx<T> {
    fn drop(&mut self) {
        self.flush();
        let mut st = self.shared.lock();
        st.closed = true;
        if st.waiting > 0 {
            self.shared.ready.notify_all();
        }
    }
}

/// Why a receive returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Empty {
    /// Nothing queued (or the deadline passed first).
    Now,
    /// Nothing queued and the sender is gone: nothing more will come.
    Closed,
}

/// A receivers' end (cloned for each [`Receiver`](crate::Receiver) clone).
pub(crate) struct QueueRx<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for QueueRx<T> {
    fn clone(&self) -> Self {
        self.shared.lock().receivers += 1;
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for QueueRx<T> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.receivers -= 1;
        if st.receivers == 0 {
            self.shared.room.notify_all();
        }
    }
}

impl<T> QueueRx<T> {
    /// Refills an empty cache with everything the reader has queued (one swap: the two
    /// buffers keep their capacity), waiting until `deadline` (forever if `None`) for it to
    /// queue something. The caller holds the cache.
    fn refill(&self, cache: &mut VecDeque<T>, deadline: Option<Instant>) -> Result<(), Empty> {
        let mut st = self.shared.lock();
        loop {
            if !st.items.is_empty() {
                std::mem::swap(cache, &mut st.items);
                if st.sender_waiting {
                    st.sender_waiting = false;
                    self.shared.room.notify_one();
                }
                return Ok(());
            }
            if st.closed {
                return Err(Empty::Closed);
            }
            let Some(at) = deadline else {
                st.waiting += 1;
                st = self
                    .shared
                    .ready
                    .wait(st)
                    .unwrap_or_else(|e| e.into_inner());
                st.waiting -= 1;
                continue;
            };
            let now = Instant::now();
            if now >= at {
                return Err(Empty::Now);
            }
            st.waiting += 1;
            st = self
                .shared
                .ready
                .wait_timeout(st, at - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            st.waiting -= 1;
        }
    }

    /// The next item, waiting until `deadline` (forever if `None`).
    pub(crate) fn recv_until(&self, deadline: Option<Instant>) -> Result<T, Empty> {
        let mut cache = self.shared.cache();
        if let Some(item) = cache.pop_front() {
            return Ok(item);
        }
        self.refill(&mut cache, deadline)?;
        cache.pop_front().ok_or(Empty::Now)
    }

    /// The next item if one is queued.
    pub(crate) fn try_recv(&self) -> Result<T, Empty> {
        self.recv_until(Some(Instant::now()))
    }

    /// Items queued now.
    pub(crate) fn len(&self) -> usize {
        let cache = self.shared.cache();
        cache.len() + self.shared.lock().items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn items_arrive_in_order_once_flushed_and_the_end_after_them() {
        let (mut tx, rx) = bounded(1000);
        for i in 0..10 {
            assert!(tx.push(i));
        }
        // Gathered, not handed over yet.
        assert_eq!(rx.try_recv(), Err(Empty::Now));
        assert!(tx.flush());
        drop(tx);
        let got: Vec<i32> = std::iter::from_fn(|| rx.recv_until(None).ok()).collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(rx.recv_until(None), Err(Empty::Closed));
    }

    #[test]
    fn a_full_batch_goes_without_a_flush() {
        let (mut tx, rx) = bounded(1000);
        for i in 0..BATCH {
            assert!(tx.push(i));
        }
        assert_eq!(rx.len(), BATCH);
    }

    #[test]
    fn the_sender_waits_for_room_and_stops_when_receivers_go() {
        let (mut tx, rx) = bounded(4);
        let rx2 = rx.clone();
        let t = std::thread::spawn(move || {
            for i in 0..100 {
                tx.push(i);
            }
            tx.flush()
        });
        let mut got = Vec::new();
        while got.len() < 100 {
            got.push(
                rx.recv_until(Some(Instant::now() + Duration::from_secs(5)))
                    .unwrap(),
            );
            assert!(rx2.len() <= 4);
        }
        assert!(t.join().unwrap());
        assert_eq!(got, (0..100).collect::<Vec<_>>());

        let (mut tx, rx) = bounded(2);
        drop(rx);
        assert!(!tx.push(1) || !tx.flush());
    }

    #[test]
    fn a_deadline_ends_the_wait() {
        let (_tx, rx) = bounded::<u8>(4);
        let t0 = Instant::now();
        assert_eq!(
            rx.recv_until(Some(Instant::now() + Duration::from_millis(20))),
            Err(Empty::Now)
        );
        assert!(t0.elapsed() >= Duration::from_millis(20));
    }
}
