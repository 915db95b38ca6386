//! Bringing the emulated board up, and the wait between two rounds of a superloop.

use cortex_m::peripheral::NVIC;

use crate::{clock, uart};

/// Starts the 1 ms SysTick clock and UART0 (its interrupt unmasked in the NVIC) and hands out
/// the UART's two halves. The firmware defines the interrupt handlers with
/// [`board_interrupts!`](crate::board_interrupts).
///
/// # Panics
/// If called twice (the core peripherals and the UART are taken once).
pub fn start() -> (uart::Tx, uart::Rx) {
    let cp = cortex_m::Peripherals::take().expect("core peripherals taken once");
    clock::start(cp.SYST);
    let halves = uart::take();
    // SAFETY: the UART0 handler only masks the UART's interrupts and wakes; unmasking it
    // cannot break a critical section (none spans this point).
    unsafe { NVIC::unmask(uart::Uart0Irq) };
    halves
}

/// Sleeps (`wfi`) until the next interrupt (the 1 ms tick or a received byte); returns at once
/// if a byte is already waiting.
pub fn wait_for_input(rx: &mut uart::Rx) {
    // With interrupts masked, a wake-up that lands between the check and `wfi` still ends
    // the `wfi`.
    cortex_m::interrupt::free(|_| {
        if !rx.has_data() {
            rx.listen();
            cortex_m::asm::wfi();
        }
    });
}

/// Defines the interrupt handlers that [`start`] relies on, at the top level of a firmware: the
/// `SysTick` exception counts a millisecond ([`clock::on_tick`]) and the UART0 interrupt (taken
/// through cortex-m-rt's `DefaultHandler`) wakes the UART's waiter ([`uart::on_interrupt`]).
#[macro_export]
macro_rules! board_interrupts {
    () => {
        #[cortex_m_rt::exception]
        fn SysTick() {
            $crate::clock::on_tick();
        }

        #[cortex_m_rt::exception]
        unsafe fn DefaultHandler(irqn: i16) {
            if irqn == $crate::uart::UART0_IRQ as i16 {
                $crate::uart::on_interrupt();
            }
        }
    };
}
