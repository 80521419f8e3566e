//! What the store keeps, and for how long: runs (with their items) for `max_age` and until
//! the file reaches `max_bytes`, the oldest going first; metric rollups, logs, the audit
//! log and alert deliveries for `max_age`. Enforced by the writer between commits, in batches, so no
//! transaction is long and the pipeline never waits on it.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::read::now_ms;

/// How long and how big. Retention is on by default: an unattended dashboard must not fill
/// its disk over a year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    /// The file's size the oldest runs are deleted to stay under.
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_bytes: 1 << 30,
        }
    }
}

/// Rows deleted per transaction.
const BATCH: i64 = 20_000;

/// The file's size in bytes, as SQLite counts its pages.
pub(crate) fn size(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * page) as u64)
}

/// Deletes one run's items a batch at a time, then the run.
fn delete_run(conn: &mut Connection, run: i64) -> rusqlite::Result<()> {
    loop {
        let tx = conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM items WHERE run = ?1 AND id IN (SELECT id FROM items WHERE run = ?1 LIMIT ?2)",
            params![run, BATCH],
        )?;
        tx.commit()?;
        if n == 0 {
            break;
        }
    }
    conn.execute("DELETE FROM item_counts WHERE run = ?1", [run])?;
    conn.execute("DELETE FROM warnings WHERE run = ?1", [run])?;
    conn.execute("DELETE FROM snapshots WHERE run = ?1", [run])?;
    conn.execute("DELETE FROM questions WHERE run = ?1", [run])?;
    conn.execute("DELETE FROM runs WHERE id = ?1", [run])?;
    Ok(())
}

/// Applies the retention once: what is too old, then the oldest runs while the file is too
/// big (a running run is never deleted). Returns how many runs went.
pub(crate) fn enforce(conn: &mut Connection, r: &Retention) -> rusqlite::Result<usize> {
    let cutoff = now_ms().saturating_sub(r.max_age.as_millis() as u64) as i64;
    let mut deleted = 0;
    loop {
        let old: Option<i64> = conn
            .query_row(
                "SELECT id FROM runs WHERE state != 'running' AND started_ms < ?1 ORDER BY started_ms LIMIT 1",
                [cutoff],
                |row| row.get(0),
            )
            .optional()?;
        let Some(run) = old else { break };
        delete_run(conn, run)?;
        deleted += 1;
    }
    for table in ["metrics", "logs", "audit", "alert_deliveries"] {
        let (column, scale) = if table == "metrics" {
            ("minute", 1000)
        } else {
            ("at_ms", 1)
        };
        conn.execute(
            &format!("DELETE FROM {table} WHERE {column} < ?1"),
            [cutoff / scale],
        )?;
    }
    while size(conn)? > r.max_bytes {
        let oldest: Option<i64> = conn
            .query_row(
                "SELECT id FROM runs WHERE state != 'running' ORDER BY started_ms LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        let Some(run) = oldest else { break };
        delete_run(conn, run)?;
        deleted += 1;
    }
    if deleted > 0 {
        tracing::info!(runs = deleted, "run store retention deleted old runs");
        // Give some freed pages back to the file system, a bounded amount at a time.
        conn.execute_batch("PRAGMA incremental_vacuum(4096)")?;
    }
    Ok(deleted)
}
