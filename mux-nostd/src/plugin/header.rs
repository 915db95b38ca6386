//! The plugin header: the whole payload of one multiplexed message of the plugin protocol.
//!
//! ```text
//! name length u32 BE · name · is_error u8 · message type u8 · payload length u32 BE · payload
//! ```

use core::fmt;

/// Bytes of a header besides its name and payload (two u32 lengths and two u8 fields).
pub const HEADER_OVERHEAD: usize = 10;

/// The message type byte of a plugin header.
///
/// The Go library does not validate it; neither does decoding here: a byte outside 1–5 is kept as
/// [`Kind::Other`] so that the message can still be answered or dropped by policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kind {
    /// A call: the peer answers with the same message id.
    Request,
    /// A successful reply.
    Response,
    /// A one-way message.
    Notify,
    /// An acknowledgement (the `ready` signal and the control acks).
    Ack,
    /// A failed reply (sent with `is_error` 1).
    Error,
    /// Any other type byte.
    Other(u8),
}

impl Kind {
    /// The kind of a type byte.
    pub const fn from_byte(byte: u8) -> Self {
        match byte {
            1 => Self::Request,
            2 => Self::Response,
            3 => Self::Notify,
            4 => Self::Ack,
            5 => Self::Error,
            b => Self::Other(b),
        }
    }

    /// The type byte on the wire.
    pub const fn to_byte(self) -> u8 {
        match self {
            Self::Request => 1,
            Self::Response => 2,
            Self::Notify => 3,
            Self::Ack => 4,
            Self::Error => 5,
            Self::Other(b) => b,
        }
    }
}

/// A plugin header that could not be decoded or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum HeaderError {
    /// The message ends inside the header's fixed fields.
    Truncated {
        /// Bytes the fixed fields (and the name, once its length is known) need.
        needed: usize,
        /// Bytes the message holds.
        len: usize,
    },
    /// The name length field claims more bytes than the message holds after it.
    NameTooLong {
        /// The name length field.
        claimed: u32,
        /// Bytes the message holds after the field.
        available: usize,
    },
    /// The payload length field claims more bytes than the message holds after it.
    PayloadTooLong {
        /// The payload length field.
        claimed: u32,
        /// Bytes the message holds after the field.
        available: usize,
    },
    /// A name or payload longer than a u32 length field can say (encoding only).
    TooLarge,
    /// The output buffer is smaller than the encoded header (encoding only).
    BufferTooSmall {
        /// Bytes the encoded header needs.
        needed: usize,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { needed, len } => {
                write!(f, "plugin header truncated: {len} bytes, {needed} needed")
            }
            Self::NameTooLong { claimed, available } => write!(
                f,
                "plugin header name length {claimed} exceeds the {available} bytes left"
            ),
            Self::PayloadTooLong { claimed, available } => write!(
                f,
                "plugin header payload length {claimed} exceeds the {available} bytes left"
            ),
            Self::TooLarge => f.write_str("name or payload too large for a u32 length field"),
            Self::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
        }
    }
}

impl core::error::Error for HeaderError {}

/// A plugin header with its name and payload borrowed from the message.
///
/// ```
/// use mux_nostd::plugin::{Header, Kind};
///
/// let h = Header::new(b"echo", Kind::Request, b"hi");
/// let mut buf = [0u8; 32];
/// let n = h.encode_into(&mut buf).unwrap();
/// assert_eq!(&buf[..n], b"\0\0\0\x04echo\0\x01\0\0\0\x02hi");
/// assert_eq!(Header::decode(&buf[..n]).unwrap(), h);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header<'a> {
    /// The service or control name (UTF-8 by convention; not validated, as in Go).
    pub name: &'a [u8],
    /// Whether the message reports a failure (the wire byte is 1).
    pub is_error: bool,
    /// The message type.
    pub kind: Kind,
    /// The user payload.
    pub payload: &'a [u8],
}

impl<'a> Header<'a> {
    /// A header; `is_error` is set for [`Kind::Error`] and clear otherwise.
    pub const fn new(name: &'a [u8], kind: Kind, payload: &'a [u8]) -> Self {
        Self {
            name,
            is_error: matches!(kind, Kind::Error),
            kind,
            payload,
        }
    }

