//! The serial link profile: the multiplexer's byte stream cut into link frames, each
//! checked by a CRC-32C and COBS-encoded between two `0x00` delimiters, so that a receiver on
//! a noisy line drops what is damaged and resynchronises at the next delimiter.
//!
//! On the wire (`docs/PROTOCOL.md`, "Serial link profile"), each link frame is
//!
//! ```text
//! 00 · COBS( tag[2] · mux bytes[1..] · [first[2]] · CRC-32C[4] ) · 00
//! ```
//!
//! `tag` is a big-endian `u16`: bit 15 set when the frame's first mux byte begins a
//! multiplexer frame, bits 0–14 a sequence number counting link frames from 0, modulo 32768.
//! A frame without bit 15 (it continues a multiplexer frame) carries `first`, a big-endian
//! `u16`: the offset in its mux bytes where the first multiplexer frame begins, or `0xFFFF`
//! if none does. The CRC-32C (Castagnoli, `CRC_32_ISCSI`) covers everything before it and is
//! big-endian. The
//! sender closes a link frame after an End or Abort frame, when the frame is full (its
//! buffer decides how much it carries) and on flush.
//!
//! [`LinkEncoder`] is the sending half (sans-IO: bytes in, encoded frames out of its buffer),
//! [`LinkWriter`](crate::LinkWriter) puts it in front of an `embedded-io` sink.
//! [`LinkDecoder`] is the receiving half: it finds frames in a read buffer, checks them in
//! place and tells the [`Demux`](crate::Demux) about gaps
//! ([`Demux::link_gap`](crate::Demux::link_gap)); the readers use it through
//! [`Reader::with_link`](crate::Reader::with_link) and
//! [`AsyncReader::with_link`](crate::AsyncReader::with_link).

use core::fmt;
use core::ops::Range;

use crc::{CRC_32_ISCSI, Crc, Digest};

use crate::frame::{FrameType, HEADER_LEN};
use crate::metrics::LinkMetrics;

#[cfg(feature = "fast-crc")]
type CrcTable = crc::Table<16>;
#[cfg(not(feature = "fast-crc"))]
type CrcTable = crc::Table<1>;

/// CRC-32C, the checksum of every link frame.
static CRC32C: Crc<u32, CrcTable> = Crc::<u32, CrcTable>::new(&CRC_32_ISCSI);

/// Bytes of the tag (boundary flag and sequence number) at the front of a frame's body.
pub const LINK_TAG_LEN: usize = 2;
/// Bytes of the CRC-32C at the end of a frame's body.
pub const LINK_CRC_LEN: usize = 4;
/// Bytes of `first` (where the first multiplexer frame begins) in a frame whose tag does not
/// have the boundary bit.
pub const LINK_FIRST_LEN: usize = 2;
/// `first` of a frame in which no multiplexer frame begins.
const NO_BOUNDARY: u16 = 0xFFFF;
/// The default size of a link buffer, at each end (2 KiB: a 1 KiB message and its frames
/// travel in one link frame).
pub const DEFAULT_LINK_BUFFER: usize = 2048;
/// The smallest link buffer an encoder or decoder accepts.
pub const MIN_LINK_BUFFER: usize = 32;

/// The tag's bit saying the frame begins at a multiplexer frame boundary.
const BOUNDARY: u16 = 0x8000;
/// The tag's sequence number bits.
const SEQ_MASK: u16 = 0x7FFF;

/// The most multiplexer bytes one link frame carries when the sender's buffer holds
/// `buffer` bytes: the largest count whose worst-case encoding (every COBS group full,
/// delimiters included) fits. A receiver's buffer at least as large takes every frame.
///
/// ```
/// assert_eq!(mux_nostd::link_payload_capacity(2048), 2027);
/// ```
pub const fn link_payload_capacity(buffer: usize) -> usize {
    // n bytes to encode (tag, mux bytes, `first`, CRC) take at most n + n/254 + 1 COBS
    // bytes; with both delimiters and one byte of slack that is ≤ n·255/254 + 4.
    let n = buffer.saturating_sub(4) * 254 / 255;
    n.saturating_sub(LINK_TAG_LEN + LINK_FIRST_LEN + LINK_CRC_LEN)
}

