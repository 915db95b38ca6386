//! The blocking superloop of the sensor node, generic over the UART halves and the board.
//!
//! A firmware supplies its UART's receive half (`embedded_io::Read + ReadReady`), its transmit
//! half (`embedded_io::Write`), a pool for host messages, and a [`Board`]: a millisecond clock,
//! a way to sleep until the next tick or received byte, and where to report events.
//! [`Superloop::run`] then runs the exchange until the host says `bye`, or gives up when the
//! host has been silent for [`IDLE_TIMEOUT_MS`](crate::IDLE_TIMEOUT_MS):
//!
//! - a reading every `interval` ms, each a whole small message (`Writer::send_with_id`);
//! - host commands answered with the command's id; host messages are reassembled into the pool
//!   by the sans-IO `Reassembler`, fed with whatever has arrived (the loop never blocks in a
//!   read);
//! - the 20 KiB log dump one frame at a time, readings and replies going out between its
//!   frames; `cancel-log` ends it with an Abort frame written between two frames;
//! - between two rounds, [`Board::sleep`].
//!
//! # Starting
//!
//! By default the node starts at once: its first reading goes out as [`Superloop::run`]
//! begins (the QEMU firmware, whose host is listening before the firmware starts). With
//! [`Superloop::wait_for_host`] it stays silent until the host's first message arrives, and its
//! clock, counters and reading sequence start then (the firmware for real boards: a host that
//! opens the serial port after the board has booted never starts reading in the middle of a
//! frame). Protocol or UART errors before that first message (line noise while a cable is
//! plugged in) are reported to the board but not counted.
//!
//! # Receiving while writing
//!
//! Writes are blocking and long on a real link: at 115 200 baud a 1 KiB log frame takes 89 ms,
//! while a UART's receive FIFO holds 32 bytes (RP2040) or 128 bytes (ESP32-C3), that is 3 or
//! 11 ms of input. So every write goes out in pieces of at most [`WRITE_PIECE`] bytes, and
//! between two pieces whatever the receive half holds is moved into a ring buffer of `RING`
//! bytes, which the loop reads before the UART. The ring must hold what the host can send while
//! one log frame and one reading go out: about 1.1 KiB at 115 200 baud (the boards use 2 KiB).
//! If it fills up anyway, the bytes stay in the UART until the loop reads them.

use embedded_io::{ErrorType, Read, ReadReady, Write};
use heapless::Deque;
use mux_nostd::{
    AdaptiveConfig, AnyStrategy, Limits, LinkEstimator, Pool, PoolStats, ProtocolError,
    Reassembler, Received, RxMetrics, SendError, TxMetrics, Writer,
};
#[cfg(feature = "cobs-link")]
use mux_nostd::{LinkDecoder, LinkEncoder, LinkMetrics};

use crate::protocol::{
    Body, Effect, FNV_INIT, MAX_COMMAND, MAX_MESSAGE, Node, Stats, Strategy, Text, fnv1a,
};

/// The link buffer of the serial link profile ([`Superloop::cobs_link`]), at each end: the
/// firmware's link frames carry at most 243 bytes of the multiplexer stream, and the host's
/// link frames must be no longer (`mux_std::Config::link_buffer` = 256).
pub const LINK_BUFFER: usize = 256;

/// Largest piece of a write handed to the transmit half at once; the receive half is drained
/// into the ring between two pieces (16 bytes take 1.4 ms at 115 200 baud).
pub const WRITE_PIECE: usize = 16;

/// What a board supplies to the loop besides its UART. `R` is the UART's receive half.
pub trait Board<R> {
    /// Milliseconds since an arbitrary start, wrapping at `u32::MAX` (about 49 days).
    fn now_ms(&mut self) -> u32;

    /// Waits until the next millisecond tick or a received byte, whichever comes first.
    /// Returning earlier is harmless (the loop looks again); returning later delays readings
    /// and replies. A board without a low-power wait may return at once.
    fn sleep(&mut self, rx: &mut R);

