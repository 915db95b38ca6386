//! Configuration, with safe defaults.

use std::time::Duration;

use mux_nostd::{AnyStrategy, Limits};

use crate::error::ConfigError;

/// Most messages the receive table can hold open at once; [`Config::max_in_flight`] may be
/// set lower, not higher.
pub const TABLE_CAPACITY: usize = 1024;

/// Largest [`Config::read_buffer`], [`Config::write_buffer`] and [`Config::coalesce_frame`]:
/// 1 GiB (each is allocated up front).
pub const MAX_BUFFER: usize = 1 << 30;

/// Largest [`Config::queue_depth`]: 2^20 items (the queue's slots are allocated up front).
pub const MAX_QUEUE_DEPTH: usize = 1 << 20;

/// How the byte stream is framed on the link ([`Config::link`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkProfile {
    /// The plain wire format, byte for byte the Go library's (the default).
    #[default]
    Plain,
    /// The serial link profile: link frames with a sequence number and a CRC-32C, COBS-encoded
    /// between `0x00` delimiters, for links that flip, drop or insert bytes (a UART). Both
    /// ends must use it. A damaged frame is dropped; what it cost is reported
    /// ([`ProtocolError::LinkGap`](mux_nostd::ProtocolError::LinkGap),
    /// [`ProtocolError::Lost`](mux_nostd::ProtocolError::Lost)), never delivered.
    Cobs,
}

impl core::str::FromStr for LinkProfile {
    type Err = String;
    /// `plain` or `cobs`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(Self::Plain),
            "cobs" => Ok(Self::Cobs),
            _ => Err(format!("unknown link profile {s:?} (plain or cobs)")),
        }
    }
}

