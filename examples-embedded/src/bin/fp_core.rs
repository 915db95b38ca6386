//! `fp_core`: `fp_baseline` plus the multiplexer core: one strategy (Original), the blocking
//! `Writer` and `Reader`, a `Reassembler` with a 4-entry stream table on an 8 × 64-byte static
//! pool. It echoes every message it receives. All of the core's state is in statics (so that
//! it shows in `.bss`, not on the stack): the pool, and the reader, writer and receive buffer
//! through `cortex_m::singleton!`.
//!
//! Built, not run (it would echo UART0 forever).

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use mux_examples_embedded::{exit::exit, uart};
use mux_nostd::{Limits, Original, Pool, Reader, Reassembler, Received, Writer};

/// Blocks: 8 × 64 bytes.
static MUX_POOL: Pool<8, 64> = Pool::new();

type Core = Reassembler<'static, 4, 8, 64>;

#[entry]
fn main() -> ! {
    let (tx, rx) = uart::take();
    let buf = cortex_m::singleton!(RX_BUF: [u8; 64] = [0; 64]).expect("once");
    let core = Core::new(&MUX_POOL, Limits::new(512));
    let reader = cortex_m::singleton!(MUX_READER: Reader<'static, uart::Rx, Core> =
        Reader::new(rx, buf, core))
    .expect("once");
    let writer = cortex_m::singleton!(MUX_WRITER: Writer<uart::Tx, Original> =
        Writer::new(tx, Original))
    .expect("once");
    let mut echo = [0u8; 64];
    loop {
        let Ok(item) = reader.recv();
        match item {
            None => break,
            Some(Received::Message(m)) => {
                let n = m.body().copy_to(&mut echo);
                let id = m.id();
                drop(m);
                if writer.send_with_id(id, &echo[..n]).is_err() {
                    break;
                }
            }
            Some(_) => {}
        }
    }
    exit(true)
}
