//! The plugin side of the protocol without I/O, for firmware: a fixed table of services, and
//! the control messages answered as the Go library's hosts expect.

use core::fmt;

use super::header::{Header, HeaderError, Kind, encode_prefix, prefix_len};
use super::{Control, names};

/// A service's handler: the application's context, the request payload, and the reply to fill.
pub type Handler<C> = fn(&mut C, &[u8], &mut Reply<'_>);

/// One entry of a [`Dispatcher`]'s table.
pub struct Service<C> {
    /// The name the host calls it by.
    pub name: &'static str,
    /// What answers it.
    pub handler: Handler<C>,
}

impl<C> Service<C> {
    /// An entry.
    pub const fn new(name: &'static str, handler: Handler<C>) -> Self {
        Self { name, handler }
    }
}

impl<C> fmt::Debug for Service<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Service").field(&self.name).finish()
    }
}

/// The reply a handler fills: payload bytes, or an error text.
///
/// It writes into the caller's output buffer after room for the header, so a reply costs no
/// copy. Bytes past the buffer's end are not written: the reply then becomes the error
/// `reply too large`.
pub struct Reply<'o> {
    buf: &'o mut [u8],
    len: usize,
    error: bool,
    overflow: bool,
}

impl fmt::Debug for Reply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("len", &self.len)
            .field("error", &self.error)
            .field("overflow", &self.overflow)
            .finish()
    }
}

impl<'o> Reply<'o> {
    fn new(buf: &'o mut [u8]) -> Self {
        Self {
            buf,
            len: 0,
            error: false,
            overflow: false,
        }
    }

    /// Appends bytes to the payload.
    pub fn push(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflow = true,
        }
    }

    /// Replaces the payload with the error text `text`; the reply goes out as an Error.
    pub fn fail(&mut self, text: &str) {
        self.len = 0;
        self.overflow = false;
        self.error = true;
        self.push(text.as_bytes());
    }

    /// Marks the reply as an error, keeping what was written (e.g. with `write!`).
    pub fn set_error(&mut self) {
        self.error = true;
    }

    /// The room left for payload bytes.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// The payload written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The free room, to fill in place; say how much was used with [`advance`](Self::advance).
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// Counts `n` bytes of [`spare`](Self::spare) as written (at most what is left).
    pub fn advance(&mut self, n: usize) {
        self.len += n.min(self.remaining());
    }
}

impl fmt::Write for Reply<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        if self.overflow {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// Where a [`Dispatcher`] is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum State {
    /// Serving requests.
    Serving,
    /// `shutdown` was acknowledged: new requests get the error
    /// `service unavailable: graceful shutdown in progress`; the application finishes its own
    /// work and exits.
    Draining,
    /// `force_shutdown` was acknowledged: the application exits now.
    Stopped,
}

/// Counters of a [`Dispatcher`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DispatchCounts {
    /// Requests handed to a handler.
    pub calls: u32,
    /// Replies sent as errors (handler failures, unknown services, refusals while draining).
    pub errors: u32,
    /// Requests for a service not in the table.
    pub unknown: u32,
    /// Messages whose plugin header did not decode.
    pub malformed: u32,
    /// Messages that were neither requests nor control messages (answered with nothing).
    pub ignored: u32,
}

/// At most two messages to send (a `request_ready` is answered with a new `ready`, then its
/// ack), encoded one after the other in the caller's buffer.
#[derive(Debug)]
pub struct Outgoing<'o> {
    out: &'o [u8],
    messages: [(u32, usize, usize); 2],
    count: usize,
}

impl<'o> Outgoing<'o> {
    const fn none() -> Self {
        Self {
            out: &[],
            messages: [(0, 0, 0); 2],
            count: 0,
        }
    }

    /// The messages, in order: (multiplexer id, whole message payload).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &'o [u8])> + '_ {
        self.messages[..self.count]
            .iter()
            .map(|&(id, start, end)| (id, &self.out[start..end]))
    }

    /// How many messages there are (0, 1 or 2).
    pub const fn len(&self) -> usize {
        self.count
    }

    /// Whether there is nothing to send.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A message could not be answered because the output buffer is too small even for the
