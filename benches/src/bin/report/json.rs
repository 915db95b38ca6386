//! The last line of the report: one JSON object holding every ratio the sections recorded.

/// Every ratio, in the order the sections recorded them, for the JSON line.
#[derive(Default)]
pub struct Ratios(Vec<(String, f64)>);

impl Ratios {
    /// Records `v` under `key`.
    pub fn put(&mut self, key: impl Into<String>, v: f64) {
        self.0.push((key.into(), v));
    }

    /// The JSON object: `extra`'s members first (values already in JSON form), then every
    /// ratio with four decimals (`null` when not finite).
    pub fn json(&self, extra: &[(&str, String)]) -> String {
        let mut parts: Vec<String> = extra.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        for (k, v) in &self.0 {
            let v = if v.is_finite() {
                format!("{:.4}", v)
            } else {
                "null".to_string()
            };
            parts.push(format!("\"{k}\":{v}"));
        }
        format!("{{{}}}", parts.join(","))
    }
}
