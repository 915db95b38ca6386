//! Fixed-bucket histograms: distributions kept without std or an allocator.
//!
//! Buckets are powers of two: bucket 0 holds the value 0, bucket `i ≥ 1` holds the values
//! from `2^(i-1)` to `2^i - 1`. Recording is a count of leading zeros and an increment, so it
//! costs the same whatever the value, and a histogram is a plain array that firmware can
//! read, log with `defmt`, or send to a host. [`bucket_of`], [`bucket_max`] and
//! [`quantile_bucket`] are the same bucket rules for other counter types (mux-std keeps
//! 64-bit atomic counters with them).

/// Buckets of a [`Histogram`]: the value 0, then one per power of two up to `2^32 - 1`.
pub const BUCKETS: usize = 33;

/// The bucket of `value`: 0 for 0, else `1 + floor(log2(value))` (1 to 64).
#[inline(always)]
pub const fn bucket_of(value: u64) -> usize {
    (u64::BITS - value.leading_zeros()) as usize
}

/// The largest value bucket `i` holds: 0 for bucket 0, `2^i - 1` above (`u64::MAX` from 64 on).
#[inline]
pub const fn bucket_max(i: usize) -> u64 {
    if i >= 64 { u64::MAX } else { (1u64 << i) - 1 }
}

/// The bucket holding the `per_mille`/1000 quantile of the samples counted in `counts`
/// (bucket `i` at index `i`): the first bucket at which the running count reaches
/// `ceil(total × per_mille / 1000)` (at least one sample). `None` when there is no sample.
/// `per_mille` above 1000 means 1000.
pub fn quantile_bucket<C: Copy + Into<u64>>(counts: &[C], per_mille: u32) -> Option<usize> {
    let total = counts.iter().fold(0u64, |a, &c| a.saturating_add(c.into()));
    if total == 0 {
        return None;
    }
    let per_mille = u128::from(per_mille.min(1000));
    // In u128: total × 1000 does not fit u64 for totals near u64::MAX.
    let rank = (u128::from(total) * per_mille).div_ceil(1000).max(1);
    let mut seen = 0u128;
    for (i, &c) in counts.iter().enumerate() {
        seen += u128::from(c.into());
        if seen >= rank {
            return Some(i);
        }
    }
    Some(counts.len() - 1)
}

/// Frames of a message of `total` payload bytes cut in chunks of `chunk` bytes: Start, the
/// Data frames, End (2 for an empty message).
#[inline]
pub const fn frames_per_message(total: u32, chunk: u32) -> u32 {
    let chunk = if chunk == 0 { 1 } else { chunk };
    2 + total.div_ceil(chunk)
}

/// A distribution of `u32` values in power-of-two buckets (see the [module](self)).
///
/// 132 bytes. Every count saturates at `u32::MAX` (it then means "at least that many").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Histogram {
    counts: [u32; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Self {
            counts: [0; BUCKETS],
        }
    }

    /// Counts one sample of `value`.
    #[inline]
    pub fn record(&mut self, value: u32) {
        let c = &mut self.counts[bucket_of(u64::from(value))];
        *c = c.saturating_add(1);
    }

    /// The count of each bucket (see the [module](self) for the bucket bounds).
    pub const fn counts(&self) -> &[u32; BUCKETS] {
        &self.counts
    }

    /// Samples counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// An upper bound of the `per_mille`/1000 quantile: the largest value of the bucket that
    /// holds it (e.g. `quantile(990)` for p99). `None` when empty.
    pub fn quantile(&self, per_mille: u32) -> Option<u64> {
        quantile_bucket(&self.counts, per_mille).map(bucket_max)
    }

    /// Adds the counts of `other` (saturating), e.g. to sum several links.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(2), 2);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 3);
        assert_eq!(bucket_of(1023), 10);
        assert_eq!(bucket_of(1024), 11);
        assert_eq!(bucket_of(u64::from(u32::MAX)), 32);
        assert_eq!(bucket_of(u64::MAX), 64);
        for i in 1..64 {
            assert_eq!(bucket_of(bucket_max(i)), i);
            assert_eq!(bucket_of(bucket_max(i) + 1), i + 1);
        }
        assert_eq!(bucket_max(0), 0);
        assert_eq!(bucket_max(64), u64::MAX);
    }

    #[test]
    fn records_and_reads_quantiles() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(500), None);
        for _ in 0..98 {
            h.record(64);
        }
        h.record(1 << 20);
        h.record(u32::MAX);
        assert_eq!(h.count(), 100);
        assert_eq!(h.counts()[7], 98);
        assert_eq!(h.quantile(500), Some(127));
        assert_eq!(h.quantile(980), Some(127));
        assert_eq!(h.quantile(990), Some((1 << 21) - 1));
        assert_eq!(h.quantile(1000), Some(u64::from(u32::MAX)));
        assert_eq!(h.quantile(0), Some(127), "the first sample");
        let mut sum = h;
        sum.merge(&h);
        assert_eq!(sum.count(), 200);
    }

    #[test]
    fn counts_saturate() {
        let mut h = Histogram::new();
        h.counts[3] = u32::MAX;
        h.record(5);
        assert_eq!(h.counts()[3], u32::MAX);
        let mut m = h;
        m.merge(&h);
        assert_eq!(m.counts()[3], u32::MAX);
    }

    #[test]
    fn quantile_of_huge_totals_does_not_overflow() {
        let counts = [u64::MAX / 2, u64::MAX / 2, 0];
        assert_eq!(quantile_bucket(&counts, 500), Some(0));
        assert_eq!(quantile_bucket(&counts, 1000), Some(1));
    }

    #[test]
    fn frames_per_message_counts_start_data_end() {
        assert_eq!(frames_per_message(0, 1024), 2);
        assert_eq!(frames_per_message(1, 1024), 3);
        assert_eq!(frames_per_message(1024, 1024), 3);
        assert_eq!(frames_per_message(1025, 1024), 4);
        assert_eq!(frames_per_message(1 << 20, 16384), 66);
        assert_eq!(
            frames_per_message(5, 0),
            7,
            "a zero chunk counts as one byte"
        );
    }
}