    /// Something worth telling (a debug console, an LED). Does nothing by default: on a real
    /// board the UART is the mux link, so there may be nowhere to print.
    fn report(&mut self, event: Event) {
        let _ = event;
    }
}

/// An event of the run, reported through [`Board::report`]. Both kinds are counted in the
/// node's `errors` (shown in `status` and `bye`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The reassembler reported a protocol error; the stream stays in sync.
    Protocol(ProtocolError),
    /// The UART reported a receive error (overrun, framing, parity, break): bytes were lost.
    Uart,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The host said `bye`: the reply went out, a log dump still running was aborted, and the
    /// transmit half was flushed.
    Bye,
    /// The host sent no command for [`IDLE_TIMEOUT_MS`](crate::IDLE_TIMEOUT_MS); nothing more
    /// was written.
    IdleTimeout,
}

/// How long readings waited while a log dump was under way: from when each was due to when
/// its last byte was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadingWaits {
    /// Readings sent while a dump was under way.
    pub count: u32,
    /// Their waits added up, ms.
    pub sum_ms: u32,
    /// The longest, ms.
    pub max_ms: u32,
}

impl ReadingWaits {
    /// Counts one reading that waited `ms`.
    pub fn record(&mut self, ms: u32) {
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
        self.max_ms = self.max_ms.max(ms);
    }

    /// The mean wait, ms (0 without readings).
    pub fn mean_ms(&self) -> u32 {
        self.sum_ms.checked_div(self.count).unwrap_or(0)
    }
}

/// An estimator and the microsecond clock its writes are timed with.
type Timing<'p> = (&'p LinkEstimator, fn() -> u32);

/// The UART seen by the writer: writes in pieces, and the receive half drained into a ring
/// between two pieces (see the module documentation).
#[derive(Debug)]
struct Link<'p, R, W, const RING: usize> {
    rx: R,
    tx: W,
    ring: Deque<u8, RING>,
    /// Receive errors not yet counted by the loop.
    rx_errors: u32,
    /// The serial link profile's encoder, when it is on: what the writer writes goes out in
    /// link frames.
    #[cfg(feature = "cobs-link")]
    enc: Option<LinkEncoder<[u8; LINK_BUFFER]>>,
    /// Under Adaptive: where every piece's write time goes, and the microsecond clock.
    timing: Option<Timing<'p>>,
}

impl<R: Read + ReadReady, W: Write, const RING: usize> Link<'_, R, W, RING> {
    /// Whether the receive half has a byte; an error there is counted and read as "no".
    fn rx_ready(&mut self) -> bool {
        match self.rx.read_ready() {
            Ok(ready) => ready,
            Err(_) => {
                self.rx_errors += 1;
                false
            }
        }
    }

    /// Moves what the receive half holds into the ring, as far as the ring has room.
    fn pump(&mut self) {
        let mut piece = [0u8; 16];
        while !self.ring.is_full() && self.rx_ready() {
            let room = (RING - self.ring.len()).min(piece.len());
            match self.rx.read(&mut piece[..room]) {
                Ok(n) => {
                    for &b in &piece[..n] {
                        // Cannot fail: at most `room` bytes were read.
                        let _ = self.ring.push_back(b);
                    }
                }
                Err(_) => {
                    self.rx_errors += 1;
                    return;
                }
            }
        }
    }

    #[cfg(feature = "cobs-link")]
    /// Writes `buf` in pieces of at most [`WRITE_PIECE`] bytes, pumping the receive half
    /// between two pieces.
    fn write_out(&mut self, mut buf: &[u8]) -> Result<usize, W::Error> {
        let mut written = 0;
        while !buf.is_empty() {
            let piece = buf.len().min(WRITE_PIECE);
            let n = self.tx.write(&buf[..piece])?;
            self.pump();
            if n == 0 {
                break;
            }
            written += n;
            buf = &buf[n..];
        }
        Ok(written)
    }

    #[cfg(feature = "cobs-link")]
    /// With the serial link profile: writes out the link frame the encoder closed, if any.
    fn drain_link(&mut self) -> Result<(), W::Error> {
        let Some(mut enc) = self.enc.take() else {
            return Ok(());
        };
        let r = loop {
            if enc.output().is_empty() {
                break Ok(());
            }
            match self.write_out(enc.output()) {
                Ok(0) => break Ok(()),
                Ok(n) => enc.consume(n),
                Err(e) => break Err(e),
            }
        };
        self.enc = Some(enc);
        r
    }

    /// Takes up to `buf.len()` received bytes without blocking: the ring's first, else what
    /// the receive half holds. Returns 0 if nothing has arrived.
    fn read_available(&mut self, buf: &mut [u8]) -> usize {
        if !self.ring.is_empty() {
            let mut n = 0;
            while n < buf.len() {
                let Some(b) = self.ring.pop_front() else {
                    break;
                };
                buf[n] = b;
                n += 1;
            }
            return n;
        }
        if buf.is_empty() || !self.rx_ready() {
            return 0;
        }
        match self.rx.read(buf) {
            Ok(n) => n,
            Err(_) => {
                self.rx_errors += 1;
                0
            }
        }
    }
}

