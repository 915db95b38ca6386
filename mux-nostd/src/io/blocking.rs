//! Blocking reader and writer over [`embedded_io::Read`] and [`embedded_io::Write`].

use embedded_io::{Read, Write};

use super::{Framing, Heads, Next, Plain, Pump, Receive, TxState};
use crate::adaptive::{Clock, NoClock};
use crate::encode::{FramePlan, Outgoing};
use crate::error::SendError;
use crate::frame::HEADER_LEN;
use crate::link::LinkDecoder;
use crate::metrics::LinkMetrics;
use crate::metrics::TxMetrics;
use crate::strategy::Strategy;

/// Sends messages over a blocking byte sink with strategy `S`.
///
/// A send interrupted by an I/O error leaves what it owes in the writer; the next call settles
/// it first (finishes the frame in flight, then writes Abort for that id).
#[derive(Debug)]
pub struct Writer<W, S, C = NoClock> {
    io: W,
    tx: TxState<S>,
    /// Read only with feature `histograms`.
    #[cfg_attr(not(feature = "histograms"), allow(dead_code))]
    clock: C,
}

impl<W: Write, S: Strategy> Writer<W, S> {
    /// A writer whose automatic ids start at 1.
    pub const fn new(io: W, strategy: S) -> Self {
        Self {
            io,
            tx: TxState::new(strategy),
            clock: NoClock,
        }
    }
}

impl<W: Write, S: Strategy, C: Clock> Writer<W, S, C> {
    /// The same writer, timing each send with `clock` into
    /// `TxMetrics::send_wait_us` (feature `histograms`; without it the clock is not read).
    pub fn with_clock<K: Clock>(self, clock: K) -> Writer<W, S, K> {
        Writer {
            io: self.io,
            tx: self.tx,
            clock,
        }
    }

    /// Sends `payload` with the next automatic id (1, 2, …, wrapping) and returns that id.
    #[inline]
    pub fn send(&mut self, payload: &[u8]) -> Result<u32, SendError<W::Error>> {
        let id = self.tx.take_id();
        self.send_with_id(id, payload).map(|()| id)
    }

    /// Sends `payload` as message `id`.
    #[inline]
    pub fn send_with_id(&mut self, id: u32, payload: &[u8]) -> Result<(), SendError<W::Error>> {
        self.send_cancellable(id, payload, never)
    }

    /// Sends `payload` as message `id`, asking `cancel` before each frame whether to stop. A
    /// message cancelled after its Start was written ends with Abort; one cancelled before
    /// writes nothing. Either way the result is [`SendError::Cancelled`].
    #[inline]
    pub fn send_cancellable(
        &mut self,
        id: u32,
        payload: &[u8],
        cancel: impl FnMut() -> bool,
    ) -> Result<(), SendError<W::Error>> {
        #[cfg(feature = "histograms")]
        let t0 = C::TIMED.then(|| self.clock.now_us());
        self.settle()?;
        // The strategy ends here, as two numbers in the plan: the frames are written by code
        // that does not depend on it (Hybrid below its threshold runs Original's code).
        let plan = FramePlan::new(&self.tx.strategy, id, payload.len())?;
        match write_frames(&mut self.io, &plan, payload, cancel) {
            Ok(()) => {
                self.tx.metrics.count_message(plan.total(), plan.chunk());
                #[cfg(feature = "histograms")]
                self.tx.sent_after(t0, &self.clock);
                Ok(())
            }
            Err(stop) => {
                self.tx.owed = Some(resume(&plan, stop.start_pending, stop.at, stop.written));
                match stop.error {
                    Some(e) => Err(e),
                    None => {
                        self.settle()?;
                        Err(SendError::Cancelled)
                    }
                }
            }
        }
    }

    /// Writes what an interrupted send still owes (a no-op when nothing is owed).
    #[inline]
    pub fn settle(&mut self) -> Result<(), SendError<W::Error>> {
        let Some(out) = self.tx.owed_for_settle() else {
            return Ok(());
        };
        let r = drive(&mut self.io, out, &[], &mut || false);
        self.tx.end_settle(r)
    }