/// error reply; nothing was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OutputTooSmall {
    /// The request's message id.
    pub id: u32,
}

impl fmt::Display for OutputTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "output buffer too small to answer message {}", self.id)
    }
}

impl core::error::Error for OutputTooSmall {}

/// The plugin side of the protocol, sans-IO: feed it each complete message the host sends
/// (never an aborted one) and send what it returns with the ids it gives.
///
/// - A `Request` for a service in the table runs its handler; the reply (Response, or Error
///   with `is_error` 1) carries the service name and the request's id.
/// - Unknown services get `no handler registered for service: NAME` as an Error.
/// - `request_ready` gets a new `ready` and then `request_ready_ack`; `shutdown` gets
///   `shutdown_ack` and moves to [`State::Draining`]; `force_shutdown` gets
///   `force_shutdown_ack` and moves to [`State::Stopped`].
/// - A `Notify` runs the handler of its name, if any, and sends nothing; responses, acks and
///   other types are counted and not answered. (The Go plugin answers every message as a
///   request; answering a notification would spend an id the host may be using.)
///
/// ```
/// use mux_nostd::plugin::{Dispatcher, Header, Kind, Reply, Service};
///
/// fn echo(_: &mut (), payload: &[u8], reply: &mut Reply<'_>) {
///     reply.push(payload);
/// }
/// static SERVICES: [Service<()>; 1] = [Service::new("echo", echo)];
///
/// let mut plugin = Dispatcher::new(&SERVICES);
/// let mut out = [0u8; 256];
/// let (id, ready) = plugin.ready(&mut out).unwrap();
/// assert_eq!((id, Header::decode(ready).unwrap().name), (1, &b"ready"[..]));
///
/// let mut req = [0u8; 64];
/// let n = Header::new(b"echo", Kind::Request, b"hi").encode_into(&mut req).unwrap();
/// let reply = plugin.handle(&mut (), 7, &req[..n], &mut out).unwrap();
/// let (reply_id, bytes) = reply.iter().next().unwrap();
/// assert_eq!(reply_id, 7);
/// assert_eq!(Header::decode(bytes).unwrap(), Header::new(b"echo", Kind::Response, b"hi"));
/// ```
pub struct Dispatcher<'t, C> {
    services: &'t [Service<C>],
    next_id: u32,
    state: State,
    counts: DispatchCounts,
}

impl<C> fmt::Debug for Dispatcher<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("services", &self.services)
            .field("state", &self.state)
            .field("counts", &self.counts)
            .finish()
    }
}

/// Text of the refusal while draining, as the Go plugin words it.
pub const DRAINING_TEXT: &str = "service unavailable: graceful shutdown in progress";
/// Start of the reply to an unknown service, as the Go plugin words it (the name follows).
pub const UNKNOWN_PREFIX: &str = "no handler registered for service: ";
/// The error text when a handler's reply does not fit the output buffer.
pub const TOO_LARGE_TEXT: &str = "reply too large";
/// The error text for a message whose plugin header does not decode.
pub const MALFORMED_TEXT: &str = "malformed plugin header";

impl<'t, C> Dispatcher<'t, C> {
    /// A dispatcher serving `services`.
    pub const fn new(services: &'t [Service<C>]) -> Self {
        Self {
            services,
            next_id: 1,
            state: State::Serving,
            counts: DispatchCounts {
                calls: 0,
                errors: 0,
                unknown: 0,
                malformed: 0,
                ignored: 0,
            },
        }
    }

    /// Where it is in its life.
    pub const fn state(&self) -> State {
        self.state
    }

    /// Its counters.
    pub const fn counts(&self) -> DispatchCounts {
        self.counts
    }

