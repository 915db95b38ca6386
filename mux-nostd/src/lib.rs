#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod log;

pub mod decode;
pub mod demux;
pub mod encode;
pub mod error;
pub mod frame;
pub mod io;
pub mod metrics;
pub mod pool;
pub mod reassembly;
pub mod strategy;

pub use decode::{Decoder, FrameEvent};
pub use demux::{Demux, Event, Limits};
pub use encode::{FramePlan, Frames, Outgoing, PlannedFrame, encode_into};
pub use error::{EncodeError, ProtocolError, SendError};
pub use frame::{FrameType, HEADER_LEN, Header};
pub use io::asynch::{AsyncReader, AsyncWriter};
pub use io::blocking::{Reader, Writer};
pub use metrics::{ErrorCounts, RxMetrics, TxMetrics};
pub use pool::{Chain, Pool, PoolStats};
pub use reassembly::{Message, Reassembler, Received};
pub use strategy::{AnyStrategy, Hybrid, Hybrid8k, Optimized, Original, Strategy};
