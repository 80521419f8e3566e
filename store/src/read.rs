//! Reading the store: runs, a run's items (filtered and sorted by SQLite, with exact
//! counts), one item with its provenance, a run's error summary, the audit log, the kept
//! logs and metric rollups.

use std::time::{SystemTime, UNIX_EPOCH};

use flowdeck_protocol::{
    logs::LogRecord, question::QuestionInfo, runs::StatusCounts, Ancestor, AuditEntry, Edge,
    ErrorInfo, ErrorSummary, FailedItem, ItemDetail, ItemId, ItemStatus, ItemSummary, Snapshot,
    RECENT_FAILURES,
};
use rusqlite::{params, params_from_iter, types::Value as Sql, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::{RunId, Store, StoreError};
pub use flowdeck_protocol::runs::{
    ItemPage, ItemSort, Moment, RunInfo, RunState, StoredRun, Timeline, TimelinePoint,
};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One minute of one metric series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// The series, written `name{k=v}`.
    pub series: String,
    /// The minute's start, in Unix seconds.
    pub minute: u64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub last: f64,
}

/// Which runs: newest first.
#[derive(Clone, Debug, Default)]
pub struct RunQuery {
    pub pipeline: Option<String>,
    pub state: Option<RunState>,
    /// Runs started before this (a cursor: the last one's `started_ms`).
    pub before_ms: Option<u64>,
    pub limit: Option<usize>,
}

/// Which of a run's items.
#[derive(Clone, Debug, Default)]
pub struct ItemQuery {
    pub status: Option<ItemStatus>,
    pub stage: Option<u16>,
    /// The item of that number (`#` optional), and items whose error's kind or message
    /// contains the text.
    pub text: Option<String>,
    pub sort: ItemSort,
    pub offset: u64,
    pub limit: usize,
    /// Lists the items as they were at this moment (µs of the run's uptime): those created
    /// by then, each in its final status if it had reached it, else as its history says it
    /// was then. A status filter of queued, running or retrying then means "in progress".
    pub at_us: Option<u64>,
}

