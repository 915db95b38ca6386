//! The goal checks the sections record, and the "Goals" table that closes the report.

/// The goal checks: what, the measured figure as printed, whether it was met.
#[derive(Default)]
pub struct Goals(Vec<(String, String, bool)>);

impl Goals {
    /// Records one goal check.
    pub fn check(&mut self, what: impl Into<String>, got: String, met: bool) {
        self.0.push((what.into(), got, met));
    }

    /// How many goals were checked.
    pub fn total(&self) -> usize {
        self.0.len()
    }

    /// How many goals were met.
    pub fn met(&self) -> usize {
        self.0.iter().filter(|(_, _, met)| *met).count()
    }

    /// Prints the "Goals" section: one row per check and the count met.
    pub fn print(&self, quick: bool) {
        println!("## Goals");
        println!();
        println!("| goal | measured | |");
        println!("|---|---|---|");
        for (what, got, met) in &self.0 {
            println!(
                "| {what} | {got} | {} |",
                if *met { "met" } else { "**missed**" }
            );
        }
        println!();
        println!(
            "{} of {} goals met{}.",
            self.met(),
            self.total(),
            if quick {
                " (quick run: not meaningful)"
            } else {
                ""
            }
        );
    }
}
