#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod adaptive;
mod config;
mod error;
mod link;
mod node;
pub mod observe;
#[cfg(unix)]
pub mod plugin;
mod pool;
#[cfg(feature = "metrics")]
pub mod publish;
mod queue;
mod reader;
mod rx;
mod sync;
#[cfg(feature = "tokio")]
pub mod tokio;
mod tx;

pub use config::{Config, LinkProfile, MAX_AUTOCORK, MAX_BUFFER, MAX_QUEUE_DEPTH, TABLE_CAPACITY};
pub use error::{ConfigError, RecvError, SendError, TryRecvError};
pub use link::LinkWrite;
pub use node::{CloseReport, Iter, Metrics, Node, Receiver};
pub use observe::Distributions;
pub use pool::{Buffer, BufferPool, PoolStats};
pub use rx::{Message, Received, RxCounts};
pub use tx::{CancelToken, Closer, SendOptions, Sender, TxCounts};

pub use mux_nostd::{
    AdaptiveConfig, AnyStrategy, ErrorCounts, FrameType, Hybrid, Hybrid8k, Limits, LinkEstimator,
    LinkMetrics, Optimized, Original, ProtocolError, Strategy,
};
