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

unsafe extern "C" {
    /// Lowest address of the stack region (after the statics), from cortex-m-rt's `link.x`.
    static _stack_end: u32;
    /// Highest address of the stack region (the initial stack pointer).
    static _stack_start: u32;
}

/// Most stack used so far, in bytes: cortex-m-rt's `paint-stack` fills the stack region with
/// `0xCCCC_CCCC` at reset, and this looks for the lowest word that was overwritten.
pub fn stack_peak() -> usize {
    let low = (&raw const _stack_end) as usize;
    let high = (&raw const _stack_start) as usize;
    let mut at = low;
    while at < high {
        // SAFETY: `low..high` is the stack region reserved by the linker script: mapped RAM,
        // 4-byte aligned (both bounds are, by link.x's asserts). Words below the stack pointer
        // are not referenced by any Rust value, and a volatile read of them races with nothing.
        let word = unsafe { core::ptr::read_volatile(at as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        at += 4;
    }
    high - at
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
