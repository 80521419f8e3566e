//! The whole picture of a pipeline at one moment: what a dashboard shows on first paint and
//! what a client resyncs from when it has fallen behind the change feed.

use serde::{Deserialize, Serialize};

use crate::ItemId;

/// Whether the pipeline is taking work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineState {
    #[default]
    Starting,
    Running,
    /// No more input is accepted; queued items are being finished.
    Draining,
    Finished,
    Aborted,
}

impl PipelineState {
    pub const ALL: [PipelineState; 5] = [
        PipelineState::Starting,
        PipelineState::Running,
        PipelineState::Draining,
        PipelineState::Finished,
        PipelineState::Aborted,
    ];

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineState::Starting => "starting",
            PipelineState::Running => "running",
            PipelineState::Draining => "draining",
            PipelineState::Finished => "finished",
            PipelineState::Aborted => "aborted",
        }
    }
}

/// What one worker is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    #[default]
    Idle,
    /// Running an attempt.
    Busy,
    /// Holding a finished item while the next stage's queue is full (or the pipeline's
    /// output is not read): waiting on downstream, not working.
    Blocked,
    Paused,
    Stopped,
}

impl WorkerState {
    pub const ALL: [WorkerState; 5] = [
        WorkerState::Idle,
        WorkerState::Busy,
        WorkerState::Blocked,
        WorkerState::Paused,
        WorkerState::Stopped,
    ];

    /// The name the wire, the pages and Prometheus use.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Idle => "idle",
            WorkerState::Busy => "busy",
            WorkerState::Blocked => "blocked",
            WorkerState::Paused => "paused",
            WorkerState::Stopped => "stopped",
        }
    }
}

/// Latency percentiles of recent attempts, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerSnapshot {
    /// The worker's index within its stage.
    pub id: u16,
    pub state: WorkerState,
    pub current_item: Option<ItemId>,
    pub processed: u64,
    pub failed: u64,
    /// Share of the last interval this worker spent running tasks, 0.0 to 1.0.
    pub busy_ratio: f64,
    /// Share of the last interval it spent blocked on downstream, 0.0 to 1.0.
    #[serde(default)]
    pub blocked_ratio: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageSnapshot {
    pub name: String,
    pub paused: bool,
    /// The input queue's bound: a full queue holds back the stage before it.
    pub capacity: usize,
    pub queued: u64,
    pub in_flight: u64,
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
    pub cancelled: u64,
    /// Items finished per second over the last interval.
    pub throughput: f64,
    pub latency: Latency,
    /// Age of the oldest item waiting in the queue, in milliseconds: the stage's lag.
    pub oldest_queued_ms: u64,
    /// The live workers' mean busy ratio: how saturated the stage is.
    #[serde(default)]
    pub busy_ratio: f64,
    /// The live workers' mean blocked ratio: how much the stage waits on downstream.
    #[serde(default)]
    pub blocked_ratio: f64,
    pub workers: Vec<WorkerSnapshot>,
    /// Its items waiting for a person's answer, holding no worker, and how many may wait
    /// at once (`Stage::max_waiting`; past it, askers wait for a place, on their worker).
    #[serde(default)]
    pub waiting: u64,
    #[serde(default)]
    pub max_waiting: u64,
    /// A join stage's groups; `None` for other stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinSnapshot>,
}

/// A join stage's groups (`Stage::join`): what it waits for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinSnapshot {
    /// The stage whose items it groups by (its origin).
    pub of: u16,
    /// Groups waiting for parts, and how long the oldest has waited.
    pub waiting: u64,
    pub oldest_ms: u64,
    /// Parts arrived, and parts expected (arrived and still under way), over the waiting
    /// groups.
    pub arrived: u64,
    pub expected: u64,
    /// What the pages do not show, left out of the browser's build (it carries no code
    /// to decode them): the groups fired, those fired by their timeout, parts that came
    /// after their group fired, the 99th percentile of the time groups take to fill, and
    /// the oldest waiting group.
    #[cfg_attr(target_arch = "wasm32", serde(skip))]
    #[serde(default)]
    pub fired: u64,
    #[cfg_attr(target_arch = "wasm32", serde(skip))]
    #[serde(default)]
    pub timed_out: u64,
    #[cfg_attr(target_arch = "wasm32", serde(skip))]
    #[serde(default)]
    pub late: u64,
    #[cfg_attr(target_arch = "wasm32", serde(skip))]
    #[serde(default)]
    pub fill_p99_ms: u64,
    #[cfg_attr(target_arch = "wasm32", serde(skip))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<OldestGroup>,
}

