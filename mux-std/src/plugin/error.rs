//! Errors of the plugin host and plugin side.

use std::fmt;
use std::io;
use std::process::ExitStatus;

use mux_nostd::plugin::HeaderError;

use crate::error::SendError;

/// How a plugin process ended, as far as the host knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Status(ExitStatus),
    /// It closed its stdout but had not exited when the host stopped waiting.
    Unknown,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(s) => write!(f, "plugin exited ({s})"),
            Self::Unknown => f.write_str("plugin closed its output"),
        }
    }
}

/// A call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CallError {
    /// The plugin answered with an error reply (`is_error` 1); its text.
    Remote(String),
    /// The plugin is gone (crashed, exited or closed its stdout); pending calls fail with this
    /// as soon as its output ends.
    Exited(Exit),
    /// No reply before the call's timeout. A reply arriving later is dropped and counted.
    TimedOut,
    /// The call's cancel token fired. A request still being written ended with Abort.
    Cancelled,
    /// The host is shutting down or shut down; no new calls are taken.
    Closed,
    /// As many calls as [`HostConfig::max_pending`](super::HostConfig::max_pending) are
    /// waiting already.
    TooManyPending,
    /// The plugin aborted its reply.
    Aborted,
    /// The reply's plugin header did not decode.
    BadReply(HeaderError),
    /// The request could not be written.
    Send(SendError),
    /// A JSON body could not be encoded or decoded.
    #[cfg(feature = "json")]
    Json(serde_json::Error),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Remote(text) => f.write_str(text),
            Self::Exited(exit) => write!(f, "{exit}"),
            Self::TimedOut => f.write_str("call timed out"),
            Self::Cancelled => f.write_str("call cancelled"),
            Self::Closed => f.write_str("plugin host is shut down"),
            Self::TooManyPending => f.write_str("too many calls pending"),
            Self::Aborted => f.write_str("the plugin aborted its reply"),
            Self::BadReply(e) => write!(f, "bad reply: {e}"),
            Self::Send(e) => write!(f, "request not sent: {e}"),
            #[cfg(feature = "json")]
            Self::Json(e) => write!(f, "JSON: {e}"),
        }
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BadReply(e) => Some(e),
            Self::Send(e) => Some(e),
            #[cfg(feature = "json")]
            Self::Json(e) => Some(e),
            _ => None,
        }
    }
}

/// A plugin could not be started, or did not stop cleanly.
#[derive(Debug)]
#[non_exhaustive]
pub enum HostError {
    /// The executable could not be started (or its pipes set up).
    Spawn(io::Error),
    /// It did not send `ready` within the ready timeout; it was killed.
    NotReady,
    /// It ended before it sent `ready`.
    ExitedEarly(Exit),
    /// The configuration is out of bounds.
    Config(crate::ConfigError),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn(e) => write!(f, "cannot start plugin: {e}"),
            Self::NotReady => f.write_str("plugin did not send ready in time"),
            Self::ExitedEarly(exit) => write!(f, "{exit} before it was ready"),
            Self::Config(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn(e) => Some(e),
            Self::Config(e) => Some(e),
            _ => None,
        }
    }
}
