//! Raspberry Pi Pico (RP2040) firmware: the sensor node's exchange with a host over UART0.
//!
//! - UART0 on GP0 (TX) and GP1 (RX), 115200 baud, 8N1, no flow control, to a 3.3 V
//!   USB-serial adapter. embassy-rp's `BufferedUart` receives under interrupt into a 1 KiB
//!   buffer and sends from a 256-byte one.
//! - The loop is `mux-sensor-app`'s [`Superloop`] (the same as the QEMU `sensor_node`): readings,
//!   commands answered with their ids, the 20 KiB log dump frame by frame, Aborts both ways.
//!   It is silent until the host's first message (so that a host opening the port after the
//!   board has booted never starts reading in the middle of a frame); its clock, counters and
//!   reading sequence start then.
//! - Clock: the embassy time driver (the RP2040's 1 MHz TIMER). Sleep: `wfi`, woken by a 1 ms
//!   SysTick or the UART interrupt.
//! - The log dump is framed with Adaptive: every write to the UART is timed against the TIMER
//!   (microseconds) into a [`LinkEstimator`], and each log frame holds the link for at most
//!   10 ms at the measured rate (106 bytes of payload at 115200 baud, until anything is measured
//!   the rate of the baud setting), so a reading due during the dump waits for one such frame,
//!   not for a 1 KiB one (89 ms).
//! - LED (GP25 on a Pico; a Pico W's LED is on its radio chip and stays dark): on from boot
//!   to the end of the exchange; after `bye` it blinks slowly (1 Hz) if the node counted no error, fast (5 Hz)
//!   otherwise, or when the host was silent for 20 s, or a write failed. The firmware then
//!   stays there until reset: one exchange per reset.
//! - Panics halt the core (`panic-halt`): no debugger needed.
//!
//! The executor only starts `main`; the loop blocks inside it, and the interrupts (UART, time
//! driver, SysTick) run as usual.

#![no_std]
#![no_main]

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use embassy_executor::Spawner;
use embassy_rp::bind_interrupts;
use embassy_rp::gpio::{Level, Output};
use embassy_rp::peripherals::UART0;
use embassy_rp::uart::{
    BufferedInterruptHandler, BufferedUart, BufferedUartRx, BufferedUartTx, Config,
};
use embassy_time::{Instant, Timer};
use embedded_io::ReadReady as _;
use mux_nostd::{AdaptiveConfig, LinkEstimator, Pool};
use mux_sensor_app::{Board, Outcome, Superloop};
use panic_halt as _;

bind_interrupts!(struct Irqs {
    UART0_IRQ => BufferedInterruptHandler<UART0>;
});

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
/// Input kept by the loop while a write goes out: what the host can send during one 1 KiB log
/// frame (89 ms at 115200 baud), twice over.
const RING: usize = 2048;

/// Microseconds of the TIMER (through the embassy time driver), wrapping after 71 minutes as
/// the estimator allows.
fn now_us() -> u32 {
    Instant::now().as_micros() as u32
}

/// The Pico as the loop sees it.
struct Pico;

impl Board<BufferedUartRx> for Pico {
    fn now_ms(&mut self) -> u32 {
        // Wraps after 49 days, as the loop expects.
        Instant::now().as_millis() as u32
    }

    fn sleep(&mut self, rx: &mut BufferedUartRx) {
        // With interrupts masked, an interrupt that becomes pending between the check and `wfi`
        // still ends the `wfi` (and runs once they are unmasked).
        cortex_m::interrupt::free(|_| {
            if !rx.read_ready().unwrap_or(true) {
                cortex_m::asm::wfi();
            }
        });
    }
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    let p = embassy_rp::init(Default::default());
    let mut led = Output::new(p.PIN_25, Level::High);

    // A 1 ms SysTick, only to end `wfi` when the next reading or log frame is due.
    let mut core = cortex_m::Peripherals::take().expect("core peripherals taken once");
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST
        .set_reload(embassy_rp::clocks::clk_sys_freq() / 1000 - 1);
    core.SYST.clear_current();
    core.SYST.enable_interrupt();
    core.SYST.enable_counter();

    let tx_buf = cortex_m::singleton!(: [u8; 256] = [0; 256]).expect("taken once");
    let rx_buf = cortex_m::singleton!(: [u8; 1024] = [0; 1024]).expect("taken once");
    let mut config = Config::default();
    config.baudrate = BAUD;
    let uart = BufferedUart::new(p.UART0, p.PIN_0, p.PIN_1, Irqs, tx_buf, rx_buf, config);
    let (tx, rx) = uart.split();
    let ok = exchange(rx, tx);

    let half_period = if ok { 500 } else { 100 };
    loop {
        led.toggle();
        Timer::after_millis(half_period).await;
    }
}

/// Runs the exchange; `true` if it ended with `bye` and no error. A plain function, so that the
/// loop's state (2 KiB of it the input ring) is on the stack, not in the `main` task's static
/// future.
fn exchange(rx: BufferedUartRx, tx: BufferedUartTx) -> bool {
    let mut node: Superloop<'static, _, _, STREAMS, 40, 64, RING> = Superloop::new(rx, tx, &POOL)
        .wait_for_host()
        .adaptive(&LINK, ADAPTIVE, now_us);
    match node.run(&mut Pico) {
        Ok(Outcome::Bye) => node.stats().errors == 0 && node.pool_stats().in_use == 0,
        Ok(Outcome::IdleTimeout) | Err(_) => false,
    }
}

#[exception]
fn SysTick() {
    // Nothing to do: the interrupt only ends the loop's `wfi`.
}
