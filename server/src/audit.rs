//! The audit log: who did what to the pipeline, when, and how it ended. Kept in memory
//! (the newest entries) and in the run store when there is one. The control API writes it;
//! the API and the pages read it.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

pub use flowdeck_protocol::AuditEntry;
use parking_lot::Mutex;

/// Entries the audit log keeps (the oldest go first).
const AUDIT_ENTRIES: usize = 1000;

/// The bounded log of control actions, newest last; also kept in the run store, when
/// there is one.
#[derive(Clone, Default)]
pub struct Audit(
    Arc<Mutex<VecDeque<AuditEntry>>>,
    Option<flowdeck_store::Store>,
);

impl Audit {
    pub fn new(store: Option<flowdeck_store::Store>) -> Self {
        Audit(Arc::default(), store)
    }

    /// Records an action by `user` on `target` and how it ended (`"ok"`, or the error the
    /// user was answered).
    pub fn record(&self, user: &str, action: &str, target: &str, outcome: String) {
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        tracing::info!(user, action, target, %outcome, "control");
        let entry = AuditEntry {
            at_unix_ms,
            user: user.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome,
        };
        if let Some(store) = &self.1 {
            store.audit(entry.clone());
        }
        let mut log = self.0.lock();
        if log.len() == AUDIT_ENTRIES {
            log.pop_front();
        }
        log.push_back(entry);
    }

    pub fn entries(&self) -> Vec<AuditEntry> {
        self.0.lock().iter().cloned().collect()
    }
}
