//! A millisecond clock on SysTick.
//!
//! QEMU's `lm3s6965evb` runs the core at 12 MHz, so a reload of 12 000 gives 1 ms ticks (checked
//! against the host's wall clock: 5000 ticks took 4.9 s). The tick counter is an `AtomicU32`
//! written only by the SysTick handler with plain load/store, which also works on Cortex-M0
//! (no compare-and-swap there).

use core::future::poll_fn;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::Poll;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use embassy_sync::waitqueue::AtomicWaker;

/// Core clock of the emulated board.
pub const CORE_HZ: u32 = 12_000_000;

static MILLIS: AtomicU32 = AtomicU32::new(0);
/// One waker per task that waits on the clock (the async firmware has two).
static WAKERS: [AtomicWaker; 2] = [AtomicWaker::new(), AtomicWaker::new()];

/// Starts the 1 ms tick.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Milliseconds since [`start`] (wraps after 49 days).
pub fn now_ms() -> u32 {
    MILLIS.load(Ordering::Relaxed)
}

/// Microseconds since [`start`] (wraps after 71 minutes): the millisecond count and how far
/// SysTick has counted down into the current millisecond.
pub fn now_us() -> u32 {
    loop {
        let ms = now_ms();
        let left = SYST::get_current();
        // SysTick wrapped but its handler has not run yet (interrupts masked): a new
        // millisecond has begun.
        let ms_now = ms.wrapping_add(u32::from(SCB::is_pendst_pending()));
        // A tick between the reads would pair the old count with the new millisecond.
        if now_ms() == ms {
            let into = (CORE_HZ / 1000 - 1).saturating_sub(left) / (CORE_HZ / 1_000_000);
            return ms_now.wrapping_mul(1000).wrapping_add(into);
        }
    }
}

/// Whether `deadline` (a [`now_ms`] value) has passed, robust to wrapping.
pub fn reached(deadline: u32) -> bool {
    now_ms().wrapping_sub(deadline) < u32::MAX / 2
}

/// Waits until [`now_ms`] reaches `deadline`. Woken by the tick interrupt; one task at a time
/// may wait with this (the other uses [`wait_until_second`]).
pub async fn wait_until(deadline: u32) {
    wait_on(&WAKERS[0], deadline).await
}

/// [`wait_until`] for a second task that waits on the clock.
pub async fn wait_until_second(deadline: u32) {
    wait_on(&WAKERS[1], deadline).await
}

async fn wait_on(waker: &AtomicWaker, deadline: u32) {
    poll_fn(|cx| {
        if reached(deadline) {
            return Poll::Ready(());
        }
        waker.register(cx.waker());
        if reached(deadline) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// To be called from the firmware's SysTick handler: counts a millisecond and wakes the
/// waiting task.
pub fn on_tick() {
    // Only the SysTick handler writes the counter, so load + store cannot lose a tick.
    MILLIS.store(
        MILLIS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
    for w in &WAKERS {
        w.wake();
    }
}
