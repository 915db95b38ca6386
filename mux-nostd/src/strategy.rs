//! Writer strategies: how a message is cut into Data frames.
//!
//! Each strategy is a zero-sized (or tiny) type implementing [`Strategy`]; writers are generic
//! over it, so the choice is monomorphised and the small-message path of [`Hybrid`] compiles to
//! the same code as [`Original`]'s. [`AnyStrategy`] is the form chosen at run time.

use core::fmt;
use core::str::FromStr;

use crate::adaptive::AdaptiveConfig;

/// Chunk size of the Original strategy and of Hybrid below its threshold.
pub const SMALL_CHUNK: u32 = 1024;

/// How a message of a given total size is framed. Byte-exact with the Go reference.
///
/// Each strategy is a zero-sized (or tiny) type; writers are generic over it, so the choice is
/// monomorphised and the small-message path of [`Hybrid`] compiles to the same code as
/// [`Original`]'s. [`AnyStrategy`] is the form chosen at run time.
pub trait Strategy {
    /// The length field written in the Start frame of a message of `total` bytes.
    fn start_len(&self, total: u32) -> u32;
    /// The size of every Data frame but the last (which holds the remainder).
    fn chunk_size(&self, total: u32) -> u32;
}

impl<S: Strategy + ?Sized> Strategy for &S {
    #[inline(always)]
    fn start_len(&self, total: u32) -> u32 {
        (**self).start_len(total)
    }
    #[inline(always)]
    fn chunk_size(&self, total: u32) -> u32 {
        (**self).chunk_size(total)
    }
}

/// Fixed 1 KiB chunks; the Start frame carries the total length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Original;

/// Adaptive chunks (1, 4, 16 or 64 KiB by message size); Start carries 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Optimized;

/// 1 KiB chunks up to `THRESHOLD` bytes, the [`Optimized`] table above; Start carries 0.
///
/// `Hybrid` (threshold 4096) is the Go library's default constructor and equals [`Optimized`]
/// at every size; [`Hybrid8k`] is its config-based default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Hybrid<const THRESHOLD: u32 = 4096>;

/// Hybrid with the 8 KiB threshold of the Go library's config-based constructor.
pub type Hybrid8k = Hybrid<8192>;

/// The Optimized chunk table.
#[inline(always)]
pub const fn optimized_chunk(total: u32) -> u32 {
    if total <= 4096 {
        1024
    } else if total <= 65536 {
        4096
    } else if total <= 1_048_576 {
        16384
    } else {
        65536
    }
}

impl Strategy for Original {
    #[inline(always)]
    fn start_len(&self, total: u32) -> u32 {
        total
    }
    #[inline(always)]
    fn chunk_size(&self, _total: u32) -> u32 {
        SMALL_CHUNK
    }
}

impl Strategy for Optimized {
    #[inline(always)]
    fn start_len(&self, _total: u32) -> u32 {
        0
    }
    #[inline(always)]
    fn chunk_size(&self, total: u32) -> u32 {
        optimized_chunk(total)
    }
}

impl<const THRESHOLD: u32> Strategy for Hybrid<THRESHOLD> {
    #[inline(always)]
    fn start_len(&self, _total: u32) -> u32 {
        0
    }
    #[inline(always)]
    fn chunk_size(&self, total: u32) -> u32 {
        if total <= THRESHOLD {
            SMALL_CHUNK
        } else {
            optimized_chunk(total)
        }
    }
}

/// A strategy chosen at run time (a configuration file, a command-line flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AnyStrategy {
    /// See [`Original`].
    Original,
    /// See [`Optimized`].
    Optimized,
    /// See [`Hybrid`]; the threshold is a run-time value here.
    Hybrid {
        /// Messages up to this many bytes use 1 KiB chunks.
        threshold: u32,
    },
    /// See [`Adaptive`](crate::Adaptive). On its own this value has no estimator: it frames
    /// at [`AdaptiveConfig::link_rate`] (the floor while that is 0). mux-std's `Sender`
    /// measures its link and frames at the estimated rate.
    Adaptive(AdaptiveConfig),
}

impl Default for AnyStrategy {
    /// Hybrid with threshold 4096, the Go library's default.
    fn default() -> Self {
        Self::Hybrid { threshold: 4096 }
    }
}

