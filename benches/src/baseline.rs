//! Regression detection for the report: saved runs (baselines) and the comparison of a new run
//! with them.
//!
//! A baseline is a file of report JSON lines, one per saved run (`report --save-baseline NAME`
//! appends one). Each figure's run-to-run spread is measured from those runs: (max − min) /
//! median. A new run's figure is a regression when it is worse than the baseline's median by
//! more than that spread (and by more than [`MIN_TOLERANCE`], the floor for a baseline of one
//! run or of identical runs). Worse means higher for every ratio to a floor, ratio between
//! variants and allocation count, lower for the end-to-end figures (`e2e_…`: throughput and
//! shares of the raw socket pair).

use crate::timing::{median, spread};

/// The smallest relative change flagged, whatever the measured spread (timer resolution and
/// the rounding of the JSON line's four decimals).
pub const MIN_TOLERANCE: f64 = 0.01;

/// The numeric members of one flat JSON object (a report's last line), in order; strings,
/// booleans and `null` are skipped. `None` if `line` is not such an object.
pub fn parse_line(line: &str) -> Option<Vec<(String, f64)>> {
    let body = line.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let after_quote = rest.strip_prefix('"')?;
        let end = after_quote.find('"')?;
        let key = &after_quote[..end];
        let after_key = after_quote[end + 1..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start();
        let (value, tail) = if let Some(s) = after_key.strip_prefix('"') {
            // A string value (no escaped quotes in the report's strings).
            let close = s.find('"')?;
            (None, &s[close + 1..])
        } else {
            let stop = after_key.find(',').unwrap_or(after_key.len());
            (
                after_key[..stop].trim().parse::<f64>().ok(),
                &after_key[stop..],
            )
        };
        if let Some(v) = value {
            out.push((key.to_string(), v));
        }
        rest = tail.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(out)
}

/// Whether a higher value of figure `key` is better (end-to-end throughput and shares).
pub fn higher_is_better(key: &str) -> bool {
    key.starts_with("e2e_")
}

/// One figure compared with its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The figure's JSON key.
    pub key: String,
    /// Median over the baseline's runs.
    pub base: f64,
    /// Relative run-to-run spread over the baseline's runs ((max − min) / median; 0 for one run).
    pub spread: f64,
    /// The new run's value.
    pub now: f64,
    /// Relative change in the worse direction: positive means worse (e.g. 0.05 = 5 % worse).
    pub worse_by: f64,
    /// Worse by more than the spread (and [`MIN_TOLERANCE`]).
    pub regressed: bool,
}

/// Compares `now` (one run's figures) with `runs` (the baseline's runs), figure by figure,
/// for every figure of `now` present in at least one baseline run.
pub fn compare(runs: &[Vec<(String, f64)>], now: &[(String, f64)]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (key, v) in now {
        let mut past: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.iter().find(|(k, _)| k == key).map(|(_, x)| *x))
            .filter(|x| x.is_finite())
            .collect();
        if past.is_empty() || !v.is_finite() {
            continue;
        }
        let base = median(&mut past);
        let spread = if past.len() > 1 { spread(&past) } else { 0.0 };
        let spread = if spread.is_finite() { spread } else { 0.0 };
        let tolerance = spread.max(MIN_TOLERANCE);
        let (worse_by, regressed) = if base == 0.0 {
            // Allocation counts: any allocation where there was none is a regression.
            let worse = if higher_is_better(key) { -*v } else { *v };
            (worse, worse > 0.0)
        } else {
            let rel = (v - base) / base.abs();
            let worse = if higher_is_better(key) { -rel } else { rel };
            (worse, worse > tolerance)
        };
        rows.push(Row {
            key: key.clone(),
            base,
            spread,
            now: *v,
            worse_by,
            regressed,
        });
    }
    rows
}

/// The comparison as a Markdown table, every figure, regressions marked.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| figure | baseline (median) | run-to-run spread | now | change (+ = worse) | |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.4} | {:.1} % | {:.4} | {:+.1} % | {} |\n",
            r.key,
            r.base,
            r.spread * 100.0,
            r.now,
            r.worse_by * 100.0,
            if r.regressed { "**regression**" } else { "ok" }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn parses_the_report_line() {
        let line = r#"{"quick":false,"machine":"AMD EPYC, 2 cores","goals_met":17,"write_nostd_1KiB_original_vs_floor":2.7012,"e2e_std_1MiB_1sender_vs_raw":0.9100,"read_x":null}"#;
        let got = parse_line(line).unwrap();
        assert_eq!(
            got,
            run(&[
                ("goals_met", 17.0),
                ("write_nostd_1KiB_original_vs_floor", 2.7012),
                ("e2e_std_1MiB_1sender_vs_raw", 0.91),
            ])
        );
        assert_eq!(parse_line("not json"), None);
    }

    /// Three baseline runs with some noise, then a run where one path is slowed down: exactly
    /// that path is flagged, the others (noise within their spread, improvements) are not.
    #[test]
    fn flags_the_slowed_path_and_no_other() {
        let runs = [
            run(&[
                ("write_a", 2.70),
                ("write_b", 1.10),
                ("e2e_c", 0.90),
                ("alloc", 0.0),
            ]),
            run(&[
                ("write_a", 2.80),
                ("write_b", 1.11),
                ("e2e_c", 0.85),
                ("alloc", 0.0),
            ]),
            run(&[
                ("write_a", 2.75),
                ("write_b", 1.12),
                ("e2e_c", 0.95),
                ("alloc", 0.0),
            ]),
        ];
        // write_a: within its 3.6 % spread; e2e_c: better; write_b: 10 % slower (spread 1.8 %).
        let now = run(&[
            ("write_a", 2.84),
            ("write_b", 1.22),
            ("e2e_c", 0.99),
            ("alloc", 0.0),
        ]);
        let rows = compare(&runs, &now);
        let flagged: Vec<&str> = rows
            .iter()
            .filter(|r| r.regressed)
            .map(|r| r.key.as_str())
            .collect();
        assert_eq!(flagged, ["write_b"]);
        let b = rows.iter().find(|r| r.key == "write_b").unwrap();
        assert!((b.base - 1.11).abs() < 1e-9 && (b.spread - 0.02 / 1.11).abs() < 1e-9);
        assert!(
            table(&rows)
                .contains("| write_b | 1.1100 | 1.8 % | 1.2200 | +9.9 % | **regression** |")
        );

        // The same slowdown of an end-to-end figure (lower is worse there), and an allocation.
        let now = run(&[
            ("write_a", 2.75),
            ("write_b", 1.11),
            ("e2e_c", 0.70),
            ("alloc", 1.0),
        ]);
        let flagged: Vec<String> = compare(&runs, &now)
            .into_iter()
            .filter(|r| r.regressed)
            .map(|r| r.key)
            .collect();
        assert_eq!(flagged, ["e2e_c", "alloc"]);
    }

    #[test]
    fn one_run_baselines_use_the_minimum_tolerance() {
        let runs = [run(&[("write_a", 2.0)])];
        let small = compare(&runs, &run(&[("write_a", 2.015), ("new_figure", 1.0)]));
        assert_eq!(
            small.len(),
            1,
            "figures missing from the baseline are not compared"
        );
        assert!(!small[0].regressed);
        assert!(compare(&runs, &run(&[("write_a", 2.03)]))[0].regressed);
    }
}
