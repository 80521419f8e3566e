//! What the server says on its terminal: a banner with the URL, a one-line status every
//! few seconds, and what happens after Ctrl-C (draining, how many items are left, a
//! countdown). The full logs go to the dashboard's Logs page, and to the terminal only
//! when asked (`-v`).
//!
//! Nothing written here may block the runtime. A terminal that is paused, a `| less` left
//! unscrolled or a slow log collector fills the 64 KiB pipe, and a plain `write(1, ...)`
//! then blocks a tokio worker thread, which froze the whole server. Every line goes through
//! tracing-appender's non-blocking writer instead: a bounded queue drained by its own
//! thread, lossy when full, counting what it had to drop.

use std::{
    io::{IsTerminal, Write},
    time::Duration,
};

use flowdeck_protocol::{format, Snapshot};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// Lines the writer holds for a slow reader before it drops them.
const BUFFERED_LINES: usize = 10_000;

/// The terminal. Cheap to clone; clones share the writer.
#[derive(Clone)]
pub struct Console {
    out: Option<NonBlocking>,
    tty: bool,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("on", &self.out.is_some())
            .field("tty", &self.tty)
            .finish()
    }
}

impl Console {
    /// Standard output, written without ever blocking. Keep the guard for as long as the
    /// program runs: dropping it flushes what is queued and closes the writer.
    pub fn stdout() -> (Console, WorkerGuard) {
        let (out, guard) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(BUFFERED_LINES)
            .thread_name("flowdeck-stdout")
            .finish(std::io::stdout());
        let console = Console {
            out: Some(out),
            tty: std::io::stdout().is_terminal(),
        };
        (console, guard)
    }

    /// Says nothing (tests, or a program that owns its terminal).
    pub fn silent() -> Console {
        Console {
            out: None,
            tty: false,
        }
    }

    /// The writer, for a `tracing_subscriber::fmt` layer: logs then share the queue and
    /// never block either.
    pub fn writer(&self) -> Option<NonBlocking> {
        self.out.clone()
    }

    /// Whether standard output is a terminal (escape codes and frequent updates are fine).
    pub fn is_terminal(&self) -> bool {
        self.tty
    }

    /// Lines dropped because the reader was too slow.
    pub fn dropped_lines(&self) -> u64 {
        self.out
            .as_ref()
            .map_or(0, |o| o.error_counter().dropped_lines() as u64)
    }

    /// Writes one line; never waits.
    pub fn line(&self, text: &str) {
        if let Some(out) = &self.out {
            let mut out = out.clone();
            let _ = out.write_all(format!("{text}\n").as_bytes());
        }
    }

    /// How often the status line is printed: often on a terminal, less in a log file.
    pub fn status_every(&self) -> Duration {
        if self.tty {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(15)
        }
    }
}

/// The banner: where the dashboard is and what runs.
/// `signals`: whether Ctrl-C is this server's to handle (a foreground `serve`).
pub fn banner(url: &str, s: &Snapshot, signals: bool) -> String {
    let stages: Vec<&str> = s.stages.iter().map(|st| st.name.as_str()).collect();
    let mut text = format!(
        "flowdeck {}: dashboard at {url}\n  pipeline {:?}: {}\n  logs: {url}/logs",
        env!("CARGO_PKG_VERSION"),
        s.pipeline,
        stages.join(" → "),
    );
    if signals {
        text.push_str("\n  Ctrl-C drains the pipeline and stops; press it twice to stop at once");
    }
    text
}

/// One line of status: state, counts, throughput, what is queued and the bottleneck.
pub fn status(s: &Snapshot) -> String {
    let t = &s.totals;
    let mut line = format!(
        "{} · {} done · {} failed · {} · {} queued",
        format!("{:?}", s.state).to_lowercase(),
        t.completed,
        t.failed,
        format::rate(t.throughput),
        t.queued,
    );
    if let Some(b) = s.bottleneck().and_then(|i| s.stages.get(i)) {
        line.push_str(&format!(
            " · bottleneck {} ({:.0}% busy)",
            b.name,
            b.load() * 100.0
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowdeck_protocol::{PipelineState, StageSnapshot, Totals, WorkerSnapshot};

    #[test]
    fn the_status_line_names_counts_rate_and_bottleneck() {
        let s = Snapshot {
            pipeline: "docs".into(),
            state: PipelineState::Running,
            totals: Totals {
                completed: 1200,
                failed: 3,
                queued: 40,
                throughput: 58.34,
                ..Totals::default()
            },
            stages: vec![StageSnapshot {
                name: "enrich".into(),
                queued: 40,
                busy_ratio: 0.95,
                workers: vec![WorkerSnapshot::default()],
                ..StageSnapshot::default()
            }],
            ..Snapshot::default()
        };
        assert_eq!(
            status(&s),
            "running · 1200 done · 3 failed · 58.3/s · 40 queued · bottleneck enrich (95% busy)"
        );
        let b = banner("http://127.0.0.1:3000", &s, true);
        assert!(b.contains("dashboard at http://127.0.0.1:3000"), "{b}");
        assert!(b.contains("\"docs\": enrich"), "{b}");
    }
}
