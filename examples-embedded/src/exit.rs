//! Ending a run under QEMU: semihosting exit codes, and a panic handler that reports and fails.

use cortex_m_semihosting::debug;
#[cfg(feature = "panic-message")]
use cortex_m_semihosting::hprintln;

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

/// Prints the panic over semihosting, then fails the run.
#[cfg(feature = "panic-message")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    exit(false)
}

/// Fails the run without formatting anything (the footprint builds: no `core::fmt`).
#[cfg(not(feature = "panic-message"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(false)
}
