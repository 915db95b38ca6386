//! A link emulator: a byte pipe paced at a given rate, with the pacing error measured.
//!
//! [`paced_pair`] is a Unix socket pair whose writing end is wrapped in a [`PacedWriter`]:
//! every write call carries its bytes onto the socket in pieces of about one millisecond of
//! the rate, each piece released when the link would have finished sending it, and returns
//! once its last byte is through — as a blocking write to a UART returns once its bytes are
//! out (or a write to a socket whose buffer is full returns once the peer took them). A link
//! left idle earns at most [`SLACK`] of credit (a UART's FIFO of a millisecond): a write after
//! a pause starts at the rate, not with a burst.
//!
//! The emulator measures itself: [`PaceStats`] holds the bytes carried and the time the write
//! calls took, so the achieved rate (and its error against the target) is known for every run.

use std::io::{self, IoSlice, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most credit a link earns while idle: 1 ms of its rate may then go at once.
pub const SLACK: Duration = Duration::from_millis(1);

/// What a [`PacedWriter`] carried: bytes, and nanoseconds spent in its write calls.
#[derive(Debug, Default)]
pub struct PaceStats {
    bytes: AtomicU64,
    busy_ns: AtomicU64,
    calls: AtomicU64,
    largest: AtomicU64,
}

impl PaceStats {
    /// Bytes carried.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Write calls made.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Bytes of the largest write call.
    pub fn largest_call(&self) -> u64 {
        self.largest.load(Ordering::Relaxed)
    }

    /// The rate achieved while busy, bytes per second (`NaN` before any write).
    pub fn achieved_rate(&self) -> f64 {
        self.bytes() as f64 * 1e9 / self.busy_ns.load(Ordering::Relaxed) as f64
    }

    /// `(achieved − target) / target`: negative when the emulator was slower than asked
    /// (sleeps overshoot), positive when faster.
    pub fn error(&self, target: u64) -> f64 {
        self.achieved_rate() / target as f64 - 1.0
    }
}

/// A `Write` paced at `rate` bytes per second (see the [module](self)).
#[derive(Debug)]
pub struct PacedWriter<W> {
    io: W,
    rate: u64,
    quantum: usize,
    /// When the link's first byte would have gone, given `sent` bytes since at the rate (moved
    /// forward over idle time).
    base: Instant,
    sent: u64,
    stats: Arc<PaceStats>,
}

impl<W: Write> PacedWriter<W> {
    /// `io` paced at `rate` bytes per second (at least 1).
    pub fn new(io: W, rate: u64) -> Self {
        let rate = rate.max(1);
        Self {
            io,
            rate,
            quantum: (rate / 1000).clamp(1, 64 << 10) as usize,
            base: Instant::now(),
            sent: 0,
            stats: Arc::default(),
        }
    }

    /// The measurements, shared (they stay readable after the writer is gone).
    pub fn stats(&self) -> Arc<PaceStats> {
        self.stats.clone()
    }

    /// When the link is done with the first `bytes` bytes since `base`.
    fn due(&self, bytes: u64) -> Instant {
        self.base
            + Duration::from_nanos(
                (u128::from(bytes) * 1_000_000_000 / u128::from(self.rate)) as u64,
            )
    }

    fn pace(&mut self, buf: &[u8]) -> io::Result<()> {
        for piece in buf.chunks(self.quantum) {
            self.sent += piece.len() as u64;
            let due = self.due(self.sent);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            self.io.write_all(piece)?;
        }
        Ok(())
    }
}

impl<W: Write> Write for PacedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let start = Instant::now();
        // Idle since the last byte was due: no credit for it beyond [`SLACK`] (which makes up
        // for a sleep's overshoot and the caller's time between two writes, as a UART's FIFO
        // does).
        let idle_until = self.due(self.sent) + SLACK;
        if start > idle_until {
            self.base += start - idle_until;
        }
        let mut n = 0;
        for b in bufs {
            self.pace(b)?;
            n += b.len();
        }
        self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        self.stats.largest.fetch_max(n as u64, Ordering::Relaxed);
        self.stats
            .busy_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.io.flush()
    }
}

/// A socket pair whose first end is paced at `rate` bytes per second: write to the
/// [`PacedWriter`], read from the plain end.
pub fn paced_pair(rate: u64) -> io::Result<(PacedWriter<UnixStream>, UnixStream)> {
    let (a, b) = UnixStream::pair()?;
    Ok((PacedWriter::new(a, rate), b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_paced_pair_carries_every_byte_at_about_its_rate() {
        let (mut w, mut r) = paced_pair(200_000).unwrap();
        let stats = w.stats();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            got
        });
        let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        let t = Instant::now();
        w.write_all(&data[..10_000]).unwrap();
        // An idle pause earns no burst: the second half takes its full time too.
        std::thread::sleep(Duration::from_millis(30));
        let t2 = Instant::now();
        w.write_all(&data[10_000..]).unwrap();
        let second = t2.elapsed();
        drop(w);
        assert_eq!(reader.join().unwrap(), data);
        // 10,000 bytes at 200 kB/s: 50 ms each half, less 1 ms of credit at most.
        assert!(second >= Duration::from_millis(48), "{second:?}");
        assert!(t.elapsed() >= Duration::from_millis(128));
        assert_eq!(stats.bytes(), 20_000);
        assert!(stats.error(200_000) < 0.03, "{}", stats.error(200_000));
    }
}
