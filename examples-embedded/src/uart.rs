//! UART0 of the Stellaris LM3S6965 (a PL011): blocking and async `embedded-io` halves.
//!
//! Registers (offsets from 0x4000_C000): data `DR` 0x00, flags `FR` 0x18 (bit 4 receive FIFO
//! empty, bit 5 transmit FIFO full, bit 3 busy), line control `LCRH` 0x2C (bit 4 FIFO enable,
//! bits 5–6 word length), control `CTL` 0x30, interrupt mask `IM` 0x38 (bit 4 receive,
//! bit 5 transmit). Under QEMU no clock or pin setup is needed and the baud rate is not
//! emulated; on a real LM3S6965 the clock gate in `RCGC1` (set here too) and the GPIO A0/A1
//! alternate functions must also be enabled.
//!
//! Receiving never loses bytes: QEMU's UART model stops taking bytes from the host socket while
//! its 16-byte receive FIFO is full, so TCP flow control holds the host back.
//!
//! The async halves sleep on the UART0 interrupt (IRQ 5): a pending read unmasks the receive
//! interrupt, and [`on_interrupt`] (called from the firmware's interrupt handler) masks it
//! again and wakes the reader.

use core::convert::Infallible;
use core::future::poll_fn;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::Poll;

use cortex_m::interrupt::InterruptNumber;
use embassy_sync::waitqueue::AtomicWaker;

const BASE: usize = 0x4000_C000;
const DR: usize = 0x00;
const FR: usize = 0x18;
const LCRH: usize = 0x2C;
const CTL: usize = 0x30;
const IM: usize = 0x38;
const ICR: usize = 0x44;

const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const LCRH_FEN: u32 = 1 << 4;
const LCRH_WLEN8: u32 = 0b11 << 5;
const CTL_ENABLE: u32 = (1 << 0) | (1 << 8) | (1 << 9); // UARTEN, TXE, RXE
const IM_RX: u32 = 1 << 4;
const IM_TX: u32 = 1 << 5;

/// System control: run-mode clock gating register 1 (bit 0: UART0).
const RCGC1: usize = 0x400F_E104;

static RX_WAKER: AtomicWaker = AtomicWaker::new();
static TX_WAKER: AtomicWaker = AtomicWaker::new();
static TAKEN: AtomicBool = AtomicBool::new(false);

