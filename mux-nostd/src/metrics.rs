//! Counters readable without std: plain integers owned by each reader and writer.
//!
//! Every counter **saturates**: once at its type's maximum it stays there instead of wrapping
//! around (or panicking in a debug build), however long the link runs or whatever the peer
//! sends. A counter at its maximum means "at least that many".

use crate::error::ProtocolError;
#[cfg(feature = "histograms")]
use crate::histogram::{Histogram, frames_per_message};

/// Protocol errors seen, by kind. Every counter saturates: once at its type's
/// maximum it stays there (it means "at least that many"), however long the link runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ErrorCounts {
    /// [`ProtocolError::UnknownType`].
    pub unknown_type: u32,
    /// [`ProtocolError::UnknownId`].
    pub unknown_id: u32,
    /// [`ProtocolError::FrameTooLarge`].
    pub frame_too_large: u32,
    /// [`ProtocolError::MessageTooLarge`].
    pub message_too_large: u32,
    /// [`ProtocolError::DuplicateStart`].
    pub duplicate_start: u32,
    /// [`ProtocolError::TooManyStreams`].
    pub too_many_streams: u32,
    /// [`ProtocolError::PoolExhausted`].
    pub pool_exhausted: u32,
    /// [`ProtocolError::Truncated`].
    pub truncated: u32,
    /// [`ProtocolError::Unfinished`].
    pub unfinished: u32,
    /// [`ProtocolError::Lost`].
    pub lost: u32,
    /// [`ProtocolError::LinkGap`] (reports, not frames: those are in [`LinkMetrics`]).
    pub link_gap: u32,
    /// [`ProtocolError::OverBudget`].
    pub over_budget: u32,
}

impl ErrorCounts {
    /// Counts one error.
    pub fn record(&mut self, e: &ProtocolError) {
        let c = match e {
            ProtocolError::UnknownType { .. } => &mut self.unknown_type,
            ProtocolError::UnknownId { .. } => &mut self.unknown_id,
            ProtocolError::FrameTooLarge { .. } => &mut self.frame_too_large,
            ProtocolError::MessageTooLarge { .. } => &mut self.message_too_large,
            ProtocolError::DuplicateStart { .. } => &mut self.duplicate_start,
            ProtocolError::TooManyStreams { .. } => &mut self.too_many_streams,
            ProtocolError::PoolExhausted { .. } => &mut self.pool_exhausted,
            ProtocolError::Truncated { .. } => &mut self.truncated,
            ProtocolError::Unfinished { .. } => &mut self.unfinished,
            ProtocolError::Lost { .. } => &mut self.lost,
            ProtocolError::LinkGap { .. } => &mut self.link_gap,
            ProtocolError::OverBudget { .. } => &mut self.over_budget,
        };
        *c = c.saturating_add(1);
    }

    /// All errors together.
    pub fn total(&self) -> u32 {
        [
            self.unknown_type,
            self.unknown_id,
            self.frame_too_large,
            self.message_too_large,
            self.duplicate_start,
            self.too_many_streams,
            self.pool_exhausted,
            self.truncated,
            self.unfinished,
            self.lost,
            self.link_gap,
            self.over_budget,
        ]
        .iter()
        .fold(0u32, |a, b| a.saturating_add(*b))
    }
}

/// What a receiver has seen. Every counter saturates: once at its type's
/// maximum it stays there (it means "at least that many"), however long the link runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RxMetrics {
    /// Messages completed (End received).
    pub messages: u32,
    /// Payload bytes received for open messages.
    pub bytes: u64,
    /// Messages aborted by the peer.
    pub aborted: u32,
    /// Protocol errors by kind.
    pub errors: ErrorCounts,
    /// Payload sizes of completed messages, in bytes (feature `histograms`).
    #[cfg(feature = "histograms")]
    pub sizes: Histogram,
    /// Microseconds from each completed message's Start to its End, by the time its bytes
    /// were read (feature `histograms`; empty unless the receiver has a clock: a reader's
    /// `with_clock`, or [`Demux::set_now_us`](crate::Demux::set_now_us) before feeding).
    #[cfg(feature = "histograms")]
    pub start_to_end_us: Histogram,
}

/// What the receiving end of a serial link profile saw, frame by frame. Every counter
/// saturates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LinkMetrics {
    /// Link frames received intact (COBS and CRC-32C correct).
    pub good: u32,
    /// Link frames dropped as damaged: bad COBS, bad CRC, too short, or longer than the
    /// receive buffer (also a frame cut by the end of the stream).
    pub damaged: u32,
    /// Link frames missing by their sequence numbers (the sum of the
    /// [`ProtocolError::LinkGap`] reports).
    pub missing: u32,
    /// Intact link frames skipped after a gap because they continue a multiplexer frame
    /// whose beginning was lost (decoding resumes at the next frame boundary).
    pub skipped: u32,
}

/// What a writer has sent. Every counter saturates: once at its type's
/// maximum it stays there (it means "at least that many"), however long the link runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TxMetrics {
    /// Messages completed (End written).
    pub messages: u32,
    /// Payload bytes of completed messages.
    pub bytes: u64,
    /// Messages ended with Abort (cancelled or interrupted).
    pub aborted: u32,
    /// Payload sizes of completed messages, in bytes (feature `histograms`).
    #[cfg(feature = "histograms")]
    pub sizes: Histogram,
    /// Frames per completed message: Start, Data…, End (feature `histograms`).
    #[cfg(feature = "histograms")]
    pub frames: Histogram,
    /// Microseconds each completed send waited for the link: from the call to the moment the
    /// sink took its last byte (feature `histograms`; empty unless the writer has a clock,
    /// see `Writer::with_clock`). A writer has the link to itself, so this is how long the
    /// link kept the message: its own transmission time plus whatever the sink made it wait.
    #[cfg(feature = "histograms")]
    pub send_wait_us: Histogram,
}

impl TxMetrics {
    /// Counts one completed message of `bytes` payload bytes sent in chunks of `chunk`
    /// bytes (counters saturate).
    #[inline]
    pub(crate) fn count_message(&mut self, bytes: u32, chunk: u32) {
        self.messages = self.messages.saturating_add(1);
        self.bytes = self.bytes.saturating_add(u64::from(bytes));
        #[cfg(feature = "histograms")]
        {
            self.sizes.record(bytes);
            self.frames.record(frames_per_message(bytes, chunk));
        }
        #[cfg(not(feature = "histograms"))]
        let _ = chunk;
    }
}