/// Where the encoder stands in the multiplexer stream it is fed: it follows the frame
/// headers to know where frames begin and where a message ends.
#[derive(Debug, Clone, Copy)]
struct Follow {
    head: [u8; HEADER_LEN],
    have: u8,
    /// Payload bytes of the current Data frame still to come.
    left: u32,
}

impl Follow {
    const fn at_boundary(&self) -> bool {
        self.have == 0 && self.left == 0
    }

    /// How many of `input`'s first bytes belong to the current piece (a header or a body),
    /// at most `room`; whether they complete an End or Abort header (the message ends there).
    fn take(&mut self, input: &[u8], room: usize) -> (usize, bool) {
        if self.left > 0 {
            let n = input.len().min(room).min(self.left as usize);
            self.left -= n as u32;
            return (n, false);
        }
        let have = self.have as usize;
        let n = input.len().min(room).min(HEADER_LEN - have);
        self.head[have..have + n].copy_from_slice(&input[..n]);
        self.have += n as u8;
        if usize::from(self.have) < HEADER_LEN {
            return (n, false);
        }
        self.have = 0;
        let kind = self.head[0];
        let len = u32::from_be_bytes([self.head[5], self.head[6], self.head[7], self.head[8]]);
        if kind == FrameType::Data as u8 {
            self.left = len;
        }
        (
            n,
            kind == FrameType::End as u8 || kind == FrameType::Abort as u8,
        )
    }
}

/// The sending half of the serial link profile, without I/O: multiplexer bytes go in with
/// [`push`](Self::push), encoded link frames come out of [`output`](Self::output).
///
/// It holds one link frame at a time in its buffer `B` (an array, a `Vec`), whose size
/// decides how many multiplexer bytes a frame carries ([`link_payload_capacity`]); a
/// receiver needs a buffer at least as large. Encoding streams: the bytes go through the CRC
/// and are COBS-encoded into the buffer as they come, a group (a run up to the next zero, at
/// most 254 bytes) at a time. The output is byte for byte the `cobs` crate's `encode` (the
/// tests check it); the crate's own streaming encoder works a byte at a time (1.8 GB/s
/// against 3.3 GB/s here, which with the CRC decides the profile's 1 GB/s goal), while its
/// decoder is what [`LinkDecoder`] uses.
pub struct LinkEncoder<B> {
    buf: B,
    capacity: usize,
    /// Bytes of the frame in `buf` (its leading delimiter included).
    len: usize,
    /// While `ready`: bytes of it already taken by [`consume`](Self::consume).
    sent: usize,
    /// A frame is complete in `buf` and waits to be taken.
    ready: bool,
    /// A frame is open (its tag pushed).
    open: bool,
    /// Mux bytes in the open frame.
    body: usize,
    /// Whether the open frame began at a multiplexer frame boundary (its tag's bit 15).
    at_boundary: bool,
    /// Where in the open frame the first multiplexer frame begins, if one does.
    first: Option<usize>,
    /// The last byte pushed completed a full COBS group (its successor's placeholder is
    /// already in the buffer, and is dropped if the frame ends here).
    after_full: bool,
    /// Where the code byte of the COBS group being filled is.
    code_at: usize,
    seq: u16,
    crc: Digest<'static, u32, CrcTable>,
    follow: Follow,
}

