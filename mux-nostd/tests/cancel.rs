//! Cancel safety: a send interrupted anywhere (async future dropped, I/O error, cancellation)
//! never leaves the stream unusable; the next operation settles what is owed first.

mod common;

use core::convert::Infallible;
use core::pin::pin;
use core::task::{Context, Waker};

use common::{Outcome, decode};
use mux_nostd::{AsyncWriter, Optimized, Original, SendError, Writer};

/// An async sink that accepts `budget` bytes, then never completes a write until refilled.
struct Gate {
    out: Vec<u8>,
    budget: usize,
}

impl embedded_io_async::ErrorType for Gate {
    type Error = Infallible;
}

impl embedded_io_async::Write for Gate {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        if self.budget == 0 {
            core::future::pending::<()>().await;
        }
        let n = self.budget.min(buf.len());
        self.out.extend_from_slice(&buf[..n]);
        self.budget -= n;
        Ok(n)
    }
    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

const FIRST: usize = 3000;

/// Wire length of message 1 (Optimized, 3000 bytes: S0 D1024 D1024 D952 E0).
fn first_len() -> usize {
    5 * 9 + FIRST
}

fn expected_after_drop(budget: usize) -> Vec<Outcome> {
    let first = vec![1u8; FIRST];
    let second = Outcome::msg(2, b"after the drop");
    if budget == 0 {
        vec![second] // nothing of message 1 was written: nothing owed
    } else if budget <= first_len() - 9 {
        vec![Outcome::Aborted(1), second] // settled: frame finished with filler, then Abort
    } else {
        vec![Outcome::Msg(1, first), second] // End had started: finishing it completes 1
    }
}

fn budgets() -> impl Iterator<Item = usize> {
    let step = if cfg!(miri) { 211 } else { 1 };
    (0..=first_len() + 3)
        .step_by(step)
        .chain([first_len() - 9, first_len() - 8])
}

#[test]
fn dropping_an_async_send_mid_message_anywhere_keeps_the_stream_usable() {
    let first = vec![1u8; FIRST];
    for budget in budgets() {
        let mut w = AsyncWriter::new(
            Gate {
                out: Vec::new(),
                budget,
            },
            Optimized,
        );
        {
            let fut = pin!(w.send_with_id(1, &first));
            let mut cx = Context::from_waker(Waker::noop());
            let poll = fut.poll(&mut cx);
            if budget < first_len() {
                assert!(poll.is_pending(), "budget {budget}: the send must be stuck");
            }
        } // the send future is dropped here, possibly mid-frame
        w.get_mut().budget = usize::MAX;
        embassy_futures::block_on(async {
            w.send_with_id(2, b"after the drop").await.unwrap();
        });
        assert!(!w.owes());
        let wire = &w.get_ref().out;
        assert_eq!(
            decode(wire, usize::MAX),
            expected_after_drop(budget),
            "budget {budget}"
        );
    }
}

/// A blocking sink that fails once after `ok` bytes, then works.
struct FailOnce {
    out: Vec<u8>,
    ok: usize,
    failed: bool,
}

impl embedded_io::ErrorType for FailOnce {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Write for FailOnce {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        if !self.failed && self.ok == 0 {
            self.failed = true;
            return Err(embedded_io::ErrorKind::TimedOut);
        }
        let n = if self.failed {
            buf.len()
        } else {
            self.ok.min(buf.len())
        };
        if !self.failed {
            self.ok -= n;
        }
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn a_write_error_mid_message_is_settled_before_the_next_send() {
    let first = vec![1u8; FIRST];
    for ok in budgets().filter(|&b| b < first_len()) {
        let mut w = Writer::new(
            FailOnce {
                out: Vec::new(),
                ok,
                failed: false,
            },
            Optimized,
        );
        assert!(matches!(w.send_with_id(1, &first), Err(SendError::Io(_))));
        assert!(w.owes() || ok == 0);
        w.send_with_id(2, b"after the drop").unwrap();
        let got = decode(&w.get_ref().out, 7);
        assert_eq!(got, expected_after_drop(ok), "failed after {ok} bytes");
    }
}

#[test]
fn explicit_settle_and_flush_write_what_is_owed() {
    let mut w = Writer::new(
        FailOnce {
            out: Vec::new(),
            ok: 20,
            failed: false,
        },
        Original,
    );
    assert!(w.send_with_id(4, &[9; 50]).is_err());
    assert!(w.owes());
    w.flush().unwrap();
    assert!(!w.owes());
    assert_eq!(decode(&w.get_ref().out, 1), [Outcome::Aborted(4)]);
    assert_eq!(w.metrics().aborted, 1);
}

#[test]
fn async_cancellation_between_frames_writes_abort() {
    let mut w = AsyncWriter::new(
        Gate {
            out: Vec::new(),
            budget: usize::MAX,
        },
        Original,
    );
    let mut n = 0;
    let r = embassy_futures::block_on(w.send_cancellable(3, &[5; 5000], || {
        n += 1;
        n == 4 // Start and two Data frames, then cancel
    }));
    assert!(matches!(r, Err(SendError::Cancelled)));
    let wire = &w.get_ref().out;
    assert_eq!(wire.len(), 9 + 2 * (9 + 1024) + 9);
    assert_eq!(decode(wire, 3), [Outcome::Aborted(3)]);
}

#[test]
fn blocking_cancellation_before_any_frame_keeps_the_stream_usable() {
    // Original, 3000 bytes: Start, three Data frames, End: cancel before each in turn.
    for k in 0..5 {
        let sink = FailOnce {
            out: Vec::new(),
            ok: usize::MAX,
            failed: false,
        };
        let mut w = Writer::new(sink, Original);
        let mut asked = 0;
        let r = w.send_cancellable(1, &[1; FIRST], || {
            asked += 1;
            asked > k
        });
        assert!(matches!(r, Err(SendError::Cancelled)), "k {k}");
        w.send_with_id(2, b"next").unwrap();
        let got = decode(&w.get_ref().out, 5);
        // Before the first Data frame nothing was written at all (Start goes out together
        // with the frame after it); later, what was written is closed by an Abort.
        let mut want = if k <= 1 {
            vec![]
        } else {
            vec![Outcome::Aborted(1)]
        };
        want.push(Outcome::msg(2, b"next"));
        assert_eq!(got, want, "cancelled before frame {k}");
    }
}
