//! Frame turns: several async tasks sharing one link take turns frame by frame.
//!
//! Each task that has a message to send takes a [`Turn`] from a [`FrameTurns`] of fixed
//! capacity `N` (no allocation), writes one frame while it holds the turn, and
//! [`pass`](Turn::pass)es it on before the next: the turn goes to the task that has waited
//! longest, or, with priority on, to a waiting task whose message is small first. So a small
//! message queued during a bulk transfer waits for at most the frame in flight (and the small
//! messages queued before it); with [`Adaptive`](crate::Adaptive) framing, one frame holds the
//! link for at most the latency budget.
//!
//! The turns only order the writes; the link itself is shared as the platform shares things
//! between tasks (an `embassy-sync` mutex, which the turns leave uncontended). The state sits
//! in a `critical-section` mutex and the tasks' wakers in the slots, so it works on any core,
//! Cortex-M0 included, and in interrupt-driven executors.

use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use critical_section::Mutex;

use crate::adaptive::Clock;

/// One task's place in the turns.
#[derive(Debug)]
struct Slot {
    used: bool,
    /// Waiting for the turn (not holding it).
    waiting: bool,
    small: bool,
    /// When it started waiting, by the turns' counter.
    since: u32,
    waker: Option<Waker>,
}

impl Slot {
    const FREE: Self = Self {
        used: false,
        waiting: false,
        small: false,
        since: 0,
        waker: None,
    };
}

#[derive(Debug)]
struct State<const N: usize> {
    slots: [Slot; N],
    holder: Option<usize>,
    clock: u32,
    priority: bool,
    /// A task waiting for a free slot (the last one to ask; an earlier one is woken to ask
    /// again).
    full: Option<Waker>,
    /// Microseconds from [`FrameTurns::take_timed`] to the turn.
    #[cfg(feature = "histograms")]
    waits: crate::Histogram,
}

impl<const N: usize> State<N> {
    /// The waiting slot to hold the turn next: small ones first with priority on, then the one
    /// that has waited longest.
    fn next(&self) -> Option<usize> {
        let key = |s: &Slot| {
            (
                !(self.priority && s.small),
                u32::MAX - self.clock.wrapping_sub(s.since),
            )
        };
        (0..N)
            .filter(|&i| self.slots[i].used && self.slots[i].waiting)
            .min_by_key(|&i| key(&self.slots[i]))
    }

    /// Gives the turn to the next waiting slot (none: nobody holds it); returns its waker.
    fn hand_over(&mut self) -> Option<Waker> {
        self.holder = self.next();
        let i = self.holder?;
        self.slots[i].waiting = false;
        self.slots[i].waker.take()
    }

    fn tick(&mut self) -> u32 {
        self.clock = self.clock.wrapping_add(1);
        self.clock
    }
}

/// Turns of up to `N` tasks writing frames to one link.
///
/// Each task that has a message to send takes a [`Turn`] ([`take`](Self::take)), writes one
/// frame while it holds it, and [`pass`](Turn::pass)es it on before the next: the turn goes to
/// the task that has waited longest, or, with priority on, to a waiting task whose message is
/// small first. So a small message queued during a bulk transfer waits for at most the frame in
/// flight (and the small messages queued before it); with [`Adaptive`](crate::Adaptive)
/// framing, one frame holds the link for at most the latency budget. The turns only order the
/// writes: the link itself is shared as the platform shares things between tasks (an
/// `embassy-sync` mutex, which the turns leave uncontended). The state sits in a
/// `critical-section` mutex, so it works on any core, Cortex-M0 included. Size `N` to the tasks
/// that may send at once: beyond it, tasks waiting for a slot wake each other in turn.
///
/// ```
/// use mux_nostd::FrameTurns;
/// static TURNS: FrameTurns<4> = FrameTurns::new(true);
/// # embassy_futures::block_on(async {
/// let mut turn = TURNS.take(false).await; // nobody else: the turn at once
/// // … write a frame …
/// turn.pass().await; // nobody waits: keeps it
/// // … write the next frame …
/// drop(turn); // done: the next waiting task gets the turn
/// # });
/// ```
#[derive(Debug)]
pub struct FrameTurns<const N: usize> {
    state: Mutex<RefCell<State<N>>>,
}

