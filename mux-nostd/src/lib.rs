#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod log;

mod adaptive;
mod decode;
mod demux;
mod encode;
mod error;
mod frame;
pub mod histogram;
mod io;
mod link;
mod metrics;
pub mod plugin;
mod pool;
mod reassembly;
mod strategy;
mod turns;

pub use adaptive::{
    Adaptive, AdaptiveConfig, Clock, DEFAULT_BUDGET_US, DEFAULT_CEILING, DEFAULT_FLOOR,
    LinkEstimator, NoClock, RISE_WINDOW_US, RISE_WORTH_US, SIZE_BUCKETS, SLOW_SAMPLE_MIN_US, Timed,
    size_bucket, split_threshold,
};
pub use decode::{Decoder, FrameEvent, FrameEventOf};
pub use demux::{Demux, Event, EventOf, Limits};
pub use encode::{FramePlan, Frames, Outgoing, PlannedFrame, encode_into};
pub use error::{EncodeError, ProtocolError, SendError};
pub use frame::{FrameType, HEADER_LEN, Header};
pub use histogram::Histogram;
pub use io::asynch::{AsyncReader, AsyncWriter};
pub use io::blocking::{Reader, Writer};
pub use io::link::LinkWriter;
pub use io::{Framing, Plain};
pub use link::{
    DEFAULT_LINK_BUFFER, LINK_CRC_LEN, LINK_TAG_LEN, LinkDecoder, LinkEncoder, LinkFrame,
    MIN_LINK_BUFFER, link_payload_capacity,
};
pub use metrics::{ErrorCounts, LinkMetrics, RxMetrics, TxMetrics};
pub use pool::{Chain, Pool, PoolStats};
pub use reassembly::{Message, Reassembler, Received};
pub use strategy::{AnyStrategy, Hybrid, Hybrid8k, Optimized, Original, Strategy};
pub use turns::{FrameTurns, Turn};
