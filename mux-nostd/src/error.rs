//! Typed errors, one small enum per concern.

use core::fmt;

use crate::frame::FrameType;

/// A message could not be encoded. Nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// The payload does not fit the u32 length fields of the wire format (or, on 16- and
    /// 32-bit targets, its encoded size does not fit a `usize`).
    TooLarge,
    /// The output buffer is smaller than the encoded message.
    BufferTooSmall {
        /// Bytes the encoded message needs.
        needed: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => f.write_str("message larger than 4294967295 bytes cannot be framed"),
            Self::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
        }
    }
}

impl core::error::Error for EncodeError {}

/// Something the peer sent broke the protocol. Each is reported once, as an item of the
/// receive stream; the stream stays in sync and later messages are unaffected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame with a type byte that is not Start, End, Data or Abort. Treated as header-only.
    UnknownType {
        /// The type byte.
        type_byte: u8,
        /// The frame's id field.
        id: u32,
    },
    /// Data, End or Abort for an id that has no message open.
    UnknownId {
        /// The frame's id.
        id: u32,
        /// The frame's type.
        kind: FrameType,
    },
    /// A Data frame longer than the frame limit. Its payload is skipped unread, and the message
    /// it belonged to (if any) is dropped.
    FrameTooLarge {
        /// The frame's id.
        id: u32,
        /// Its length field.
        len: u32,
        /// The configured limit.
        max: u32,
    },
    /// A message over the message size limit (by its Start hint or by the data received).
    /// The message is dropped; its later frames are consumed quietly.
    MessageTooLarge {
        /// The message id.
        id: u32,
        /// The size announced or reached.
        size: u32,
        /// The configured limit.
        max: u32,
    },
    /// A Start for an id whose message is still open. The stale partial message is dropped and
    /// the new one starts clean.
    DuplicateStart {
        /// The id.
        id: u32,
    },
    /// A Start while the stream table is full. The new message is dropped; its later frames
    /// are consumed quietly.
    TooManyStreams {
        /// The id of the rejected message.
        id: u32,
    },
    /// No buffer left in the pool for a message's data. The message is dropped; its later
    /// frames are consumed quietly.
    PoolExhausted {
        /// The id of the dropped message.
        id: u32,
    },
    /// The stream ended inside a frame header or payload.
    Truncated {
        /// Bytes of the frame (header and payload) that were still expected.
        missing: u32,
    },
    /// The stream ended while this message was still open: it is lost.
    Unfinished {
        /// The message id.
        id: u32,
    },
    /// Serial link profile: link frames were damaged or missing, and this message had (or may
    /// have had) a frame among them. It is dropped, never delivered; its later frames are
    /// consumed quietly.
    Lost {
        /// The message id.
        id: u32,
    },
    /// Serial link profile: the sequence numbers show `missing` link frames that never
    /// arrived intact (damaged, cut or dropped on the line). Comes before the
    /// [`Lost`](Self::Lost) reports of the messages it cost.
    LinkGap {
        /// Link frames missing (sequence numbers skipped; 1 for a damaged or unterminated
        /// frame at the end of the stream).
        missing: u16,
    },
    /// Bytes held for messages not yet complete would exceed the receiver's budget: this
    /// message is dropped to make room; its later frames are consumed quietly.
    OverBudget {
        /// The id of the dropped message.
        id: u32,
    },
}

impl ProtocolError {
    /// A short, stable name for the error kind (for metrics and logs).
    pub const fn kind_name(&self) -> &'static str {
        match self {
            Self::UnknownType { .. } => "unknown-type",
            Self::UnknownId { .. } => "unknown-id",
            Self::FrameTooLarge { .. } => "frame-too-large",
            Self::MessageTooLarge { .. } => "message-too-large",
            Self::DuplicateStart { .. } => "duplicate-start",
            Self::TooManyStreams { .. } => "too-many-streams",
            Self::PoolExhausted { .. } => "pool-exhausted",
            Self::Truncated { .. } => "truncated",
            Self::Unfinished { .. } => "unfinished",
            Self::Lost { .. } => "lost",
            Self::LinkGap { .. } => "link-gap",
            Self::OverBudget { .. } => "over-budget",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnknownType { type_byte, id } => {
                write!(f, "unknown frame type {type_byte} (id {id})")
            }
            Self::UnknownId { id, kind } => write!(f, "{kind:?} frame for unknown id {id}"),
            Self::FrameTooLarge { id, len, max } => {
                write!(
                    f,
                    "data frame of {len} bytes for id {id} exceeds limit {max}"
                )
            }
            Self::MessageTooLarge { id, size, max } => {
                write!(f, "message {id} of {size} bytes exceeds limit {max}")
            }
            Self::DuplicateStart { id } => write!(f, "start for id {id} already in flight"),
            Self::TooManyStreams { id } => write!(f, "stream table full, message {id} dropped"),
            Self::PoolExhausted { id } => write!(f, "buffer pool exhausted, message {id} dropped"),
            Self::Truncated { missing } => {
                write!(f, "stream ended inside a frame ({missing} bytes missing)")
            }
            Self::Unfinished { id } => write!(f, "stream ended with message {id} unfinished"),
            Self::Lost { id } => write!(f, "message {id} lost to link damage"),
            Self::LinkGap { missing } => write!(f, "{missing} link frames lost"),
            Self::OverBudget { id } => {
                write!(f, "receive budget exceeded, message {id} dropped")
            }
        }
    }
}

impl core::error::Error for ProtocolError {}

/// A send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SendError<E> {
    /// The message cannot be framed; nothing was written.
    Encode(EncodeError),
    /// The sink failed. What the interrupted message still owes the wire is settled (its frame
    /// completed, then an Abort) before the next send.
    Io(E),
    /// The sink accepted zero bytes: the link is closed.
    WriteZero,
    /// The caller cancelled the message; its Abort frame was written.
    Cancelled,
}

impl<E> From<EncodeError> for SendError<E> {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

impl<E: fmt::Debug> fmt::Display for SendError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Encode(e) => write!(f, "{e}"),
            Self::Io(e) => write!(f, "write failed: {e:?}"),
            Self::WriteZero => f.write_str("write accepted zero bytes: link closed"),
            Self::Cancelled => f.write_str("message cancelled (aborted on the wire)"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for SendError<E> {}

impl<E: embedded_io::Error> embedded_io::Error for SendError<E> {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Self::Encode(_) => embedded_io::ErrorKind::InvalidInput,
            Self::Io(e) => e.kind(),
            Self::WriteZero => embedded_io::ErrorKind::WriteZero,
            Self::Cancelled => embedded_io::ErrorKind::Interrupted,
        }
    }
}