impl<B> fmt::Debug for LinkEncoder<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkEncoder")
            .field("capacity", &self.capacity)
            .field("len", &self.len)
            .field("ready", &self.ready)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl<B: AsMut<[u8]> + AsRef<[u8]>> LinkEncoder<B> {
    /// An encoder whose frames are built in `buf` (at least [`MIN_LINK_BUFFER`] bytes: a
    /// smaller buffer makes [`new`](Self::new) panic, as a configuration error).
    pub fn new(buf: B) -> Self {
        let capacity = buf.as_ref().len();
        assert!(
            capacity >= MIN_LINK_BUFFER,
            "link buffer must hold at least {MIN_LINK_BUFFER} bytes"
        );
        Self {
            buf,
            capacity: link_payload_capacity(capacity),
            len: 0,
            sent: 0,
            ready: false,
            open: false,
            body: 0,
            at_boundary: false,
            first: None,
            after_full: false,
            code_at: 1,
            seq: 0,
            crc: CRC32C.digest(),
            follow: Follow {
                head: [0; HEADER_LEN],
                have: 0,
                left: 0,
            },
        }
    }

    /// Multiplexer bytes one frame carries at most.
    pub const fn payload_capacity(&self) -> usize {
        self.capacity
    }

    /// Encodes from the front of `input` and returns how many bytes it took: all of them,
    /// unless a frame closed on the way (after an End or Abort frame, or full); then it
    /// stops there and takes nothing more until that frame is taken from
    /// [`output`](Self::output). 0 while a frame waits.
    pub fn push(&mut self, input: &[u8]) -> usize {
        let mut used = 0;
        while used < input.len() && !self.ready {
            if !self.open {
                self.open_frame();
            }
            let room = self.capacity - self.body;
            let (n, ends_message) = self.follow.take(&input[used..], room);
            let bytes = &input[used..used + n];
            self.crc.update(bytes);
            self.cobs(bytes);
            used += n;
            self.body += n;
            if self.first.is_none() && self.follow.at_boundary() {
                // A multiplexer frame begins here, if more bytes follow in this frame.
                self.first = Some(self.body);
            }
            if ends_message || self.body == self.capacity {
                self.close();
            }
        }
        used
    }

    /// Closes the open frame, if any, so that everything pushed so far can be written (for
    /// a flush).
    pub fn end_frame(&mut self) {
        if self.open {
            self.close();
        }
    }

    /// The encoded bytes waiting to be written: the rest of a closed frame, or nothing.
    pub fn output(&self) -> &[u8] {
        if self.ready {
            &self.buf.as_ref()[self.sent..self.len]
        } else {
            &[]
        }
    }

    /// Records that the first `n` bytes of [`output`](Self::output) were written.
    pub fn consume(&mut self, n: usize) {
        if !self.ready {
            return;
        }
        self.sent = (self.sent + n).min(self.len);
        if self.sent == self.len {
            self.ready = false;
            self.len = 0;
            self.sent = 0;
        }
    }

    /// Whether bytes were pushed that are not yet in a closed frame.
    pub const fn has_open_frame(&self) -> bool {
        self.open
    }

    fn open_frame(&mut self) {
        self.at_boundary = self.follow.at_boundary();
        self.first = None;
        let tag = (self.seq & SEQ_MASK) | if self.at_boundary { BOUNDARY } else { 0 };
        self.seq = self.seq.wrapping_add(1) & SEQ_MASK;
        // Leading delimiter, then the first group's code placeholder.
        let buf = self.buf.as_mut();
        buf[0] = 0;
        self.code_at = 1;
        self.len = 2;
        self.after_full = false;
        self.crc = CRC32C.digest();
        self.open = true;
        self.body = 0;
        let tag = tag.to_be_bytes();
        self.crc.update(&tag);
        self.cobs(&tag);
    }

    fn close(&mut self) {
        if !self.at_boundary {
            let first = match self.first {
                Some(at) if at < self.body => at as u16,
                _ => NO_BOUNDARY,
            };
            let first = first.to_be_bytes();
            self.crc.update(&first);
            self.cobs(&first);
        }
        let crc = core::mem::replace(&mut self.crc, CRC32C.digest()).finalize();
        self.cobs(&crc.to_be_bytes());
        let buf = self.buf.as_mut();
        if self.after_full {
            // The frame ends with a full group: no group after it.
            self.len -= 1;
        } else {
            buf[self.code_at] = (self.len - self.code_at) as u8;
        }
        buf[self.len] = 0;
        self.len += 1;
        self.open = false;
        self.ready = true;
        self.sent = 0;
    }

    /// COBS-encodes `bytes` after what the frame holds: each run up to a zero (which it
    /// replaces) or of 254 non-zero bytes becomes a group, its length in its code byte.
    #[inline]
    fn cobs(&mut self, mut bytes: &[u8]) {
        let buf = self.buf.as_mut();
        let (mut code_at, mut len, mut after_full) = (self.code_at, self.len, self.after_full);
        while !bytes.is_empty() {
            // Room left in the group being filled (it holds `len - code_at - 1` < 254 bytes).
            let room = 254 - (len - code_at - 1);
            let chunk = &bytes[..bytes.len().min(room)];
            after_full = false;
            match chunk.iter().position(|&b| b == 0) {
                Some(zero) => {
                    buf[len..len + zero].copy_from_slice(&chunk[..zero]);
                    len += zero;
                    buf[code_at] = (len - code_at) as u8;
                    (code_at, len) = (len, len + 1);
                    bytes = &bytes[zero + 1..];
                }
                None => {
                    buf[len..len + chunk.len()].copy_from_slice(chunk);
                    len += chunk.len();
                    bytes = &bytes[chunk.len()..];
                    if len - code_at - 1 == 254 {
                        buf[code_at] = 0xFF;
                        (code_at, len) = (len, len + 1);
                        after_full = true;
                    }
                }
            }
        }
        (self.code_at, self.len, self.after_full) = (code_at, len, after_full);
    }
}

