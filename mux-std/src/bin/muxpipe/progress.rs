//! The progress line on stderr: messages, bytes, rate, drawn by indicatif when stderr is a
//! terminal or when `--progress` asks for it.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// A progress line, or nothing.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// On when `forced` (`--progress`) or stderr is a terminal.
    pub fn new(forced: bool, what: &'static str) -> Self {
        let tty = std::io::stderr().is_terminal();
        if !forced && !tty {
            return Self(None);
        }
        // indicatif hides its line on a non-terminal stderr; `--progress` draws it anyway.
        let target = if tty {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            let term: Box<dyn TermLike> = Box::new(console::Term::stderr());
            ProgressDrawTarget::term_like_with_hz(term, 4)
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {pos} messages, {msg} in {elapsed} ({per_sec} messages)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(what);
        bar.enable_steady_tick(Duration::from_millis(250));
        Self(Some(bar))
    }

    /// Totals so far: messages and bytes. The byte count is formatted once every 256 calls
    /// (the line is drawn 4 times a second anyway).
    #[inline]
    pub fn set(&self, messages: u64, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(messages);
            if messages.is_multiple_of(256) {
                bar.set_message(indicatif::HumanBytes(bytes).to_string());
            }
        }
    }

    /// Draws the final totals and leaves the line.
    pub fn finish(&self, messages: u64, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(messages);
            bar.set_message(indicatif::HumanBytes(bytes).to_string());
            bar.finish();
        }
    }
}
