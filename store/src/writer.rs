//! The one thread that writes. It gathers writes into a transaction until the oldest has
//! waited `commit_every` or `commit_rows` are in it, then commits (group commit): one fsync
//! of the WAL per window instead of one per row. Between windows it enforces retention, a
//! batch at a time. A failing write (a full disk, a file gone read-only) marks the store
//! degraded and is logged; the pipeline never hears of it.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use flowdeck_protocol::{logs::LogRecord, AuditEntry, ItemDetail, Snapshot};
use rusqlite::{params, Connection, Transaction};

use crate::{
    read::{now_ms, MetricPoint, RunState},
    retention, RunId, RunStart, StoreConfig, StoreError, StoreStats,
};

pub(crate) enum Write {
    Begin {
        id: RunId,
        run: RunStart,
    },
    Item {
        run: RunId,
        item: Box<ItemDetail>,
    },
    /// A kept item's detail again, grown by events that came after it finished; an item
    /// not kept stays so.
    Amend {
        run: RunId,
        item: Box<ItemDetail>,
    },
    Progress {
        run: RunId,
        snapshot: Box<Snapshot>,
        at_ms: u64,
    },
    End {
        run: RunId,
        state: RunState,
        snapshot: Box<Snapshot>,
        ended_ms: u64,
    },
    Metrics(Vec<MetricPoint>),
    Warnings {
        run: RunId,
        warnings: Vec<flowdeck_protocol::Warning>,
    },
    Logs(Vec<LogRecord>),
    Audit(AuditEntry),
    AlertDelivery(flowdeck_protocol::alerts::Delivery),
    Question {
        run: RunId,
        info: Box<flowdeck_protocol::question::QuestionInfo>,
    },
    /// Answered once everything before it is committed.
    Flush(Sender<()>),
    Stop,
}

/// Items shed per run, not yet written: counted here rather than sent, since the queue
/// they could not get into is the one a count would have to travel by.
pub(crate) type Shed = parking_lot::Mutex<std::collections::HashMap<RunId, u64>>;

pub(crate) fn spawn(
    conn: Connection,
    rx: Receiver<Write>,
    config: StoreConfig,
    stats: Arc<StoreStats>,
    shed: Arc<Shed>,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("flowdeck-store".into())
        .spawn(move || run(conn, rx, config, stats, shed))
        .map_err(|e| StoreError::Open {
            path: "the run store's writer".into(),
            reason: e.to_string(),
        })
}

/// How often retention looks for something to delete.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