    /// Settles, then flushes the sink.
    pub fn flush(&mut self) -> Result<(), SendError<W::Error>> {
        self.settle()?;
        self.io.flush().map_err(SendError::Io)
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

/// The `cancel` of a plain send.
const fn never() -> bool {
    false
}

/// Where [`write_frames`] stopped: at the frame at payload offset `at` (its Start still
/// pending or not), `written` bytes into that write; `error` is `None` for a cancellation.
struct Stopped<E> {
    at: usize,
    start_pending: bool,
    written: usize,
    error: Option<SendError<E>>,
}

/// Writes the frames of `plan` straight from `payload`, keeping no progress while all goes
/// well; on cancellation or failure it says where it stopped, to the byte, for the caller to
/// settle or keep as owed. The headers are built first ([`Heads`]).
#[inline(always)]
fn write_frames<W: Write>(
    io: &mut W,
    plan: &FramePlan,
    payload: &[u8],
    mut cancel: impl FnMut() -> bool,
) -> Result<(), Stopped<W::Error>> {
    let heads = Heads::new(plan, payload.len());
    let mut head: &[u8] = heads.first();
    let mut at = 0;
    loop {
        let body = heads.body(payload, at);
        // `cancel` is asked before every frame: before the first write, for Start and for the
        // frame that goes out with it.
        let start_pending = head.len() > HEADER_LEN;
        if (start_pending && cancel()) || cancel() {
            // Nothing of this frame (nor of a pending Start) was written.
            return Err(Stopped {
                at,
                start_pending,
                written: 0,
                error: None,
            });
        }
        if let Err((written, e)) = write_frame(io, head, body) {
            return Err(Stopped {
                at,
                start_pending,
                written,
                error: Some(e),
            });
        }
        if body.is_empty() {
            return Ok(());
        }
        at += body.len();
        head = heads.at(at);
    }
}

/// The progress of a send walked by hand that stopped at the frame at payload offset `at`
/// (its Start still pending or not) after `written` bytes of that write (Start header first).
#[cold]
pub(super) fn resume(plan: &FramePlan, start_pending: bool, at: usize, written: usize) -> Outgoing {
    if start_pending && written < HEADER_LEN {
        let (start, rest) = plan.split_at(None);
        return Outgoing::resume(rest, start, written);
    }
    let written = if start_pending {
        written - HEADER_LEN
    } else {
        written
    };
    let (frame, rest) = plan.split_at(Some(at as u32));
    Outgoing::resume(rest, frame, written)
}

/// Writes a frame's header bytes, then its body. The usual case, each part taken whole by one
/// write call, is the straight path; a partial write goes on in [`write_rest`]. An error says
/// how many bytes of the two reached the sink.
#[inline(always)]
fn write_frame<W: Write>(
    io: &mut W,
    head: &[u8],
    body: &[u8],
) -> Result<(), (usize, SendError<W::Error>)> {
    match io.write(head) {
        Ok(n) if n == head.len() => {}
        r => return write_rest(io, head, body, 0, r),
    }
    if body.is_empty() {
        return Ok(());
    }
    match io.write(body) {
        Ok(n) if n == body.len() => Ok(()),
        r => write_rest(io, body, &[], head.len(), r),
    }
}

/// [`write_frame`] after a write call of `first` that did not take all of it (`r`), `done`
/// bytes of the frame written before that call: the rest of `first`, then `then`.
#[cold]
fn write_rest<W: Write>(
    io: &mut W,
    first: &[u8],
    then: &[u8],
    done: usize,
    r: Result<usize, W::Error>,
) -> Result<(), (usize, SendError<W::Error>)> {
    let mut written = done;
    let n = match r {
        Ok(0) => return Err((written, SendError::WriteZero)),
        Ok(n) => n,
        Err(e) => return Err((written, SendError::Io(e))),
    };
    written += n;
    let run =
        write_all(io, &first[n..], &mut written).and_then(|()| write_all(io, then, &mut written));
    run.map_err(|e| (written, e))
}

#[inline(always)]
fn write_all<W: Write>(
    io: &mut W,
    mut buf: &[u8],
    written: &mut usize,
) -> Result<(), SendError<W::Error>> {
    while !buf.is_empty() {
        match io.write(buf) {
            Ok(0) => return Err(SendError::WriteZero),
            Ok(n) => {
                *written += n;
                buf = &buf[n..];
            }
            Err(e) => return Err(SendError::Io(e)),
        }
    }
    Ok(())
}

/// Writes what `out` owes (used to settle an interrupted send).
fn drive<W: Write>(
    io: &mut W,
    out: &mut Outgoing,
    payload: &[u8],
    cancel: &mut impl FnMut() -> bool,
) -> Result<(), SendError<W::Error>> {
    while let Some(buf) = out.next_bytes(payload, cancel) {
        match io.write(buf) {
            Ok(0) => return Err(SendError::WriteZero),
            Ok(n) => out.advance(n),
            Err(e) => return Err(SendError::Io(e)),
        }
    }
    Ok(())
}

/// Receives over a blocking byte source, into a caller-provided buffer, with a receive core:
/// a [`Reassembler`](crate::Reassembler) for whole messages or a [`Demux`](crate::Demux) for
/// streaming events.
#[derive(Debug)]
pub struct Reader<'b, R, P, L = Plain, C = NoClock> {
    io: R,
    pump: Pump<'b, P, L>,
    clock: C,
}

impl<'b, R: Read, P: Receive> Reader<'b, R, P> {
    /// A reader over `io`, reading into `rx` (any size ≥ 1; 64–512 bytes suit a UART).
    pub fn new(io: R, rx: &'b mut [u8], core: P) -> Self {
        Self {
            io,
            pump: Pump::new(core, rx, Plain),
            clock: NoClock,
        }
    }
}

impl<'b, R: Read, P: Receive> Reader<'b, R, P, LinkDecoder> {
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

impl<'b, R: Read, P: Receive, L: Framing, C: Clock> Reader<'b, R, P, L, C> {
    /// The same reader, noting with `clock` when each read returned, so that the receive
    /// core's `RxMetrics::start_to_end_us` times every
    /// completed message (feature `histograms`; without it the clock is not read).
    pub fn with_clock<K: Clock>(self, clock: K) -> Reader<'b, R, P, L, K> {
        Reader {
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
    pub fn recv(&mut self) -> Result<Option<P::Item<'_>>, R::Error> {
        loop {
            match self.pump.advance() {
                Next::Item(raw, base) => return Ok(Some(self.pump.view(raw, base))),
                Next::Closed => return Ok(None),
                Next::Read => match self.io.read(self.pump.space()) {
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
        let mut w = Writer::new(&mut wire[..], Original);
        w.tx.metrics.messages = u32::MAX;
        w.tx.metrics.aborted = u32::MAX;
        w.tx.metrics.bytes = u64::MAX - 1;
        w.send(b"abc").unwrap();
        // Cancelled after its Start: ends with Abort, counted as aborted.
        let mut asked = 0;
        let r = w.send_cancellable(9, b"abc", || {
            asked += 1;
            asked > 2
        });
        assert_eq!(r, Err(SendError::Cancelled));
        let m = *w.metrics();
        assert_eq!(
            (m.messages, m.aborted, m.bytes),
            (u32::MAX, u32::MAX, u64::MAX)
        );
    }
}
