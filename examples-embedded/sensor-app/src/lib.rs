//! The sensor node of the embedded demo, independent of any board.
//!
//! - [`protocol`]: what the node and the host say to each other (commands, replies, readings,
//!   the log dump sent frame by frame) and the node's state ([`Node`]);
//! - [`superloop`]: the blocking firmware's main loop ([`Superloop`]), generic over the UART's
//!   two halves (`embedded_io::Read + ReadReady` and `embedded_io::Write`) and a [`Board`] that
//!   supplies a millisecond clock, a sleep and a place to report events.
//!
//! The QEMU firmware (`mux-examples-embedded`'s `sensor_node` and `async_node`) and the
//! firmware for real boards (`boards/rp2040`, `boards/esp32c3`) all use it, so they speak the
//! same protocol byte for byte. No heap, no allocator; the only `core::fmt` use is formatting
//! the replies and readings.

#![no_std]

pub mod protocol;
pub mod superloop;

pub use protocol::*;
pub use superloop::{Board, Event, LINK_BUFFER, Outcome, ReadingWaits, Superloop, WRITE_PIECE};
