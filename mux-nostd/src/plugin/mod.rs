//! The plugin protocol of the Go library, on top of the multiplexer: the header every message
//! carries ([`Header`], [`PiecesHeader`]), its control names ([`names`]), and a sans-IO plugin
//! side for firmware ([`Dispatcher`]).
//!
//! A host starts a plugin and talks to it over one byte stream in each direction; each
//! multiplexed message is one plugin header followed by its payload. Calls are `Request`s
//! answered with the same message id by a `Response` or an `Error`; the plugin announces
//! itself with `ready`. The byte layout and the control messages are in the repository's
//! `docs/PLUGIN.md`.

mod dispatch;
mod header;

pub use dispatch::{
    DRAINING_TEXT, DispatchCounts, Dispatcher, Handler, MALFORMED_TEXT, Outgoing, OutputTooSmall,
    Reply, Service, State, TOO_LARGE_TEXT, UNKNOWN_PREFIX,
};
pub use header::{
    HEADER_OVERHEAD, Header, HeaderError, Kind, PiecesHeader, Span, SpanChunks, WriteError,
    encode_prefix, prefix_len,
};

/// A control message the plugin side answers itself, matched by name as the Go library does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Control {
    /// `request_ready`: send a new `ready`, then `request_ready_ack`.
    RequestReady,
    /// `shutdown`: acknowledge, refuse new requests, finish the running ones, exit.
    Shutdown,
    /// `force_shutdown`: acknowledge and exit now.
    ForceShutdown,
}

impl Control {
    /// The control message a name stands for, if any.
    pub fn of(name: &[u8]) -> Option<Self> {
        match name {
            n if n == names::REQUEST_READY.as_bytes() => Some(Self::RequestReady),
            n if n == names::SHUTDOWN.as_bytes() => Some(Self::Shutdown),
            n if n == names::FORCE_SHUTDOWN.as_bytes() => Some(Self::ForceShutdown),
            _ => None,
        }
    }

    /// The name and payload of the ack the plugin answers with.
    pub const fn ack(self) -> (&'static str, &'static str) {
        match self {
            Self::RequestReady => (names::REQUEST_READY_ACK, names::REQUEST_READY_ACK_TEXT),
            Self::Shutdown => (names::SHUTDOWN_ACK, names::SHUTDOWN_ACK_TEXT),
            Self::ForceShutdown => (names::FORCE_SHUTDOWN_ACK, names::FORCE_SHUTDOWN_ACK_TEXT),
        }
    }
}

/// The control names and texts, as the Go library sends them.
pub mod names {
    /// The plugin's ready signal (an Ack whose payload is also `ready`).
    pub const READY: &str = "ready";
    /// The host asks for a new ready signal.
    pub const REQUEST_READY: &str = "request_ready";
    /// Payload of `request_ready`.
    pub const REQUEST_READY_TEXT: &str = "please send ready signal";
    /// Ack of `request_ready` (sent after a new `ready`).
    pub const REQUEST_READY_ACK: &str = "request_ready_ack";
    /// Payload of `request_ready_ack`.
    pub const REQUEST_READY_ACK_TEXT: &str = "ready signal sent";
    /// The host asks for a graceful shutdown.
    pub const SHUTDOWN: &str = "shutdown";
    /// Payload of `shutdown`.
    pub const SHUTDOWN_TEXT: &str = "graceful shutdown";
    /// Ack of `shutdown`.
    pub const SHUTDOWN_ACK: &str = "shutdown_ack";
    /// Payload of `shutdown_ack`.
    pub const SHUTDOWN_ACK_TEXT: &str = "graceful shutdown started, waiting for jobs to complete";
    /// The host asks the plugin to stop now.
    pub const FORCE_SHUTDOWN: &str = "force_shutdown";
    /// Payload of `force_shutdown`.
    pub const FORCE_SHUTDOWN_TEXT: &str = "force shutdown";
    /// Ack of `force_shutdown`.
    pub const FORCE_SHUTDOWN_ACK: &str = "force_shutdown_ack";
    /// Payload of `force_shutdown_ack`.
    pub const FORCE_SHUTDOWN_ACK_TEXT: &str = "force shutting down";
    /// Suffix of the name of a host's reply to a plugin's request (`NAME_response`).
    pub const RESPONSE_SUFFIX: &str = "_response";
    /// Notifications a host logs itself.
    pub const LOG_NAMES: [&str; 4] = ["info", "warning", "error", "status"];
    /// A notification a host ignores.
    pub const HEARTBEAT: &str = "heartbeat";
}
