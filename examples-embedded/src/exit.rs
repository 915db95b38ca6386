//! Ending a run under QEMU: semihosting exit codes, and a panic handler that reports and fails.

use cortex_m_semihosting::{debug, hprintln};

/// Leaves QEMU with status 0 (`ok`) or 1. Under QEMU, semihosting makes this QEMU's own exit
/// status; on a board without a debugger the call would trap, so it spins afterwards.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    exit(false)
}
