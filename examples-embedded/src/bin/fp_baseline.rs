//! `fp_baseline`: the footprint reference. Everything a UART firmware has *without* the
//! multiplexer: start-up code, the UART driver (blocking read and write), an echo loop, the
//! semihosting exit and the panic handler. `fp_core` is this plus the multiplexer; the
//! difference between the two is the core's own share (see `docs/EMBEDDED.md`).
//!
//! Built, not run (it would echo UART0 forever).

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use embedded_io::{Read, Write};
use mux_examples_embedded::{exit::exit, uart};

#[entry]
fn main() -> ! {
    let (mut tx, mut rx) = uart::take();
    let buf = cortex_m::singleton!(RX_BUF: [u8; 64] = [0; 64]).expect("once");
    loop {
        let Ok(n) = rx.read(buf);
        if n == 0 {
            break;
        }
        let Ok(()) = tx.write_all(&buf[..n]);
    }
    exit(true)
}