/// A link frame found intact by [`LinkDecoder::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFrame {
    /// Where its multiplexer bytes lie in the buffer (decoded in place); empty when the
    /// frame is skipped (it continues a multiplexer frame whose start was lost).
    pub body: Range<usize>,
    /// Link frames missing before this one, if any: give it to
    /// [`Demux::link_gap`](crate::Demux::link_gap) before the body.
    pub gap: Option<u16>,
}

/// The receiving half of the serial link profile, without I/O: it finds link frames in a
/// read buffer between `0x00` delimiters, decodes each in place (the `cobs` crate), checks
/// its CRC-32C and sequence number, and hands out the multiplexer bytes of intact frames.
///
/// The caller owns the buffer: it reads into `buf[filled..]` and calls
/// [`next`](Self::next), which moves a partial frame to the front of the buffer when it
/// needs more. A frame longer than the buffer is dropped as damaged. Damaged frames are
/// dropped and counted; a gap in the sequence numbers is reported in [`LinkFrame::gap`];
/// after a gap, frames are skipped until one that begins at a multiplexer frame boundary.
#[derive(Debug, Clone)]
pub struct LinkDecoder {
    /// The frame being gathered starts at `buf[start]`; `buf[start..scan]` holds no delimiter.
    start: usize,
    scan: usize,
    /// The frame being gathered overflowed the buffer: drop bytes up to the next delimiter.
    overflow: bool,
    /// The sequence number the next frame should have.
    expect: u16,
    /// Decoding follows the multiplexer stream (false after a gap, until a frame that
    /// begins at a frame boundary).
    synced: bool,
    /// A frame was dropped as damaged since the last intact one.
    damage: bool,
    metrics: LinkMetrics,
}

impl Default for LinkDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl LinkDecoder {
    /// A decoder expecting sequence number 0 first (as an encoder starts).
    pub const fn new() -> Self {
        Self {
            start: 0,
            scan: 0,
            overflow: false,
            expect: 0,
            synced: true,
            damage: false,
            metrics: LinkMetrics {
                good: 0,
                damaged: 0,
                missing: 0,
                skipped: 0,
            },
        }
    }

