//! Shared pieces of the firmware examples for the QEMU `lm3s6965evb` board (Cortex-M3):
//!
//! - [`uart`]: a small polled/interrupt-driven driver for UART0 implementing
//!   `embedded_io::{Read, Write}` and `embedded_io_async::{Read, Write}`;
//! - [`clock`]: a 1 ms SysTick clock (and an async wait on it);
//! - [`app`]: the sensor node: the protocol spoken with the host demo (commands, replies, readings, the log
//!   dump sent frame by frame) and its blocking superloop: the `mux-sensor-app` crate
//!   (`sensor-app/`), shared with the firmware for real boards, re-exported;
//! - [`board`]: bringing the clock and UART0 up, and the superloops' wait for input;
//! - [`exit`]: leaving QEMU through semihosting, and the panic handler;
//! - [`pace`]: the transmit half paced at a chosen rate (the demo's `--pace`).
//!
//! Everything is static: no heap, no allocator.

#![no_std]

pub mod app;
pub mod board;
pub mod clock;
pub mod exit;
pub mod pace;
pub mod uart;
