//! The progress bar of long commands: drawn only once a run has lasted a second, so short
//! runs (and tests) stay quiet.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// Draws a progress bar only once a run has lasted a second: short runs stay quiet.
pub struct Progress {
    /// Ticks to do in all.
    total: u64,
    /// When the run began, to decide whether it is long enough to show a bar.
    started: Instant,
    /// The bar, once shown.
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A run of `total` ticks starting now.
    pub fn new(total: u64) -> Self {
        Progress {
            total,
            started: Instant::now(),
            bar: None,
        }
    }

    /// `done` ticks are done.
    pub fn update(&mut self, done: u64) {
        if self.bar.is_none() && self.started.elapsed() >= Duration::from_secs(1) {
            let bar = ProgressBar::new(self.total);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} ticks ({per_sec}, eta {eta})")
            {
                bar.set_style(style);
            }
            self.bar = Some(bar);
        }
        if let Some(b) = &self.bar {
            b.set_position(done.min(self.total));
        }
    }

    /// Removes the bar, if one was drawn.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