    /// The name as text, if it is UTF-8.
    pub fn name_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.name).ok()
    }

    /// Bytes the encoded header takes, payload included.
    pub const fn encoded_len(&self) -> usize {
        // Both lengths fit in memory already, so the sum cannot overflow on any target
        // whose address space holds them; `encode_into` checks the u32 fields.
        HEADER_OVERHEAD + self.name.len() + self.payload.len()
    }

    /// Writes the bytes before the payload (name length, name, is_error, type, payload length)
    /// into `out`; returns how many. With [`prefix_len`], this lets a caller place the payload
    /// after it without a second copy.
    pub fn encode_prefix(&self, out: &mut [u8]) -> Result<usize, HeaderError> {
        encode_prefix(self.name, self.is_error, self.kind, self.payload.len(), out)
    }

    /// Encodes the whole header into `out`; returns the bytes written.
    pub fn encode_into(&self, out: &mut [u8]) -> Result<usize, HeaderError> {
        let needed = self.encoded_len();
        if out.len() < needed {
            return Err(HeaderError::BufferTooSmall { needed });
        }
        let n = self.encode_prefix(out)?;
        out[n..needed].copy_from_slice(self.payload);
        Ok(needed)
    }

    /// Writes the encoded header to `w`.
    pub fn write_to<W: embedded_io::Write>(&self, w: &mut W) -> Result<(), WriteError<W::Error>> {
        let mut prefix = [0u8; HEADER_OVERHEAD];
        let name_len = u32::try_from(self.name.len()).map_err(|_| WriteError::TooLarge)?;
        let payload_len = u32::try_from(self.payload.len()).map_err(|_| WriteError::TooLarge)?;
        prefix[..4].copy_from_slice(&name_len.to_be_bytes());
        w.write_all(&prefix[..4]).map_err(WriteError::Io)?;
        w.write_all(self.name).map_err(WriteError::Io)?;
        prefix[4] = u8::from(self.is_error);
        prefix[5] = self.kind.to_byte();
        prefix[6..10].copy_from_slice(&payload_len.to_be_bytes());
        w.write_all(&prefix[4..10]).map_err(WriteError::Io)?;
        w.write_all(self.payload).map_err(WriteError::Io)
    }

    /// Decodes a header from a whole message. Every length is checked against the input
    /// before it is used; bytes after the payload are ignored, as the Go library ignores them
    /// (see [`decode_with_rest`](Self::decode_with_rest)).
    pub fn decode(message: &'a [u8]) -> Result<Self, HeaderError> {
        Self::decode_with_rest(message).map(|(h, _)| h)
    }

    /// Like [`decode`](Self::decode), and also returns the bytes after the payload.
    pub fn decode_with_rest(message: &'a [u8]) -> Result<(Self, &'a [u8]), HeaderError> {
        let len = message.len();
        let Some((name_len, rest)) = split_u32(message) else {
            return Err(HeaderError::Truncated { needed: 4, len });
        };
        if name_len as usize > rest.len() || usize::try_from(name_len).is_err() {
            return Err(HeaderError::NameTooLong {
                claimed: name_len,
                available: rest.len(),
            });
        }
        let (name, rest) = rest.split_at(name_len as usize);
        let [is_error, kind, rest @ ..] = rest else {
            return Err(HeaderError::Truncated {
                needed: 4 + name.len() + 6,
                len,
            });
        };
        let Some((payload_len, rest)) = split_u32(rest) else {
            return Err(HeaderError::Truncated {
                needed: 4 + name.len() + 6,
                len,
            });
        };
        if payload_len as usize > rest.len() || usize::try_from(payload_len).is_err() {
            return Err(HeaderError::PayloadTooLong {
                claimed: payload_len,
                available: rest.len(),
            });
        }
        let (payload, rest) = rest.split_at(payload_len as usize);
        Ok((
            Self {
                name,
                is_error: *is_error == 1,
                kind: Kind::from_byte(*kind),
                payload,
            },
            rest,
        ))
    }
}

/// Bytes [`Header::encode_prefix`] writes for a name of `name_len` bytes.
pub const fn prefix_len(name_len: usize) -> usize {
    HEADER_OVERHEAD + name_len
}

/// Writes the bytes of a header before its payload of `payload_len` bytes into `out`; returns
/// how many ([`prefix_len`] of the name).
pub fn encode_prefix(
    name: &[u8],
    is_error: bool,
    kind: Kind,
    payload_len: usize,
    out: &mut [u8],
) -> Result<usize, HeaderError> {
    let name_len = u32::try_from(name.len()).map_err(|_| HeaderError::TooLarge)?;
    let payload_len = u32::try_from(payload_len).map_err(|_| HeaderError::TooLarge)?;
    let needed = prefix_len(name.len());
    let Some(out) = out.get_mut(..needed) else {
        return Err(HeaderError::BufferTooSmall { needed });
    };
    let (len_field, rest) = out.split_at_mut(4);
    len_field.copy_from_slice(&name_len.to_be_bytes());
    let (name_field, rest) = rest.split_at_mut(name.len());
    name_field.copy_from_slice(name);
    rest[0] = u8::from(is_error);
    rest[1] = kind.to_byte();
    rest[2..6].copy_from_slice(&payload_len.to_be_bytes());
    Ok(needed)
}

