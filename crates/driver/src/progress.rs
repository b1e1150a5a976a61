//! A progress bar for long top-level `for` loops: when the outermost loop has run for a
//! second and standard error is a terminal, an `indicatif` bar appears on standard error
//! and follows the iterations; it disappears when the loop ends. Output printed while it
//! is shown goes above it (`suspend`; a hidden bar would drop lines given to `println`).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};

/// A loop shows a bar once it has run this long.
pub const DELAY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Progress {
    /// Bars are drawn only when this is set (standard error is a terminal).
    pub enabled: bool,
    /// Loops running, outermost first; only the outermost has a bar.
    depth: usize,
    start: Option<Instant>,
    /// The outermost loop's bar: hidden for its first second (so that its estimate of the
    /// time left has the whole loop to go on), then drawn.
    bar: Option<ProgressBar>,
    shown: bool,
}

impl Progress {
    pub fn started(&mut self, iterations: u64) {
        self.depth += 1;
        if self.depth == 1 && self.enabled {
            self.start = Some(Instant::now());
            let bar = ProgressBar::with_draw_target(Some(iterations), ProgressDrawTarget::hidden());
            let style = ProgressStyle::with_template("{wide_bar} {pos}/{len} [{elapsed} < {eta}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            self.bar = Some(bar);
            self.shown = false;
        }
    }

    /// The outermost loop begins iteration `done`.
    pub fn step(&mut self, done: u64) {
        if self.depth != 1 {
            return;
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            if !self.shown && self.start.is_some_and(|s| s.elapsed() >= DELAY) {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                self.shown = true;
            }
        }
    }

    pub fn ended(&mut self) {
        if self.depth == 1 {
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
            self.start = None;
            self.shown = false;
        }
        self.depth = self.depth.saturating_sub(1);
    }

    /// Runs `f` (which prints) with the bar, if one is shown, out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) if self.shown => bar.suspend(f),
            _ => f(),
        }
    }

    /// True while a bar is on the screen.
    pub fn visible(&self) -> bool {
        self.shown
    }
}
