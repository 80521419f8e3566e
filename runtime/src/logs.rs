//! Log capture: a `tracing` layer that keeps the latest events in a bounded buffer, for
//! the dashboard's Log widget, its Logs page and the logs API. Each record has a sequence
//! number, so a reader asks for what came after the last one it saw.
//!
//! An event's source is its `source` field when it has one (`tracing::warn!(source =
//! "worker-3", ...)`), else its target (the module that logged it).
//!
//! ```
//! use flowdeck_runtime::logs::{LogBuffer, LogQuery};
//! use tracing_subscriber::prelude::*;
//!
//! let logs = LogBuffer::new(1_000);
//! let subscriber = tracing_subscriber::registry().with(logs.layer());
//! tracing::subscriber::with_default(subscriber, || {
//!     tracing::info!(source = "worker-1", items = 3, "batch stored");
//!     tracing::error!(source = "db", "connection lost");
//! });
//! let found = logs.query(&LogQuery::parse(Some("warn"), Some("d*"), None, None, None).unwrap());
//! assert_eq!(found.len(), 1);
//! assert_eq!(found[0].message, "connection lost");
//! ```

use std::{
    collections::VecDeque,
    fmt::Write,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

pub use flowdeck_protocol::logs::{LogFilter, LogPage, LogRecord};
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::{field::Field, Event, Level, Subscriber};
use tracing_subscriber::{layer::Context, Layer};

struct Inner {
    cap: usize,
    /// Shared, so that a query copies pointers under the lock and filters after it: a
    /// slow query (a glob, a text search over 10,000 records) never holds up the threads
    /// that log, which are the pipeline's workers.
    records: Mutex<VecDeque<Arc<LogRecord>>>,
    /// The newest sequence number, for live readers to wait on.
    latest: watch::Sender<u64>,
}

/// The bounded buffer. Cheap to clone: clones share the records.
#[derive(Clone)]
pub struct LogBuffer(Arc<Inner>);

impl std::fmt::Debug for LogBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LogBuffer({} of {})",
            self.0.records.lock().len(),
            self.0.cap
        )
    }
}

/// What to read: records after `since`, at `level` or worse, from sources matching a
/// glob, containing some text; at most `limit`, oldest first.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    pub level: Option<Level>,
    pub source: Option<glob::Pattern>,
    pub text: Option<String>,
    pub since: Option<u64>,
    pub limit: Option<usize>,
}

impl LogQuery {
    /// Parses the API's parameters; the error names the bad one.
    pub fn parse(
        level: Option<&str>,
        source: Option<&str>,
        text: Option<&str>,
        since: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Self, String> {
        let level = level
            .map(|l| {
                l.parse::<Level>().map_err(|_| {
                    format!("level must be one of trace, debug, info, warn, error; got {l:?}")
                })
            })
            .transpose()?;
        let source = source
            .map(|s| glob::Pattern::new(s).map_err(|e| format!("source is not a valid glob: {e}")))
            .transpose()?;
        Ok(LogQuery {
            level,
            source,
            text: text.map(str::to_lowercase),
            since,
            limit,
        })
    }

    /// Parses the wire filter.
    pub fn from_filter(f: &LogFilter) -> Result<Self, String> {
        Self::parse(
            f.level.as_deref(),
            f.source.as_deref(),
            f.q.as_deref(),
            f.since,
            f.limit,
        )
    }

    fn admits(&self, r: &LogRecord) -> bool {
        self.since.is_none_or(|s| r.seq > s)
            && self
                .level
                .is_none_or(|min| r.level.parse::<Level>().is_ok_and(|l| l <= min))
            && self.source.as_ref().is_none_or(|p| p.matches(&r.source))
            && self.text.as_ref().is_none_or(|t| {
                r.message.to_lowercase().contains(t)
                    || r.fields.iter().any(|(_, v)| v.to_lowercase().contains(t))
            })
    }
}

impl LogBuffer {
    /// Keeps the latest `cap` records.
    pub fn new(cap: usize) -> Self {
        LogBuffer(Arc::new(Inner {
            cap: cap.max(1),
            records: Mutex::new(VecDeque::new()),
            latest: watch::Sender::new(0),
        }))
    }