impl<const N: usize> FrameTurns<N> {
    /// Empty turns; `priority`: small messages' turns come before the others'.
    pub const fn new(priority: bool) -> Self {
        Self {
            state: Mutex::new(RefCell::new(State {
                slots: [const { Slot::FREE }; N],
                holder: None,
                clock: 0,
                priority,
                full: None,
                #[cfg(feature = "histograms")]
                waits: crate::Histogram::new(),
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State<N>) -> R) -> R {
        critical_section::with(|cs| f(&mut self.state.borrow_ref_mut(cs)))
    }

    /// Waits for a free slot (all `N` may be taken), then for the turn; `small`: the task's
    /// message is a small one (it goes first when priority is on). Dropping the future gives
    /// its slot back.
    pub async fn take(&self, small: bool) -> Turn<'_, N> {
        let slot = poll_fn(|cx| {
            let (got, wake) = self.with(|s| {
                let Some(i) = (0..N).find(|&i| !s.slots[i].used) else {
                    let old = s.full.replace(cx.waker().clone());
                    return (None, old.filter(|w| !w.will_wake(cx.waker())));
                };
                let since = s.tick();
                s.slots[i] = Slot {
                    used: true,
                    waiting: true,
                    small,
                    since,
                    waker: None,
                };
                if s.holder.is_none() {
                    s.holder = Some(i);
                    s.slots[i].waiting = false;
                }
                (Some(i), None)
            });
            if let Some(w) = wake {
                w.wake();
            }
            match got {
                Some(i) => Poll::Ready(i),
                None => Poll::Pending,
            }
        })
        .await;
        let turn = Turn { turns: self, slot };
        turn.wait().await;
        turn
    }

    /// [`take`](Self::take), timing the wait for the first turn with `clock` into
    /// `waits` (feature `histograms`; without it the clock is not read): how
    /// long a message waited for the link before its first frame.
    pub async fn take_timed<C: Clock>(&self, small: bool, clock: &C) -> Turn<'_, N> {
        #[cfg(feature = "histograms")]
        let t0 = C::TIMED.then(|| clock.now_us());
        #[cfg(not(feature = "histograms"))]
        let _ = clock;
        let turn = self.take(small).await;
        #[cfg(feature = "histograms")]
        if let Some(t0) = t0 {
            let us = clock.now_us().wrapping_sub(t0);
            self.with(|s| s.waits.record(us));
        }
        turn
    }

    /// Microseconds each [`take_timed`](Self::take_timed) waited for its turn (feature
    /// `histograms`).
    #[cfg(feature = "histograms")]
    pub fn waits(&self) -> crate::Histogram {
        self.with(|s| s.waits)
    }

    /// Whether a task holds the turn and how many wait for one.
    pub fn load(&self) -> (bool, usize) {
        self.with(|s| {
            (
                s.holder.is_some(),
                s.slots.iter().filter(|x| x.used && x.waiting).count(),
            )
        })
    }
}

/// A task's place in [`FrameTurns`]: it holds the turn between [`FrameTurns::take`] (or
/// [`pass`](Self::pass)) and its next `pass` or its drop. Dropping it gives the turn and the
/// slot to the next task.
#[derive(Debug)]
pub struct Turn<'t, const N: usize> {
    turns: &'t FrameTurns<N>,
    slot: usize,
}

