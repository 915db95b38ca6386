//! Simple timing loops: calibrated batches, medians of several rounds.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Nanoseconds per call of `f`, over `iters` calls (its result goes through `black_box`),
/// after as many untimed calls: the timed batch starts with `f`'s own data in the caches.
/// (Without the warm-up, the first batch after switching to another variant's 1 MiB buffers
/// ran 1.5–3× slow on an AMD EPYC VM, for the whole 2 ms batch, whichever variant it was.)
#[inline(never)]
pub fn ns_per_iter<R>(iters: u64, mut f: impl FnMut() -> R) -> f64 {
    for _ in 0..iters {
        black_box(f());
    }
    let t = Instant::now();
    for _ in 0..iters {
        black_box(f());
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

/// How many calls of `f` take about `target` (at least 1).
pub fn calibrate<R>(target: Duration, mut f: impl FnMut() -> R) -> u64 {
    let mut iters = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            black_box(f());
        }
        let took = t.elapsed();
        if took >= target / 4 || iters >= 1 << 30 {
            let per = took.as_nanos().max(1) as f64 / iters as f64;
            return ((target.as_nanos() as f64 / per) as u64).max(1);
        }
        iters *= 4;
    }
}

/// The median of `v` (which it sorts); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if !v.len().is_multiple_of(2) {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Relative spread of `v`: (max − min) / median, a rough noise figure.
pub fn spread(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    let m = median(&mut s);
    match (s.first(), s.last()) {
        (Some(lo), Some(hi)) if m > 0.0 => (hi - lo) / m,
        _ => f64::NAN,
    }
}

/// Several variants measured in interleaved rounds (so that drift in the machine's load hits
/// them alike): each round times every variant once for its calibrated number of calls.
#[derive(Debug, Default)]
pub struct Rounds {
    /// Per variant: its name and its nanoseconds per call in each round.
    pub samples: Vec<(String, Vec<f64>)>,
}

impl Rounds {
    /// Records one round's figure for `name`.
    pub fn push(&mut self, name: &str, ns: f64) {
        match self.samples.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(ns),
            None => self.samples.push((name.to_string(), vec![ns])),
        }
    }

    /// The median for `name` (NaN if it was never measured).
    pub fn median(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .find(|(n, _)| n == name)
            .map_or(f64::NAN, |(_, v)| median(&mut v.clone()))
    }

    /// The median over rounds of `name`'s time divided by `base`'s time in the same round (a
    /// paired ratio: drift in the machine's load between rounds cancels out).
    pub fn ratio(&self, name: &str, base: &str) -> f64 {
        let get = |n: &str| self.samples.iter().find(|(s, _)| s == n).map(|(_, v)| v);
        match (get(name), get(base)) {
            (Some(a), Some(b)) => {
                let mut r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
                median(&mut r)
            }
            _ => f64::NAN,
        }
    }

    /// The largest relative spread over all variants.
    pub fn worst_spread(&self) -> f64 {
        self.samples
            .iter()
            .map(|(_, v)| spread(v))
            .fold(0.0, f64::max)
    }
}