/// [`Header::write_to`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WriteError<E> {
    /// A name or payload longer than a u32 length field can say; nothing was written.
    TooLarge,
    /// The writer failed.
    Io(E),
}

fn split_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = b.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), rest))
}

/// A header decoded from a message held in pieces (a pool [`Chain`](crate::Chain)'s blocks, or
/// any other sequence of slices): the fixed fields by value, name and payload as [`Span`]s of
/// the pieces, so nothing is copied.
#[derive(Debug, Clone)]
pub struct PiecesHeader<I> {
    /// The name.
    pub name: Span<I>,
    /// Whether the message reports a failure.
    pub is_error: bool,
    /// The message type.
    pub kind: Kind,
    /// The payload.
    pub payload: Span<I>,
}

/// A run of bytes inside a message held in pieces.
#[derive(Debug, Clone)]
pub struct Span<I> {
    pieces: I,
    start: usize,
    len: usize,
}

impl<'c, I: Iterator<Item = &'c [u8]> + Clone> Span<I> {
    /// Its length in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its bytes, piece by piece.
    pub fn chunks(&self) -> SpanChunks<I> {
        SpanChunks {
            pieces: self.pieces.clone(),
            skip: self.start,
            left: self.len,
        }
    }

    /// The bytes as one slice, when they lie in one piece.
    pub fn as_slice(&self) -> Option<&'c [u8]> {
        let mut chunks = self.chunks();
        match (chunks.next(), chunks.next()) {
            (None, _) => Some(&[]),
            (Some(one), None) => Some(one),
            _ => None,
        }
    }

    /// Copies the bytes into the front of `out`; returns how many (at most `out.len()`).
    pub fn copy_to(&self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for c in self.chunks() {
            let take = c.len().min(out.len() - n);
            out[n..n + take].copy_from_slice(&c[..take]);
            n += take;
            if n == out.len() {
                break;
            }
        }
        n
    }

    /// Whether the bytes equal `other`.
    pub fn eq_slice(&self, mut other: &[u8]) -> bool {
        if other.len() != self.len {
            return false;
        }
        for c in self.chunks() {
            let (head, rest) = other.split_at(c.len());
            if head != c {
                return false;
            }
            other = rest;
        }
        true
    }
}

/// The pieces of a [`Span`].
#[derive(Debug, Clone)]
pub struct SpanChunks<I> {
    pieces: I,
    skip: usize,
    left: usize,
}

impl<'c, I: Iterator<Item = &'c [u8]>> Iterator for SpanChunks<I> {
    type Item = &'c [u8];

    fn next(&mut self) -> Option<&'c [u8]> {
        while self.left > 0 {
            let mut piece = self.pieces.next()?;
            if self.skip >= piece.len() {
                self.skip -= piece.len();
                continue;
            }
            piece = &piece[self.skip..];
            self.skip = 0;
            let take = piece.len().min(self.left);
            self.left -= take;
            if take > 0 {
                return Some(&piece[..take]);
            }
        }
        None
    }
}

