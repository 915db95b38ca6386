//! Typed errors of the std node.

use std::fmt;
use std::io;

use mux_nostd::EncodeError;

/// A send failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// The message cannot be framed (larger than the u32 length fields); nothing was written.
    Encode(EncodeError),
    /// The sink failed. Reported once, to the send that met it; the link is broken after it.
    Io(io::Error),
    /// An earlier write failed (see [`SendError::Io`]): the link is broken, nothing was
    /// written.
    Broken,
    /// The node was closed; if this message was under way, an Abort for it was written.
    Closed,
    /// The send was cancelled; if its Start had been written, its Abort was written too.
    Cancelled,
    /// The deadline passed; if its Start had been written, its Abort was written too.
    TimedOut,
    /// Another send of this id is under way (its Start is written, its End or Abort is not):
    /// a second message with the same id would splice into it on the wire, so this one is
    /// refused and nothing of it was written. The id may be used again once that send ends.
    IdInFlight {
        /// The id.
        id: u32,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Encode(e) => write!(f, "cannot frame message: {e}"),
            Self::Io(e) => write!(f, "write failed: {e}"),
            Self::Broken => f.write_str("link broken by an earlier write error"),
            Self::Closed => f.write_str("node closed"),
            Self::Cancelled => f.write_str("message cancelled"),
            Self::TimedOut => f.write_str("message deadline passed"),
            Self::IdInFlight { id } => write!(f, "message id {id} is already being sent"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Encode(e) => Some(e),
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<EncodeError> for SendError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

/// Receiving stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecvError {
    /// The source failed. Reported once; what was still open is then reported as
    /// [`ProtocolError::Unfinished`](mux_nostd::ProtocolError::Unfinished) items, and the
    /// receiver closes.
    Io(io::Error),
    /// The reader (the source's `read`, or the receive loop itself) panicked, with this
    /// message. Reported once, like [`RecvError::Io`]: if the receive state survived (a panic
    /// in `read`), what was still open is then reported as
    /// [`ProtocolError::Unfinished`](mux_nostd::ProtocolError::Unfinished) items; then the
    /// receiver closes. Never a clean end of stream.
    ReaderPanicked(String),
    /// The stream ended and everything was reported.
    Closed,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "read failed: {e}"),
            Self::ReaderPanicked(message) => write!(f, "reader panicked: {message}"),
            Self::Closed => f.write_str("stream closed"),
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::ReaderPanicked(_) | Self::Closed => None,
        }
    }
}

/// [`Receiver::try_recv`](crate::Receiver::try_recv) or
/// [`recv_timeout`](crate::Receiver::recv_timeout) found nothing.
#[derive(Debug)]
#[non_exhaustive]
pub enum TryRecvError {
    /// Nothing arrived (yet).
    Empty,
    /// Receiving stopped.
    Recv(RecvError),
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("nothing received yet"),
            Self::Recv(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TryRecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Empty => None,
            Self::Recv(e) => Some(e),
        }
    }
}

/// A [`Config`](crate::Config) value out of its documented bounds. The constructors that
/// take a configuration check it first and return this (wrapped in an [`io::Error`] of kind
/// [`InvalidInput`](io::ErrorKind::InvalidInput) where they return `io::Result`), before
/// anything is allocated, spawned or written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A size or count over its bound.
    TooLarge {
        /// The [`Config`](crate::Config) field.
        field: &'static str,
        /// Its value.
        value: usize,
        /// The largest value allowed.
        max: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { field, value, max } => {
                write!(
                    f,
                    "invalid configuration: {field} = {value} (at most {max})"
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for io::Error {
    /// An error of kind [`InvalidInput`](io::ErrorKind::InvalidInput) carrying the
    /// [`ConfigError`] (`e.get_ref()` and `downcast_ref` give it back).
    fn from(e: ConfigError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}