impl Strategy for AnyStrategy {
    #[inline]
    fn start_len(&self, total: u32) -> u32 {
        match self {
            Self::Original => total,
            _ => 0,
        }
    }
    #[inline]
    fn chunk_size(&self, total: u32) -> u32 {
        match *self {
            Self::Original => SMALL_CHUNK,
            Self::Optimized => optimized_chunk(total),
            Self::Hybrid { threshold } if total <= threshold => SMALL_CHUNK,
            Self::Hybrid { .. } => optimized_chunk(total),
            Self::Adaptive(c) => c.chunk(),
        }
    }
}

impl From<Original> for AnyStrategy {
    fn from(_: Original) -> Self {
        Self::Original
    }
}
impl From<Optimized> for AnyStrategy {
    fn from(_: Optimized) -> Self {
        Self::Optimized
    }
}
impl From<AdaptiveConfig> for AnyStrategy {
    fn from(c: AdaptiveConfig) -> Self {
        Self::Adaptive(c)
    }
}
impl<const T: u32> From<Hybrid<T>> for AnyStrategy {
    fn from(_: Hybrid<T>) -> Self {
        Self::Hybrid { threshold: T }
    }
}

/// The name given to [`AnyStrategy::from_str`] was not one of the five known ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnknownStrategy;

impl fmt::Display for UnknownStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown strategy: expected original, optimized, hybrid, hybrid8k or adaptive")
    }
}

impl core::error::Error for UnknownStrategy {}

impl FromStr for AnyStrategy {
    type Err = UnknownStrategy;
    /// Parses `original`, `optimized`, `hybrid` (threshold 4096), `hybrid8k` (8192) or
    /// `adaptive` ([`AdaptiveConfig::DEFAULT`]: 10 ms budget).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "original" => Ok(Self::Original),
            "optimized" => Ok(Self::Optimized),
            "hybrid" => Ok(Self::Hybrid { threshold: 4096 }),
            "hybrid8k" => Ok(Self::Hybrid { threshold: 8192 }),
            "adaptive" => Ok(Self::Adaptive(AdaptiveConfig::DEFAULT)),
            _ => Err(UnknownStrategy),
        }
    }
}

impl fmt::Display for AnyStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Original => f.write_str("original"),
            Self::Optimized => f.write_str("optimized"),
            Self::Hybrid { threshold: 4096 } => f.write_str("hybrid"),
            Self::Hybrid { threshold: 8192 } => f.write_str("hybrid8k"),
            Self::Hybrid { threshold } => write!(f, "hybrid({threshold})"),
            Self::Adaptive(c) => c.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimized_table_edges() {
        for (total, chunk) in [
            (0, 1024),
            (4096, 1024),
            (4097, 4096),
            (65536, 4096),
            (65537, 16384),
            (1_048_576, 16384),
            (1_048_577, 65536),
        ] {
            assert_eq!(Optimized.chunk_size(total), chunk, "total {total}");
        }
    }

    #[test]
    fn hybrid_threshold_switches_table() {
        assert_eq!(Hybrid::<8192>.chunk_size(8192), 1024);
        assert_eq!(Hybrid::<8192>.chunk_size(8193), 4096);
        assert_eq!(Hybrid::<4096>.chunk_size(4097), 4096);
        assert_eq!(Original.start_len(77), 77);
        assert_eq!(Hybrid::<4096>.start_len(77), 0);
    }

    #[test]
    fn any_strategy_agrees_with_static_types() {
        let sizes = [
            0u32, 1, 1000, 1024, 4096, 4097, 8192, 8193, 65537, 1_048_577,
        ];
        let pairs: [(AnyStrategy, &dyn Strategy); 4] = [
            ("original".parse().unwrap(), &Original),
            ("optimized".parse().unwrap(), &Optimized),
            ("hybrid".parse().unwrap(), &Hybrid::<4096>),
            ("hybrid8k".parse().unwrap(), &Hybrid8k::default()),
        ];
        for (any, fixed) in pairs {
            for t in sizes {
                assert_eq!(any.chunk_size(t), fixed.chunk_size(t));
                assert_eq!(any.start_len(t), fixed.start_len(t));
            }
        }
        assert!("fast".parse::<AnyStrategy>().is_err());
        let a: AnyStrategy = "adaptive".parse().unwrap();
        assert_eq!(a.to_string(), "adaptive");
        assert_eq!((a.chunk_size(100_000), a.start_len(100_000)), (64, 0));
    }
}
