//! The Go library's plugin protocol over the multiplexer: a [`Host`] that starts plugin
//! executables and calls their services, and a [`Plugin`] that serves services on stdin and
//! stdout. Both interoperate with Go hosts and plugins; the byte layout and the control
//! messages are described in the repository's `docs/PLUGIN.md`.
//!
//! A plugin, in its own executable:
//!
//! ```no_run
//! use mux_std::plugin::Plugin;
//!
//! Plugin::new()
//!     .service("upper", |call| Ok(call.payload().to_ascii_uppercase()))
//!     .serve_stdio()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! And a host calling it:
//!
//! ```no_run
//! use std::process::Command;
//! use mux_std::plugin::Host;
//!
//! let host = Host::spawn(Command::new("./my_plugin"))?;
//! assert_eq!(&*host.call("upper", b"abc")?, b"ABC");
//! host.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod host;
mod serve;

pub use error::{CallError, Exit, HostError};
pub use host::{
    CallOptions, Host, HostBuilder, HostConfig, HostCounts, NotifyHandler, Reply, RequestHandler,
    ShutdownReport, StderrMode,
};
pub use mux_nostd::plugin::{Header, HeaderError, Kind, names};
#[cfg(feature = "tokio")]
pub use serve::AsyncCall;
pub use serve::{Call, Plugin, ServeReport};
