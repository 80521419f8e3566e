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

/// What one worker is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    #[default]
    Idle,
    Busy,
    Paused,
    Stopped,
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
    pub workers: Vec<WorkerSnapshot>,
}

/// An arrow in the pipeline's graph. `from: None` is the pipeline's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub from: Option<u16>,
    pub to: u16,
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
    /// How many items the run was given, when known.
    pub expected: Option<u64>,
    /// Estimated time to finish, when `expected` is known and work is moving.
    pub eta_ms: Option<u64>,
}

impl Snapshot {
    /// The stage that holds the pipeline back: the one whose oldest queued item is oldest,
    /// and among equals the deepest queue. `None` when nothing waits anywhere.
    pub fn bottleneck(&self) -> Option<usize> {
        self.stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.queued > 0)
            .max_by_key(|(_, s)| (s.oldest_queued_ms, s.queued))
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, queued: u64, oldest: u64) -> StageSnapshot {
        StageSnapshot {
            name: name.into(),
            queued,
            oldest_queued_ms: oldest,
            ..StageSnapshot::default()
        }
    }

    #[test]
    fn bottleneck_is_the_stage_with_the_oldest_waiting_item() {
        let snap = Snapshot {
            stages: vec![stage("a", 500, 10), stage("b", 20, 900), stage("c", 0, 0)],
            ..Snapshot::default()
        };
        assert_eq!(snap.bottleneck(), Some(1));
    }

    #[test]
    fn no_bottleneck_when_nothing_waits() {
        let snap = Snapshot {
            stages: vec![stage("a", 0, 0)],
            ..Snapshot::default()
        };
        assert_eq!(snap.bottleneck(), None);
    }
}
