//! The audit log's entries: the server writes them, the API and the dashboard show them.

use serde::{Deserialize, Serialize};

/// One control action, as the audit log records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    pub at_unix_ms: u64,
    /// Who acted: a user or token name, or "anonymous" when authentication is off.
    pub user: String,
    pub action: String,
    pub target: String,
    /// "ok", or why it was refused.
    pub outcome: String,
}