/// The oldest group a join waits for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldestGroup {
    /// The item of the origin stage its parts descend from.
    pub origin: u64,
    pub arrived: u64,
    pub expected: u64,
}

/// A stage counts as saturated when its workers are busy this share of the time...
pub const SATURATED: f64 = 0.8;
/// ...and as held back by downstream when they are blocked this share of the time.
pub const HELD_BACK: f64 = 0.25;

impl StageSnapshot {
    /// Whether the stage has work waiting and nobody taking it: paused, or no workers.
    pub fn stalled(&self) -> bool {
        self.queued > 0 && (self.paused || self.workers.is_empty())
    }

    /// How hard the stage works, 0.0 to 1.0; a stalled stage counts as fully loaded, since
    /// nothing it holds moves.
    pub fn load(&self) -> f64 {
        if self.stalled() {
            1.0
        } else {
            self.busy_ratio
        }
    }
}

/// An arrow in the pipeline's graph. `from: None` is the pipeline's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub from: Option<u16>,
    pub to: u16,
    /// A broadcast edge: every output of `from` goes here as a copy, besides the routing
    /// edges' choice.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub broadcast: bool,
}

/// Counts over the whole pipeline. Items are counted once, wherever they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Items that entered the pipeline, from the input or by fan-out.
    pub submitted: u64,
    pub queued: u64,
    pub running: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Attempts that were retried.
    pub retried: u64,
    /// Items that left the pipeline per second over the last interval.
    pub throughput: f64,
    /// Items waiting for a person's answer (their stage asked a question), holding no
    /// worker.
    #[serde(default)]
    pub waiting: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub pipeline: String,
    pub state: PipelineState,
    /// The change feed's position this snapshot includes: deltas after it apply on top.
    pub seq: u64,
    pub uptime_ms: u64,
    /// When the pipeline started, in Unix milliseconds; event times count from here.
    #[serde(default)]
    pub started_unix_ms: u64,
    pub totals: Totals,
    pub stages: Vec<StageSnapshot>,
    pub edges: Vec<Edge>,
    /// Questions waiting for a person (the top bar's count), and how many times the
    /// pipeline's questions changed (asked or closed): a page that lists them reads them
    /// again when this moves.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub questions_pending: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub questions_seq: u64,
    /// How many items the run was given, when known.
    pub expected: Option<u64>,
    /// Estimated time to finish, when `expected` is known and work is moving.
    pub eta_ms: Option<u64>,
    /// The health warnings firing now, then those that cleared in the last few minutes
    /// (newest first), so that a page shows a warning going away, not just vanishing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<crate::Warning>,
    /// The worker processes of the pipeline's distributed stages (flowdeck-cluster), as
    /// their heartbeats show them; empty for a pipeline in one process. Not read in the
    /// browser, whose workers page asks for them itself (`fetch_processes`): the first
    /// load's wasm then carries no code to decode them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(target_arch = "wasm32", serde(skip))]
    pub processes: Vec<ProcessSnapshot>,
    /// What the pipeline's process uses (CPU, memory, threads, its runtime), as last
    /// sampled: by the dashboard serving it, or by a reporting process with its batches.
    /// Not in the stream, whose pages show `usage`: the API gives it (`/api/v1/summary`).
    #[serde(skip)]
    pub resources: Option<crate::Resources>,
    /// `resources` in words, as the overview, the workers page and `flowdeck top` show
    /// it: a line of text costs the first load's wasm no decoder and no number formatting.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub usage: String,
}

/// A worker process serving distributed stages: what its last heartbeat said, and how
/// long ago that was. Also the heartbeat itself, as the process sends it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessSnapshot {
    /// `host:pid`.
    pub process: String,
    pub host: String,
    pub pid: u32,
    /// The worker program's version, as it reports it.
    pub version: String,
    pub started_unix_ms: u64,
    /// Since its last heartbeat (0 in the heartbeat itself).
    #[serde(default)]
    pub silent_ms: u64,
    /// Silent too long: its items go to other processes once their `ack_wait` runs out.
    #[serde(default)]
    pub lost: bool,
    pub stages: Vec<ProcessStage>,
    /// Its CPU, memory and runtime, as of its last heartbeat (absent from a process of an
    /// older version).
    #[serde(default)]
    pub resources: Option<crate::Resources>,
}

