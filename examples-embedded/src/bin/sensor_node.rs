//! `sensor_node`: the blocking firmware. A superloop on one core, no heap, no executor.
//!
//! - sends a reading every `interval` ms (a whole small message with `Writer::send_with_id`);
//! - answers host commands, each with the command's id;
//! - streams the 20 KiB log dump one frame at a time, readings and replies going out between
//!   its frames;
//! - reassembles host messages into a static pool with the sans-IO `Reassembler`, fed with
//!   whatever the UART has (a superloop must never block in a read);
//! - sleeps (`wfi`) until the next tick or received byte;
//! - after `bye`, prints a summary over semihosting and exits 0 (1 if anything went wrong).

#![no_std]
#![no_main]

use core::convert::Infallible;

use cortex_m::peripheral::NVIC;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::hprintln;
use embedded_io::Read as _;
use mux_examples_embedded::app::{
    Body, Effect, FNV_INIT, MAX_COMMAND, MAX_MESSAGE, Node, Strategy, Text, fnv1a,
};
use mux_examples_embedded::exit::{exit, stack_peak};
use mux_examples_embedded::{clock, uart};
use mux_nostd::{Limits, Pool, Reassembler, Received, SendError, Writer};

/// Blocks for host messages: 40 × 64 bytes, room for one `config` upload of up to 2 KiB and a
/// few commands in flight at once.
static POOL: Pool<40, 64> = Pool::new();
/// Host messages open at once.
const STREAMS: usize = 4;

type Tx = Writer<uart::Tx, Strategy>;

fn sent<T>(r: Result<T, SendError<Infallible>>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("uart send failed: {e}"),
    }
}

#[entry]
fn main() -> ! {
    let cp = cortex_m::Peripherals::take().expect("first take");
    clock::start(cp.SYST);
    let (tx, mut rx) = uart::take();
    // SAFETY: the UART0 handler below only masks the UART's interrupts and wakes; unmasking
    // it cannot break a critical section (none spans this point).
    unsafe { NVIC::unmask(uart::Uart0Irq) };
    hprintln!("sensor_node: up");

    let mut tx: Tx = Writer::new(tx, Strategy::default());
    let limits = Limits::new(MAX_MESSAGE);
    let mut core: Reassembler<'static, STREAMS, 40, 64> = Reassembler::new(&POOL, limits);
    let mut node = Node::new(clock::now_ms());
    let mut text = Text::new();
    let mut buf = [0u8; 16];
    let mut cmd = [0u8; MAX_COMMAND];
    let mut bye = false;

    while !bye {
        // 1. Everything the UART holds, through the reassembler.
        while rx.has_data() {
            let Ok(n) = rx.read(&mut buf);
            let mut input = &buf[..n];
            while !input.is_empty() {
                let (used, item) = core.feed(input);
                input = &input[used..];
                let now = clock::now_ms();
                match item {
                    None => {}
                    Some(Received::Message(m)) => {
                        let head = m.body().copy_to(&mut cmd);
                        let fnv = m.body().chunks().fold(FNV_INIT, fnv1a);
                        let (id, len) = (m.id(), m.len());
                        drop(m); // its blocks go back to the pool now
                        let body = Body {
                            head: &cmd[..head],
                            len,
                            fnv,
                        };
                        match node.on_command(id, body, now, &mut text) {
                            Effect::LogStarted => {}
                            Effect::Reply => sent(tx.send_with_id(id, text.as_bytes())),
                            Effect::CancelLog(dump) => {
                                let Ok(()) = embedded_io::Write::write_all(
                                    tx.get_mut(),
                                    &dump.abort_frame(),
                                );
                                sent(tx.send_with_id(id, text.as_bytes()));
                            }
                            Effect::Bye => {
                                sent(tx.send_with_id(id, text.as_bytes()));
                                bye = true;
                            }
                        }
                    }
                    Some(Received::Aborted { id }) => {
                        node.on_aborted(now, &mut text);
                        sent(tx.send_with_id(id, text.as_bytes()));
                    }
                    Some(Received::Error(e)) => {
                        hprintln!("sensor_node: protocol error: {}", e);
                        node.on_error();
                    }
                }
            }
        }

        // 2. A reading, if due.
        let now = clock::now_ms();
        if let Some(id) = node.due_reading(now, &mut text) {
            sent(tx.send_with_id(id, text.as_bytes()));
        }

        // 3. One frame of the log dump, if due. Frames are whole, so the next reading or reply
        //    can follow any of them.
        if node.log_frame_due(now)
            && let Some(dump) = node.log.as_mut()
        {
            let Ok(done) = dump.write_next(tx.get_mut());
            node.log_frame_written(now, done);
        }

        if node.idle_too_long(now) {
            hprintln!("sensor_node: no command for too long, giving up");
            exit(false);
        }

        // 4. Sleep until the next tick (1 ms) or received byte. With interrupts masked, a
        //    wake-up that lands between the check and `wfi` still ends the `wfi`.
        cortex_m::interrupt::free(|_| {
            if !rx.has_data() {
                rx.listen();
                cortex_m::asm::wfi();
            }
        });
    }

    // Anything still running ends with an Abort, then the UART drains.
    if let Some(dump) = node.log.take() {
        let Ok(()) = embedded_io::Write::write_all(tx.get_mut(), &dump.abort_frame());
    }
    sent(tx.flush());
    let s = node.stats;
    let pool = POOL.stats();
    let m = core.metrics();
    hprintln!(
        "sensor_node: done: readings={} commands={} host-aborts={} errors={} logs={} logs-cancelled={} tx-messages={} rx-messages={} pool-high-water={}/{} in-use={} stack-peak={}B",
        s.readings,
        s.commands,
        s.aborted,
        s.errors,
        s.logs,
        s.logs_cancelled,
        tx.metrics().messages,
        m.messages,
        pool.high_water,
        pool.blocks,
        pool.in_use,
        stack_peak()
    );
    exit(s.errors == 0 && pool.in_use == 0)
}

#[exception]
fn SysTick() {
    clock::on_tick();
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == uart::UART0_IRQ as i16 {
        uart::on_interrupt();
    }
}