    /// The layer to add to the process's subscriber.
    pub fn layer(&self) -> CaptureLayer {
        CaptureLayer(self.clone())
    }

    pub fn push(
        &self,
        level: Level,
        source: String,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut records = self.0.records.lock();
        let seq = records.back().map_or(1, |r| r.seq + 1);
        if records.len() == self.0.cap {
            records.pop_front();
        }
        records.push_back(Arc::new(LogRecord {
            seq,
            at_unix_ms,
            level: level.as_str().to_lowercase(),
            source,
            message,
            fields,
        }));
        drop(records);
        self.0.latest.send_replace(seq);
    }

    /// The records a query admits, oldest first; with a limit, the newest that many.
    pub fn query(&self, q: &LogQuery) -> Vec<LogRecord> {
        let candidates: Vec<Arc<LogRecord>> = {
            let records = self.0.records.lock();
            // Sequence numbers ascend: skip what a follower has seen without looking at it.
            let from = q
                .since
                .map_or(0, |since| records.partition_point(|r| r.seq <= since));
            records.range(from..).cloned().collect()
        };
        let mut found: Vec<LogRecord> = candidates
            .iter()
            .filter(|r| q.admits(r))
            .map(|r| LogRecord::clone(r))
            .collect();
        if let Some(limit) = q.limit {
            let cut = found.len().saturating_sub(limit);
            found.drain(..cut);
        }
        found
    }

    /// The records a query admits, with the newest sequence number there is.
    pub fn page(&self, q: &LogQuery) -> LogPage {
        LogPage {
            latest: *self.0.latest.borrow(),
            records: self.query(q),
        }
    }

    /// Changes whenever a record arrives (holds the newest sequence number).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.latest.subscribe()
    }
}

/// The `tracing` layer that fills a [`LogBuffer`].
pub struct CaptureLayer(LogBuffer);

#[derive(Default)]
struct Visitor {
    message: String,
    source: Option<String>,
    fields: Vec<(String, String)>,
}

impl tracing::field::Visit for Visitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "source" => self.source = Some(value.to_owned()),
            name => self.fields.push((name.to_owned(), value.to_owned())),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        match field.name() {
            "message" => self.message = text,
            "source" => self.source = Some(text),
            name => self.fields.push((name.to_owned(), text)),
        }
    }
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = Visitor::default();
        event.record(&mut v);
        let meta = event.metadata();
        let source = v.source.unwrap_or_else(|| meta.target().to_owned());
        self.0.push(*meta.level(), source, v.message, v.fields);
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::prelude::*;

    use super::*;

    #[test]
    fn the_buffer_is_bounded_and_filters_by_level_source_text_and_since() {
        let logs = LogBuffer::new(3);
        let subscriber = tracing_subscriber::registry().with(logs.layer());
        let mut seen = logs.subscribe();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("dropped by the bound");
            tracing::info!(source = "worker-1", n = 1, "first");
            tracing::warn!(source = "worker-2", "second Batch");
            tracing::error!(source = "db", "third");
        });
        assert!(seen.has_changed().unwrap());
        assert_eq!(*seen.borrow_and_update(), 4);
        let all = logs.query(&LogQuery::default());
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(all[0].fields, vec![("n".to_owned(), "1".to_owned())]);
        assert_eq!(all[0].level, "info");
        let q = |l, s, t, since| {
            logs.query(&LogQuery::parse(l, s, t, since, None).unwrap())
                .len()
        };
        assert_eq!(q(Some("warn"), None, None, None), 2);
        assert_eq!(q(None, Some("worker-*"), None, None), 2);
        assert_eq!(q(None, Some("worker-?"), Some("batch"), None), 1);
        assert_eq!(q(None, None, None, Some(3)), 1);
        assert_eq!(
            logs.query(&LogQuery {
                limit: Some(1),
                ..LogQuery::default()
            })[0]
                .seq,
            4
        );
        assert!(LogQuery::parse(Some("loud"), None, None, None, None)
            .unwrap_err()
            .contains("level"));
        assert!(LogQuery::parse(None, Some("[x"), None, None, None)
            .unwrap_err()
            .contains("glob"));
    }
}