/// Node configuration. Start from [`Config::default`] and change what you need.
///
/// Sizes that are allocated up front are bounded: [`read_buffer`](Self::read_buffer),
/// [`write_buffer`](Self::write_buffer) and [`coalesce_frame`](Self::coalesce_frame) at most
/// [`MAX_BUFFER`], [`queue_depth`](Self::queue_depth) at most [`MAX_QUEUE_DEPTH`]. Every
/// constructor that takes a configuration checks it first ([`Config::validate`]) and returns
/// a [`ConfigError`] for a value out of bounds, before it allocates, spawns or writes anything
/// (the ones that return `io::Result` wrap it in an error of kind `InvalidInput`). The other
/// fields take any value.
///
///
/// ```
/// use mux_std::{Config, AnyStrategy, Limits};
/// let cfg = Config {
///     strategy: "hybrid8k".parse::<AnyStrategy>().unwrap(),
///     limits: Limits::new(1 << 20),
///     ..Config::default()
/// };
/// assert_eq!(cfg.max_in_flight, 256);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// How messages are cut into frames when the caller does not say (default: Hybrid, threshold
    /// 4096, the Go library's default).
    pub strategy: AnyStrategy,
    /// Receive limits: largest message and largest Data frame (default: the Go reference's
    /// 10 MiB for both).
    pub limits: Limits,
    /// Most incoming messages open at once (default 256, at most [`TABLE_CAPACITY`]); a Start
    /// beyond it is refused with
    /// [`ProtocolError::TooManyStreams`](mux_nostd::ProtocolError::TooManyStreams).
    pub max_in_flight: usize,
    /// Most of our own messages under way at once per sender: Start written, End or Abort
    /// not yet (default 256, the default [`max_in_flight`](Self::max_in_flight) of a peer; 0
    /// means 1). A send that would start one more waits until one ends, honouring its cancel
    /// token or deadline while it waits, instead of starting a message the peer would refuse
    /// with [`ProtocolError::TooManyStreams`](mux_nostd::ProtocolError::TooManyStreams). Set
    /// it to at most the peer's `max_in_flight`. It does not bound bytes: many large
    /// messages under way at once (256 of 1 MiB sent by as many threads take turns chunk by
    /// chunk) can hold more than the peer's
    /// [`assembly_budget`](Self::assembly_budget), which then drops some of them.
    pub max_sending: usize,
    /// Most receive buffers that may exist at once: open messages plus delivered ones the
    /// application still holds (default 4096). Past it, a message is dropped with
    /// [`ProtocolError::PoolExhausted`](mux_nostd::ProtocolError::PoolExhausted).
    pub max_buffers: usize,
    /// Idle buffers larger than this are freed instead of kept (default 4 MiB).
    pub retain_capacity: usize,
    /// Most bytes of idle buffers the receive pool keeps for reuse, all buffers together
    /// (default 16 MiB); a buffer returned past it is freed. After a burst of large messages
    /// the pool thus gives the memory back instead of keeping a buffer per message.
    pub pool_idle_bytes: usize,
    /// Receive memory budget: payload bytes the receiver may hold, messages being assembled
    /// and received items waiting in the queue for [`recv`](crate::Receiver::recv) together
    /// (default 64 MiB). Once it holds this much and the queue is not empty, the reader stops
    /// reading until `recv` takes items (the peer's writes then wait in the byte stream:
    /// backpressure), so an application that does not keep up holds at most about this much
    /// plus one message. The reader never stops while the queue is empty (only reading on
    /// can complete the messages being assembled), so a message larger than the budget is
    /// still delivered, within [`limits`](Self::limits); messages assembled at once are
    /// bounded by [`max_in_flight`](Self::max_in_flight) and the message limit, as before.
    /// The bytes held are in [`RxCounts::held_bytes`](crate::RxCounts::held_bytes).
    pub rx_budget: usize,
    /// Bytes the receiver may hold for messages not yet complete (whole-message mode), all
    /// messages of the connection together (default 64 MiB). A Data chunk that would take it
    /// past this drops the message holding the most bytes (the chunk's own when it is the
    /// largest), with [`ProtocolError::OverBudget`](mux_nostd::ProtocolError::OverBudget),
    /// as often as needed to make room; the later frames of a dropped message are skipped
    /// without being stored, and the connection goes on. Together with
    /// [`rx_budget`](Self::rx_budget), which pauses reading while delivered items wait, the
    /// receiver holds at most about `assembly_budget` of partial messages plus `rx_budget`
    /// of items not yet taken.
    pub assembly_budget: usize,
    /// How the byte stream is framed (default [`LinkProfile::Plain`]).
    pub link: LinkProfile,
    /// With [`LinkProfile::Cobs`]: the size of a link frame buffer at each end (default
    /// [`DEFAULT_LINK_BUFFER`](mux_nostd::DEFAULT_LINK_BUFFER), 2 KiB; at least
    /// [`MIN_LINK_BUFFER`](mux_nostd::MIN_LINK_BUFFER), at most [`MAX_BUFFER`]). The sender
    /// fills link frames up to it; the receiver drops longer ones as damaged, so it must be
    /// at least the peer's.
    pub link_buffer: usize,
    /// Received items queued for the application before the reader waits (default 1024; 0
    /// means 1, at most [`MAX_QUEUE_DEPTH`]).
    pub queue_depth: usize,
    /// Size of the reader's buffer (default 256 KiB; values below 64 mean 64, at most
    /// [`MAX_BUFFER`]).
    pub read_buffer: usize,
    /// Frames up to this many bytes (header included) are copied into a shared write buffer
    /// while other senders wait for the write lock (or by
    /// [`send_buffered`](crate::Sender::send_buffered)), and the last sender out writes them
    /// all in one write. A sender with the lock to itself writes its frames straight from its
    /// payload (vectored writes, no copy). 0 turns coalescing off (default 2048, at most
    /// [`MAX_BUFFER`]; the shared buffer is made at least this large).
    pub coalesce_frame: usize,
    /// Size of the shared write buffer (default 64 KiB, at most [`MAX_BUFFER`]). It also
    /// holds the Abort frames of messages ended between two of their write calls (by a
    /// cancellation or [`close`](crate::Sender::close)); when it is full they are written out
    /// first, so it never grows past its size.
    pub write_buffer: usize,
    /// Payload bytes a sender may still write once another sender waits for the write lock.
    /// A sender keeps the lock across frames while nobody else wants it (up to 64 frames per
    /// vectored write call); at every frame boundary it checks whether someone waits, and
    /// then finishes the frame in flight, writes at most this many more payload bytes (whole
    /// Data frames; header-only frames like the End after the last chunk always go along),
    /// and lets the waiter have the lock. A hold writes at least one Data frame. 0, the
    /// default: a waiting message waits for at most the write call in flight (one frame, or
    /// up to 256 KiB of payload when the holder was alone). When every waiter is itself the
    /// sender of a message of several chunks, the holder may go on for at least 256 KiB more
    /// (large messages then take turns of 256 KiB rather than one chunk each); a one-chunk
    /// message, a flush or a close waiting brings the bound back to this budget. 65536 lets four more 16 KiB chunks go first
    /// (fewer lock hand-overs; others may wait up to 64 KiB longer). It also caps each write
    /// call of a send that can be cancelled (a cancel token, a deadline,
    /// [`send_cancellable`](crate::Sender::send_cancellable)) at one Data frame plus this
    /// many bytes, so that it notices a cancel within a chunk. With the
    /// [`Adaptive`](AnyStrategy::Adaptive) strategy every one of these bounds (and every write
    /// call) is capped at the bytes the link carries in its latency budget (see
    /// `docs/ADAPTIVE.md`).
    pub hold_budget: usize,
    /// Deliver messages as they arrive, chunk by chunk ([`Received::Started`],
    /// [`Received::Chunk`], [`Received::Ended`]) instead of whole (default `false`).
    ///
    /// [`Received::Started`]: crate::Received::Started
    /// [`Received::Chunk`]: crate::Received::Chunk
    /// [`Received::Ended`]: crate::Received::Ended
    pub streaming: bool,
    /// Record the node's distributions (message sizes, frames per message, send waits,
    /// receive latency, pool use: see [`Distributions`](crate::Distributions)), default on.
    /// They cost a few nanoseconds per message; off, [`Metrics::dist`](crate::Metrics::dist)
    /// stays empty.
    pub histograms: bool,
    /// Autocorking of plain sends (see [`Sender::send`](crate::Sender::send)): small
    /// messages sent less than this apart with nothing received in between gather in the
    /// shared write buffer and leave together; a burst's last message waits at most about
    /// twice this long (plus the OS timer's slack), a lone one not at all. Default 20 µs;
    /// [`Duration::ZERO`] turns it off; at most [`MAX_AUTOCORK`]. A [`Node`](crate::Node)'s
    /// sender autocorks (with a thread of its own that writes a burst's tail, idle between
    /// bursts); a [`Sender`](crate::Sender) made on its own does after
    /// [`Sender::autocork`](crate::Sender::autocork). The tokio `AsyncNode`'s sender autocorks
    /// too (feature `tokio`; a task, not a thread, writes a burst once the tasks sending it
    /// wait for something), an `AsyncSender` on its own after `AsyncSender::autocork`.
    pub autocork: Duration,
}

