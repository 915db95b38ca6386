//! The frame header: 9 bytes, `type · id (u32 BE) · length (u32 BE)`.

/// Size of every frame header on the wire.
pub const HEADER_LEN: usize = 9;

/// The four frame types that are valid on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum FrameType {
    /// Opens a message. Header-only; its length field is a size hint.
    Start = 1,
    /// Completes a message. Header-only; its length field is ignored.
    End = 2,
    /// Carries exactly `length` payload bytes of a message.
    Data = 3,
    /// Cancels a message. Header-only; its length field is ignored.
    Abort = 6,
}

impl FrameType {
    /// Maps a type byte to a frame type; `None` for the bytes that are not valid on the wire
    /// (0, 4, 5 and 7–255).
    #[inline]
    pub const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Start),
            2 => Some(Self::End),
            3 => Some(Self::Data),
            6 => Some(Self::Abort),
            _ => None,
        }
    }
}

/// A decoded frame header whose type byte is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// The frame type.
    pub kind: FrameType,
    /// The message (frame) id.
    pub id: u32,
    /// The length field: payload size for Data, a size hint for Start, ignored otherwise.
    pub len: u32,
}

impl Header {
    /// A header of the given type, id and length field.
    #[inline]
    pub const fn new(kind: FrameType, id: u32, len: u32) -> Self {
        Self { kind, id, len }
    }

    /// The 9 wire bytes of this header.
    #[inline]
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        // Two whole-word stores and a byte, rather than nine byte stores that a following
        // wide load of the header would stall on.
        let mut b = [0u8; HEADER_LEN];
        b[0] = self.kind as u8;
        let (id, len) = b.split_at_mut(5);
        id[1..].copy_from_slice(&self.id.to_be_bytes());
        len.copy_from_slice(&self.len.to_be_bytes());
        b
    }

    /// Parses 9 wire bytes. An invalid type byte is returned as `Err(RawHeader)` so that the
    /// caller can report it with the id and length it came with.
    #[inline]
    pub const fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Self, RawHeader> {
        let raw = RawHeader::parse(bytes);
        match FrameType::from_byte(raw.type_byte) {
            Some(kind) => Ok(Self {
                kind,
                id: raw.id,
                len: raw.len,
            }),
            None => Err(raw),
        }
    }

    /// Whether a frame with this header is followed by `len` payload bytes on the wire.
    #[inline]
    pub const fn has_payload(&self) -> bool {
        matches!(self.kind, FrameType::Data)
    }
}

/// A header as read off the wire, type byte not yet validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RawHeader {
    /// The type byte.
    pub type_byte: u8,
    /// The id field.
    pub id: u32,
    /// The length field.
    pub len: u32,
}

impl RawHeader {
    /// Splits 9 wire bytes into their three fields.
    #[inline]
    pub const fn parse(b: &[u8; HEADER_LEN]) -> Self {
        Self {
            type_byte: b[0],
            id: u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
            len: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_big_endian() {
        let h = Header::new(FrameType::Data, 0x0102_0304, 0xA0B0_C0D0);
        let b = h.to_bytes();
        assert_eq!(b, [3, 1, 2, 3, 4, 0xA0, 0xB0, 0xC0, 0xD0]);
        assert_eq!(Header::parse(&b), Ok(h));
    }

    #[test]
    fn only_four_type_bytes_are_valid() {
        let valid: heapless::Vec<u8, 256> = (0..=255u8)
            .filter(|b| FrameType::from_byte(*b).is_some())
            .collect();
        assert_eq!(valid.as_slice(), &[1, 2, 3, 6]);
        let raw = Header::parse(&[4, 0, 0, 0, 5, 0, 0, 0, 9]).unwrap_err();
        assert_eq!((raw.type_byte, raw.id, raw.len), (4, 5, 9));
    }
}