    /// Counters of the frames seen.
    pub const fn metrics(&self) -> &LinkMetrics {
        &self.metrics
    }

    /// The next intact frame in `buf[..*filled]`, or `None` when more bytes are needed:
    /// then a partial frame has been moved to the front, `*filled` says where it ends, and
    /// the caller reads into `buf[*filled..]` (never empty: a frame that fills the buffer is
    /// dropped). The body of a returned frame stays valid until the next call.
    pub fn next(&mut self, buf: &mut [u8], filled: &mut usize) -> Option<LinkFrame> {
        let end = (*filled).min(buf.len());
        loop {
            let Some(at) = buf[self.scan..end].iter().position(|&b| b == 0) else {
                self.compact(buf, filled, end);
                return None;
            };
            let z = self.scan + at;
            let start = self.start;
            self.start = z + 1;
            self.scan = z + 1;
            if core::mem::take(&mut self.overflow) {
                self.damaged();
                continue;
            }
            if z == start {
                continue; // between two delimiters
            }
            if let Some(frame) = self.check(&mut buf[start..z], start) {
                return Some(frame);
            }
        }
    }

    /// At end of stream: `Some(1)` if the last frame was damaged or cut (the caller reports
    /// it with [`Demux::link_gap`](crate::Demux::link_gap)), else `None`. Resets the
    /// decoder's position (not its counters or sequence number).
    pub fn finish(&mut self, filled: usize) -> Option<u16> {
        if filled > self.start || self.overflow {
            self.damaged();
        }
        self.start = 0;
        self.scan = 0;
        self.overflow = false;
        if core::mem::take(&mut self.damage) {
            self.metrics.missing = self.metrics.missing.saturating_add(1);
            return Some(1);
        }
        None
    }

    fn damaged(&mut self) {
        self.metrics.damaged = self.metrics.damaged.saturating_add(1);
        self.damage = true;
    }

    /// Moves the partial frame to the front of `buf`; drops it if it fills the buffer.
    fn compact(&mut self, buf: &mut [u8], filled: &mut usize, end: usize) {
        if self.overflow || end - self.start == buf.len() {
            self.overflow = true;
            *filled = 0;
        } else {
            buf.copy_within(self.start..end, 0);
            *filled = end - self.start;
        }
        self.start = 0;
        self.scan = *filled;
    }

