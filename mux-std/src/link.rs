//! The serial link profile on `std::io` (and tokio): [`LinkWrite`] encodes what a sender
//! writes into link frames; the reader decodes them when [`Config::link`] says so.

use std::io::{self, IoSlice, Write};

use mux_nostd::LinkEncoder;

use crate::config::{Config, LinkProfile};

/// A `std::io::Write` (and, with the `tokio` feature, `AsyncWrite`) that sends what is written
/// to it in link frames of the serial link profile (see
/// [`LinkEncoder`](mux_nostd::LinkEncoder)). A [`Sender`](crate::Sender) or
/// [`Node`](crate::Node) whose [`Config::link`] is [`LinkProfile::Cobs`] puts one in front of
/// its sink by itself; use this type directly to encode for another writer.
///
/// A frame closes after an End or Abort frame of the multiplexer, when full, and on
/// `flush`; each `write` call writes the frames it closed before returning. If that fails,
/// the bytes stay taken and the error comes back from the next `write` or `flush`.
#[derive(Debug)]
pub struct LinkWrite<W> {
    io: W,
    enc: LinkEncoder<Box<[u8]>>,
    /// Closed frames not yet written.
    out: Vec<u8>,
    sent: usize,
}

impl<W> LinkWrite<W> {
    /// A link writer over `io` whose frames are built in a buffer of `link_buffer` bytes
    /// (at least [`MIN_LINK_BUFFER`](mux_nostd::MIN_LINK_BUFFER); smaller values mean that).
    pub fn new(io: W, link_buffer: usize) -> Self {
        let size = link_buffer.max(mux_nostd::MIN_LINK_BUFFER);
        Self {
            io,
            enc: LinkEncoder::new(vec![0u8; size].into_boxed_slice()),
            out: Vec::new(),
            sent: 0,
        }
    }

    /// The sink.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.io
    }

    /// The sink, by shared reference.
    pub fn get_ref(&self) -> &W {
        &self.io
    }

    /// The sink back (a frame not yet written is lost; flush first).
    pub fn into_inner(self) -> W {
        self.io
    }

    /// Encodes all of `buf`, closed frames into `out`.
    fn encode(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            let n = self.enc.push(buf);
            buf = &buf[n..];
            self.take_frame();
        }
    }

    fn take_frame(&mut self) {
        let frame = self.enc.output();
        if !frame.is_empty() {
            if self.sent == self.out.len() {
                self.out.clear();
                self.sent = 0;
            }
            self.out.extend_from_slice(frame);
            let n = frame.len();
            self.enc.consume(n);
        }
    }

    fn close_frame(&mut self) {
        self.enc.end_frame();
        self.take_frame();
    }

    fn pending(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    fn sent(&mut self, n: usize) {
        self.sent += n;
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
    }
}

impl<W: Write> LinkWrite<W> {
    fn drain(&mut self) -> io::Result<()> {
        while !self.pending().is_empty() {
            match self.io.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<W: Write> Write for LinkWrite<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.drain()?;
        self.encode(buf);
        // The bytes are taken: a failure here comes back from the next call.
        let _ = self.drain();
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.drain()?;
        let mut n = 0;
        for b in bufs {
            self.encode(b);
            n += b.len();
        }
        let _ = self.drain();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.close_frame();
        self.drain()?;
        self.io.flush()
    }
}

#[cfg(feature = "tokio")]
mod asynch {
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};

    use tokio::io::AsyncWrite;

    use super::*;

    impl<W: AsyncWrite + Unpin> LinkWrite<W> {
        pub(crate) fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            while !self.pending().is_empty() {
                let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.sent..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.sent(n);
            }
            Poll::Ready(Ok(()))
        }
    }

    impl<W: AsyncWrite + Unpin> AsyncWrite for LinkWrite<W> {
        /// Takes all of `buf` once the frames of earlier calls are written. The frames it
        /// closes go out now if the sink takes them at once, else with the next write or
        /// flush (the tokio sender drains them at the end of every send that is not
        /// buffered).
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            ready!(this.poll_drain(cx))?;
            this.encode(buf);
            let _ = this.poll_drain(cx);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            ready!(this.poll_drain(cx))?;
            this.close_frame();
            ready!(this.poll_drain(cx))?;
            Pin::new(&mut this.io).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            ready!(Pin::new(&mut *this).poll_flush(cx))?;
            Pin::new(&mut this.io).poll_shutdown(cx)
        }
    }
}

/// A sender's sink: plain, or behind a [`LinkWrite`] (the serial link profile).
#[derive(Debug)]
pub(crate) enum Sink<W> {
    Plain(W),
    Link(LinkWrite<W>),
}

impl<W> Sink<W> {
    pub(crate) fn new(io: W, config: &Config) -> Self {
        match config.link {
            LinkProfile::Plain => Self::Plain(io),
            LinkProfile::Cobs => Self::Link(LinkWrite::new(io, config.link_buffer)),
        }
    }

    /// The caller's sink.
    pub(crate) fn get_mut(&mut self) -> &mut W {
        match self {
            Self::Plain(io) => io,
            Self::Link(l) => l.get_mut(),
        }
    }
}

impl<W: Write> Write for Sink<W> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(io) => io.write(buf),
            Self::Link(l) => l.write(buf),
        }
    }

    #[inline]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Plain(io) => io.write_vectored(bufs),
            Self::Link(l) => l.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(io) => io.flush(),
            Self::Link(l) => l.flush(),
        }
    }
}

#[cfg(feature = "tokio")]
impl<W: tokio::io::AsyncWrite + Unpin> Sink<W> {
    /// Writes the link frames a [`LinkWrite`] holds (nothing to do for a plain sink).
    pub(crate) fn poll_drain_link(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self {
            Self::Plain(_) => std::task::Poll::Ready(Ok(())),
            Self::Link(l) => l.poll_drain(cx),
        }
    }
}

#[cfg(feature = "tokio")]
impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Sink<W> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(io) => std::pin::Pin::new(io).poll_write(cx, buf),
            Self::Link(l) => std::pin::Pin::new(l).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(io) => std::pin::Pin::new(io).poll_write_vectored(cx, bufs),
            Self::Link(l) => std::pin::Pin::new(l).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(io) => io.is_write_vectored(),
            Self::Link(_) => false,
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => std::pin::Pin::new(io).poll_flush(cx),
            Self::Link(l) => std::pin::Pin::new(l).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => std::pin::Pin::new(io).poll_shutdown(cx),
            Self::Link(l) => std::pin::Pin::new(l).poll_shutdown(cx),
        }
    }
}
