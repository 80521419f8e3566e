//! Runs as the run store keeps them, on the wire: the list of runs, one run with its graph
//! and last snapshot, a page of a run's items with the exact count of all that match.

use serde::{Deserialize, Serialize};

use crate::{Edge, ItemSummary, Snapshot, Totals};

/// How a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Finished,
    Aborted,
    /// The process ended while the run went on (a crash, `kill -9`): found at the next
    /// start, and ended at the last moment the store heard of it.
    Interrupted,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Aborted => "aborted",
            RunState::Interrupted => "interrupted",
        }
    }

    /// The state a stored name stands for; anything unknown reads as interrupted.
    pub fn parse(s: &str) -> RunState {
        match s {
            "running" => RunState::Running,
            "finished" => RunState::Finished,
            "aborted" => RunState::Aborted,
            _ => RunState::Interrupted,
        }
    }
}

/// A run in the list of runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: i64,
    pub pipeline: String,
    pub state: RunState,
    pub started_ms: u64,
    /// When it ended; for a running run, `None`.
    pub ended_ms: Option<u64>,
    /// The counts at the last snapshot the store has; for an interrupted run, recounted
    /// from its kept items when it was found (see `recounted`).
    pub totals: Totals,
    /// Items kept in the store.
    pub stored: u64,
    /// Finished items the store shed under load (counted, not kept).
    pub not_stored: u64,
    /// The totals were recounted from the items the store kept, at the start after the
    /// process that ran it died: its last snapshot was older than its last items. Items
    /// in progress at that moment count in `submitted` only.
    #[serde(default)]
    pub recounted: bool,
}

/// A run with what its pages show: its stages and edges, and its last snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    pub info: RunInfo,
    pub stages: Vec<String>,
    pub edges: Vec<Edge>,
    pub snapshot: Option<Snapshot>,
    /// Its health warnings, firing when it was last seen or cleared, oldest first (the
    /// last 500).
    #[serde(default)]
    pub warnings: Vec<crate::Warning>,
}

/// How a run's items are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemSort {
    /// Newest id first.
    #[default]
    Newest,
    Oldest,
    /// Last changed first.
    Updated,
    /// Most attempts first.
    Attempts,
}

/// A page of a run's items, with how many match in all (exact: counted by SQLite).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemPage {
    pub total: u64,
    pub items: Vec<ItemSummary>,
}

/// Where the run store is and how it is doing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStatus {
    pub path: String,
    /// The live run's id.
    pub run: i64,
    /// True while writes fail (a full disk); the pipeline runs on regardless.
    pub degraded: bool,
    /// The last write failure.
    pub problem: Option<String>,
    pub items_written: u64,
    /// Finished items not kept because the writer was behind (counted per run).
    pub items_shed: u64,
    pub commits: u64,
}

/// Items of a run kept in the store, by status, for the filters' counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub all: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Items not yet finished: only a replayed moment has any (the store keeps finished
    /// items), those created by then that finished later.
    #[serde(default)]
    pub in_progress: u64,
}

/// A finished (or interrupted) run as its pages show it: its record, and a picture built
/// from the store in the shape of the live stream's, so the live pages' parts draw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub run: StoredRun,
    /// The last snapshot, the error summary counted over the kept items, and a rate
    /// history a point a minute from the stored metric rollups; no items (a run's task
    /// list is read page by page).
    pub full: crate::stream::Full,
}

/// Which of a run's stored items a page lists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunTaskQuery {
    pub status: Option<crate::ItemStatus>,
    pub stage: Option<u16>,
    pub text: String,
    pub sort: ItemSort,
    pub offset: u64,
    /// The moment to list the items as they were, in ms of the run's uptime; `None` for
    /// its end.
    #[serde(default)]
    pub at_ms: Option<u64>,
}

/// A page of a run's items with the counts its filter tabs show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunTaskPage {
    pub page: ItemPage,
    pub counts: StatusCounts,
}

/// One point of a stored run's timeline: its totals at `at_ms` of its uptime.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    pub at_ms: u64,
    pub totals: Totals,
}

/// A stored run's timeline, for replay: the snapshots the store kept of it, oldest first,
/// about one every `resolution_ms` and the last at its end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub resolution_ms: u64,
    pub points: Vec<TimelinePoint>,
}

/// A stored run as it was at a moment: the snapshot kept at or just before the moment
/// asked for (the first one for a moment before it), and its bottleneck then.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Moment {
    /// The snapshot's own time, in ms of the run's uptime.
    pub at_ms: u64,
    pub snapshot: Snapshot,
    /// The stage that held the pipeline back then (see `Snapshot::bottleneck`).
    pub bottleneck: Option<String>,
}
