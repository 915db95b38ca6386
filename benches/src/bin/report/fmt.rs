//! How figures are written in the tables and named in the JSON line.

use mux_benches::size_name;

/// A time in nanoseconds, in the unit that suits it.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// A rate per second with its prefix (`G`, `M`, `k`); the caller appends the unit.
pub fn fmt_rate(per_sec: f64) -> String {
    if per_sec >= 1e9 {
        format!("{:.2} G", per_sec / 1e9)
    } else if per_sec >= 1e6 {
        format!("{:.2} M", per_sec / 1e6)
    } else {
        format!("{:.1} k", per_sec / 1e3)
    }
}

/// A table cell: a time and its ratio to the floor, `17.0 ns (3.02×)`.
pub fn cell(ns: f64, vs_floor: f64) -> String {
    format!("{} ({vs_floor:.2}×)", fmt_ns(ns))
}

/// A size as it appears in JSON keys: `1KiB`, `64KiB`, `1MiB`.
pub fn key(len: usize) -> String {
    size_name(len).replace(' ', "")
}
