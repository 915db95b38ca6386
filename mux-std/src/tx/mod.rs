//! The send side: a thread-safe [`Sender`] over any `std::io::Write`.
//!
//! A sender walks its message's [`FramePlan`] on its own stack and writes under the write
//! lock. While nobody else wants the lock it keeps it across frames and writes them straight
//! from the caller's payload in large vectored writes (up to 64 frames per call; a small
//! message is one call of three slices: the Start and Data headers, the payload, the End
//! header). Every sender that waits for the lock counts itself as a *contender*; the holder
//! looks at that count at every frame boundary (before each write call) and, once someone
//! waits, ends its hold after at most one more Data frame ([`Config::hold_budget`] more
//! payload if set), then lets the waiter take the lock before it queues again. So a small
//! message waits for at most the frame in flight (plus what the current write call already
//! gathered) of a large one. While others wait, small frames are copied into a shared buffer
//! that the last sender out of the lock writes (several threads' frames leave in one write).
//!
//! Where each rule lives:
//! - [`sender`]: the public [`Sender`], its slots ([`Config::max_sending`](crate::Config::max_sending)),
//!   the lock and who waits for it, flush and close;
//! - [`inner`]: the state behind the lock ([`TxInner`](inner::TxInner)), the blocking
//!   sender's holds (the hold routine written with blocking calls), hand-over to waiters, the
//!   shared buffer's writes;
//! - [`hold`]: the hold routine both senders share: what each write call of a hold carries,
//!   when small frames go to the shared buffer, when the hold ends (for a contender, within
//!   the latency budget, or stopped);
//! - [`batch`]: one write call (how many frames and bytes it gathers) and the budget a hold
//!   keeps to once others wait;
//! - [`cursor`]: where a message stands between its holds;
//! - [`coalescer`]: the shared buffer where small frames of several senders gather;
//! - [`cork`]: autocorking, when a plain send joins that buffer and who writes a burst's tail;
//! - `hold_async` (feature `tokio`): the tokio sender's holds (the same routine with
//!   `.await`), and what a hold cut short leaves behind the lock;
//! - [`options`]: cancel tokens and per-send options; [`stats`]: counters and the link's state.

mod batch;
mod coalescer;
mod cork;
mod cursor;
mod hold;
#[cfg(feature = "tokio")]
mod hold_async;
mod inner;
mod options;
mod sender;
mod stats;
#[cfg(test)]
mod tests;

#[cfg(feature = "tokio")]
pub(crate) use cork::Cork;
#[cfg(feature = "tokio")]
pub(crate) use cursor::Cursor;
#[cfg(feature = "tokio")]
pub(crate) use hold::{HoldEnd, How};
#[cfg(feature = "tokio")]
pub(crate) use hold_async::{hold, timed_write, write_owed};
#[cfg(feature = "tokio")]
pub(crate) use inner::TxInner;
pub(crate) use inner::write_some;
pub use options::{CancelToken, SendOptions};
pub use sender::{Closer, Sender};
pub use stats::TxCounts;
pub(crate) use stats::TxStats;
#[cfg(feature = "tokio")]
pub(crate) use stats::{Link, bump};
