//! [`LinkWriter`]: the serial link profile's encoder in front of a byte sink.

use crate::link::LinkEncoder;

/// A byte sink that sends what is written to it in link frames of the serial link profile
/// ([`LinkEncoder`], with an `N`-byte buffer): put it under a [`Writer`](crate::Writer) or an
/// [`AsyncWriter`](crate::AsyncWriter). A frame goes out when an End or Abort frame of the
/// multiplexer closes it, when it is full, and on `flush`.
///
/// ```
/// use mux_nostd::{Hybrid, LinkWriter, Writer};
/// let mut wire = [0u8; 128];
/// let mut tx = Writer::new(LinkWriter::<_, 64>::new(&mut wire[..]), Hybrid::<4096>);
/// tx.send(b"hello").unwrap();
/// ```
#[derive(Debug)]
pub struct LinkWriter<W, const N: usize> {
    io: W,
    enc: LinkEncoder<[u8; N]>,
}

impl<W, const N: usize> LinkWriter<W, N> {
    /// A link writer over `io` (`N` at least [`MIN_LINK_BUFFER`](crate::MIN_LINK_BUFFER)).
    pub fn new(io: W) -> Self {
        Self {
            io,
            enc: LinkEncoder::new([0; N]),
        }
    }

    /// The sink.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.io
    }

    /// The sink, by shared reference.
    pub const fn get_ref(&self) -> &W {
        &self.io
    }

    /// The sink back (a frame not yet written is lost; flush first).
    pub fn into_inner(self) -> W {
        self.io
    }
}

impl<W: embedded_io::ErrorType, const N: usize> embedded_io::ErrorType for LinkWriter<W, N> {
    type Error = W::Error;
}

impl<W: embedded_io::Write, const N: usize> LinkWriter<W, N> {
    /// Writes out a closed frame; stops early, without error, if the sink takes 0 bytes.
    fn drain(&mut self) -> Result<(), W::Error> {
        while !self.enc.output().is_empty() {
            match self.io.write(self.enc.output())? {
                0 => break,
                n => self.enc.consume(n),
            }
        }
        Ok(())
    }
}

impl<W: embedded_io::Write, const N: usize> embedded_io::Write for LinkWriter<W, N> {
    /// Takes bytes into the open frame. A frame they close is written out before this
    /// returns; if that write fails, the bytes stay taken and the error comes at the next
    /// call.
    fn write(&mut self, buf: &[u8]) -> Result<usize, W::Error> {
        self.drain()?;
        let n = self.enc.push(buf);
        let _ = self.drain();
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), W::Error> {
        self.drain()?;
        self.enc.end_frame();
        self.drain()?;
        self.io.flush()
    }
}

impl<W: embedded_io_async::Write, const N: usize> LinkWriter<W, N> {
    async fn drain_async(&mut self) -> Result<(), W::Error> {
        while !self.enc.output().is_empty() {
            match self.io.write(self.enc.output()).await? {
                0 => break,
                n => self.enc.consume(n),
            }
        }
        Ok(())
    }
}

impl<W: embedded_io_async::Write, const N: usize> embedded_io_async::Write for LinkWriter<W, N> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, W::Error> {
        self.drain_async().await?;
        let n = self.enc.push(buf);
        let _ = self.drain_async().await;
        Ok(n)
    }

    async fn flush(&mut self) -> Result<(), W::Error> {
        self.drain_async().await?;
        self.enc.end_frame();
        self.drain_async().await?;
        self.io.flush().await
    }
}
