//! Progress in the terminal for a run, as AntFlow's `progress=True` and its dashboards
//! show it: a bar (`[████░░░] 42% | 126/300 | 24.5/s | 2 failed | ETA 5s`) when the run's
//! size is known, a spinner and counts when it is not; per stage (`detailed`); and the
//! error summary (`full`). Drawn by indicatif, redrawn at a set interval.
//!
//! When standard error is not a terminal (CI, `| tee`, a log file), a plain status line is
//! printed every few seconds instead, with no escape codes. Log lines printed through
//! [`LogWriter`] (give it to `tracing_subscriber::fmt().with_writer(..)`) go above the
//! bars instead of through them.

use std::{
    io::{IsTerminal, Write},
    sync::Arc,
    time::Duration,
};

use flowdeck_protocol::{format, ErrorSummary, PipelineState, Snapshot};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;

use crate::{watch::every_until_end, PipelineHandle};

impl PipelineHandle {
    /// Shows this running pipeline's progress in the terminal until it ends (what
    /// `Line::progress` does from the start).
    pub fn show_progress(&self, p: Progress) {
        tokio::spawn(p.watch(self.clone()));
    }
}

/// How much is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// One line: the bar (or spinner), counts, items/s, failures, ETA.
    Compact,
    /// Plus a line per stage: queued, running, done, failed, throughput, workers busy.
    Detailed,
    /// Plus the failures by error kind and by stage.
    Full,
}

/// Where the progress goes.
#[derive(Clone)]
enum Target {
    /// Standard error: bars on a terminal, plain lines otherwise.
    Stderr,
    /// Plain lines into a writer (a file, a test's buffer).
    Writer(Arc<Mutex<dyn Write + Send>>),
}

/// A run's progress display: `Line::progress(Progress::compact())`.
#[derive(Clone)]
pub struct Progress {
    view: View,
    every: Duration,
    plain_every: Duration,
    target: Target,
}

impl Progress {
    pub fn compact() -> Self {
        Progress::new(View::Compact)
    }
    pub fn detailed() -> Self {
        Progress::new(View::Detailed)
    }
    pub fn full() -> Self {
        Progress::new(View::Full)
    }

    pub fn new(view: View) -> Self {
        Progress {
            view,
            every: Duration::from_millis(200),
            plain_every: Duration::from_secs(5),
            target: Target::Stderr,
        }
    }

    /// How often the bars are redrawn (default 200 ms).
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(20));
        self
    }

    /// How often a plain status line is printed when the output is not a terminal
    /// (default 5 s).
    pub fn plain_every(mut self, every: Duration) -> Self {
        self.plain_every = every.max(Duration::from_millis(20));
        self
    }

    /// Plain status lines into `w` instead of standard error.
    pub fn to_writer(mut self, w: impl Write + Send + 'static) -> Self {
        self.target = Target::Writer(Arc::new(Mutex::new(w)));
        self
    }

    /// Follows the pipeline until it ends, then draws its final state once more.
    pub(crate) async fn watch(self, handle: PipelineHandle) {
        let tty = matches!(self.target, Target::Stderr) && std::io::stderr().is_terminal();
        let mut out: Box<dyn Output> = if tty {
            Box::new(Bars::new(self.view))
        } else {
            let w: Arc<Mutex<dyn Write + Send>> = match &self.target {
                Target::Writer(w) => w.clone(),
                Target::Stderr => Arc::new(Mutex::new(std::io::stderr())),
            };
            Box::new(Plain { view: self.view, w })
        };
        let every = if tty { self.every } else { self.plain_every };
        every_until_end(&handle, every, || {
            let s = handle.snapshot();
            out.update(&s, &errors(&handle, &s, self.view));
        })
        .await;
        let s = handle.snapshot();
        out.finish(&s, &errors(&handle, &s, self.view));
    }
}

/// The failures by kind and by stage, for the full view (without copying the tracker's
/// list of recent failures).
fn errors(handle: &PipelineHandle, s: &Snapshot, view: View) -> ErrorSummary {
    if view != View::Full {
        return ErrorSummary::default();
    }
    let by_kind = handle.tracker().errors_by_kind();
    ErrorSummary {
        total: by_kind.iter().map(|(_, n)| n).sum(),
        by_kind,
        by_stage: s.stages.iter().map(|st| st.failed).collect(),
        recent: Vec::new(),
    }
}

trait Output: Send {
    fn update(&mut self, s: &Snapshot, e: &ErrorSummary);
    fn finish(&mut self, s: &Snapshot, e: &ErrorSummary);
}

/// Items that left the pipeline: the bar's position.
fn done(s: &Snapshot) -> u64 {
    s.totals.completed + s.totals.failed + s.totals.cancelled
}

/// `24.5/s | 2 failed | ETA 5s`.
fn tail(s: &Snapshot) -> String {
    let mut t = format::rate(s.totals.throughput);
    t.push_str(&format!(" | {} failed", s.totals.failed));
    if s.totals.retried > 0 {
        t.push_str(&format!(" | {} retried", s.totals.retried));
    }
    if let Some(eta) = s.eta_ms.filter(|_| s.state == PipelineState::Running) {
        t.push_str(&format!(" | ETA {}", format::millis(eta)));
    }
    t
}

/// One line per stage.
fn stage_lines(s: &Snapshot) -> Vec<String> {
    let width = s.stages.iter().map(|st| st.name.len()).max().unwrap_or(0);
    s.stages
        .iter()
        .map(|st| {
            let busy = st
                .workers
                .iter()
                .filter(|w| w.state == crate::protocol::WorkerState::Busy)
                .count();
            format!(
                "  {:<width$}  queued {:>6}  running {:>4}  done {:>8}  failed {:>6}  {:>9}  busy {busy}/{}{}",
                st.name,
                st.queued,
                st.in_flight,
                st.completed,
                st.failed,
                format::rate(st.throughput),
                st.workers.len(),
                if st.paused { "  (paused)" } else { "" }
            )
        })
        .collect()
}