fn run(
    mut conn: Connection,
    rx: Receiver<Write>,
    config: StoreConfig,
    stats: Arc<StoreStats>,
    shed: Arc<Shed>,
) {
    let mut next_retention = Instant::now() + Duration::from_secs(5);
    let mut failures = 0u64;
    loop {
        let wait = next_retention.saturating_duration_since(Instant::now());
        let first = match rx.recv_timeout(wait) {
            Ok(w) => w,
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = retention::enforce(&mut conn, &config.retention) {
                    tracing::warn!("run store retention failed: {e}");
                }
                next_retention = Instant::now() + RETENTION_EVERY;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let deadline = Instant::now() + config.commit_every;
        let mut batch = vec![first];
        let mut stop = false;
        while batch.len() < config.commit_rows
            && !matches!(batch.last(), Some(Write::Flush(_) | Write::Stop))
        {
            match rx.recv_deadline(deadline) {
                Ok(w) => batch.push(w),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    stop = true;
                    break;
                }
            }
        }
        let mut flushes = Vec::new();
        let carries_data = batch
            .iter()
            .any(|w| !matches!(w, Write::Flush(_) | Write::Stop));
        let began = Instant::now();
        let outcome = write_batch(&mut conn, batch, &mut flushes, &mut stop, &stats, &shed);
        let took = began.elapsed();
        match outcome {
            Ok(()) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                // Only a commit that wrote something shows the store writes again.
                if carries_data && stats.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("the run store writes again");
                }
            }
            Err(e) => {
                failures += 1;
                stats.failures.fetch_add(1, Ordering::Relaxed);
                stats.degraded.store(true, Ordering::Relaxed);
                *stats.problem.lock() = Some(e.to_string());
                if failures.is_power_of_two() {
                    tracing::error!(
                        failures,
                        "the run store cannot write (the pipeline runs on; these records are lost): {e}"
                    );
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
        if stop {
            return;
        }
        // Behind (completed items are being shed): rest three times as long as the commit
        // took, so the writer takes at most a quarter of a core and the pipeline keeps the
        // rest. What it does not write is counted as not kept; commits come at most
        // 400 ms apart meanwhile.
        if rx.len() >= config.queue.max(16) / 2 {
            std::thread::sleep((took * 3).min(MAX_REST));
        }
    }
}

/// The longest the writer rests after a commit when it is behind.
const MAX_REST: Duration = Duration::from_millis(300);

/// Whether a write is a record the store must not lose (a run's start, progress and end,
/// the audit log), as opposed to the bulk (items, metrics, logs).
fn essential(w: &Write) -> bool {
    matches!(
        w,
        Write::Begin { .. }
            | Write::Progress { .. }
            | Write::End { .. }
            | Write::Audit(_)
            | Write::AlertDelivery(_)
            | Write::Question { .. }
    )
}

/// Writes a batch in one transaction. If it fails (a full disk), the batch's essential
/// records are tried again alone, so that a run's record outlives its items.
fn write_batch(
    conn: &mut Connection,
    batch: Vec<Write>,
    flushes: &mut Vec<Sender<()>>,
    stop: &mut bool,
    stats: &StoreStats,
    shed: &Shed,
) -> Result<(), rusqlite::Error> {
    let mut writes = Vec::with_capacity(batch.len());
    for w in batch {
        match w {
            Write::Flush(done) => flushes.push(done),
            Write::Stop => *stop = true,
            other => writes.push(other),
        }
    }
    let counts: Vec<(RunId, u64)> = shed.lock().drain().collect();
    match commit(conn, writes.iter(), &counts) {
        Ok(()) => {
            let items = writes
                .iter()
                .filter(|w| matches!(w, Write::Item { .. }))
                .count();
            stats.items.fetch_add(items as u64, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => {
            let _ = commit(conn, writes.iter().filter(|w| essential(w)), &counts);
            // The counts are written at the next commit that works.
            let mut pending = shed.lock();
            for (run, n) in counts {
                *pending.entry(run).or_default() += n;
            }
            Err(e)
        }
    }
}

fn commit<'a>(
    conn: &mut Connection,
    writes: impl Iterator<Item = &'a Write>,
    shed: &[(RunId, u64)],
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    let mut counted = Counted::new();
    for w in writes {
        apply(&tx, w, &mut counted)?;
    }
    for ((run, stage, status), n) in counted {
        tx.prepare_cached(
            "INSERT INTO item_counts (run, stage, status, n) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (run, stage, status) DO UPDATE SET n = n + excluded.n",
        )?
        .execute(params![run, stage, status, n])?;
    }
    // After the writes: a run begun in this batch gets its count too.
    for (run, n) in shed {
        tx.prepare_cached("UPDATE runs SET not_stored = not_stored + ?2 WHERE id = ?1")?
            .execute(params![run, *n as i64])?;
    }
    // The runs still going were alive at this commit: if the process dies, their end is
    // about now, at most one window later.
    tx.prepare_cached("UPDATE runs SET seen_ms = ?1 WHERE state = 'running'")?
        .execute([now_ms() as i64])?;
    tx.commit()
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// How a commit moves `item_counts`: (run, stage, status) to the change in its count.
type Counted = std::collections::HashMap<(RunId, u16, &'static str), i64>;

/// Keeps `snapshot` (serialized as `text`) in the run's timeline, at its uptime.
fn keep_snapshot(
    tx: &Transaction,
    run: RunId,
    snapshot: &Snapshot,
    text: &str,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO snapshots (run, at_ms, totals, snapshot) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        run,
        snapshot.uptime_ms as i64,
        json(&snapshot.totals),
        text
    ])?;
    Ok(())
}

fn apply(tx: &Transaction, w: &Write, counted: &mut Counted) -> Result<(), rusqlite::Error> {
    match w {
        Write::Begin { id, run } => {
            let graph = serde_json::json!({ "stages": run.stages, "edges": run.edges });
            tx.prepare_cached(
                "INSERT OR REPLACE INTO runs (id, pipeline, started_ms, state, graph, seen_ms)
                 VALUES (?1, ?2, ?3, 'running', ?4, ?3)",
            )?
            .execute(params![
                id,
                run.pipeline,
                run.started_ms as i64,
                graph.to_string()
            ])?;
        }
        Write::Item { run, item } => {
            let attempts = item.visits.last().map_or(0, |v| v.attempts);
            let row = params![
                run,
                item.id as i64,
                item.status.as_str(),
                item.stage,
                attempts,
                item.created_us as i64,
                item.updated_us as i64,
                item.error.as_ref().map(|e| e.kind.as_str()),
                item.error.as_ref().map(|e| e.message.as_str()),
                json(&**item),
            ];
            let added = tx
                .prepare_cached(
                    "INSERT INTO items
                     (run, id, status, stage, attempts, created_us, updated_us, error_kind, error_message, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (run, id) DO NOTHING",
                )?
                .execute(row)?;
            if added == 0 {
                // Kept again (retried by hand after it finished): it leaves the count it
                // was in.
                let (stage, status): (u16, String) = tx
                    .prepare_cached("SELECT stage, status FROM items WHERE run = ?1 AND id = ?2")?
                    .query_row(params![run, item.id as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
                *counted
                    .entry((*run, stage, crate::read::status(&status).as_str()))
                    .or_default() -= 1;
                tx.prepare_cached(
                    "UPDATE items SET status = ?3, stage = ?4, attempts = ?5, created_us = ?6,
                     updated_us = ?7, error_kind = ?8, error_message = ?9, detail = ?10
                     WHERE run = ?1 AND id = ?2",
                )?
                .execute(row)?;
            }
            *counted
                .entry((*run, item.stage, item.status.as_str()))
                .or_default() += 1;
        }
        Write::Amend { run, item } => {
            // Its status and stage are those it was kept with (a late event does not
            // move a finished item), so its counts stay as they are.
            tx.prepare_cached("UPDATE items SET detail = ?3 WHERE run = ?1 AND id = ?2")?
                .execute(params![run, item.id as i64, json(&**item)])?;
        }
        Write::Progress {
            run,
            snapshot,
            at_ms,
        } => {
            let text = json(&**snapshot);
            tx.prepare_cached("UPDATE runs SET snapshot = ?2, seen_ms = ?3 WHERE id = ?1")?
                .execute(params![run, text, *at_ms as i64])?;
            keep_snapshot(tx, *run, snapshot, &text)?;
        }
        Write::End {
            run,
            state,
            snapshot,
            ended_ms,
        } => {
            let text = json(&**snapshot);
            tx.prepare_cached(
                "UPDATE runs SET state = ?2, snapshot = ?3, ended_ms = ?4, seen_ms = ?4 WHERE id = ?1",
            )?
            .execute(params![run, state.as_str(), text, *ended_ms as i64])?;
            keep_snapshot(tx, *run, snapshot, &text)?;
        }
        Write::Warnings { run, warnings } => {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO warnings
                 (run, rule, stage, worker, first_seen_ms, last_seen_ms, cleared_ms, message, items)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for w in warnings {
                st.execute(params![
                    run,
                    w.rule.name(),
                    w.stage.as_deref().unwrap_or(""),
                    w.worker.map_or(-1, i64::from),
                    w.first_seen_ms as i64,
                    w.last_seen_ms as i64,
                    w.cleared_ms.map(|c| c as i64),
                    w.message,
                    json(&w.items),
                ])?;
            }
        }
        Write::Metrics(points) => {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO metrics (series, minute, count, sum, min, max, last)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for p in points {
                st.execute(params![
                    p.series,
                    p.minute as i64,
                    p.count as i64,
                    p.sum,
                    p.min,
                    p.max,
                    p.last
                ])?;
            }
        }
        Write::Logs(records) => {
            let mut st = tx.prepare_cached(
                "INSERT INTO logs (at_ms, level, source, message, fields) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for r in records {
                st.execute(params![
                    r.at_unix_ms as i64,
                    r.level,
                    r.source,
                    r.message,
                    json(&r.fields)
                ])?;
            }
        }
        Write::Audit(a) => {
            tx.prepare_cached(
                "INSERT INTO audit (at_ms, user, action, target, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![a.at_unix_ms as i64, a.user, a.action, a.target, a.outcome])?;
        }
        Write::AlertDelivery(d) => {
            tx.prepare_cached(
                "INSERT INTO alert_deliveries (at_ms, alert, event, events, outcome, status, error, tries)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                d.at_unix_ms as i64,
                d.alert,
                d.event,
                d.events as i64,
                d.outcome.as_str(),
                d.status,
                d.error,
                d.tries
            ])?;
        }
        Write::Question { run, info } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO questions (run, id, item, state, asked_ms, info)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                run,
                info.id as i64,
                info.item as i64,
                info.state.as_str(),
                info.asked_unix_ms as i64,
                json(&**info)
            ])?;
        }
        Write::Flush(_) | Write::Stop => {}
    }
    Ok(())
}
