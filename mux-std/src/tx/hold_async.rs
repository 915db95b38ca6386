//! The tokio sender's holds: the shared [`Hold`] routine driven with `.await`, the progress of
//! a hold whose future is dropped left behind the lock, and the writes of what such a message
//! still owes.

use std::io::{self, IoSlice};

use mux_nostd::Outgoing;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::adaptive::Pace;
use crate::error::SendError;
use crate::sync::atomic::{AtomicU64, Ordering};

use super::batch::*;
use super::cursor::*;
use super::hold::*;
use super::inner::TxInner;

/// One hold of the write lock for `msg` (the shared [`Hold`] routine, written with `.await`).
/// If the future is dropped before the hold ends (the send future is, or a deadline fires
/// while a write waits), the message's progress is left in [`TxInner::owed`] (and `msg` is
/// emptied) so that the next holder completes the frame in flight and ends the message with
/// Abort; on a write error it is left there too. On every other end `msg` says where the
/// message stands.
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
    if msg.small {
        run::<SMALL, SMALL_IOV, W, S>(g, msg, payload, how).await
    } else {
        run::<GATHER, GATHER_IOV, W, S>(g, msg, payload, how).await
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

async fn run<const F: usize, const V: usize, W, S>(
    g: &mut TxInner<W>,
    msg: &mut Cursor,
    payload: &[u8],
    how: &mut How<'_, S>,
) -> io::Result<HoldEnd>
where
    W: AsyncWrite + Unpin,
    S: FnMut() -> Option<SendError> + ?Sized,
{
    const { assert!(V >= 2 * F + 2) };
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
    let mut hold = Hold::new(*budget);
    let mut batch = Batch::<F>::new();
    let mut keep = Keep {
        owed,
        msg,
        armed: true,
    };
    loop {
        if let Some(end) = hold.next(keep.msg, co, payload, how, &mut batch) {
            keep.armed = false;
            return Ok(end);
        }
        let n = {
            let mut iov = [IoSlice::new(&[]); V];
            let (k, len) = Hold::slices(&batch, &mut iov, co, keep.msg, payload);
            timed_write(pace, io, &iov[..k], len, &stats.writes).await?
        };
        hold.wrote(keep.msg, co, &batch, n);
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
