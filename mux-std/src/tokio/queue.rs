//! The queue between the tokio reader task and its [`AsyncReceiver`](super::AsyncReceiver),
//! moved in batches at both ends as the blocking receiver's queue is: the reader task gathers
//! the items of what it read and hands them over with one lock and at most one wake-up per
//! batch (a batch ends when the reader is about to read again, or at [`BATCH`] items);
//! receivers take items one at a time from a cache of their own, which they refill by swapping
//! it with everything the reader has queued. No lock is held across an `.await`.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::queue::BATCH;
use crate::reader::lock;

struct State<T> {
    items: VecDeque<T>,
    /// The reader is gone: once `items` is empty, receivers see the end.
    closed: bool,
    /// The receiving end is gone: the reader stops.
    gone: bool,
    /// The reader waits for room.
    reader_waiting: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The receivers' cache: items taken from `state` in one swap, handed out one by one.
    cache: Mutex<VecDeque<T>>,
    /// Receivers waiting for an item: a batch handed over (or items left in the cache) wakes
    /// one of them.
    waiting: AtomicUsize,
    /// Items arrived, or the reader is gone.
    ready: Notify,
    /// Room was made, or the receiving end is gone.
    room: Notify,
    /// Most items in the reader's queue before it waits (it hands a whole batch over when
    /// there is room for one item).
    cap: usize,
}

/// A queue of about `cap` items (half of them in the reader's queue, half in the receivers'
/// cache): its reader's end and its receiving end.
pub(super) fn bounded<T>(cap: usize) -> (QueueTx<T>, QueueRx<T>) {
    let cap = (cap.max(2) / 2).max(1);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::with_capacity(cap.min(BATCH * 4)),
            closed: false,
            gone: false,
            reader_waiting: false,
        }),
        cache: Mutex::new(VecDeque::with_capacity(cap.min(BATCH * 4))),
        waiting: AtomicUsize::new(0),
        ready: Notify::new(),
        room: Notify::new(),
        cap,
    });
    (
        QueueTx {
            shared: shared.clone(),
            batch: Vec::with_capacity(BATCH.min(cap)),
            limit: BATCH.min(cap),
        },
        QueueRx { shared },
    )
}

/// The reader task's end: gathers items and hands them over in batches.
pub(super) struct QueueTx<T> {
    shared: Arc<Shared<T>>,
    batch: Vec<T>,
    limit: usize,
}

impl<T> QueueTx<T> {
    /// Adds `item` to the batch; `true` when the batch is full (hand it over now).
    #[inline]
    pub(super) fn push(&mut self, item: T) -> bool {
        self.batch.push(item);
        self.batch.len() >= self.limit
    }

    /// Whether the batch is empty.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Hands the batch over, waiting while the queue is full. `false`: the receiving end is
    /// gone (the batch is dropped).
    pub(super) async fn send(&mut self) -> bool {
        let s = &*self.shared;
        loop {
            {
                let mut st = lock(&s.state);
                if st.gone {
                    self.batch.clear();
                    return false;
                }
                if st.items.len() < s.cap {
                    st.items.extend(self.batch.drain(..));
                    drop(st);
                    if s.waiting.load(Ordering::SeqCst) > 0 {
                        s.ready.notify_one();
                    }
                    return true;
                }
                st.reader_waiting = true;
            }
            // A receiver that makes room after this check leaves a permit: no wake-up is lost.
            s.room.notified().await;
        }
    }
}

impl<T> Drop for QueueTx<T> {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.ready.notify_waiters();
    }
}

/// What [`QueueRx::try_recv`] found.
pub(super) enum Took<T> {
    Item(T),
    Empty,
    Closed,
}

/// The receiving end (one per [`AsyncReceiver`](super::AsyncReceiver), shared by the tasks
/// that receive from it).
pub(super) struct QueueRx<T> {
    shared: Arc<Shared<T>>,
}

impl<T> QueueRx<T> {
    /// The next item if one is queued.
    pub(super) fn try_recv(&self) -> Took<T> {
        let s = &*self.shared;
        let mut cache = lock(&s.cache);
        if cache.is_empty() {
            let mut st = lock(&s.state);
            std::mem::swap(&mut st.items, &mut *cache);
            if st.reader_waiting && !cache.is_empty() {
                st.reader_waiting = false;
                s.room.notify_one();
            }
            if cache.is_empty() {
                return if st.closed { Took::Closed } else { Took::Empty };
            }
        }
        let item = cache.pop_front();
        // Another receiver waits while items are left: it takes the next.
        if !cache.is_empty() && s.waiting.load(Ordering::SeqCst) > 0 {
            s.ready.notify_one();
        }
        item.map_or(Took::Empty, Took::Item)
    }

    /// The next item, `None` once the reader is gone and everything is taken. Cancel-safe.
    pub(super) async fn recv(&self) -> Option<T> {
        /// Counts a waiting receiver until it is done waiting.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let s = &*self.shared;
        loop {
            match self.try_recv() {
                Took::Item(item) => return Some(item),
                Took::Closed => return None,
                Took::Empty => {}
            }
            // Created before the count goes up and the queue is looked at again: a batch
            // handed over after that look wakes it (or leaves a permit), and so does the end.
            let ready = pin!(s.ready.notified());
            s.waiting.fetch_add(1, Ordering::SeqCst);
            let _waiting = Waiting(&s.waiting);
            match self.try_recv() {
                Took::Item(item) => return Some(item),
                Took::Closed => return None,
                Took::Empty => {}
            }
            ready.await;
        }
    }

    /// Whether the reader is gone (every item may not be taken yet).
    pub(super) fn is_closed(&self) -> bool {
        lock(&self.shared.state).closed
    }
}

impl<T> Drop for QueueRx<T> {
    fn drop(&mut self) {
        lock(&self.shared.state).gone = true;
        self.shared.room.notify_one();
    }
}
