//! `sensor_node`: the blocking firmware. A superloop on one core, no heap, no executor.
//!
//! The loop itself is `mux-sensor-app`'s [`Superloop`] (shared with the firmware for real
//! boards); this firmware supplies the board: the UART0 driver, the SysTick clock, `wfi` as the
//! sleep, semihosting for messages and the exit status. The loop
//!
//! - sends a reading every `interval` ms (a whole small message with `Writer::send_with_id`);
//! - answers host commands, each with the command's id;
//! - streams the 20 KiB log dump one frame at a time, readings and replies going out between
//!   its frames;
//! - reassembles host messages into a static pool with the sans-IO `Reassembler`, fed with
//!   whatever the UART has (a superloop must never block in a read);
//! - sleeps (`wfi`) until the next tick or received byte.
//!
//! After `bye` the firmware prints a summary over semihosting and exits 0 (1 if anything went
//! wrong).
//!
//! Built with the feature `cobs-link`, it speaks the serial link profile (COBS framing and a
//! CRC-32C per link frame) instead of the plain format; the host must too
//! (`demo_host --link cobs`, `bash scripts/demo.sh --link cobs`).
//!
//! Its semihosting command line may hold `pace=RATE` (the demo's `--pace`): the UART then sends
//! at RATE bytes per second ([`pace`]), and the log dump is framed with Adaptive, its chunks
//! sized so that one frame holds the link for at most 10 ms at the rate measured (with
//! `strategy=original` too, it keeps Original's 1 KiB frames, for contrast). The summary then
//! reports how long readings waited during the dumps.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use mux_examples_embedded::app::{Board, Event, Outcome, Superloop};
use mux_examples_embedded::exit::{exit, stack_peak};
use mux_examples_embedded::{board, clock, pace, uart};
use mux_nostd::{AdaptiveConfig, LinkEstimator, Pool};

/// Blocks for host messages: 40 × 64 bytes, room for one `config` upload of up to 2 KiB and a
/// few commands in flight at once.
static POOL: Pool<40, 64> = Pool::new();
/// Host messages open at once.
const STREAMS: usize = 4;
/// Input kept while a write goes out. QEMU's UART never overflows (it stops taking bytes from
/// the host while its FIFO is full), so a small ring is enough here; it still takes whatever
/// arrives during a long write, as on a real board.
const RING: usize = 256;

/// The link's rate and the message sizes, learned from the paced UART's writes.
static LINK: LinkEstimator = LinkEstimator::new();

/// The emulated board: SysTick clock, `wfi`, semihosting.
struct Qemu;

impl Board<uart::Rx> for Qemu {
    fn now_ms(&mut self) -> u32 {
        clock::now_ms()
    }

    fn sleep(&mut self, rx: &mut uart::Rx) {
        board::wait_for_input(rx);
    }

    fn report(&mut self, event: Event) {
        match event {
            Event::Protocol(e) => hprintln!("sensor_node: protocol error: {}", e),
            Event::Uart => hprintln!("sensor_node: UART receive error"),
        }
    }
}

#[entry]
fn main() -> ! {
    let (tx, rx) = board::start();
    let (rate, fixed) = pace::command_line();
    let uart = match rate {
        None => {
            hprintln!("sensor_node: up");
            pace::Paced::unpaced(tx)
        }
        Some(rate) => {
            let strategy = if fixed { "original" } else { "adaptive" };
            hprintln!(
                "sensor_node: up, UART paced at {} B/s, log dump framed with {}",
                rate,
                strategy
            );
            pace::Paced::new(tx, rate)
        }
    };
    let paced = rate.is_some();
    let node: Superloop<'static, _, _, STREAMS, 40, 64, RING> = Superloop::new(rx, uart, &POOL);
    // Feature `cobs-link` (`bash scripts/demo.sh --link cobs`): the serial link profile.
    #[cfg(feature = "cobs-link")]
    let node = {
        hprintln!("sensor_node: serial link profile (COBS, CRC-32C)");
        node.cobs_link()
    };
    let mut node = node;
    if paced && fixed {
        node.set_log_gap_ms(0);
    } else if paced {
        node.set_adaptive(&LINK, AdaptiveConfig::DEFAULT, clock::now_us);
    }
    match node.run(&mut Qemu) {
        Ok(Outcome::Bye) => {}
        Ok(Outcome::IdleTimeout) => {
            hprintln!("sensor_node: no command for too long, giving up");
            exit(false);
        }
        Err(e) => panic!("uart send failed: {:?}", e),
    }
    if paced {
        let w = node.reading_waits();
        hprintln!(
            "sensor_node: readings during the log dumps: {}, wait from due to written: mean {} ms, max {} ms",
            w.count,
            w.mean_ms(),
            w.max_ms
        );
        if LINK.rate() > 0 {
            hprintln!("sensor_node: link rate estimated at {} B/s", LINK.rate());
        }
    }

    let s = node.stats();
    let pool = POOL.stats();
    hprintln!(
        "sensor_node: done: readings={} commands={} host-aborts={} errors={} logs={} logs-cancelled={} tx-messages={} rx-messages={} pool-high-water={}/{} in-use={} stack-peak={}B",
        s.readings,
        s.commands,
        s.aborted,
        s.errors,
        s.logs,
        s.logs_cancelled,
        node.tx_metrics().messages,
        node.rx_metrics().messages,
        pool.high_water,
        pool.blocks,
        pool.in_use,
        stack_peak()
    );
    #[cfg(feature = "cobs-link")]
    if let Some(link) = node.link_metrics() {
        hprintln!(
            "sensor_node: link frames received: good={} damaged={} missing={} skipped={}",
            link.good,
            link.damaged,
            link.missing,
            link.skipped
        );
    }
    exit(s.errors == 0 && pool.in_use == 0)
}

mux_examples_embedded::board_interrupts!();