impl<'c, I: Iterator<Item = &'c [u8]> + Clone> PiecesHeader<I> {
    /// Decodes a header from a message given as its pieces in order (for a pool chain,
    /// `chain.chunks()`). Lengths are checked against the total before they are used; bytes
    /// after the payload are ignored.
    pub fn decode(pieces: I) -> Result<Self, HeaderError> {
        let total: usize = pieces.clone().map(<[u8]>::len).sum();
        let mut fixed = [0u8; 4];
        let mut at = 0usize;
        let read = |out: &mut [u8], at: &mut usize| -> bool {
            let span = Span {
                pieces: pieces.clone(),
                start: *at,
                len: out.len(),
            };
            if *at + out.len() > total {
                return false;
            }
            span.copy_to(out);
            *at += out.len();
            true
        };
        if !read(&mut fixed, &mut at) {
            return Err(HeaderError::Truncated {
                needed: 4,
                len: total,
            });
        }
        let name_len = u32::from_be_bytes(fixed);
        let available = total - at;
        if name_len as usize > available || usize::try_from(name_len).is_err() {
            return Err(HeaderError::NameTooLong {
                claimed: name_len,
                available,
            });
        }
        let name = Span {
            pieces: pieces.clone(),
            start: at,
            len: name_len as usize,
        };
        at += name.len;
        let mut mid = [0u8; 6];
        if !read(&mut mid, &mut at) {
            return Err(HeaderError::Truncated {
                needed: at + 6,
                len: total,
            });
        }
        let payload_len = u32::from_be_bytes([mid[2], mid[3], mid[4], mid[5]]);
        let available = total - at;
        if payload_len as usize > available || usize::try_from(payload_len).is_err() {
            return Err(HeaderError::PayloadTooLong {
                claimed: payload_len,
                available,
            });
        }
        Ok(Self {
            name,
            is_error: mid[0] == 1,
            kind: Kind::from_byte(mid[1]),
            payload: Span {
                pieces,
                start: at,
                len: payload_len as usize,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: &[u8] = b"\0\0\0\x05ready\0\x04\0\0\0\x05ready";

    #[test]
    fn decodes_the_captured_ready_and_reencodes_it() {
        let h = Header::decode(READY).unwrap();
        assert_eq!(h.name, b"ready");
        assert_eq!(h.kind, Kind::Ack);
        assert!(!h.is_error);
        assert_eq!(h.payload, b"ready");
        let mut buf = [0u8; 64];
        let n = h.encode_into(&mut buf).unwrap();
        assert_eq!(&buf[..n], READY);
    }

    #[test]
    fn only_the_byte_one_means_error() {
        let mut msg = *b"\0\0\0\x01x\x02\x02\0\0\0\0";
        assert!(!Header::decode(&msg).unwrap().is_error);
        msg[5] = 1;
        assert!(Header::decode(&msg).unwrap().is_error);
        msg[5] = 0;
        assert!(!Header::decode(&msg).unwrap().is_error);
    }

    #[test]
    fn every_short_prefix_is_a_typed_error() {
        for n in 0..READY.len() {
            let e = Header::decode(&READY[..n]).unwrap_err();
            match e {
                HeaderError::Truncated { len, .. } => assert_eq!(len, n),
                HeaderError::NameTooLong { .. } | HeaderError::PayloadTooLong { .. } => {}
                other => panic!("{other:?} at {n}"),
            }
        }
    }

    #[test]
    fn huge_claimed_lengths_are_refused_before_use() {
        let msg = b"\xff\xff\xff\xffab";
        assert_eq!(
            Header::decode(msg),
            Err(HeaderError::NameTooLong {
                claimed: u32::MAX,
                available: 2
            })
        );
        let msg = b"\0\0\0\0\0\x01\xff\xff\xff\xffxyz";
        assert_eq!(
            Header::decode(msg),
            Err(HeaderError::PayloadTooLong {
                claimed: u32::MAX,
                available: 3
            })
        );
    }

    #[test]
    fn trailing_bytes_are_ignored_and_returned() {
        let mut msg = [0u8; 64];
        msg[..READY.len()].copy_from_slice(READY);
        msg[READY.len()..READY.len() + 3].copy_from_slice(b"xyz");
        let (h, rest) = Header::decode_with_rest(&msg[..READY.len() + 3]).unwrap();
        assert_eq!(h.payload, b"ready");
        assert_eq!(rest, b"xyz");
    }

    #[test]
    fn unknown_type_bytes_are_kept() {
        let msg = b"\0\0\0\0\0\x09\0\0\0\0";
        assert_eq!(Header::decode(msg).unwrap().kind, Kind::Other(9));
        for b in 0..=255u8 {
            assert_eq!(Kind::from_byte(b).to_byte(), b);
        }
    }

    #[test]
    fn encode_refuses_a_small_buffer_and_write_to_matches_encode_into() {
        let h = Header::new(b"upper", Kind::Response, b"ABC");
        let mut small = [0u8; 10];
        assert_eq!(
            h.encode_into(&mut small),
            Err(HeaderError::BufferTooSmall { needed: 18 })
        );
        let mut buf = [0u8; 18];
        h.encode_into(&mut buf).unwrap();
        let mut out = [0u8; 18];
        let mut w: &mut [u8] = &mut out;
        h.write_to(&mut w).unwrap();
        assert_eq!(out, buf);
    }

    #[test]
    fn pieces_decode_matches_slice_decode_at_every_split() {
        let msg = b"\0\0\0\x04echo\0\x01\0\0\0\x05hello";
        let want = Header::decode(msg).unwrap();
        for a in 0..=msg.len() {
            for b in a..=msg.len() {
                let parts = [&msg[..a], &msg[a..b], &msg[b..]];
                let h = PiecesHeader::decode(parts.iter().copied()).unwrap();
                assert!(h.name.eq_slice(want.name), "{a} {b}");
                assert!(h.payload.eq_slice(want.payload), "{a} {b}");
                assert_eq!(h.kind, want.kind);
                let mut out = [0u8; 5];
                assert_eq!(h.payload.copy_to(&mut out), 5);
                assert_eq!(&out, b"hello");
                let joined = h.payload.chunks().map(<[u8]>::len).sum::<usize>();
                assert_eq!(joined, 5);
            }
        }
        for n in 0..msg.len() {
            let parts = [&msg[..n / 2], &msg[n / 2..n]];
            assert!(PiecesHeader::decode(parts.iter().copied()).is_err(), "{n}");
        }
    }
}