fn read(offset: usize) -> u32 {
    // SAFETY: `BASE + offset` is one of UART0's memory-mapped registers listed above: always
    // mapped, 4-byte aligned, and reading it has no effect beyond the UART (reading DR pops the
    // receive FIFO, which only the receive half does).
    unsafe { read_volatile((BASE + offset) as *const u32) }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`; writes go to UART0 registers only.
    unsafe { write_volatile((BASE + offset) as *mut u32, value) }
}

/// Sets or clears bits of the interrupt mask; a critical section keeps the read-modify-write
/// whole against [`on_interrupt`].
fn set_mask(bits: u32, on: bool) {
    critical_section::with(|_| {
        let im = read(IM);
        write(IM, if on { im | bits } else { im & !bits });
    });
}

/// The UART0 interrupt line, for `NVIC::unmask`.
#[derive(Debug, Clone, Copy)]
pub struct Uart0Irq;

/// The NVIC interrupt number of UART0 on the LM3S6965.
pub const UART0_IRQ: u16 = 5;

// SAFETY: 5 is UART0's position in the LM3S6965 vector table, a valid interrupt number.
unsafe impl InterruptNumber for Uart0Irq {
    fn number(self) -> u16 {
        UART0_IRQ
    }
}

/// Initialises UART0 (8 data bits, FIFOs on) and hands out its two halves, once.
///
/// # Panics
/// If called twice.
pub fn take() -> (Tx, Rx) {
    // Load + store in a critical section: Cortex-M0 has no atomic swap.
    let first = critical_section::with(|_| {
        !TAKEN.load(Ordering::Relaxed) && {
            TAKEN.store(true, Ordering::Relaxed);
            true
        }
    });
    assert!(first, "UART0 already taken");
    // SAFETY: RCGC1 is the LM3S6965 system-control clock-gating register; setting bit 0 only
    // turns UART0's clock on.
    unsafe {
        let gate = RCGC1 as *mut u32;
        write_volatile(gate, read_volatile(gate) | 1);
    }
    write(CTL, 0);
    write(LCRH, LCRH_WLEN8 | LCRH_FEN);
    write(IM, 0);
    write(ICR, 0x7FF);
    write(CTL, CTL_ENABLE);
    (Tx { _private: () }, Rx { _private: () })
}

/// To be called from the UART0 interrupt handler: masks the interrupts that fired (the pending
/// future unmasks them again) and wakes the waiting reader or writer.
pub fn on_interrupt() {
    critical_section::with(|_| {
        let im = read(IM);
        write(IM, 0);
        write(ICR, im);
    });
    RX_WAKER.wake();
    TX_WAKER.wake();
}

/// The transmit half.
#[derive(Debug)]
pub struct Tx {
    _private: (),
}

/// The receive half.
#[derive(Debug)]
pub struct Rx {
    _private: (),
}

impl Tx {
    /// Queues as many bytes of `buf` as the FIFO takes right now.
    fn push(&mut self, buf: &[u8]) -> usize {
        let mut n = 0;
        while n < buf.len() && read(FR) & FR_TXFF == 0 {
            write(DR, u32::from(buf[n]));
            n += 1;
        }
        n
    }
}

impl Rx {
    /// Whether a byte is waiting in the receive FIFO.
    pub fn has_data(&self) -> bool {
        read(FR) & FR_RXFE == 0
    }

    /// Takes as many bytes as are waiting, up to `buf.len()`.
    fn pop(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() && self.has_data() {
            buf[n] = read(DR) as u8; // bits 8–11 are error flags, not data
            n += 1;
        }
        n
    }

    /// Lets the next received byte raise the UART0 interrupt (to wake from `wfi`); the
    /// interrupt masks itself again through [`on_interrupt`].
    pub fn listen(&mut self) {
        set_mask(IM_RX, true);
    }
}

impl embedded_io::ErrorType for Tx {
    type Error = Infallible;
}

impl embedded_io::ErrorType for Rx {
    type Error = Infallible;
}

impl embedded_io::Write for Tx {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.push(buf);
            if n > 0 {
                return Ok(n);
            }
        }
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while read(FR) & FR_BUSY != 0 {}
        Ok(())
    }
}

impl embedded_io::WriteReady for Tx {
    fn write_ready(&mut self) -> Result<bool, Infallible> {
        Ok(read(FR) & FR_TXFF == 0)
    }
}

impl embedded_io::Read for Rx {
    /// Blocks until at least one byte is there, then takes what is waiting.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.pop(buf);
            if n > 0 {
                return Ok(n);
            }
        }
    }
}

impl embedded_io::ReadReady for Rx {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(self.has_data())
    }
}

impl embedded_io_async::Write for Tx {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let n = self.push(buf);
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
            TX_WAKER.register(cx.waker());
            set_mask(IM_TX, true);
            // The FIFO may have drained before the interrupt was unmasked: look again.
            match self.push(buf) {
                0 => Poll::Pending,
                n => Poll::Ready(Ok(n)),
            }
        })
        .await
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        // The FIFO drains in a few character times; not worth an interrupt.
        while read(FR) & FR_BUSY != 0 {}
        Ok(())
    }
}

impl embedded_io_async::Read for Rx {
    /// Sleeps on the receive interrupt until at least one byte is there. Cancel-safe: bytes
    /// are only taken from the FIFO when the future completes.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let n = self.pop(buf);
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
            RX_WAKER.register(cx.waker());
            set_mask(IM_RX, true);
            // A byte may have arrived before the interrupt was unmasked: look again.
            match self.pop(buf) {
                0 => Poll::Pending,
                n => Poll::Ready(Ok(n)),
            }
        })
        .await
    }
}