/// Largest [`Config::autocork`]: 10 ms ([`ConfigError::TooLarge`](crate::ConfigError::TooLarge) gives
/// both in microseconds).
pub const MAX_AUTOCORK: Duration = Duration::from_millis(10);

impl Default for Config {
    fn default() -> Self {
        Self {
            strategy: AnyStrategy::default(),
            limits: Limits::REFERENCE,
            max_in_flight: 256,
            max_sending: 256,
            max_buffers: 4096,
            retain_capacity: 4 << 20,
            pool_idle_bytes: 16 << 20,
            rx_budget: 64 << 20,
            assembly_budget: 64 << 20,
            link: LinkProfile::Plain,
            link_buffer: mux_nostd::DEFAULT_LINK_BUFFER,
            queue_depth: 1024,
            read_buffer: 256 << 10,
            coalesce_frame: 2048,
            write_buffer: 64 << 10,
            hold_budget: 0,
            streaming: false,
            histograms: true,
            autocork: Duration::from_micros(20),
        }
    }
}

impl Config {
    /// The default configuration with another default strategy.
    pub fn with_strategy(strategy: impl Into<AnyStrategy>) -> Self {
        Self {
            strategy: strategy.into(),
            ..Self::default()
        }
    }

    /// The same configuration in streaming mode (see [`Config::streaming`]).
    pub fn streaming(mut self) -> Self {
        self.streaming = true;
        self
    }

    /// Checks the bounds stated on [`Config`]; the constructors call it first.
    ///
    /// ```
    /// use mux_std::{Config, ConfigError, MAX_BUFFER};
    /// assert_eq!(Config::default().validate(), Ok(()));
    /// let huge = Config { write_buffer: usize::MAX, ..Config::default() };
    /// assert!(matches!(
    ///     huge.validate(),
    ///     Err(ConfigError::TooLarge { field: "write_buffer", max: MAX_BUFFER, .. })
    /// ));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |field: &'static str, value: usize, max: usize| {
            if value > max {
                Err(ConfigError::TooLarge { field, value, max })
            } else {
                Ok(())
            }
        };
        check("read_buffer", self.read_buffer, MAX_BUFFER)?;
        check("write_buffer", self.write_buffer, MAX_BUFFER)?;
        check("coalesce_frame", self.coalesce_frame, MAX_BUFFER)?;
        check("link_buffer", self.link_buffer, MAX_BUFFER)?;
        check("queue_depth", self.queue_depth, MAX_QUEUE_DEPTH)?;
        // In microseconds.
        let us = |d: Duration| usize::try_from(d.as_micros()).unwrap_or(usize::MAX);
        check("autocork", us(self.autocork), us(MAX_AUTOCORK))
    }

    /// The reader's buffer size in use (`read_buffer`, at least 64).
    pub(crate) fn read_buffer_len(&self) -> usize {
        self.read_buffer.max(64)
    }

    /// The cap on messages under way in use (`max_sending`, at least 1).
    pub(crate) fn sending_cap(&self) -> usize {
        self.max_sending.max(1)
    }

    /// The receive queue's depth in use (`queue_depth`, at least 1).
    pub(crate) fn queue_len(&self) -> usize {
        self.queue_depth.max(1)
    }
}
