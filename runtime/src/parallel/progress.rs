//! Progress output: joblib's `[Parallel(n_jobs=N)]: Done ...` lines on stderr (on stdout from
//! `verbose = 50`, as joblib), character for character, or a live bar.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::options::{Backend, Options};

/// A run's progress output.
pub(crate) struct Progress {
    verbose: u32,
    workers: usize,
    total: Option<usize>,
    batch: usize,
    start: Instant,
    done: AtomicUsize,
    printing: Mutex<()>,
    bar: Option<indicatif::ProgressBar>,
    /// Lines or a bar are shown: tasks are counted.
    pub(crate) enabled: bool,
}

impl Progress {
    pub(crate) fn start(
        opts: &Options,
        total: Option<usize>,
        workers: usize,
        backend: Backend,
    ) -> Self {
        let bar = opts.progress.then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                total.map(|t| t as u64),
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "[Parallel(n_jobs={prefix})] {bar:40} {pos}/{len} tasks | elapsed: {elapsed} | remaining: {eta}",
                )
                .expect("a valid template"),
            );
            bar.set_prefix(workers.to_string());
            bar
        });
        let verbose = if bar.is_some() { 0 } else { opts.verbose };
        let batch = opts.batch.report_every(total, workers);
        let progress = Progress {
            verbose,
            workers,
            total,
            batch,
            start: Instant::now(),
            done: AtomicUsize::new(0),
            printing: Mutex::new(()),
            enabled: verbose > 0 || bar.is_some(),
            bar,
        };
        // joblib's sequential runs take a path of their own, which does not say this.
        if verbose > 0 && !matches!(backend, Backend::Sequential) {
            progress.print(&format!(
                "Using backend {} with {workers} concurrent workers.",
                backend.joblib()
            ));
        }
        progress
    }

    /// joblib's width of the counts: the digits of the total, or 3 when it is not known.
    fn width(&self) -> usize {
        match self.total {
            Some(total) if total > 0 => total.ilog10() as usize + 1,
            _ => 3,
        }
    }

    /// Counts a finished task, and shows the progress.
    pub(crate) fn count_one(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            return;
        }
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if done.is_multiple_of(self.batch) && Some(done) != self.total {
            // Lines from several workers must not interleave.
            let _printing = self.printing.lock().unwrap_or_else(|e| e.into_inner());
            if !skip_line(done / self.batch - 1, self.verbose) {
                let (width, elapsed) = (self.width(), self.elapsed());
                self.print(&match self.total {
                    Some(total) => {
                        format!("Done {done:>width$} out of {total:>width$} | elapsed: {elapsed}")
                    }
                    // As wide as the line with a total would be.
                    None => format!(
                        "Done {done:>width$} tasks {:pad$}| elapsed: {elapsed}",
                        "",
                        pad = "out of ".len() + width - "tasks".len()
                    ),
                });
            }
        }
    }

    pub(crate) fn finish(&self, count: usize) {
        if let Some(bar) = &self.bar {
            bar.finish();
        } else if self.verbose > 0 {
            let (width, elapsed) = (self.width(), self.elapsed());
            self.print(&format!(
                "Done {count:>width$} out of {count:>width$} | elapsed: {elapsed} finished"
            ));
        }
    }

    pub(crate) fn abandon(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }

    fn elapsed(&self) -> String {
        short_time(self.start.elapsed().as_secs_f64())
    }

    fn print(&self, line: &str) {
        let line = format!("[Parallel(n_jobs={})]: {line}\n", self.workers);
        // One write, so that lines from several workers never mix.
        let _ = if self.verbose < 50 {
            std::io::stderr().lock().write_all(line.as_bytes())
        } else {
            std::io::stdout().lock().write_all(line.as_bytes())
        };
    }
}

/// joblib's `_verbosity_filter`: whether to skip the line of batch `index` at `verbose`.
/// Every batch is reported above 10; below, lines thin out as the square root of the count.
fn skip_line(index: usize, verbose: u32) -> bool {
    if verbose == 0 {
        return true;
    }
    if verbose > 10 || index == 0 {
        return false;
    }
    let scale = 0.5 * f64::from(11 - verbose).powi(2);
    let now = (index as f64 / scale).sqrt();
    let next = ((index + 1) as f64 / scale).sqrt();
    next.floor() == now.floor()
}

/// joblib's `short_format_time`: `" %5.1fs"`, or `"%4.1fmin"` past a minute.
fn short_time(secs: f64) -> String {
    if secs > 60.0 {
        format!("{:4.1}min", secs / 60.0)
    } else {
        format!(" {secs:5.1}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verbosity_filter_thins_lines_like_joblib() {
        let shown = |v| (0..100).filter(|&i| !skip_line(i, v)).count();
        assert_eq!(shown(0), 0);
        assert_eq!(shown(11), 100);
        assert!(shown(10) < 20 && shown(10) > 5, "{}", shown(10));
        assert!(shown(5) < shown(10));
        assert_eq!(short_time(0.123), "   0.1s");
        assert_eq!(short_time(125.0), " 2.1min");
    }
}
