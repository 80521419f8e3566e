//! Captured log records and the query for them: the runtime keeps them, the API and the
//! Logs page read them.

use serde::{Deserialize, Serialize};

/// One captured event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub seq: u64,
    pub at_unix_ms: u64,
    /// trace, debug, info, warn or error.
    pub level: String,
    pub source: String,
    pub message: String,
    /// The event's other fields, formatted.
    pub fields: Vec<(String, String)>,
}

/// What to read. Every part is optional; the server checks the level and the glob.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogFilter {
    /// The least severe level to include: trace, debug, info, warn, error.
    pub level: Option<String>,
    /// A glob over the source, such as `worker-*`.
    pub source: Option<String>,
    /// Text in the message or a field.
    pub q: Option<String>,
    /// Only records after this sequence number.
    pub since: Option<u64>,
    /// At most this many, the newest.
    pub limit: Option<usize>,
}

/// Records a filter admits, oldest first, and the newest sequence number there is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    pub records: Vec<LogRecord>,
    /// Pass as `since` to get only what comes next.
    pub latest: u64,
}
