//! The state every handle of a running pipeline shares: its stages, tracker, clock,
//! warnings engine, the tasks that watch it, and what its previous snapshot saw. Built by
//! the pipeline when it starts; read by the handle, snapshots and watchers.

use std::{sync::Arc, time::Instant};

use flowdeck_protocol::{Edge, Latency, PipelineState, Snapshot};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::{
    histogram::Counts,
    node::{Env, StageRuntime},
    tracker::Tracker,
};

/// The state every handle shares.
pub(crate) struct Shared {
    pub name: String,
    pub stage_names: Vec<String>,
    pub edges: Vec<Edge>,
    pub env: Arc<Env>,
    pub tracker: Arc<Tracker>,
    pub tracking: bool,
    pub stages: Vec<Arc<dyn StageRuntime>>,
    pub close_input: Box<dyn Fn() + Send + Sync>,
    pub state: watch::Sender<PipelineState>,
    pub rates: Mutex<Previous>,
    pub expected: Mutex<Option<u64>>,
    pub health: Option<Arc<parking_lot::Mutex<crate::warnings::Engine>>>,
    /// Turns true once the health monitor has checked the finished run (or at once when
    /// warnings are off): what a run store waits for before writing the run's warnings.
    pub health_final: watch::Sender<bool>,
    /// The progress display's task, which `Running::run` waits for.
    pub progress: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The monitors' tasks, which `Running::run` waits for too: their `on_finish` has run
    /// when it returns.
    pub monitors: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// A mirrored pipeline's last reported snapshot, which stands for the workers'
    /// counters it has none of (`crate::mirror`); `None` for a pipeline that runs here.
    pub reported: Option<Arc<Mutex<Snapshot>>>,
    /// Where snapshots get the worker processes of distributed stages from
    /// ([`PipelineHandle::set_processes`]).
    pub processes: Mutex<Option<ProcessesFn>>,
    /// The process's resources as last sampled ([`PipelineHandle::set_resources`]), with
    /// their line of words, made once per sample rather than once per snapshot.
    pub resources: Mutex<Option<(flowdeck_protocol::Resources, String)>>,
}

impl Shared {
    /// Takes `r` as what the pipeline's process uses.
    pub(crate) fn set_resources(&self, r: flowdeck_protocol::Resources) {
        let usage = r.summary();
        *self.resources.lock() = Some((r, usage));
    }

    /// The resources as last set, and their line of words (empty before the first).
    pub(crate) fn resources(&self) -> (Option<flowdeck_protocol::Resources>, String) {
        match self.resources.lock().clone() {
            Some((r, usage)) => (Some(r), usage),
            None => (None, String::new()),
        }
    }
}

/// Lists a pipeline's worker processes for its snapshots.
pub(crate) type ProcessesFn =
    Arc<dyn Fn() -> Vec<flowdeck_protocol::ProcessSnapshot> + Send + Sync>;

#[derive(Default, Clone)]
pub(crate) struct StagePrev {
    pub done: u64,
    pub hist: Counts,
    pub busy_us: Vec<u64>,
    pub busy_ratio: Vec<f64>,
    pub blocked_us: Vec<u64>,
    pub blocked_ratio: Vec<f64>,
    pub throughput: f64,
    pub latency: Latency,
}

/// What the previous snapshot saw, to turn counters into rates.
#[derive(Default)]
pub(crate) struct Previous {
    pub at: Option<Instant>,
    pub left: u64,
    pub throughput: f64,
    pub stages: Vec<StagePrev>,
}