/// Marks the runs a dead process left "running" as interrupted, ended when the store last
/// heard of them, and recounts their totals from the items the store kept.
///
/// A run's totals are those of its last snapshot (one every 5 s), while its finished items
/// are committed every 100 ms: after a `kill -9` the snapshot is seconds behind the items,
/// and the runs list, the pipelines' counts and replay's end would disagree with the run's
/// own task list. The kept items (and the completed ones shed under load, counted in
/// `not_stored`) are the truth; items still in progress at the crash are gone with the
/// process, so they are in `submitted` only. The run's last snapshot and a closing point of
/// its timeline carry the recounted totals, and `recounted` says that they were.
pub(crate) fn mark_interrupted(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let runs: Vec<(RunId, String, i64, i64, Option<String>, i64)> = {
        let mut st = tx.prepare(
            "SELECT id, pipeline, started_ms, seen_ms, snapshot, not_stored FROM runs
             WHERE state = 'running'",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for (run, pipeline, started_ms, seen_ms, snapshot, not_stored) in &runs {
        let kept = counts(&tx, *run, None, None)?;
        let mut snapshot: Snapshot = snapshot
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_else(|| Snapshot {
                pipeline: pipeline.clone(),
                ..Snapshot::default()
            });
        recount(&mut snapshot, &kept, (*not_stored).max(0) as u64);
        snapshot.uptime_ms = snapshot
            .uptime_ms
            .max(seen_ms.saturating_sub(*started_ms).max(0) as u64);
        let text = serde_json::to_string(&snapshot).unwrap_or_else(|_| "null".to_owned());
        tx.execute(
            "UPDATE runs SET state = 'interrupted', ended_ms = seen_ms, snapshot = ?2, recounted = 1
             WHERE id = ?1",
            params![run, text],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO snapshots (run, at_ms, totals, snapshot) VALUES (?1, ?2, ?3, ?4)",
            params![
                run,
                snapshot.uptime_ms as i64,
                serde_json::to_string(&snapshot.totals).unwrap_or_default(),
                text
            ],
        )?;
        // Its questions died with it: nobody can answer them any more.
        let pending: Vec<(i64, String)> = {
            let mut st =
                tx.prepare("SELECT id, info FROM questions WHERE run = ?1 AND state = 'pending'")?;
            let rows = st.query_map([run], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (id, info) in pending {
            let Ok(mut q) = serde_json::from_str::<QuestionInfo>(&info) else {
                continue;
            };
            q.state = flowdeck_protocol::question::QuestionState::Cancelled;
            tx.execute(
                "UPDATE questions SET state = 'cancelled', info = ?3 WHERE run = ?1 AND id = ?2",
                params![run, id, serde_json::to_string(&q).unwrap_or_default()],
            )?;
        }
    }
    tx.commit()?;
    if !runs.is_empty() {
        tracing::warn!(
            runs = runs.len(),
            "runs left running by a process that ended are marked interrupted, their totals recounted from the items kept"
        );
    }
    Ok(())
}

/// An interrupted run's snapshot, its totals counted from the items kept (`kept`, and
/// `shed` completed ones counted but not kept). Nothing is queued or running any more: the
/// items in progress at the crash stay in `submitted`, so `submitted` less the finished
/// items is what the crash took.
fn recount(snapshot: &mut Snapshot, kept: &StatusCounts, shed: u64) {
    let t = &mut snapshot.totals;
    t.completed = kept.completed + shed;
    t.failed = kept.failed;
    t.cancelled = kept.cancelled;
    t.submitted = t.submitted.max(t.completed + t.failed + t.cancelled);
    t.queued = 0;
    t.running = 0;
    t.throughput = 0.0;
    snapshot.eta_ms = None;
    for stage in &mut snapshot.stages {
        stage.queued = 0;
        stage.in_flight = 0;
    }
}

/// Which of a run's questions a list holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuestionsIn {
    Pending,
    /// Closed with an answer: a person's or the default.
    Answered,
    /// Closed in any way.
    Closed,
}

pub(crate) fn next_run_id(conn: &Connection) -> Result<RunId, StoreError> {
    let max: Option<i64> = conn.query_row("SELECT MAX(id) FROM runs", [], |r| r.get(0))?;
    Ok(max.unwrap_or(0) + 1)
}

pub(crate) fn status(s: &str) -> ItemStatus {
    ItemStatus::ALL
        .into_iter()
        .find(|x| x.as_str() == s)
        .unwrap_or(ItemStatus::Failed)
}

const RUN_COLUMNS: &str =
    "r.id, r.pipeline, r.state, r.started_ms, r.ended_ms, r.snapshot, r.not_stored,
    (SELECT COALESCE(SUM(n), 0) FROM item_counts i WHERE i.run = r.id), r.recounted";

fn run_info(r: &rusqlite::Row) -> rusqlite::Result<(RunInfo, Option<Snapshot>)> {
    let snapshot: Option<String> = r.get(5)?;
    let snapshot: Option<Snapshot> = snapshot.and_then(|s| serde_json::from_str(&s).ok());
    let state: String = r.get(2)?;
    Ok((
        RunInfo {
            id: r.get(0)?,
            pipeline: r.get(1)?,
            state: RunState::parse(&state),
            started_ms: r.get::<_, i64>(3)? as u64,
            ended_ms: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
            totals: snapshot.as_ref().map(|s| s.totals).unwrap_or_default(),
            not_stored: r.get::<_, i64>(6)? as u64,
            stored: r.get::<_, i64>(7)? as u64,
            recounted: r.get::<_, i64>(8)? != 0,
        },
        snapshot,
    ))
}

fn summary(r: &rusqlite::Row) -> rusqlite::Result<ItemSummary> {
    let status_text: String = r.get(1)?;
    let kind: Option<String> = r.get(5)?;
    let message: Option<String> = r.get(6)?;
    Ok(ItemSummary {
        id: r.get::<_, i64>(0)? as ItemId,
        status: status(&status_text),
        stage: r.get(2)?,
        attempts: r.get(3)?,
        updated_us: r.get::<_, i64>(4)? as u64,
        error: kind.map(|kind| ErrorInfo {
            kind,
            message: message.unwrap_or_default(),
        }),
    })
}

/// Numbered SQL arguments: a search names its text twice with one argument.
#[derive(Default)]
struct Args(Vec<Sql>);

impl Args {
    /// Adds one; returns its placeholder.
    fn push(&mut self, v: Sql) -> String {
        self.0.push(v);
        format!("?{}", self.0.len())
    }
}

/// What a task list's search box finds: the item of that number (`#` optional), and the
/// items whose error's kind or message contains the text. Not a substring of every id: that
/// would read every item of the run, and nobody looks for "items whose id contains 12".
struct Search {
    id: Option<i64>,
    like: String,
}

impl Search {
    fn new(text: &str) -> Self {
        let t = text.trim();
        Search {
            id: t
                .strip_prefix('#')
                .unwrap_or(t)
                .parse::<u64>()
                .ok()
                .and_then(|n| i64::try_from(n).ok()),
            like: format!(
                "%{}%",
                t.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            ),
        }
    }

    /// The condition on an item's error (its kind or message contains the text).
    fn matches(&self, args: &mut Args) -> String {
        let p = args.push(Sql::Text(self.like.clone()));
        format!(
            "(error_kind LIKE {p} ESCAPE '\\' OR IFNULL(error_message, '') LIKE {p} ESCAPE '\\')"
        )
    }
}

/// A run's kept items by final status, at `stage` and matching `search` when given.
fn counts(
    c: &Connection,
    run: RunId,
    stage: Option<u16>,
    search: Option<&Search>,
) -> Result<StatusCounts, StoreError> {
    let mut args = Args::default();
    let mut at_stage = format!("run = {}", args.push(Sql::Integer(run)));
    if let Some(s) = stage {
        at_stage += &format!(" AND stage = {}", args.push(Sql::Integer(i64::from(s))));
    }
    let sql = match search {
        None => format!("SELECT status, SUM(n) FROM item_counts WHERE {at_stage} GROUP BY status"),
        Some(search) => {
            let matched = search.matches(&mut args);
            // The item of that number, unless its error matched too (no double count).
            let by_id = search
                .id
                .map(|id| {
                    format!(
                        " UNION ALL SELECT status FROM items WHERE {at_stage} AND id = {}
                          AND NOT (error_kind IS NOT NULL AND {matched})",
                        args.push(Sql::Integer(id))
                    )
                })
                .unwrap_or_default();
            format!(
                "SELECT status, COUNT(*) FROM (
                    SELECT status FROM items INDEXED BY items_error
                    WHERE {at_stage} AND error_kind IS NOT NULL AND {matched}{by_id}
                 ) GROUP BY status"
            )
        }
    };
    let mut st = c.prepare(&sql)?;
    let mut out = StatusCounts::default();
    for row in st.query_map(params_from_iter(args.0.iter()), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (s, n) = row?;
        let n = n.max(0) as u64;
        out.all += n;
        match status(&s) {
            ItemStatus::Completed => out.completed += n,
            ItemStatus::Failed => out.failed += n,
            ItemStatus::Cancelled => out.cancelled += n,
            _ => {}
        }
    }
    Ok(out)
}

/// A run's kept items as they were at `at_us`: those created by then, counted by the final
/// status they had reached by then, the rest in progress. An error search matches only
/// the errors that had happened by then. The moment follows no index, so this reads the
/// run's rows (docs/store.md has the time it takes on a million items).
fn counts_at(
    c: &Connection,
    run: RunId,
    stage: Option<u16>,
    search: Option<&Search>,
    at_us: u64,
) -> Result<StatusCounts, StoreError> {
    let mut args = Args::default();
    let mut filter = format!("run = {}", args.push(Sql::Integer(run)));
    let t = args.push(Sql::Integer(clamped(at_us)));
    filter += &format!(" AND created_us <= {t}");
    if let Some(s) = stage {
        filter += &format!(" AND stage = {}", args.push(Sql::Integer(i64::from(s))));
    }
    if let Some(search) = search {
        let matched = search.matches(&mut args);
        let by_id = search
            .id
            .map(|id| format!(" OR id = {}", args.push(Sql::Integer(id))))
            .unwrap_or_default();
        filter +=
            &format!(" AND ((error_kind IS NOT NULL AND updated_us <= {t} AND {matched}){by_id})");
    }
    let done = |status: &str| format!("TOTAL(updated_us <= {t} AND status = '{status}')");
    let sql = format!(
        "SELECT COUNT(*), {}, {}, {} FROM items WHERE {filter}",
        done("completed"),
        done("failed"),
        done("cancelled"),
    );
    let (all, completed, failed, cancelled) =
        c.query_row(&sql, params_from_iter(args.0.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?.max(0) as u64,
                r.get::<_, f64>(1)? as u64,
                r.get::<_, f64>(2)? as u64,
                r.get::<_, f64>(3)? as u64,
            ))
        })?;
    Ok(StatusCounts {
        all,
        completed,
        failed,
        cancelled,
        in_progress: all.saturating_sub(completed + failed + cancelled),
    })
}

