//! `fp_sizes`: prints, as the target sees them, the sizes of the core's types used by
//! `fp_core`, for the footprint report (`footprint.py` runs it under QEMU).

#![no_std]
#![no_main]

use core::mem::size_of;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use mux_examples_embedded::{exit::exit, uart};
use mux_nostd::{Demux, Original, Outgoing, Pool, Reader, Reassembler, Writer};

#[entry]
fn main() -> ! {
    type Core<const N: usize> = Reassembler<'static, N, 8, 64>;
    let rows: [(&str, usize); 9] = [
        ("Pool<8,64>", size_of::<Pool<8, 64>>()),
        ("Reassembler<N=4,8,64>", size_of::<Core<4>>()),
        ("Reassembler<N=0,8,64>", size_of::<Core<0>>()),
        (
            "Reader<Rx,Reassembler<N=4>>",
            size_of::<Reader<'static, uart::Rx, Core<4>>>(),
        ),
        (
            "Writer<Tx,Original>",
            size_of::<Writer<uart::Tx, Original>>(),
        ),
        ("Outgoing", size_of::<Outgoing>()),
        ("Demux<(),N=4>", size_of::<Demux<(), 4>>()),
        ("Demux<(),N=0>", size_of::<Demux<(), 0>>()),
        ("Demux<(),N=16>", size_of::<Demux<(), 16>>()),
    ];
    for (name, size) in rows {
        hprintln!("size {} {}", name, size);
    }
    exit(true)
}
