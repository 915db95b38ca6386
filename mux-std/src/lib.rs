#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod adaptive;
mod config;
mod error;
mod node;
#[cfg(unix)]
pub mod plugin;
mod pool;
mod reader;
mod rx;
mod sync;
#[cfg(feature = "tokio")]
pub mod tokio;
mod tx;

pub use config::{Config, MAX_BUFFER, MAX_QUEUE_DEPTH, TABLE_CAPACITY};
pub use error::{ConfigError, RecvError, SendError, TryRecvError};
pub use node::{CloseReport, Iter, Metrics, Node, Receiver};
pub use pool::{Buffer, BufferPool, PoolStats};
pub use rx::{Message, Received, RxCounts};
pub use tx::{CancelToken, Closer, SendOptions, Sender, TxCounts};

pub use mux_nostd::{
    AdaptiveConfig, AnyStrategy, ErrorCounts, FrameType, Hybrid, Hybrid8k, Limits, LinkEstimator,
    Optimized, Original, ProtocolError, Strategy,
};