    /// Takes an id for a message of the plugin's own (1, 2, …; 0 is skipped).
    pub fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// The `ready` signal (Ack, payload `ready`) with a fresh id: send it once at start.
    pub fn ready<'o>(&mut self, out: &'o mut [u8]) -> Result<(u32, &'o [u8]), HeaderError> {
        self.own(names::READY, Kind::Ack, names::READY.as_bytes(), out)
    }

    /// A notification to the host (for example `info`, `warning`, `status`) with a fresh id.
    pub fn notify<'o>(
        &mut self,
        name: &str,
        payload: &[u8],
        out: &'o mut [u8],
    ) -> Result<(u32, &'o [u8]), HeaderError> {
        self.own(name, Kind::Notify, payload, out)
    }

    fn own<'o>(
        &mut self,
        name: &str,
        kind: Kind,
        payload: &[u8],
        out: &'o mut [u8],
    ) -> Result<(u32, &'o [u8]), HeaderError> {
        let n = Header::new(name.as_bytes(), kind, payload).encode_into(out)?;
        Ok((self.take_id(), &out[..n]))
    }

    /// Answers one complete message `message` with multiplexer id `id`, encoding what to send
    /// into `out`. The handler's reply is written in place after its header, so `out` bounds
    /// the reply size (past it, the reply is the error `reply too large`).
    pub fn handle<'o>(
        &mut self,
        ctx: &mut C,
        id: u32,
        message: &[u8],
        out: &'o mut [u8],
    ) -> Result<Outgoing<'o>, OutputTooSmall> {
        let header = match Header::decode(message) {
            Ok(h) => h,
            Err(_) => {
                self.counts.malformed = self.counts.malformed.saturating_add(1);
                return self.error_reply(id, b"", &[MALFORMED_TEXT.as_bytes()], out);
            }
        };
        match Control::of(header.name) {
            Some(Control::RequestReady) => return self.request_ready(id, out),
            Some(c) => {
                self.state = match (c, self.state) {
                    (Control::Shutdown, State::Serving) => State::Draining,
                    (Control::Shutdown, s) => s,
                    _ => State::Stopped,
                };
                let (name, text) = c.ack();
                return self.ack(id, name, text, out);
            }
            None => {}
        }
        let service = self
            .services
            .iter()
            .find(|s| s.name.as_bytes() == header.name);
        match header.kind {
            Kind::Request => {}
            Kind::Notify => {
                if let Some(s) = service {
                    let mut scratch = Reply::new(&mut []);
                    (s.handler)(ctx, header.payload, &mut scratch);
                } else {
                    self.counts.ignored = self.counts.ignored.saturating_add(1);
                }
                return Ok(Outgoing::none());
            }
            _ => {
                self.counts.ignored = self.counts.ignored.saturating_add(1);
                return Ok(Outgoing::none());
            }
        }
        if self.state != State::Serving {
            return self.error_reply(id, header.name, &[DRAINING_TEXT.as_bytes()], out);
        }
        let Some(service) = service else {
            self.counts.unknown = self.counts.unknown.saturating_add(1);
            return self.error_reply(
                id,
                header.name,
                &[UNKNOWN_PREFIX.as_bytes(), header.name],
                out,
            );
        };
        self.counts.calls = self.counts.calls.saturating_add(1);
        let prefix = prefix_len(header.name.len());
        let Some(room) = out.get_mut(prefix..) else {
            return Err(OutputTooSmall { id });
        };
        let mut reply = Reply::new(room);
        (service.handler)(ctx, header.payload, &mut reply);
        if reply.overflow {
            return self.error_reply(id, header.name, &[TOO_LARGE_TEXT.as_bytes()], out);
        }
        let (len, error) = (reply.len, reply.error);
        if error {
            self.counts.errors = self.counts.errors.saturating_add(1);
        }
        let kind = if error { Kind::Error } else { Kind::Response };
        let n =
            encode_prefix(header.name, error, kind, len, out).map_err(|_| OutputTooSmall { id })?;
        Ok(Outgoing {
            out,
            messages: [(id, 0, n + len), (0, 0, 0)],
            count: 1,
        })
    }

    fn request_ready<'o>(
        &mut self,
        id: u32,
        out: &'o mut [u8],
    ) -> Result<Outgoing<'o>, OutputTooSmall> {
        let ready = Header::new(names::READY.as_bytes(), Kind::Ack, names::READY.as_bytes());
        let first = ready.encode_into(out).map_err(|_| OutputTooSmall { id })?;
        let (name, text) = Control::RequestReady.ack();
        let ack = Header::new(name.as_bytes(), Kind::Ack, text.as_bytes());
        let second = ack
            .encode_into(&mut out[first..])
            .map_err(|_| OutputTooSmall { id })?;
        let ready_id = self.take_id();
        Ok(Outgoing {
            out,
            messages: [(ready_id, 0, first), (id, first, first + second)],
            count: 2,
        })
    }

    fn ack<'o>(
        &mut self,
        id: u32,
        name: &str,
        text: &str,
        out: &'o mut [u8],
    ) -> Result<Outgoing<'o>, OutputTooSmall> {
        let n = Header::new(name.as_bytes(), Kind::Ack, text.as_bytes())
            .encode_into(out)
            .map_err(|_| OutputTooSmall { id })?;
        Ok(Outgoing {
            out,
            messages: [(id, 0, n), (0, 0, 0)],
            count: 1,
        })
    }

    fn error_reply<'o>(
        &mut self,
        id: u32,
        name: &[u8],
        text: &[&[u8]],
        out: &'o mut [u8],
    ) -> Result<Outgoing<'o>, OutputTooSmall> {
        self.counts.errors = self.counts.errors.saturating_add(1);
        let len: usize = text.iter().map(|t| t.len()).sum();
        let mut n =
            encode_prefix(name, true, Kind::Error, len, out).map_err(|_| OutputTooSmall { id })?;
        for t in text {
            let dst = out.get_mut(n..n + t.len()).ok_or(OutputTooSmall { id })?;
            dst.copy_from_slice(t);
            n += t.len();
        }
        Ok(Outgoing {
            out,
            messages: [(id, 0, n), (0, 0, 0)],
            count: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[derive(Default)]
    struct Ctx {
        notified: usize,
    }

    fn echo(_: &mut Ctx, p: &[u8], r: &mut Reply<'_>) {
        r.push(p);
    }
    fn fail(_: &mut Ctx, _: &[u8], r: &mut Reply<'_>) {
        r.fail("boom");
    }
    fn count(c: &mut Ctx, p: &[u8], r: &mut Reply<'_>) {
        c.notified += 1;
        let _ = write!(r, "{}", p.len());
    }
    static TABLE: [Service<Ctx>; 3] = [
        Service::new("echo", echo),
        Service::new("fail", fail),
        Service::new("count", count),
    ];

    fn msg<'b>(buf: &'b mut [u8], name: &[u8], kind: Kind, payload: &[u8]) -> &'b [u8] {
        let n = Header::new(name, kind, payload).encode_into(buf).unwrap();
        &buf[..n]
    }

    fn one<'a>(out: &Outgoing<'a>) -> (u32, Header<'a>) {
        assert_eq!(out.len(), 1);
        let (id, bytes) = out.iter().next().unwrap();
        (id, Header::decode(bytes).unwrap())
    }

    #[test]
    fn calls_unknown_services_and_failures_as_the_go_plugin_answers_them() {
        let mut d = Dispatcher::new(&TABLE);
        let mut ctx = Ctx::default();
        let (mut inb, mut out) = ([0u8; 64], [0u8; 128]);
        let m = msg(&mut inb, b"echo", Kind::Request, b"hi");
        let o = d.handle(&mut ctx, 3, m, &mut out).unwrap();
        assert_eq!(one(&o), (3, Header::new(b"echo", Kind::Response, b"hi")));

        let m = msg(&mut inb, b"fail", Kind::Request, b"");
        let o = d.handle(&mut ctx, 4, m, &mut out).unwrap();
        let (id, h) = one(&o);
        assert_eq!(
            (id, h.kind, h.is_error, h.payload),
            (4, Kind::Error, true, &b"boom"[..])
        );

        let m = msg(&mut inb, b"nope", Kind::Request, b"x");
        let o = d.handle(&mut ctx, 5, m, &mut out).unwrap();
        let (_, h) = one(&o);
        assert_eq!(h.name, b"nope");
        assert_eq!(h.payload, b"no handler registered for service: nope");
        assert!(h.is_error);
        assert_eq!(d.counts().unknown, 1);
        assert_eq!(d.counts().calls, 2);
    }

    #[test]
    fn control_messages_follow_the_protocol() {
        let mut d = Dispatcher::new(&TABLE);
        let mut ctx = Ctx::default();
        let (mut inb, mut out) = ([0u8; 64], [0u8; 256]);
        let (first, _) = d.ready(&mut out).unwrap();
        assert_eq!(first, 1);

        let m = msg(
            &mut inb,
            b"request_ready",
            Kind::Request,
            b"please send ready signal",
        );
        let o = d.handle(&mut ctx, 9, m, &mut out).unwrap();
        let mut all = o.iter().map(|(id, b)| (id, Header::decode(b).unwrap()));
        assert_eq!(
            all.next(),
            Some((2, Header::new(b"ready", Kind::Ack, b"ready")))
        );
        let (ack_id, ack) = all.next().unwrap();
        assert_eq!((ack_id, ack.name), (9, &b"request_ready_ack"[..]));
        assert!(all.next().is_none());
        drop(all);

        let m = msg(&mut inb, b"shutdown", Kind::Request, b"graceful shutdown");
        let o = d.handle(&mut ctx, 1, m, &mut out).unwrap();
        let (id, h) = one(&o);
        assert_eq!((id, h.name, h.kind), (1, &b"shutdown_ack"[..], Kind::Ack));
        assert_eq!(h.payload, names::SHUTDOWN_ACK_TEXT.as_bytes());
        assert_eq!(d.state(), State::Draining);

        let m = msg(&mut inb, b"echo", Kind::Request, b"late");
        let o = d.handle(&mut ctx, 10, m, &mut out).unwrap();
        let (_, h) = one(&o);
        assert_eq!(h.payload, DRAINING_TEXT.as_bytes());

        let m = msg(
            &mut inb,
            b"force_shutdown",
            Kind::Request,
            b"force shutdown",
        );
        let o = d.handle(&mut ctx, 11, m, &mut out).unwrap();
        assert_eq!(one(&o).1.name, b"force_shutdown_ack");
        assert_eq!(d.state(), State::Stopped);
    }

    #[test]
    fn notifications_run_the_handler_and_send_nothing_other_kinds_are_ignored() {
        let mut d = Dispatcher::new(&TABLE);
        let mut ctx = Ctx::default();
        let (mut inb, mut out) = ([0u8; 64], [0u8; 128]);
        let m = msg(&mut inb, b"count", Kind::Notify, b"abc");
        assert!(d.handle(&mut ctx, 2, m, &mut out).unwrap().is_empty());
        assert_eq!(ctx.notified, 1);
        let m = msg(&mut inb, b"echo", Kind::Response, b"abc");
        assert!(d.handle(&mut ctx, 3, m, &mut out).unwrap().is_empty());
        assert_eq!(d.counts().ignored, 1);
    }

    #[test]
    fn malformed_headers_and_oversized_replies_are_errors_not_panics() {
        let mut d = Dispatcher::new(&TABLE);
        let mut ctx = Ctx::default();
        let mut out = [0u8; 40];
        let o = d
            .handle(&mut ctx, 6, b"\xff\xff\xff\xff", &mut out)
            .unwrap();
        let (id, h) = one(&o);
        assert_eq!((id, h.payload), (6, MALFORMED_TEXT.as_bytes()));
        assert_eq!(d.counts().malformed, 1);

        let mut inb = [0u8; 64];
        let m = msg(&mut inb, b"echo", Kind::Request, &[7u8; 40]);
        let o = d.handle(&mut ctx, 7, m, &mut out).unwrap();
        assert_eq!(one(&o).1.payload, TOO_LARGE_TEXT.as_bytes());

        let mut tiny = [0u8; 8];
        assert_eq!(
            d.handle(&mut ctx, 8, m, &mut tiny).unwrap_err(),
            OutputTooSmall { id: 8 }
        );
    }

    #[test]
    fn any_input_is_answered_without_panicking() {
        let mut d = Dispatcher::new(&TABLE);
        let mut ctx = Ctx::default();
        let mut out = [0u8; 96];
        let mut state = 0x1234_5678u32;
        for len in 0..200usize {
            let mut m = [0u8; 200];
            for b in &mut m[..len] {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *b = (state >> 24) as u8 % 8;
            }
            let _ = d.handle(&mut ctx, len as u32, &m[..len], &mut out);
        }
    }
}
