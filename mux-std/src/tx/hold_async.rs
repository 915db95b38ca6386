//! The tokio sender's holds: the shared [`Hold`] routine driven with `.await`, the progress of
//! a hold whose future is dropped left behind the lock, and the writes of what such a message
//! still owes.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use mux_nostd::Outgoing;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::adaptive::Pace;
use crate::error::SendError;
use crate::sync::atomic::{AtomicU64, Ordering};

use super::batch::*;
use super::coalescer::*;
use super::cursor::*;
use super::hold::*;
use super::inner::TxInner;
use super::stats::bump;

/// One hold of the write lock for `msg` (the shared [`Hold`] routine, written with `.await`).
/// If the future is dropped before the hold ends (the send future is, or a deadline fires
/// while a write waits), the message's progress is left in [`TxInner::owed`] (and `msg` is
/// emptied) so that the next holder completes the frame in flight and ends the message with
/// Abort; on a write error it is left there too. On every other end `msg` says where the
/// message stands.
///
/// The future keeps only the hold's progress: each poll gathers its write call on the stack
/// and offers it to the sink; a write the sink does not take yet is gathered again, the same
/// frames, at the next poll.
pub(crate) async fn hold<W, S>(
    g: &mut TxInner<W>,
    msg: &mut Cursor,
    payload: &[u8],
    how: &mut How<'_, S>,
) -> io::Result<HoldEnd>
where
    W: AsyncWrite + Unpin,
    S: FnMut() -> Option<SendError> + ?Sized,
{
    let TxInner {
        io,
        co,
        stats,
        owed,
        budget,
        pace,
        ..
    } = g;
    let Some(io) = io.as_mut() else {
        return Err(io::ErrorKind::NotConnected.into());
    };
    let mut keep = Keep {
        owed,
        msg,
        armed: true,
    };
    let mut call = Call {
        hold: Hold::new(*budget),
        t0: None,
        writes: &stats.writes,
        pace,
    };
    let small = keep.msg.small;
    let end = poll_fn(|cx| {
        let msg = &mut *keep.msg;
        if small {
            call.poll::<SMALL, SMALL_IOV, _, S>(cx, msg, co, io, payload, how)
        } else {
            call.poll::<GATHER, GATHER_IOV, _, S>(cx, msg, co, io, payload, how)
        }
    })
    .await;
    keep.armed = end.is_err();
    end
}

/// A hold's progress between polls: the shared routine's state, and when the write call the
/// sink has not taken yet was first offered (under Adaptive, timed from then).
struct Call<'a> {
    hold: Hold,
    t0: Option<Option<Instant>>,
    writes: &'a AtomicU64,
    pace: &'a Pace,
}

impl Call<'_> {
    /// Writes the hold's calls until it ends or the sink does not take one.
    #[inline(always)]
    fn poll<const F: usize, const V: usize, W, S>(
        &mut self,
        cx: &mut Context<'_>,
        msg: &mut Cursor,
        co: &mut Coalescer,
        io: &mut W,
        payload: &[u8],
        how: &mut How<'_, S>,
    ) -> Poll<io::Result<HoldEnd>>
    where
        W: AsyncWrite + Unpin,
        S: FnMut() -> Option<SendError> + ?Sized,
    {
        const { assert!(V >= 2 * F + 2) };
        let mut batch = Batch::<F>::new();
        // A write call offered at the last poll that the sink did not take: the same again.
        let mut again = self.t0.is_some();
        loop {
            if again {
                self.hold.regather(msg, &mut batch);
                again = false;
            } else if let Some(end) = self.hold.next(msg, co, payload, how, &mut batch) {
                return Poll::Ready(Ok(end));
            }
            let mut iov = [IoSlice::new(&[]); V];
            let (k, len) = Hold::slices(&batch, &mut iov, co, msg, payload);
            let pace = self.pace;
            let t0 = *self.t0.get_or_insert_with(|| pace.start(len));
            let n = match Pin::new(&mut *io).poll_write_vectored(cx, &iov[..k]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    self.t0 = None;
                    bump(self.writes, 1);
                    match r {
                        Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                            again = true;
                            continue;
                        }
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
            };
            pace.done(t0, n);
            self.hold.wrote(msg, co, &batch, n);
        }
    }
}

/// Leaves the progress of a hold cut short behind the lock (see [`hold`]).
struct Keep<'a> {
    owed: &'a mut Option<Outgoing>,
    msg: &'a mut Cursor,
    armed: bool,
}

impl Drop for Keep<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Some(out) = self.msg.take_owed()
        {
            *self.owed = Some(out);
        }
    }
}

/// Writes what the message in [`TxInner::owed`] still owes (it is settled: the rest of the
/// frame in flight with filler, then Abort), after the shared buffer's bytes. Its progress
/// stays in `owed` after every write, so a dropped future leaves the rest to the next holder.
pub(crate) async fn write_owed<W: AsyncWrite + Unpin>(g: &mut TxInner<W>) -> io::Result<()> {
    let TxInner {
        io,
        co,
        stats,
        owed,
        pace,
        ..
    } = g;
    let Some(out) = owed.as_mut() else {
        return Ok(());
    };
    let Some(io) = io.as_mut() else {
        return Err(io::ErrorKind::NotConnected.into());
    };
    while !out.is_done() {
        if co.try_copy(out, &[]).is_some() {
            continue;
        }
        let (h, b) = out.pending(&[]);
        let iov = [IoSlice::new(co.pending()), IoSlice::new(h), IoSlice::new(b)];
        let len = iov.iter().map(|b| b.len()).sum();
        let n = timed_write(pace, io, &iov, len, &stats.writes).await?;
        co.consumed(out, &[], n, &mut 0);
    }
    Ok(())
}

/// [`write_some`], timed into the estimator under Adaptive (as the blocking sender's writes
/// are): from the first poll to completion, the time the sink took the bytes. `len`: the
/// bytes of `iov`.
pub(crate) async fn timed_write<W: AsyncWrite + Unpin>(
    pace: &Pace,
    io: &mut W,
    iov: &[IoSlice<'_>],
    len: usize,
    writes: &AtomicU64,
) -> io::Result<usize> {
    let t0 = pace.start(len);
    let n = write_some(io, iov, writes).await?;
    pace.done(t0, n);
    Ok(n)
}

/// One vectored write that takes something (`WriteZero` if the sink takes nothing),
/// counted in `writes`.
async fn write_some<W: AsyncWrite + Unpin>(
    io: &mut W,
    iov: &[IoSlice<'_>],
    writes: &AtomicU64,
) -> io::Result<usize> {
    loop {
        writes.fetch_add(1, Ordering::Relaxed);
        match io.write_vectored(iov).await {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}