/// An item's line as it was at `at_us`, from its kept history: the status, stage and
/// attempt of its last event by then. An item whose history was cut before that moment
/// shows as queued at its first stage.
fn summary_at(row: ItemSummary, detail: &str, at_us: u64) -> ItemSummary {
    if row.updated_us <= at_us {
        return row;
    }
    let detail: Option<ItemDetail> = serde_json::from_str(detail).ok();
    let then = detail
        .as_ref()
        .and_then(|d| d.history.iter().rev().find(|e| e.at_us <= at_us));
    match then {
        Some(e) => ItemSummary {
            id: row.id,
            status: e.kind.status_after(e.last),
            stage: e.stage,
            attempts: e.attempt,
            updated_us: e.at_us,
            error: e.error.clone(),
        },
        None => ItemSummary {
            status: ItemStatus::Queued,
            stage: detail
                .and_then(|d| d.visits.first().map(|v| v.stage))
                .unwrap_or(0),
            attempts: 0,
            updated_us: at_us,
            error: None,
            ..row
        },
    }
}

/// A pipeline's runs started since a moment, counted from their recorded totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineRuns {
    pub runs: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
}

/// A time or bound as SQLite's integer: past `i64::MAX` ("after everything") it is that.
fn clamped(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `exclude` as a JSON array, for `json_each`: one statement whatever its length.
fn id_list(exclude: &[RunId]) -> String {
    serde_json::to_string(exclude).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// Each pipeline's runs started at or after `since_ms` (Unix ms), but those in
    /// `exclude` (the live ones, which the caller counts from their snapshots), by
    /// pipeline name. Counted from each run's last snapshot's totals, so exact even when
    /// the store shed items; one pass over the runs, none over their items.
    pub fn pipeline_runs(
        &self,
        since_ms: u64,
        exclude: &[RunId],
    ) -> Result<std::collections::HashMap<String, PipelineRuns>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT pipeline, COUNT(*),
                    TOTAL(json_extract(snapshot, '$.totals.completed')),
                    TOTAL(json_extract(snapshot, '$.totals.failed')),
                    TOTAL(json_extract(snapshot, '$.totals.cancelled'))
                 FROM runs
                 WHERE started_ms >= ?1 AND id NOT IN (SELECT value FROM json_each(?2))
                 GROUP BY pipeline",
            )?;
            let rows = st.query_map(params![clamped(since_ms), id_list(exclude)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    PipelineRuns {
                        runs: r.get::<_, i64>(1)?.max(0) as u64,
                        completed: r.get::<_, f64>(2)? as u64,
                        failed: r.get::<_, f64>(3)? as u64,
                        cancelled: r.get::<_, f64>(4)? as u64,
                    },
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Each pipeline's latest run but those in `exclude`, by pipeline name.
    pub fn last_runs(
        &self,
        exclude: &[RunId],
    ) -> Result<std::collections::HashMap<String, flowdeck_protocol::pipelines::LastRun>, StoreError>
    {
        self.read(|c| {
            // SQLite gives a MAX() query's other columns from the row that has the max.
            let mut st = c.prepare_cached(
                "SELECT pipeline, MAX(id), state, started_ms, ended_ms,
                    TOTAL(json_extract(snapshot, '$.totals.failed'))
                 FROM runs WHERE id NOT IN (SELECT value FROM json_each(?1))
                 GROUP BY pipeline",
            )?;
            let rows = st.query_map(params![id_list(exclude)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    flowdeck_protocol::pipelines::LastRun {
                        id: r.get(1)?,
                        state: RunState::parse(&r.get::<_, String>(2)?),
                        started_ms: r.get::<_, i64>(3)? as u64,
                        ended_ms: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                        failed: r.get::<_, f64>(5)? as u64,
                    },
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Runs, newest first.
    pub fn runs(&self, q: &RunQuery) -> Result<Vec<RunInfo>, StoreError> {
        self.read(|c| {
            let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs r WHERE 1 = 1");
            let mut args: Vec<Sql> = Vec::new();
            if let Some(p) = &q.pipeline {
                sql.push_str(" AND r.pipeline = ?");
                args.push(Sql::Text(p.clone()));
            }
            if let Some(s) = q.state {
                sql.push_str(" AND r.state = ?");
                args.push(Sql::Text(s.as_str().into()));
            }
            if let Some(b) = q.before_ms {
                sql.push_str(" AND r.started_ms < ?");
                args.push(Sql::Integer(b as i64));
            }
            sql.push_str(" ORDER BY r.started_ms DESC, r.id DESC LIMIT ?");
            args.push(Sql::Integer(q.limit.unwrap_or(100) as i64));
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(params_from_iter(args), |r| run_info(r).map(|x| x.0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// One run with its graph and last snapshot.
    pub fn run(&self, id: RunId) -> Result<Option<StoredRun>, StoreError> {
        self.read(|c| {
            let row = c
                .query_row(
                    &format!("SELECT {RUN_COLUMNS}, r.graph FROM runs r WHERE r.id = ?1"),
                    [id],
                    |r| Ok((run_info(r)?, r.get::<_, String>(9)?)),
                )
                .optional()?;
            Ok(row.map(|((info, snapshot), graph)| {
                #[derive(Deserialize, Default)]
                struct Graph {
                    stages: Vec<String>,
                    edges: Vec<Edge>,
                }
                let g: Graph = serde_json::from_str(&graph).unwrap_or_default();
                StoredRun {
                    info,
                    stages: g.stages,
                    edges: g.edges,
                    snapshot,
                    warnings: Vec::new(),
                }
            }))
        })?
        .map(|mut run| {
            run.warnings = self.run_warnings(id)?;
            Ok(run)
        })
        .transpose()
    }

    /// The totals of every snapshot kept of `run`, oldest first: its timeline for replay.
    pub fn timeline(&self, run: RunId) -> Result<Vec<TimelinePoint>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT at_ms, totals FROM snapshots WHERE run = ?1 ORDER BY at_ms",
            )?;
            let rows =
                st.query_map([run], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            let mut points = Vec::new();
            for row in rows {
                let (at_ms, totals) = row?;
                points.push(TimelinePoint {
                    at_ms: at_ms.max(0) as u64,
                    totals: serde_json::from_str(&totals).unwrap_or_default(),
                });
            }
            Ok(points)
        })
    }

    /// `run` as it was at `at_ms` of its uptime: the snapshot kept at or just before it, or
    /// the first one for a moment before that; `None` when none was kept.
    pub fn moment(&self, run: RunId, at_ms: u64) -> Result<Option<Moment>, StoreError> {
        let at = i64::try_from(at_ms).unwrap_or(i64::MAX);
        self.read(|c| {
            // Two lookups on the key, not one query ordered by distance: that would read
            // every snapshot of the run.
            let read = |r: &rusqlite::Row| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?));
            let before = c
                .query_row(
                    "SELECT at_ms, snapshot FROM snapshots WHERE run = ?1 AND at_ms <= ?2
                     ORDER BY at_ms DESC LIMIT 1",
                    params![run, at],
                    read,
                )
                .optional()?;
            let row = match before {
                Some(row) => Some(row),
                None => c
                    .query_row(
                        "SELECT at_ms, snapshot FROM snapshots WHERE run = ?1 ORDER BY at_ms LIMIT 1",
                        [run],
                        read,
                    )
                    .optional()?,
            };
            Ok(row.and_then(|(at_ms, text)| {
                let snapshot: Snapshot = serde_json::from_str(&text).ok()?;
                let bottleneck = snapshot
                    .bottleneck()
                    .and_then(|i| snapshot.stages.get(i))
                    .map(|s| s.name.clone());
                Some(Moment {
                    at_ms: at_ms.max(0) as u64,
                    snapshot,
                    bottleneck,
                })
            }))
        })
    }

    /// A run's health warnings, oldest first (the last 500).
    pub fn run_warnings(&self, run: RunId) -> Result<Vec<flowdeck_protocol::Warning>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT rule, stage, worker, first_seen_ms, last_seen_ms, cleared_ms, message, items
                 FROM warnings WHERE run = ?1 ORDER BY first_seen_ms DESC LIMIT 500",
            )?;
            let rows = st.query_map([run], |r| {
                let rule: String = r.get(0)?;
                let stage: String = r.get(1)?;
                let worker: i64 = r.get(2)?;
                let items: String = r.get(7)?;
                Ok((
                    rule,
                    stage,
                    worker,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, String>(6)?,
                    items,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (rule, stage, worker, first, last, cleared, message, items) = row?;
                // A rule this build does not know (written by a newer one) is skipped.
                let Ok(rule) = serde_json::from_value(serde_json::Value::String(rule)) else {
                    continue;
                };
                out.push(flowdeck_protocol::Warning {
                    rule,
                    stage: (!stage.is_empty()).then_some(stage),
                    worker: u16::try_from(worker).ok(),
                    items: serde_json::from_str(&items).unwrap_or_default(),
                    message,
                    first_seen_ms: first as u64,
                    last_seen_ms: last as u64,
                    cleared_ms: cleared.map(|c| c as u64),
                });
            }
            out.reverse();
            Ok(out)
        })
    }

    /// A page of a run's items, filtered and sorted by SQLite, with the exact count.
    pub fn items(&self, run: RunId, q: &ItemQuery) -> Result<ItemPage, StoreError> {
        Ok(self.items_counted(run, q)?.0)
    }

    /// How many of a run's kept items are in each final status, among those at `stage` and
    /// matching `text` when given: the counts a task list's filter tabs show.
    pub fn status_counts(
        &self,
        run: RunId,
        stage: Option<u16>,
        text: Option<&str>,
    ) -> Result<StatusCounts, StoreError> {
        self.read(|c| counts(c, run, stage, text.map(Search::new).as_ref()))
    }

    /// A page of a run's items and the counts of its filter tabs (the status filter aside),
    /// from one read. Counts come from `item_counts` (a lookup) unless there is text to
    /// search, which reads the failures' index; the page is read in an index's order, so
    /// neither scans a run's items.
    pub fn items_counted(
        &self,
        run: RunId,
        q: &ItemQuery,
    ) -> Result<(ItemPage, StatusCounts), StoreError> {
        self.read(|c| {
            let search = q
                .text
                .as_deref()
                .filter(|t| !t.trim().is_empty())
                .map(Search::new);
            let counts = match q.at_us {
                None => counts(c, run, q.stage, search.as_ref())?,
                Some(at) => counts_at(c, run, q.stage, search.as_ref(), at)?,
            };
            let total = match q.status {
                None => counts.all,
                Some(ItemStatus::Completed) => counts.completed,
                Some(ItemStatus::Failed) => counts.failed,
                Some(ItemStatus::Cancelled) => counts.cancelled,
                Some(_) => counts.in_progress,
            };
            let mut args = Args::default();
            let mut filter = format!("run = {}", args.push(Sql::Integer(run)));
            // At a moment: what existed then, and "done by then" for a final status.
            let at = q.at_us.map(|at| args.push(Sql::Integer(clamped(at))));
            if let Some(t) = &at {
                filter += &format!(" AND created_us <= {t}");
            }
            match (q.status, &at) {
                (None, _) => {}
                (Some(s), Some(t)) if !s.is_terminal() => {
                    filter += &format!(" AND updated_us > {t}")
                }
                (Some(s), at) => {
                    filter += &format!(" AND status = {}", args.push(Sql::Text(s.as_str().into())));
                    if let Some(t) = at {
                        filter += &format!(" AND updated_us <= {t}");
                    }
                }
            }
            if let Some(s) = q.stage {
                filter += &format!(" AND stage = {}", args.push(Sql::Integer(i64::from(s))));
            }
            if let Some(search) = &search {
                let matched = search.matches(&mut args);
                let by_id = search
                    .id
                    .map(|id| format!(" UNION SELECT {}", args.push(Sql::Integer(id))))
                    .unwrap_or_default();
                let by_then = at
                    .as_ref()
                    .map(|t| format!(" AND updated_us <= {t}"))
                    .unwrap_or_default();
                filter += &format!(
                    " AND id IN (SELECT id FROM items INDEXED BY items_error
                        WHERE run = ?1 AND error_kind IS NOT NULL AND {matched}{by_then}{by_id})"
                );
            }
            let order = match q.sort {
                ItemSort::Newest => "id DESC",
                ItemSort::Oldest => "id ASC",
                ItemSort::Updated => "updated_us DESC, id DESC",
                ItemSort::Attempts => "attempts DESC, id DESC",
            };
            let (limit, offset) = (
                args.push(Sql::Integer(q.limit as i64)),
                args.push(Sql::Integer(q.offset as i64)),
            );
            // At a moment, an item's detail too: its history says where it was then.
            let detail = if q.at_us.is_some() { "detail" } else { "NULL" };
            let sql = format!(
                "SELECT id, status, stage, attempts, updated_us, error_kind, error_message, {detail}
                 FROM items WHERE {filter} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
            );
            let mut st = c.prepare(&sql)?;
            let items = st
                .query_map(params_from_iter(args.0.iter()), |r| {
                    let row = summary(r)?;
                    Ok(match q.at_us {
                        Some(at) => summary_at(row, &r.get::<_, String>(7)?, at),
                        None => row,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok((ItemPage { total, items }, counts))
        })
    }

    /// One item's detail as it was kept.
    pub fn item(&self, run: RunId, id: ItemId) -> Result<Option<ItemDetail>, StoreError> {
        self.read(|c| {
            let detail: Option<String> = c
                .query_row(
                    "SELECT detail FROM items WHERE run = ?1 AND id = ?2",
                    params![run, id as i64],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(detail.and_then(|d| serde_json::from_str(&d).ok()))
        })
    }

    /// The item and its ancestors, nearest first, as far as the store kept them.
    pub fn provenance(&self, run: RunId, id: ItemId) -> Result<Vec<Ancestor>, StoreError> {
        flowdeck_protocol::provenance(id, |id| {
            Ok(self.item(run, id)?.map(|d| {
                let mut stages: Vec<u16> = d.visits.iter().map(|v| v.stage).collect();
                stages.dedup();
                (d.parents, stages)
            }))
        })
    }

    /// A run's questions, pending first (oldest first), then closed ones (newest first):
    /// those in `state` when given (`None`: all), about `item` when given; with how many
    /// match in all.
    pub fn questions(
        &self,
        run: RunId,
        state: Option<QuestionsIn>,
        item: Option<ItemId>,
        offset: u64,
        limit: usize,
    ) -> Result<(u64, Vec<QuestionInfo>), StoreError> {
        self.read(|c| {
            let mut filter = String::from("run = ?1");
            match state {
                None => {}
                Some(QuestionsIn::Pending) => filter += " AND state = 'pending'",
                Some(QuestionsIn::Answered) => filter += " AND state IN ('answered', 'defaulted')",
                Some(QuestionsIn::Closed) => filter += " AND state <> 'pending'",
            }
            if item.is_some() {
                filter += " AND item = ?2";
            }
            let item = item.map_or(-1, |i| i as i64);
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM questions WHERE {filter} AND ?2 = ?2"),
                params![run, item],
                |r| r.get(0),
            )?;
            let mut st = c.prepare(&format!(
                "SELECT info FROM questions WHERE {filter} AND ?2 = ?2
                 ORDER BY state <> 'pending', CASE WHEN state = 'pending' THEN id ELSE -id END
                 LIMIT ?3 OFFSET ?4"
            ))?;
            let rows = st.query_map(params![run, item, limit as i64, clamped(offset)], |r| {
                r.get::<_, String>(0)
            })?;
            let mut out = Vec::new();
            for row in rows {
                if let Ok(q) = serde_json::from_str(&row?) {
                    out.push(q);
                }
            }
            Ok((total.max(0) as u64, out))
        })
    }

    /// One of a run's questions.
    pub fn question(&self, run: RunId, id: u64) -> Result<Option<QuestionInfo>, StoreError> {
        self.read(|c| {
            let info: Option<String> = c
                .query_row(
                    "SELECT info FROM questions WHERE run = ?1 AND id = ?2",
                    params![run, id as i64],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(info.and_then(|i| serde_json::from_str(&i).ok()))
        })
    }

    /// A run's error summary, counted by SQLite over the items kept.
    pub fn errors(&self, run: RunId, stages: usize) -> Result<ErrorSummary, StoreError> {
        self.read(|c| {
            let total: i64 = c.query_row(
                "SELECT COUNT(*) FROM items WHERE run = ?1 AND status = 'failed'",
                [run],
                |r| r.get(0),
            )?;
            let mut st = c.prepare(
                "SELECT error_kind, COUNT(*) FROM items WHERE run = ?1 AND status = 'failed'
                 GROUP BY error_kind ORDER BY COUNT(*) DESC, error_kind",
            )?;
            let by_kind = st
                .query_map([run], |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        r.get::<_, i64>(1)? as u64,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut by_stage = vec![0u64; stages];
            let mut st = c.prepare(
                "SELECT stage, COUNT(*) FROM items WHERE run = ?1 AND status = 'failed' GROUP BY stage",
            )?;
            for row in st.query_map([run], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
                let (stage, n) = row?;
                if let Some(slot) = by_stage.get_mut(stage as usize) {
                    *slot = n as u64;
                }
            }
            let mut st = c.prepare(
                "SELECT id, stage, updated_us, error_kind, error_message FROM items
                 WHERE run = ?1 AND status = 'failed' ORDER BY updated_us DESC LIMIT ?2",
            )?;
            let recent = st
                .query_map(params![run, RECENT_FAILURES as i64], |r| {
                    Ok(FailedItem {
                        id: r.get::<_, i64>(0)? as ItemId,
                        stage: r.get(1)?,
                        at_us: r.get::<_, i64>(2)? as u64,
                        error: ErrorInfo {
                            kind: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                            message: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                        },
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ErrorSummary {
                total: total as u64,
                by_kind,
                by_stage,
                recent,
            })
        })
    }

    /// Control actions since `since_ms`, oldest first.
    pub fn audit_log(&self, since_ms: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT at_ms, user, action, target, outcome FROM audit WHERE at_ms >= ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = st.query_map(params![since_ms as i64, limit as i64], |r| {
                Ok(AuditEntry {
                    at_unix_ms: r.get::<_, i64>(0)? as u64,
                    user: r.get(1)?,
                    action: r.get(2)?,
                    target: r.get(3)?,
                    outcome: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The last `limit` deliveries of the alert `alert`, newest first. A row whose outcome
    /// this build does not know (written by a newer one) is left out.
    pub fn alert_deliveries(
        &self,
        alert: &str,
        limit: usize,
    ) -> Result<Vec<flowdeck_protocol::alerts::Delivery>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT at_ms, event, events, outcome, status, error, tries FROM alert_deliveries
                 WHERE alert = ?1 ORDER BY seq DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![alert, limit as i64], |r| {
                let outcome: String = r.get(3)?;
                Ok((
                    outcome,
                    flowdeck_protocol::alerts::Delivery {
                        alert: alert.to_owned(),
                        at_unix_ms: r.get::<_, i64>(0)? as u64,
                        event: r.get(1)?,
                        events: r.get::<_, i64>(2)? as u64,
                        outcome: flowdeck_protocol::alerts::Outcome::Delivered,
                        status: r.get(4)?,
                        error: r.get(5)?,
                        tries: r.get(6)?,
                    },
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (outcome, mut d) = row?;
                if let Some(o) = flowdeck_protocol::alerts::Outcome::parse(&outcome) {
                    d.outcome = o;
                    out.push(d);
                }
            }
            Ok(out)
        })
    }

    /// Log records kept (warn and above) between two times, oldest first.
    pub fn kept_logs(
        &self,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT seq, at_ms, level, source, message, fields FROM logs
                 WHERE at_ms >= ?1 AND at_ms <= ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = st.query_map(params![from_ms as i64, to_ms as i64, limit as i64], |r| {
                let fields: String = r.get(5)?;
                Ok(LogRecord {
                    seq: r.get::<_, i64>(0)? as u64,
                    at_unix_ms: r.get::<_, i64>(1)? as u64,
                    level: r.get(2)?,
                    source: r.get(3)?,
                    message: r.get(4)?,
                    fields: serde_json::from_str(&fields).unwrap_or_default(),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The series with at least one point between two minutes (Unix seconds), by name.
    pub fn metric_series(&self, from: u64, to: u64) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT DISTINCT series FROM metrics WHERE minute >= ?1 AND minute <= ?2
                 ORDER BY series",
            )?;
            let rows = st.query_map(params![from as i64, to as i64], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// A series' minute points between two times (Unix seconds), oldest first.
    pub fn metric_points(
        &self,
        series: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<MetricPoint>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT series, minute, count, sum, min, max, last FROM metrics
                 WHERE series = ?1 AND minute >= ?2 AND minute <= ?3 ORDER BY minute",
            )?;
            let rows = st.query_map(params![series, from as i64, to as i64], |r| {
                Ok(MetricPoint {
                    series: r.get(0)?,
                    minute: r.get::<_, i64>(1)? as u64,
                    count: r.get::<_, i64>(2)? as u64,
                    sum: r.get(3)?,
                    min: r.get(4)?,
                    max: r.get(5)?,
                    last: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}