impl<R, W: ErrorType, const RING: usize> ErrorType for Link<'_, R, W, RING> {
    type Error = W::Error;
}

impl<R: Read + ReadReady, W: Write, const RING: usize> Write for Link<'_, R, W, RING> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, W::Error> {
        #[cfg(feature = "cobs-link")]
        if self.enc.is_some() {
            self.drain_link()?;
            let n = self.enc.as_mut().map_or(0, |enc| enc.push(buf));
            self.drain_link()?;
            return Ok(n);
        }
        let piece = buf.len().min(WRITE_PIECE);
        let t0 = self.timing.map(|(_, now_us)| now_us());
        let n = self.tx.write(&buf[..piece])?;
        if let (Some(t0), Some((link, now_us))) = (t0, self.timing) {
            let us = now_us().wrapping_sub(t0);
            // A clock that stepped back a little reads as a very long write: skip it.
            if us < u32::MAX / 2 {
                link.record_write(n, us);
            }
        }
        self.pump();
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), W::Error> {
        #[cfg(feature = "cobs-link")]
        if let Some(enc) = self.enc.as_mut() {
            enc.end_frame();
            self.drain_link()?;
        }
        self.tx.flush()
    }
}

#[cfg(feature = "cobs-link")]
/// The receiving half of the serial link profile: link frames gathered and checked in place.
#[derive(Debug)]
struct LinkRx {
    dec: LinkDecoder,
    buf: [u8; LINK_BUFFER + 32],
    filled: usize,
}

/// The scratch state of one [`Superloop::run`]: the reply being built, the head of the last
/// command, whether the exchange has started, and whether the host said `bye`.
struct Round {
    text: Text,
    cmd: [u8; MAX_COMMAND],
    started: bool,
    bye: bool,
}

/// The sensor node's blocking main loop: one core, no heap, no executor.
///
/// `STREAMS` host messages may be open at once, reassembled into a `Pool<BLOCKS, SIZE>`; `RING`
/// bytes of input are kept while a write goes out. All its state is in this value (put it on
/// the stack or in a static); the pool is the caller's, so that its statistics can be read
/// after the run.
#[derive(Debug)]
pub struct Superloop<
    'p,
    R,
    W,
    const STREAMS: usize,
    const BLOCKS: usize,
    const SIZE: usize,
    const RING: usize,
> {
    tx: Writer<Link<'p, R, W, RING>, Strategy>,
    rx: Reassembler<'p, STREAMS, BLOCKS, SIZE>,
    node: Node,
    wait_for_host: bool,
    /// The log dump's framing under Adaptive (the estimator is the link's).
    adaptive: Option<AdaptiveConfig>,
    /// Pause between log frames.
    log_gap_ms: u32,
    waits: ReadingWaits,
    /// The serial link profile's receiving half, when it is on.
    #[cfg(feature = "cobs-link")]
    link_rx: Option<LinkRx>,
}

