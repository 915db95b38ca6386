//! Async reader and writer over [`embedded_io_async::Read`] and [`embedded_io_async::Write`].
//!
//! Cancel-safe: dropping a send future mid-message leaves its progress in the writer, and the
//! next operation settles it (completes the frame in flight with filler, then writes Abort for
//! that id) before writing anything else.

use embedded_io_async::{Read, Write};

use super::blocking::resume;
use super::{Framing, Heads, Next, Plain, Pump, Receive, TxState};
use crate::adaptive::{Clock, NoClock};
use crate::encode::{FramePlan, Outgoing};
use crate::error::SendError;
use crate::frame::HEADER_LEN;
use crate::link::LinkDecoder;
use crate::metrics::LinkMetrics;
use crate::metrics::TxMetrics;
use crate::strategy::Strategy;

/// Sends messages over an async byte sink with strategy `S`.
///
/// Cancel-safe: a send interrupted by an I/O error, or whose future is dropped mid-message,
/// leaves what it owes in the writer; the next call settles it first (finishes the frame in
/// flight with filler, then writes Abort for that id) before writing anything else.
#[derive(Debug)]
pub struct AsyncWriter<W, S, C = NoClock> {
    io: W,
    tx: TxState<S>,
    /// Read only with feature `histograms`.
    #[cfg_attr(not(feature = "histograms"), allow(dead_code))]
    clock: C,
}

impl<W: Write, S: Strategy> AsyncWriter<W, S> {
    /// A writer whose automatic ids start at 1.
    pub const fn new(io: W, strategy: S) -> Self {
        Self {
            io,
            tx: TxState::new(strategy),
            clock: NoClock,
        }
    }
}

impl<W: Write, S: Strategy, C: Clock> AsyncWriter<W, S, C> {
    /// The same writer, timing each send with `clock` into
    /// `TxMetrics::send_wait_us` (feature `histograms`; without it the clock is not read).
    pub fn with_clock<K: Clock>(self, clock: K) -> AsyncWriter<W, S, K> {
        AsyncWriter {
            io: self.io,
            tx: self.tx,
            clock,
        }
    }

    /// Sends `payload` with the next automatic id (1, 2, …, wrapping) and returns that id.
    #[inline]
    pub async fn send(&mut self, payload: &[u8]) -> Result<u32, SendError<W::Error>> {
        let id = self.tx.take_id();
        self.send_with_id(id, payload).await.map(|()| id)
    }

    /// Sends `payload` as message `id`.
    #[inline]
    pub async fn send_with_id(
        &mut self,
        id: u32,
        payload: &[u8],
    ) -> Result<(), SendError<W::Error>> {
        self.send_cancellable(id, payload, || false).await
    }

