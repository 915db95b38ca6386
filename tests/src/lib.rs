//! Cross-crate integration tests of the workspace (in `tests/`), the golden wire vectors they
//! read (in `vectors/`), and the host side of the firmware demo (`src/bin/demo_host.rs`).
//!
//! The project's README is compiled here as a doc test, so its examples stay true:
#![doc = include_str!("../../README.md")]

pub mod noise;