impl<const N: usize> Turn<'_, N> {
    /// Waits until this slot holds the turn.
    async fn wait(&self) {
        poll_fn(|cx| {
            self.turns.with(|s| {
                if s.holder == Some(self.slot) {
                    Poll::Ready(())
                } else {
                    s.slots[self.slot].waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
        })
        .await;
    }

    /// After a frame: lets the next waiting task write one (small messages first with
    /// priority on, else the one that waited longest) and waits for the turn to come back;
    /// keeps it if nobody waits. It yields to the executor once first, so that tasks woken
    /// while the frame was written (a timer that fired) take their place before it decides.
    pub async fn pass(&mut self) {
        yield_once().await;
        let wake = self.turns.with(|s| {
            // Nobody waits: keep the turn.
            s.next()?;
            let since = s.tick();
            let me = &mut s.slots[self.slot];
            me.waiting = true;
            me.since = since;
            s.hand_over()
        });
        if let Some(w) = wake {
            w.wake();
        }
        self.wait().await;
    }
}

/// Returns `Pending` once (waking itself), then `Ready`.
async fn yield_once() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

impl<const N: usize> Drop for Turn<'_, N> {
    fn drop(&mut self) {
        let (next, full) = self.turns.with(|s| {
            s.slots[self.slot] = Slot::FREE;
            let next = if s.holder == Some(self.slot) {
                s.hand_over()
            } else {
                None
            };
            (next, s.full.take())
        });
        for w in [next, full].into_iter().flatten() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell as Log;
    use embassy_futures::join::{join, join3};
    use embassy_futures::yield_now;

    /// A task writing `frames` frames (each a log entry, then a yield as a write would).
    async fn sender<const N: usize>(
        turns: &FrameTurns<N>,
        log: &Log<heapless::Vec<(char, u8), 64>>,
        name: char,
        small: bool,
        frames: u8,
    ) {
        let mut turn = turns.take(small).await;
        for k in 0..frames {
            if k > 0 {
                turn.pass().await;
            }
            let _ = log.borrow_mut().push((name, k));
            yield_now().await; // the frame's write
        }
    }

    fn names(log: &Log<heapless::Vec<(char, u8), 64>>) -> heapless::Vec<char, 64> {
        log.borrow().iter().map(|&(c, _)| c).collect()
    }

    #[test]
    fn two_bulk_senders_alternate_frame_by_frame() {
        let turns: FrameTurns<4> = FrameTurns::new(true);
        let log = Log::new(heapless::Vec::new());
        embassy_futures::block_on(join(
            sender(&turns, &log, 'a', false, 3),
            sender(&turns, &log, 'b', false, 3),
        ));
        assert_eq!(names(&log).as_slice(), ['a', 'b', 'a', 'b', 'a', 'b']);
        assert_eq!(turns.load(), (false, 0));
    }

    /// The order of the first three frames: bulk a and b, small s arriving while a's first
    /// frame is being written, after b.
    fn first_three(priority: bool) -> heapless::Vec<char, 64> {
        let turns: FrameTurns<4> = FrameTurns::new(priority);
        let log = Log::new(heapless::Vec::new());
        embassy_futures::block_on(join3(
            sender(&turns, &log, 'a', false, 4),
            sender(&turns, &log, 'b', false, 4),
            sender(&turns, &log, 's', true, 1),
        ));
        names(&log).into_iter().take(3).collect()
    }

    #[test]
    fn a_small_message_waits_for_one_frame_and_goes_before_waiting_bulk() {
        // a's frame in flight, then s before b (which waited longer).
        assert_eq!(first_three(true).as_slice(), ['a', 's', 'b']);
        // Without priority, s waits behind b.
        assert_eq!(first_three(false).as_slice(), ['a', 'b', 's']);
    }

    #[test]
    fn a_full_table_makes_the_next_task_wait_for_a_slot() {
        let turns: FrameTurns<1> = FrameTurns::new(true);
        let log = Log::new(heapless::Vec::new());
        embassy_futures::block_on(join(
            sender(&turns, &log, 'a', false, 2),
            sender(&turns, &log, 'b', true, 2),
        ));
        // One slot: b can only queue once a is done, priority or not.
        assert_eq!(names(&log).as_slice(), ['a', 'a', 'b', 'b']);
    }

    #[test]
    fn a_dropped_take_gives_its_slot_and_turn_back() {
        let turns: FrameTurns<2> = FrameTurns::new(true);
        embassy_futures::block_on(async {
            let held = turns.take(false).await;
            {
                let waiting = core::pin::pin!(turns.take(true));
                // Polled once: queued behind `held`, then dropped.
                let _ = embassy_futures::poll_once(waiting);
            }
            assert_eq!(turns.load(), (true, 0));
            drop(held);
            assert_eq!(turns.load(), (false, 0));
            let _again = turns.take(false).await;
        });
    }
}