    /// Sends `payload` as message `id`, asking `cancel` before each frame whether to stop. A
    /// message cancelled after its Start was written ends with Abort; one cancelled before
    /// writes nothing. Either way the result is [`SendError::Cancelled`].
    #[inline]
    pub async fn send_cancellable(
        &mut self,
        id: u32,
        payload: &[u8],
        mut cancel: impl FnMut() -> bool,
    ) -> Result<(), SendError<W::Error>> {
        #[cfg(feature = "histograms")]
        let t0 = C::TIMED.then(|| self.clock.now_us());
        if self.tx.owed.is_some() {
            self.settle().await?;
        }
        // As the blocking writer: headers built first, frames written straight from the
        // payload, no progress kept while all goes well. If this future is dropped mid-message,
        // `Progress` leaves what is owed in the writer as it goes.
        let plan = FramePlan::new(&self.tx.strategy, id, payload.len())?;
        let heads = Heads::new(&plan, payload.len());
        let mut progress = Progress {
            tx: &mut self.tx,
            plan: &plan,
            at: 0,
            start_pending: true,
            written: 0,
            done: false,
        };
        let mut head: &[u8] = heads.first();
        let error = loop {
            let body = heads.body(payload, progress.at);
            // `cancel` is asked before every frame: before the first write, for Start and for
            // the frame that goes out with it.
            progress.start_pending = head.len() > HEADER_LEN;
            progress.written = 0;
            if (progress.start_pending && cancel()) || cancel() {
                break None;
            }
            // The header, then the body; written here rather than in a helper future, whose
            // poll the compiler does not inline (a call per part of every frame).
            let mut failed = None;
            for mut part in [head, body] {
                while !part.is_empty() {
                    match self.io.write(part).await {
                        Ok(0) => failed = Some(SendError::WriteZero),
                        Ok(n) => {
                            progress.written += n;
                            part = &part[n..];
                            continue;
                        }
                        Err(e) => failed = Some(SendError::Io(e)),
                    }
                    break;
                }
                if failed.is_some() {
                    break;
                }
            }
            if failed.is_some() {
                break failed;
            }
            if body.is_empty() {
                progress.done = true;
                drop(progress);
                self.tx.metrics.count_message(plan.total(), plan.chunk());
                #[cfg(feature = "histograms")]
                self.tx.sent_after(t0, &self.clock);
                return Ok(());
            }
            progress.at += body.len();
            head = heads.at(progress.at);
        };
        // Stopped: what is owed goes into the writer.
        drop(progress);
        match error {
            Some(e) => Err(e),
            None => {
                self.settle().await?;
                Err(SendError::Cancelled)
            }
        }
    }

    /// Writes what an interrupted send still owes (a no-op when nothing is owed).
    #[inline]
    pub async fn settle(&mut self) -> Result<(), SendError<W::Error>> {
        let Some(out) = self.tx.owed_for_settle() else {
            return Ok(());
        };
        let r = drive(&mut self.io, out, &[], &mut || false).await;
        self.tx.end_settle(r)
    }

    /// Settles, then flushes the sink.
    pub async fn flush(&mut self) -> Result<(), SendError<W::Error>> {
        self.settle().await?;
        self.io.flush().await.map_err(SendError::Io)
    }

    /// Counters of what was sent.
    pub const fn metrics(&self) -> &TxMetrics {
        &self.tx.metrics
    }

    /// The strategy.
    pub const fn strategy(&self) -> &S {
        &self.tx.strategy
    }

    /// Whether an interrupted send still owes bytes to the wire.
    pub const fn owes(&self) -> bool {
        self.tx.owed.is_some()
    }

    /// The sink.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.io
    }

    /// The sink, by shared reference.
    pub const fn get_ref(&self) -> &W {
        &self.io
    }

    /// The sink back (anything owed is lost; call [`settle`](Self::settle) first).
    pub fn into_inner(self) -> W {
        self.io
    }
}

/// Where a send stands, to the byte; unless it is done, dropping it (the send's future
/// dropped, a write failed, the send cancelled) leaves what the message still owes in the
/// writer, for the next operation to settle.
struct Progress<'a, S> {
    tx: &'a mut TxState<S>,
    plan: &'a FramePlan,
    at: usize,
    start_pending: bool,
    written: usize,
    done: bool,
}

impl<S> Drop for Progress<'_, S> {
    fn drop(&mut self) {
        if !self.done {
            self.tx.owed = Some(resume(self.plan, self.start_pending, self.at, self.written));
        }
    }
}

#[inline]
async fn drive<W: Write>(
    io: &mut W,
    out: &mut Outgoing,
    payload: &[u8],
    cancel: &mut impl FnMut() -> bool,
) -> Result<(), SendError<W::Error>> {
    while let Some(buf) = out.next_bytes(payload, cancel) {
        match io.write(buf).await {
            Ok(0) => return Err(SendError::WriteZero),
            Ok(n) => out.advance(n),
            Err(e) => return Err(SendError::Io(e)),
        }
    }
    Ok(())
}