impl<'p, R, W, const STREAMS: usize, const BLOCKS: usize, const SIZE: usize, const RING: usize>
    Superloop<'p, R, W, STREAMS, BLOCKS, SIZE, RING>
where
    R: Read + ReadReady,
    W: Write,
{
    /// A node on the UART halves `rx` and `tx`, reassembling host messages (up to
    /// [`MAX_MESSAGE`] bytes) into `pool`.
    pub fn new(rx: R, tx: W, pool: &'p Pool<BLOCKS, SIZE>) -> Self {
        let link = Link {
            rx,
            tx,
            ring: Deque::new(),
            rx_errors: 0,
            #[cfg(feature = "cobs-link")]
            enc: None,
            timing: None,
        };
        Self {
            tx: Writer::new(link, Strategy::default()),
            rx: Reassembler::new(pool, Limits::new(MAX_MESSAGE)),
            node: Node::new(0),
            wait_for_host: false,
            adaptive: None,
            log_gap_ms: crate::protocol::LOG_FRAME_GAP_MS,
            waits: ReadingWaits::default(),
            #[cfg(feature = "cobs-link")]
            link_rx: None,
        }
    }

    /// Frames the log dump with Adaptive: every write to the UART is timed with `now_us` (a
    /// microsecond clock) into `link`, and each frame of a dump is cut to hold the link for at
    /// most `config`'s budget at the rate measured when it goes. Readings and replies are
    /// one frame each whatever the strategy. Log frames then follow each other without a
    /// pause (the link spaces them), readings going out between them.
    pub fn adaptive(
        mut self,
        link: &'p LinkEstimator,
        config: AdaptiveConfig,
        now_us: fn() -> u32,
    ) -> Self {
        self.set_adaptive(link, config, now_us);
        self
    }

    /// [`adaptive`](Self::adaptive) in place (a loop built where it runs is not moved).
    pub fn set_adaptive(
        &mut self,
        link: &'p LinkEstimator,
        config: AdaptiveConfig,
        now_us: fn() -> u32,
    ) {
        self.tx.get_mut().timing = Some((link, now_us));
        self.adaptive = Some(config);
        self.log_gap_ms = 0;
    }

    /// Sets the pause between two log frames (default
    /// [`LOG_FRAME_GAP_MS`](crate::LOG_FRAME_GAP_MS)).
    pub fn log_gap_ms(mut self, ms: u32) -> Self {
        self.set_log_gap_ms(ms);
        self
    }

    /// [`log_gap_ms`](Self::log_gap_ms) in place.
    pub fn set_log_gap_ms(&mut self, ms: u32) {
        self.log_gap_ms = ms;
    }

    /// A fresh node state at `now`, with this loop's log settings.
    fn fresh_node(&self, now: u32) -> Node {
        let mut node = Node::new(now);
        node.log_gap_ms = self.log_gap_ms;
        node
    }

    /// How the next log dump is framed: Adaptive at the rate measured now, or Original.
    fn log_strategy(&self) -> AnyStrategy {
        match (self.adaptive, self.tx.get_ref().timing) {
            (Some(config), Some((link, _))) => AnyStrategy::Adaptive(link.config_now(&config)),
            _ => AnyStrategy::from(Strategy::default()),
        }
    }

    /// How long readings waited while a log dump was under way.
    pub fn reading_waits(&self) -> ReadingWaits {
        self.waits
    }

    #[cfg(feature = "cobs-link")]
    /// Speaks the serial link profile (COBS, CRC-32C, sequence numbers; see mux-nostd's
    /// `LinkEncoder`) instead of the plain format, both ways; the host must too, with link
    /// frames of at most [`LINK_BUFFER`] bytes. Damaged frames from the host are dropped and
    /// reported as protocol errors ([`ProtocolError::LinkGap`], [`ProtocolError::Lost`]).
    pub fn cobs_link(mut self) -> Self {
        self.tx.get_mut().enc = Some(LinkEncoder::new([0; LINK_BUFFER]));
        self.link_rx = Some(LinkRx {
            dec: LinkDecoder::new(),
            buf: [0; LINK_BUFFER + 32],
            filled: 0,
        });
        self
    }

    #[cfg(feature = "cobs-link")]
    /// The serial link profile's counters of the frames received (`None` when it is off).
    pub fn link_metrics(&self) -> Option<&LinkMetrics> {
        self.link_rx.as_ref().map(|l| l.dec.metrics())
    }

    /// Makes [`run`](Self::run) wait silently for the host's first message before it starts
    /// (see the module documentation); without a host it waits for ever.
    pub fn wait_for_host(mut self) -> Self {
        self.wait_for_host = true;
        self
    }

    /// Runs the exchange (see the module documentation) until `bye` or the idle timeout. The
    /// node's state starts afresh (at once, or at the host's first message with
    /// [`wait_for_host`](Self::wait_for_host)); the writer's and reassembler's counters go on.
    ///
    /// # Errors
    /// A write failed: the run stops there.
    pub fn run(&mut self, board: &mut impl Board<R>) -> Result<Outcome, SendError<W::Error>> {
        self.node = self.fresh_node(board.now_ms());
        self.waits = ReadingWaits::default();
        let mut st = Round {
            text: Text::new(),
            cmd: [0u8; MAX_COMMAND],
            started: !self.wait_for_host,
            bye: false,
        };
        let mut buf = [0u8; 16];

        while !st.bye {
            // 1. Everything that has arrived, through the reassembler (and the link profile's
            //    decoder, when it is on).
            loop {
                let n = self.tx.get_mut().read_available(&mut buf);
                self.count_rx_errors(board, st.started);
                if n == 0 {
                    break;
                }
                #[cfg(feature = "cobs-link")]
                if self.link_rx.is_some() {
                    let input = &buf[..n];
                    self.take_link_input(input, board, &mut st)?;
                    continue;
                }
                self.take_input(&buf[..n], board, &mut st)?;
            }

            // 2. A reading, if due.
            let now = board.now_ms();
            if !st.started {
                board.sleep(&mut self.tx.get_mut().rx);
                continue;
            }
            let due = self.node.next_reading;
            if let Some(id) = self.node.due_reading(now, &mut st.text) {
                let dumping = self.node.log.is_some();
                self.tx.send_with_id(id, st.text.as_bytes())?;
                if dumping {
                    self.waits.record(board.now_ms().wrapping_sub(due));
                }
            }

            // 3. One frame of the log dump, if due. Frames are whole, so the next reading or
            //    reply can follow any of them.
            if self.node.log_frame_due(now)
                && let Some(dump) = self.node.log.as_mut()
            {
                // Under Adaptive, every frame is cut at the rate measured now.
                if let (Some(config), Some((link, _))) = (self.adaptive, self.tx.get_ref().timing) {
                    dump.set_chunk(link.config_now(&config).chunk());
                }
                let done = dump.write_next(self.tx.get_mut()).map_err(SendError::Io)?;
                self.node.log_frame_written(now, done);
            }

            if self.node.idle_too_long(now) {
                return Ok(Outcome::IdleTimeout);
            }

            // 4. Sleep until the next tick or received byte, unless input is already waiting
            //    in the ring.
            //    A log frame due at once (no pause between frames) goes out without a sleep.
            let frame_due = self.node.log_frame_due(board.now_ms());
            let link = self.tx.get_mut();
            if !st.bye && link.ring.is_empty() && !frame_due {
                board.sleep(&mut link.rx);
            }
        }

        // A log dump still running ends with an Abort, then the UART drains.
        if let Some(dump) = self.node.log.take() {
            self.tx
                .get_mut()
                .write_all(&dump.abort_frame())
                .map_err(SendError::Io)?;
        }
        self.tx.flush()?;
        Ok(Outcome::Bye)
    }

    /// With the serial link profile: gathers `bytes` into link frames and hands the body of
    /// each intact one to [`take_input`](Self::take_input), a gap to the reassembler first.
    #[cfg(feature = "cobs-link")]
    fn take_link_input(
        &mut self,
        mut bytes: &[u8],
        board: &mut impl Board<R>,
        st: &mut Round,
    ) -> Result<(), SendError<W::Error>> {
        let Some(mut link) = self.link_rx.take() else {
            return Ok(());
        };
        let mut r = Ok(());
        while r.is_ok() && !bytes.is_empty() {
            let k = bytes.len().min(link.buf.len() - link.filled);
            link.buf[link.filled..link.filled + k].copy_from_slice(&bytes[..k]);
            link.filled += k;
            bytes = &bytes[k..];
            while r.is_ok()
                && let Some(frame) = link.dec.next(&mut link.buf, &mut link.filled)
            {
                if let Some(missing) = frame.gap {
                    self.rx.link_gap(missing);
                }
                r = self.take_input(&link.buf[frame.body], board, st);
            }
        }
        self.link_rx = Some(link);
        r
    }

    /// Feeds `input` to the reassembler and acts on what it completes: commands answered,
    /// the exchange started at the host's first message (`started`), `bye` noted.
    fn take_input(
        &mut self,
        mut input: &[u8],
        board: &mut impl Board<R>,
        st: &mut Round,
    ) -> Result<(), SendError<W::Error>> {
        loop {
            let (used, item) = self.rx.feed(input);
            input = &input[used..];
            if item.is_none() && input.is_empty() {
                return Ok(());
            }
            let now = board.now_ms();
            if !st.started && matches!(item, Some(Received::Message(_) | Received::Aborted { .. }))
            {
                // The host's first message: the exchange starts now.
                st.started = true;
                self.node = self.fresh_node(now);
            }
            match item {
                None => {}
                Some(Received::Message(m)) => {
                    let head = m.body().copy_to(&mut st.cmd);
                    let fnv = m.body().chunks().fold(FNV_INIT, fnv1a);
                    let (id, len) = (m.id(), m.len());
                    drop(m); // its blocks go back to the pool now
                    let body = Body {
                        head: &st.cmd[..head],
                        len,
                        fnv,
                    };
                    self.node.log_strategy = self.log_strategy();
                    match self.node.on_command(id, body, now, &mut st.text) {
                        Effect::LogStarted => {}
                        Effect::Reply => self.tx.send_with_id(id, st.text.as_bytes())?,
                        Effect::CancelLog(dump) => {
                            self.tx
                                .get_mut()
                                .write_all(&dump.abort_frame())
                                .map_err(SendError::Io)?;
                            self.tx.send_with_id(id, st.text.as_bytes())?;
                        }
                        Effect::Bye => {
                            self.tx.send_with_id(id, st.text.as_bytes())?;
                            st.bye = true;
                        }
                    }
                }
                Some(Received::Aborted { id }) => {
                    self.node.on_aborted(now, &mut st.text);
                    self.tx.send_with_id(id, st.text.as_bytes())?;
                }
                Some(Received::Error(e)) => {
                    board.report(Event::Protocol(e));
                    if st.started {
                        self.node.on_error();
                    }
                }
            }
        }
    }

    /// Reports the receive errors the link has seen since the last call, and counts them once
    /// the exchange has `started`.
    fn count_rx_errors(&mut self, board: &mut impl Board<R>, started: bool) {
        let link = self.tx.get_mut();
        let n = link.rx_errors;
        link.rx_errors = 0;
        for _ in 0..n {
            board.report(Event::Uart);
            if started {
                self.node.on_error();
            }
        }
    }

    /// The node's counters.
    pub fn stats(&self) -> Stats {
        self.node.stats
    }

    /// What the writer has sent (messages, bytes, aborts).
    pub fn tx_metrics(&self) -> &TxMetrics {
        self.tx.metrics()
    }

    /// What the reassembler has received (messages, bytes, aborts, errors).
    pub fn rx_metrics(&self) -> &RxMetrics {
        self.rx.metrics()
    }

    /// The pool's statistics (blocks, in use, high-water mark).
    pub fn pool_stats(&self) -> PoolStats {
        self.rx.pool_stats()
    }
}