/// One distributed stage in one worker process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessStage {
    pub name: String,
    pub paused: bool,
    /// Items this process answered: done, failed for good, sent back to retry later.
    pub done: u64,
    pub failed: u64,
    pub retried: u64,
    /// Deliveries that were not an item's first: a retry after a failure (`Nak`), or an
    /// item whose earlier worker died or stalled.
    pub redelivered: u64,
    /// Replies dropped by JetStream as duplicates of one already published.
    pub duplicate_replies: u64,
    pub workers: Vec<WorkerSnapshot>,
}

impl Snapshot {
    /// The stage that holds the pipeline back: the most loaded stage among those that
    /// are saturated (busy at least [`SATURATED`] of the time, or stalled with work
    /// queued) while their own output is not blocked. A stage that spends its time waiting
    /// for room downstream is a victim of the bottleneck, not the bottleneck, however long
    /// its queue. Ties go to the longer wait in the queue. `None` when no stage is
    /// saturated: the pipeline keeps up with its input; and once the run has ended, when
    /// nothing holds it back any more (its last busy ratios still describe its last
    /// moments of work).
    pub fn bottleneck(&self) -> Option<usize> {
        if matches!(self.state, PipelineState::Finished | PipelineState::Aborted) {
            return None;
        }
        self.stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.load() >= SATURATED && s.blocked_ratio < HELD_BACK)
            .max_by(|(_, a), (_, b)| {
                a.load()
                    .total_cmp(&b.load())
                    .then(a.oldest_queued_ms.cmp(&b.oldest_queued_ms))
                    .then(a.queued.cmp(&b.queued))
            })
            .map(|(i, _)| i)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, queued: u64, busy: f64, blocked: f64) -> StageSnapshot {
        StageSnapshot {
            name: name.into(),
            queued,
            oldest_queued_ms: queued * 10,
            busy_ratio: busy,
            blocked_ratio: blocked,
            workers: vec![WorkerSnapshot::default()],
            ..StageSnapshot::default()
        }
    }

    fn bottleneck(stages: Vec<StageSnapshot>) -> Option<usize> {
        Snapshot {
            stages,
            ..Snapshot::default()
        }
        .bottleneck()
    }

    #[test]
    fn the_saturated_stage_is_the_bottleneck_not_the_blocked_ones_before_it() {
        // The demo's shape: ingest and parse wait on a full enrich queue, enrich works
        // flat out, store idles. The longest queue is upstream, yet enrich holds it back.
        let stages = vec![
            stage("ingest", 1000, 0.05, 0.95),
            stage("parse", 1024, 0.06, 0.90),
            stage("enrich", 1024, 0.95, 0.0),
            stage("store", 0, 0.10, 0.0),
        ];
        assert_eq!(bottleneck(stages), Some(2));
    }

    #[test]
    fn an_ended_run_has_no_bottleneck() {
        for state in [PipelineState::Finished, PipelineState::Aborted] {
            let s = Snapshot {
                state,
                stages: vec![stage("a", 0, 0.99, 0.0), stage("b", 0, 0.1, 0.0)],
                ..Snapshot::default()
            };
            assert_eq!(s.bottleneck(), None, "{state:?}");
        }
        let running = Snapshot {
            stages: vec![stage("a", 0, 0.99, 0.0)],
            ..Snapshot::default()
        };
        assert_eq!(running.bottleneck(), Some(0));
    }

    #[test]
    fn slow_first_and_slow_last_stages_are_found() {
        let first = vec![stage("a", 500, 0.99, 0.0), stage("b", 0, 0.02, 0.0)];
        assert_eq!(bottleneck(first), Some(0));
        let last = vec![stage("a", 5, 0.1, 0.9), stage("b", 900, 0.97, 0.0)];
        assert_eq!(bottleneck(last), Some(1));
    }

    #[test]
    fn no_bottleneck_while_every_stage_keeps_up() {
        let idle = vec![stage("a", 3, 0.2, 0.0), stage("b", 0, 0.4, 0.0)];
        assert_eq!(bottleneck(idle), None);
    }

    #[test]
    fn a_paused_stage_with_work_waiting_holds_the_pipeline_back() {
        let mut paused = stage("b", 40, 0.0, 0.0);
        paused.paused = true;
        assert_eq!(bottleneck(vec![stage("a", 0, 0.1, 0.8), paused]), Some(1));
    }
}