/// Receives over an async byte source, into a caller-provided buffer, with a receive core:
/// a [`Reassembler`](crate::Reassembler) for whole messages or a [`Demux`](crate::Demux) for
/// streaming events.
#[derive(Debug)]
pub struct AsyncReader<'b, R, P, L = Plain, C = NoClock> {
    io: R,
    pump: Pump<'b, P, L>,
    clock: C,
}

impl<'b, R: Read, P: Receive> AsyncReader<'b, R, P> {
    /// A reader over `io`, reading into `rx` (any size ≥ 1; 64–512 bytes suit a UART).
    pub fn new(io: R, rx: &'b mut [u8], core: P) -> Self {
        Self {
            io,
            pump: Pump::new(core, rx, Plain),
            clock: NoClock,
        }
    }
}

impl<'b, R: Read, P: Receive> AsyncReader<'b, R, P, LinkDecoder> {
    /// A reader of the serial link profile: it takes link frames from `io` (whole frames
    /// of up to `rx.len()` bytes; at least the sender's link buffer), drops damaged ones and
    /// reports what they cost ([`ProtocolError::LinkGap`](crate::ProtocolError::LinkGap),
    /// [`ProtocolError::Lost`](crate::ProtocolError::Lost)).
    pub fn with_link(io: R, rx: &'b mut [u8], core: P) -> Self {
        Self {
            io,
            pump: Pump::new(core, rx, LinkDecoder::new()),
            clock: NoClock,
        }
    }
}

impl<'b, R: Read, P: Receive, L: Framing, C: Clock> AsyncReader<'b, R, P, L, C> {
    /// The same reader, noting with `clock` when each read returned, so that the receive
    /// core's `RxMetrics::start_to_end_us` times every
    /// completed message (feature `histograms`; without it the clock is not read).
    pub fn with_clock<K: Clock>(self, clock: K) -> AsyncReader<'b, R, P, L, K> {
        AsyncReader {
            io: self.io,
            pump: self.pump,
            clock,
        }
    }

    /// Counters of the serial link profile's frames (`None` for a plain reader).
    pub fn link_metrics(&self) -> Option<&LinkMetrics> {
        self.pump.link_metrics()
    }

    /// The next item: `Ok(None)` once the stream has ended and everything was reported. An
    /// I/O error is returned once; after it the reader reports what was open and closes.
    pub async fn recv(&mut self) -> Result<Option<P::Item<'_>>, R::Error> {
        loop {
            match self.pump.advance() {
                Next::Item(raw, base) => return Ok(Some(self.pump.view(raw, base))),
                Next::Closed => return Ok(None),
                Next::Read => match self.io.read(self.pump.space()).await {
                    Ok(n) => self.pump.filled_at(n, &self.clock),
                    Err(e) => {
                        self.pump.failed();
                        return Err(e);
                    }
                },
            }
        }
    }

    /// The receive core (for its metrics).
    pub const fn core(&self) -> &P {
        &self.pump.core
    }

    /// The source.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.io
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::Original;

    #[test]
    fn send_counters_saturate_instead_of_overflowing() {
        let mut wire = [0u8; 256];
        let mut w = AsyncWriter::new(&mut wire[..], Original);
        w.tx.metrics.messages = u32::MAX;
        w.tx.metrics.aborted = u32::MAX;
        w.tx.metrics.bytes = u64::MAX - 1;
        embassy_futures::block_on(w.send(b"abc")).unwrap();
        // Cancelled after its Start: ends with Abort, counted as aborted.
        let mut asked = 0;
        let r = embassy_futures::block_on(w.send_cancellable(9, b"abc", || {
            asked += 1;
            asked > 1
        }));
        assert_eq!(r, Err(SendError::Cancelled));
        let m = *w.metrics();
        assert_eq!(
            (m.messages, m.aborted, m.bytes),
            (u32::MAX, u32::MAX, u64::MAX)
        );
    }
}
