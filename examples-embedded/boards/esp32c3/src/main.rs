//! ESP32-C3 firmware: the sensor node's exchange with a host over UART0.
//!
//! - UART0 on GPIO21 (TX) and GPIO20 (RX), 115200 baud, 8N1, no flow control: on the usual
//!   development boards (ESP32-C3-DevKitM-1, DevKitC-02) these pins go to the on-board
//!   USB-UART bridge, so the board's USB port is the link. esp-hal's blocking UART; its 128-byte
//!   receive FIFO is drained by the loop between two pieces of every write.
//! - The loop is `mux-sensor-app`'s [`Superloop`] (the same as the QEMU `sensor_node`): readings,
//!   commands answered with their ids, the 20 KiB log dump frame by frame, Aborts both ways.
//!   It is silent until the host's first message (so that a host opening the port after the
//!   board has booted never starts reading in the middle of a frame); its clock, counters and
//!   reading sequence start then.
//! - Clock: esp-hal's `Instant` (the SYSTIMER). Sleep: none, the loop polls.
//! - The log dump is framed with Adaptive: every write to the UART is timed against the
//!   SYSTIMER (microseconds) into a [`LinkEstimator`], and each log frame holds the link for at
//!   most 10 ms at the measured rate (106 bytes of payload at 115200 baud, until anything is
//!   measured the rate of the baud setting), so a reading due during the dump waits for one
//!   such frame, not for a 1 KiB one (89 ms).
//! - After `bye` (or 20 s without a command, or a failed write) the firmware sends nothing more
//!   and spins until reset: one exchange per reset. No LED is driven (boards differ).
//! - Panics park the core in a loop (no debugger or console needed: UART0 is the mux link,
//!   so nothing is printed).
//!
//! At every reset, before this firmware runs, the chip's ROM and the second-stage bootloader
//! print their boot log (text) on UART0 at 115200 baud. A host must discard what it has read
//! before it sends its first message; the node sends nothing before that message.

#![no_std]
#![no_main]

use core::panic::PanicInfo;

use esp_hal::main;
use esp_hal::time::Instant;
use esp_hal::uart::{Config, Uart, UartRx};
use mux_nostd::{AdaptiveConfig, LinkEstimator, Pool};
use mux_sensor_app::{Board, Superloop};

esp_bootloader_esp_idf::esp_app_desc!();

/// Line speed (8N1 is the driver's default frame).
const BAUD: u32 = 115_200;
/// Blocks for host messages: 40 × 64 bytes, room for one `config` upload of up to 2 KiB and a
/// few commands in flight at once (as in the QEMU firmware).
static POOL: Pool<40, 64> = Pool::new();
/// Host messages open at once.
const STREAMS: usize = 4;
/// The link's rate and the message sizes, learned from the UART's writes.
static LINK: LinkEstimator = LinkEstimator::new();
/// The log dump's Adaptive framing: the default 10 ms budget, at the baud setting's byte rate
/// until a write is measured.
const ADAPTIVE: AdaptiveConfig = AdaptiveConfig {
    link_rate: BAUD / 10,
    ..AdaptiveConfig::DEFAULT
};

/// Microseconds of the SYSTIMER (esp-hal's `Instant`), wrapping after 71 minutes as the
/// estimator allows.
fn now_us() -> u32 {
    Instant::now().duration_since_epoch().as_micros() as u32
}
/// Input kept by the loop while a write goes out: what the host can send during one 1 KiB log
/// frame (89 ms at 115200 baud), twice over.
const RING: usize = 2048;

/// The ESP32-C3 as the loop sees it.
struct EspC3;

impl Board<UartRx<'static, esp_hal::Blocking>> for EspC3 {
    fn now_ms(&mut self) -> u32 {
        // Wraps after 49 days, as the loop expects.
        Instant::now().duration_since_epoch().as_millis() as u32
    }

    fn sleep(&mut self, _rx: &mut UartRx<'static, esp_hal::Blocking>) {
        // Polling: the loop looks again at once.
        core::hint::spin_loop();
    }
}

#[main]
fn main() -> ! {
    let p = esp_hal::init(esp_hal::Config::default());
    let uart = Uart::new(p.UART0, Config::default().with_baudrate(BAUD))
        .expect("115200 baud is a valid UART configuration")
        .with_tx(p.GPIO21)
        .with_rx(p.GPIO20);
    let (rx, tx) = uart.split();

    let mut node: Superloop<'static, _, _, STREAMS, 40, 64, RING> = Superloop::new(rx, tx, &POOL)
        .wait_for_host()
        .adaptive(&LINK, ADAPTIVE, now_us);
    // Whatever the outcome, the exchange is over: there is nowhere to report it.
    let _ = node.run(&mut EspC3);
    loop {
        core::hint::spin_loop();
    }
}

/// Parks the core: UART0 is the mux link, so there is nowhere to print the message.
#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
