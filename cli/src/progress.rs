//! The progress display of a local run, on stderr when it is a terminal.
//!
//! Until the plan is known it is a spinner. Then it is a bar of input bytes with the files done
//! out of the run's total, the rate and the time left; a large file moves it as its bytes are
//! read, not only when it ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use csvlake_contract::payload::FileResult;
use csvlake_converter::convert::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// What the bar shows once the plan is known.
const BAR: &str = "{spinner} [{elapsed_precise}] [{wide_bar}] {decimal_bytes}/{decimal_total_bytes} · {msg} · \
                   {decimal_bytes_per_sec} · ETA {eta}";

/// The progress of one run.
#[derive(Debug)]
pub struct RunProgress {
    bar: ProgressBar,
    files_done: AtomicU64,
    files_total: AtomicU64,
}

impl RunProgress {
    /// A display, or none at all when `hidden`.
    pub fn new(hidden: bool) -> Self {
        let bar = if hidden { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message("planning");
        if !hidden {
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        Self { bar, files_done: AtomicU64::new(0), files_total: AtomicU64::new(0) }
    }

    /// The plan's totals: `files` to convert, of `bytes` in all.
    pub fn planned(&self, files: u64, bytes: u64) {
        self.files_total.store(files, Ordering::Relaxed);
        self.bar.set_length(bytes);
        if let Ok(style) = ProgressStyle::with_template(BAR) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.show_files();
    }

    /// Removes the display.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Bytes read so far, never past the total (a retried batch reads its files again).
    #[cfg(test)]
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Files done so far.
    #[cfg(test)]
    pub fn files_done(&self) -> u64 {
        self.files_done.load(Ordering::Relaxed)
    }

    fn show_files(&self) {
        let (done, total) = (self.files_done.load(Ordering::Relaxed), self.files_total.load(Ordering::Relaxed));
        // Files converted again (a retry, or the Conform Map) do not count twice.
        self.bar.set_message(format!("{}/{total} files", done.min(total)));
    }
}

impl Progress for RunProgress {
    fn read(&self, bytes: u64) {
        let len = self.bar.length().unwrap_or(u64::MAX);
        self.bar.set_position(self.bar.position().saturating_add(bytes).min(len));
    }

    fn file_done(&self, _: &FileResult) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.show_files();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_counts_bytes_against_the_plan_and_never_passes_it() {
        let p = RunProgress::new(true);
        p.planned(2, 1_000);
        p.read(600);
        assert_eq!(p.position(), 600);
        p.file_done(&FileResult::failed(
            "a.csv",
            600,
            1,
            csvlake_contract::FileError { kind: "bad_input.empty".into(), message: "empty".into(), line: None },
        ));
        p.read(400);
        p.read(400);
        assert_eq!(p.position(), 1_000, "a retried batch reads again, but the bar stops at the total");
        assert_eq!(p.files_done(), 1);
    }
}
