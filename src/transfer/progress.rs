//! Progress of export, import and verify: an indicatif bar (bytes, files, rate, ETA) when
//! stderr is a terminal, otherwise a plain log line every few seconds and one at the end.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often the plain log line is written.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// A progress reporter for one phase.
pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    files_total: u64,
    bytes_total: u64,
    files: u64,
    bytes: u64,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    /// Starts a phase over `files` files of `bytes` bytes in total.
    pub fn new(label: &str, files: u64, bytes: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(bytes);
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {msg} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            b.set_style(style);
            b.set_prefix(label.to_string());
            b
        });
        let now = Instant::now();
        Progress {
            label: label.to_string(),
            bar,
            files_total: files,
            bytes_total: bytes,
            files: 0,
            bytes: 0,
            started: now,
            last_log: now,
        }
    }

    /// Counts bytes processed.
    pub fn bytes(&mut self, n: u64) {
        self.bytes += n;
        if let Some(b) = &self.bar {
            b.inc(n);
        } else if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            self.log();
        }
    }

    /// Counts one file done.
    pub fn file_done(&mut self) {
        self.files += 1;
        if let Some(b) = &self.bar {
            b.set_message(format!("{}/{} files", self.files, self.files_total));
        }
    }

    fn log(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.bytes as f64 / secs;
        let eta = if rate > 0.0 {
            (self.bytes_total.saturating_sub(self.bytes)) as f64 / rate
        } else {
            0.0
        };
        tracing::info!(
            "{}: {}/{} files, {:.1}/{:.1} MiB, {:.1} MiB/s, ETA {:.0}s",
            self.label,
            self.files,
            self.files_total,
            self.bytes as f64 / 1048576.0,
            self.bytes_total as f64 / 1048576.0,
            rate / 1048576.0,
            eta
        );
    }

    /// Ends the phase (clears the bar, logs the totals).
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.log();
    }
}
