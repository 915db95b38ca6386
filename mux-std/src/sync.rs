//! `std::sync`, or shuttle's model of it when the crate is built with `--cfg mux_shuttle` (the
//! model-checking tests, `tests/tests/model.rs`): the send side's write lock and counters and
//! the buffer pool's two locks (take side, give-back side) then become scheduling points that shuttle interleaves. Normal
//! builds use `std::sync` unchanged.

#[cfg(not(mux_shuttle))]
pub(crate) use std::sync::*;

#[cfg(mux_shuttle)]
pub(crate) use shuttle::sync::*;