/// The failures by kind and by stage.
fn error_lines(s: &Snapshot, e: &ErrorSummary) -> Vec<String> {
    // Always two lines: a display that grows while drawn leaves copies of itself behind.
    if e.total == 0 {
        return vec![
            "  failures by kind: none".to_owned(),
            "  failures by stage: none".to_owned(),
        ];
    }
    let kinds: Vec<String> = e
        .by_kind
        .iter()
        .take(6)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let stages: Vec<String> = e
        .by_stage
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| format!("{} {n}", s.stages.get(i).map_or("?", |st| st.name.as_str())))
        .collect();
    vec![
        format!("  failures by kind: {}", kinds.join(", ")),
        format!("  failures by stage: {}", stages.join(", ")),
    ]
}

/// The bar on a terminal: one indicatif bar whose message carries the stage and failure
/// lines below it. One bar, not a `MultiProgress` of one per line: a log line printed while
/// several bars redrew left copies of some behind.
struct Bars {
    view: View,
    bar: ProgressBar,
    /// The bar knows the run's size.
    sized: bool,
}

impl Bars {
    fn new(view: View) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
        bar.set_style(spinner_style());
        *HELD_LOGS.lock() = Some(Vec::new());
        Bars {
            view,
            bar,
            sized: false,
        }
    }

    fn draw(&mut self, s: &Snapshot, e: &ErrorSummary) {
        // The log lines written since the last redraw, printed above the bar by this task
        // alone: drawing and printing from several threads left lines of the bar behind.
        let logs = HELD_LOGS
            .lock()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        if !logs.is_empty() {
            self.bar.suspend(|| {
                let _ = std::io::stderr().write_all(&logs);
            });
        }
        if let (Some(n), false) = (s.expected, self.sized) {
            self.bar.set_length(n);
            self.bar.set_style(bar_style());
            self.sized = true;
        }
        let mut msg = tail(s);
        if self.view != View::Compact {
            for l in stage_lines(s) {
                msg.push('\n');
                msg.push_str(&l);
            }
        }
        if self.view == View::Full {
            for l in error_lines(s, e) {
                msg.push('\n');
                msg.push_str(&l);
            }
        }
        self.bar.set_position(done(s));
        self.bar.set_prefix(s.pipeline.clone());
        self.bar.set_message(msg);
        self.bar.tick();
    }
}

impl Output for Bars {
    fn update(&mut self, s: &Snapshot, e: &ErrorSummary) {
        self.draw(s, e);
    }

    /// The bar goes, and the final status stays as plain lines.
    fn finish(&mut self, s: &Snapshot, e: &ErrorSummary) {
        // Log writers wait meanwhile, then write straight to standard error.
        let mut held = HELD_LOGS.lock();
        let logs = held.take().unwrap_or_default();
        self.bar.finish_and_clear();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&logs);
        let _ = err.write_all(status_text(self.view, s, e, true).as_bytes());
        drop(held);
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {pos} done | {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:.bold} [{bar:30.cyan/blue}] {percent:>3}% | {pos}/{len} | {msg}",
    )
    .map(|s| s.progress_chars("█▓░"))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Plain lines, every few seconds: for a log file or CI.
struct Plain {
    view: View,
    w: Arc<Mutex<dyn Write + Send>>,
}

/// The status as plain lines: what a log file gets every few seconds, and what the
/// terminal keeps once the run is over.
fn status_text(view: View, s: &Snapshot, e: &ErrorSummary, last: bool) -> String {
    let count = match s.expected {
        Some(n) if n > 0 => format!(
            "{}/{n} ({:.0}%)",
            done(s),
            done(s) as f64 * 100.0 / n as f64
        ),
        _ => format!("{} done", done(s)),
    };
    let state = if last {
        format!(" {:?}", s.state).to_lowercase()
    } else {
        String::new()
    };
    let mut text = format!("{}{state}: {count} | {}\n", s.pipeline, tail(s));
    if view != View::Compact {
        for l in stage_lines(s) {
            text.push_str(&l);
            text.push('\n');
        }
    }
    if view == View::Full {
        for l in error_lines(s, e) {
            text.push_str(&l);
            text.push('\n');
        }
    }
    text
}

impl Plain {
    fn print(&mut self, s: &Snapshot, e: &ErrorSummary, last: bool) {
        let text = status_text(self.view, s, e, last);
        let mut w = self.w.lock();
        let _ = w.write_all(text.as_bytes());
        let _ = w.flush();
    }
}

impl Output for Plain {
    fn update(&mut self, s: &Snapshot, e: &ErrorSummary) {
        self.print(s, e, false);
    }

    fn finish(&mut self, s: &Snapshot, e: &ErrorSummary) {
        self.print(s, e, true);
    }
}

/// While a bar is drawn, the log lines written since its last redraw: the progress task
/// prints them above the bar at each redraw (every 200 ms). `None` while no bar is drawn.
static HELD_LOGS: Mutex<Option<Vec<u8>>> = Mutex::new(None);

/// Held log bytes beyond this go straight out rather than grow without bound.
const HELD_MAX: usize = 1 << 20;

/// A writer for log lines (`tracing_subscriber::fmt().with_writer(LogWriter)`) that
/// prints them above the progress bar while a run shows one, and to standard error
/// otherwise, so that a log line never tears the bar.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut held = HELD_LOGS.lock();
        match held.as_mut() {
            Some(logs) if logs.len() + buf.len() <= HELD_MAX => logs.extend_from_slice(buf),
            _ => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}