    /// Decodes and checks the frame `raw` (found at `buf[at..]`).
    fn check(&mut self, raw: &mut [u8], at: usize) -> Option<LinkFrame> {
        let n = match cobs::decode_in_place(raw) {
            Ok(n) if n > LINK_TAG_LEN + LINK_CRC_LEN => n,
            _ => {
                self.damaged();
                return None;
            }
        };
        let (covered, sum) = raw[..n].split_at(n - LINK_CRC_LEN);
        let sum = u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]]);
        if CRC32C.checksum(covered) != sum {
            self.damaged();
            return None;
        }
        let tag = u16::from_be_bytes([covered[0], covered[1]]);
        let boundary = tag & BOUNDARY != 0;
        // Mux bytes, and where the first multiplexer frame begins in them.
        let (mux_end, first) = if boundary {
            (covered.len(), Some(0))
        } else {
            let Some(end) = covered
                .len()
                .checked_sub(LINK_FIRST_LEN)
                .filter(|&e| e > LINK_TAG_LEN)
            else {
                self.damaged();
                return None;
            };
            let first = u16::from_be_bytes([covered[end], covered[end + 1]]);
            (
                end,
                (usize::from(first) < end - LINK_TAG_LEN).then_some(usize::from(first)),
            )
        };
        self.damage = false;
        self.metrics.good = self.metrics.good.saturating_add(1);
        let seq = tag & SEQ_MASK;
        let missing = seq.wrapping_sub(self.expect) & SEQ_MASK;
        self.expect = seq.wrapping_add(1) & SEQ_MASK;
        let gap = (missing != 0).then_some(missing);
        if gap.is_some() {
            self.metrics.missing = self.metrics.missing.saturating_add(u32::from(missing));
            self.synced = false;
        }
        let start = at + LINK_TAG_LEN;
        let body = match (self.synced, first) {
            (true, _) => start..at + mux_end,
            // Decoding resumes where a multiplexer frame begins.
            (false, Some(first)) => {
                self.synced = true;
                start + first..at + mux_end
            }
            (false, None) => {
                self.metrics.skipped = self.metrics.skipped.saturating_add(1);
                at..at
            }
        };
        Some(LinkFrame { body, gap })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::vec::Vec;

    fn encode_all(enc: &mut LinkEncoder<Vec<u8>>, mut input: &[u8], flush: bool) -> Vec<u8> {
        let mut wire = Vec::new();
        loop {
            let n = enc.push(input);
            input = &input[n..];
            wire.extend_from_slice(enc.output());
            let k = enc.output().len();
            enc.consume(k);
            if input.is_empty() {
                break;
            }
        }
        if flush {
            enc.end_frame();
            wire.extend_from_slice(enc.output());
            let k = enc.output().len();
            enc.consume(k);
        }
        wire
    }

    fn decode_all(dec: &mut LinkDecoder, wire: &[u8], cap: usize, cut: usize) -> Vec<u8> {
        let mut buf = std::vec![0u8; cap];
        let mut filled = 0;
        let mut out = Vec::new();
        let mut input = wire;
        loop {
            while let Some(f) = dec.next(&mut buf, &mut filled) {
                assert!(f.gap.is_none());
                out.extend_from_slice(&buf[f.body]);
            }
            if input.is_empty() {
                break;
            }
            let n = cut.min(input.len()).min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&input[..n]);
            filled += n;
            input = &input[n..];
        }
        assert_eq!(dec.finish(filled), None);
        out
    }

    #[test]
    fn frames_match_the_cobs_crate_and_the_crc_and_round_trip() {
        // Zero-free runs longer than a COBS group, zeros, and a frame ending on a full group.
        let mut mux = Vec::new();
        // Fewer cases under Miri (scripts/checks/10-core.sh), which runs about 1000× slower.
        let lens: &[usize] = if cfg!(miri) {
            &[0, 1, 254, 300]
        } else {
            &[0, 1, 253, 254, 255, 600, 1500]
        };
        for &len in lens {
            mux.extend_from_slice(&[3, 0, 0, 0, 9]);
            mux.extend_from_slice(&(len as u32).to_be_bytes());
            mux.extend((0..len).map(|i| (i % 255 + 1) as u8));
        }
        let caps: &[usize] = if cfg!(miri) {
            &[MIN_LINK_BUFFER, 300]
        } else {
            &[MIN_LINK_BUFFER, 64, 300, 2048]
        };
        for &cap in caps {
            let mut enc = LinkEncoder::new(std::vec![0u8; cap]);
            let wire = encode_all(&mut enc, &mux, true);
            // Each frame: 00 · COBS(tag · bytes · CRC) · 00, as the cobs crate encodes it.
            let frames: Vec<&[u8]> = wire.split(|&b| b == 0).filter(|f| !f.is_empty()).collect();
            let mut joined = Vec::new();
            for (seq, f) in frames.iter().enumerate() {
                assert!(
                    f.len() + 2 <= cap,
                    "frame of {} bytes for a {cap}-byte buffer",
                    f.len()
                );
                let mut body = f.to_vec();
                let n = cobs::decode_in_place(&mut body).unwrap();
                let mut again = std::vec![0u8; cobs::max_encoding_length(n)];
                let k = cobs::encode(&body[..n], &mut again);
                assert_eq!(&again[..k], *f, "COBS as the crate writes it");
                let (covered, sum) = body[..n].split_at(n - 4);
                assert_eq!(CRC32C.checksum(covered).to_be_bytes(), sum);
                let tag = u16::from_be_bytes([covered[0], covered[1]]);
                assert_eq!(usize::from(tag & SEQ_MASK), seq);
                // A frame continuing a multiplexer frame ends with `first`.
                let end = covered.len() - if tag & BOUNDARY == 0 { 2 } else { 0 };
                joined.extend_from_slice(&covered[2..end]);
            }
            assert_eq!(joined, mux, "cap {cap}");
            let cuts: &[usize] = if cfg!(miri) { &[7] } else { &[1, 7, 4096] };
            for &cut in cuts {
                assert_eq!(
                    decode_all(&mut LinkDecoder::new(), &wire, cap, cut),
                    mux,
                    "cap {cap} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn cobs_groups_are_the_cobs_crate_encoding_for_any_input() {
        // Runs around the 254-byte group size, ending in a zero or on a full group, split
        // across calls anywhere.
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for len in [1usize, 2, 253, 254, 255, 508, 509, 700] {
            inputs.push((0..len).map(|i| (i % 255 + 1) as u8).collect());
            let mut z: Vec<u8> = (0..len).map(|i| (i % 255 + 1) as u8).collect();
            *z.last_mut().unwrap() = 0;
            inputs.push(z);
            inputs.push((0..len).map(|i| if i % 97 == 3 { 0 } else { 7 }).collect());
        }
        inputs.push(std::vec![0; 5]);
        for input in &inputs {
            for split in [1, 13, 254, usize::MAX] {
                let mut enc = LinkEncoder::new(std::vec![0u8; 2048]);
                enc.buf[0] = 0;
                (enc.code_at, enc.len, enc.after_full) = (1, 2, false);
                for piece in input.chunks(split.min(input.len())) {
                    enc.cobs(piece);
                }
                if enc.after_full {
                    enc.len -= 1;
                } else {
                    enc.buf[enc.code_at] = (enc.len - enc.code_at) as u8;
                }
                let mut want = std::vec![0u8; cobs::max_encoding_length(input.len())];
                let n = cobs::encode(input, &mut want);
                assert_eq!(
                    &enc.buf[1..enc.len],
                    &want[..n],
                    "{} bytes, split {split}",
                    input.len()
                );
            }
        }
    }

    #[test]
    fn the_example_of_the_protocol_page_byte_for_byte() {
        // docs/PROTOCOL.md, "Link frame, byte by byte": message 1 with no payload.
        let mux = [1, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0];
        let wire = encode_all(&mut LinkEncoder::new(std::vec![0u8; 64]), &mux, false);
        let want = [
            0x00, 0x02, 0x80, 0x02, 0x01, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x01, 0x02, 0x02,
            0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x01, 0x05, 0xEC, 0x40, 0x29, 0x95, 0x00,
        ];
        assert_eq!(wire, want);
    }

    #[test]
    fn a_frame_closes_after_end_and_abort_and_carries_a_boundary_flag() {
        let mut enc = LinkEncoder::new(std::vec![0u8; 64]);
        let mut mux = Vec::new();
        for kind in [1u8, 2, 1, 6] {
            mux.extend_from_slice(&[kind, 0, 0, 0, 5, 0, 0, 0, 0]);
        }
        let wire = encode_all(&mut enc, &mux, false);
        assert!(!enc.has_open_frame());
        let frames: Vec<&[u8]> = wire.split(|&b| b == 0).filter(|f| !f.is_empty()).collect();
        assert_eq!(frames.len(), 2, "Start End | Start Abort");
        // A Data frame longer than a link frame: the frames after the first continue it.
        let mut enc = LinkEncoder::new(std::vec![0u8; 40]);
        let mut mux = std::vec![3u8, 0, 0, 0, 5, 0, 0, 0, 100];
        mux.extend_from_slice(&[7; 100]);
        let wire = encode_all(&mut enc, &mux, true);
        let flags: Vec<bool> = wire
            .split(|&b| b == 0)
            .filter(|f| !f.is_empty())
            .map(|f| {
                let mut b = f.to_vec();
                cobs::decode_in_place(&mut b).unwrap();
                b[0] & 0x80 != 0
            })
            .collect();
        assert!(
            flags.len() > 3 && flags[0] && flags[1..].iter().all(|f| !f),
            "{flags:?}"
        );
    }

    #[test]
    fn after_a_gap_decoding_resumes_where_the_first_multiplexer_frame_begins() {
        // A Data frame of 100 bytes across link frames of a 40-byte buffer, then a small one.
        let mut mux = std::vec![3u8, 0, 0, 0, 5, 0, 0, 0, 100];
        mux.extend_from_slice(&[7; 100]);
        let second = [3u8, 0, 0, 0, 6, 0, 0, 0, 2, 8, 9];
        mux.extend_from_slice(&second);
        let wire = encode_all(&mut LinkEncoder::new(std::vec![0u8; 40]), &mux, true);
        let frames: Vec<&[u8]> = wire.split(|&b| b == 0).filter(|f| !f.is_empty()).collect();
        // Without its second link frame, the receiver skips to the second multiplexer frame,
        // which begins inside the last link frame (its `first` says where).
        let mut noisy = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if i != 1 {
                noisy.push(0);
                noisy.extend_from_slice(f);
                noisy.push(0);
            }
        }
        let mut dec = LinkDecoder::new();
        let mut buf = std::vec![0u8; 512];
        buf[..noisy.len()].copy_from_slice(&noisy);
        let mut filled = noisy.len();
        let mut after_gap = Vec::new();
        let mut gaps = 0;
        while let Some(f) = dec.next(&mut buf, &mut filled) {
            gaps += usize::from(f.gap.is_some());
            if gaps > 0 {
                after_gap.extend_from_slice(&buf[f.body]);
            }
        }
        assert_eq!(gaps, 1);
        assert_eq!(after_gap, second);
        assert!(dec.metrics().skipped > 0);
    }

    #[test]
    fn damaged_frames_are_dropped_gaps_reported_and_sync_regained_at_a_boundary() {
        // Four messages of one Start+Data+End each, one link frame each.
        let mut mux = Vec::new();
        for id in 1u8..=4 {
            mux.extend_from_slice(&[1, 0, 0, 0, id, 0, 0, 0, 0, 3, 0, 0, 0, id, 0, 0, 0, 3]);
            mux.extend_from_slice(b"abc");
            mux.extend_from_slice(&[2, 0, 0, 0, id, 0, 0, 0, 0]);
        }
        let mut enc = LinkEncoder::new(std::vec![0u8; 128]);
        let wire = encode_all(&mut enc, &mux, false);
        let mut frames: Vec<Vec<u8>> = Vec::new();
        for f in wire.split(|&b| b == 0).filter(|f| !f.is_empty()) {
            frames.push(f.to_vec());
        }
        assert_eq!(frames.len(), 4);
        // Frame 1 (message 2) gets a flipped bit; garbage is inserted between 2 and 3.
        frames[1][5] ^= 0x10;
        let mut noisy = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            noisy.push(0);
            noisy.extend_from_slice(f);
            noisy.push(0);
            if i == 2 {
                noisy.extend_from_slice(&[0x55, 0x13]);
            }
        }
        let mut dec = LinkDecoder::new();
        let mut buf = std::vec![0u8; 512];
        buf[..noisy.len()].copy_from_slice(&noisy);
        let mut filled = noisy.len();
        let mut got = Vec::new();
        while let Some(f) = dec.next(&mut buf, &mut filled) {
            got.push((f.gap, buf[f.body].len()));
        }
        assert_eq!(got, [(None, 30), (Some(1), 30), (None, 30)]);
        let m = *dec.metrics();
        assert_eq!((m.good, m.damaged, m.missing), (3, 2, 1));
    }
}
