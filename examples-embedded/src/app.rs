//! The sensor node: the board-independent `mux-sensor-app` crate (`sensor-app/`), re-exported.
//!
//! Its protocol (commands, replies, ids, the log's content rule) is documented in
//! `sensor-app/src/protocol.rs`, its blocking superloop in `sensor-app/src/superloop.rs`. The
//! firmware for real boards (`boards/rp2040`, `boards/esp32c3`) use the same crate.

pub use mux_sensor_app::*;
