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
use embedded_io_async::Write as AsyncWrite;

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

impl<W> Paced<W> {
    /// Waits (spinning, as a blocking UART write does) until the link is through with `n` more
    /// bytes.
    fn wait_for(&mut self, n: usize) {
        let now = clock::now_us();
        // Idle since the link was last busy: start from now, less the slack.
        if now.wrapping_sub(self.busy_until) < u32::MAX / 2 {
            let idle = now.wrapping_sub(self.busy_until);
            self.busy_until = now.wrapping_sub(idle.min(SLACK_US));
        }
        let us = (n as u64 * 1_000_000 / u64::from(self.rate)) as u32;
        self.busy_until = self.busy_until.wrapping_add(us);
        while clock::now_us().wrapping_sub(self.busy_until) >= u32::MAX / 2 {
            core::hint::spin_loop();
        }
    }
}

impl<W: Write> Write for Paced<W> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, W::Error> {
        if self.rate == 0 {
            return self.io.write(buf);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        self.wait_for(buf.len());
        self.io.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), W::Error> {
        self.io.flush()
    }
}

impl<W: AsyncWrite> AsyncWrite for Paced<W> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, W::Error> {
        if self.rate == 0 {
            return self.io.write(buf).await;
        }
        if buf.is_empty() {
            return Ok(0);
        }
        // The whole executor waits, as it would for a blocking UART write.
        self.wait_for(buf.len());
        self.io.write_all(buf).await?;
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), W::Error> {
        self.io.flush().await
    }
}

/// What the semihosting command line asks for: `pace=RATE` (bytes per second) and whether
/// `strategy=original` keeps the fixed strategy. Not inlined: its buffer leaves the stack
/// before the firmware's loop starts.
#[inline(never)]
pub fn command_line() -> (Option<u32>, bool) {
    let mut buf = [0u8; 96];
    let mut block = [buf.as_mut_ptr() as usize, buf.len()];
    // SAFETY: SYS_GET_CMDLINE writes at most `block[1]` bytes into `buf` and the length it
    // wrote into `block[1]`; both outlive the call, and nothing else uses them meanwhile.
    let r = unsafe {
        cortex_m_semihosting::syscall1(
            cortex_m_semihosting::nr::GET_CMDLINE,
            block.as_mut_ptr() as usize,
        )
    };
    if r != 0 {
        return (None, false);
    }
    let line = core::str::from_utf8(&buf[..block[1].min(buf.len())]).unwrap_or("");
    let mut rate = None;
    let mut fixed = false;
    for word in line.split(' ') {
        if let Some(r) = word.strip_prefix("pace=") {
            rate = r.parse().ok();
        }
        fixed |= word == "strategy=original";
    }
    (rate, fixed)
}
