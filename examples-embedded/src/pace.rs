//! A paced transmit half: the UART at a chosen rate, as a real one at a given baud rate
//! sends (QEMU's UART sends at once).
//!
//! Every write waits until the link would have sent the bytes before it, counting from the
//! [`clock`](crate::clock)'s microseconds, and returns once its own bytes are through: a write
//! of `n` bytes takes `n / rate` seconds, as a blocking write to a real UART at 115,200 baud
//! takes 87 µs per byte. An idle link earns at most 1 ms of credit. The demo's `--pace` option
//! turns it on (`pace=RATE` on the firmware's semihosting command line).
//!
//! Pacing here rather than on the host's side of the emulated serial line: between QEMU and
//! the host lie the TCP socket's buffers (tens of kilobytes, seconds at 11,520 B/s), which
//! would hold whatever the firmware writes, whatever its frames, and hide what the firmware's
//! framing does to a reading's wait.

use embedded_io::{ErrorType, Write};

use crate::clock;

/// Most credit an idle link earns, µs.
const SLACK_US: u32 = 1000;

/// `W` paced at `rate` bytes per second, or not at all.
#[derive(Debug)]
pub struct Paced<W> {
    io: W,
    /// 0: not paced.
    rate: u32,
    /// When the link is done with what was written so far (a [`clock::now_us`] value).
    busy_until: u32,
}

impl<W> Paced<W> {
    /// `io` as it is (one transmit type for both kinds of run: the firmware's loop is built
    /// once).
    pub fn unpaced(io: W) -> Self {
        Self {
            io,
            rate: 0,
            busy_until: 0,
        }
    }

    /// `io` paced at `rate` bytes per second (at least 1).
    pub fn new(io: W, rate: u32) -> Self {
        Self {
            io,
            rate: rate.max(1),
            busy_until: clock::now_us(),
        }
    }
}

impl<W: ErrorType> ErrorType for Paced<W> {
    type Error = W::Error;
}

impl<W: Write> Write for Paced<W> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, W::Error> {
        if self.rate == 0 {
            return self.io.write(buf);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let now = clock::now_us();
        // Idle since the link was last busy: start from now, less the slack.
        if now.wrapping_sub(self.busy_until) < u32::MAX / 2 {
            let idle = now.wrapping_sub(self.busy_until);
            self.busy_until = now.wrapping_sub(idle.min(SLACK_US));
        }
        let us = (buf.len() as u64 * 1_000_000 / u64::from(self.rate)) as u32;
        self.busy_until = self.busy_until.wrapping_add(us);
        // Until the link is through with these bytes.
        while clock::now_us().wrapping_sub(self.busy_until) >= u32::MAX / 2 {
            core::hint::spin_loop();
        }
        self.io.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), W::Error> {
        self.io.flush()
    }
}
