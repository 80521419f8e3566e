//! Health warnings as every client sees them: the overview's panel, the graph, a task's
//! page, the API, Prometheus, the store and the terminal read the same [`Warning`].
//! The rules that raise them live in the runtime (`flowdeck_runtime::warnings`); one
//! module answers "is this pipeline healthy", not one rule per page.

use serde::{Deserialize, Serialize};

use crate::ItemId;

/// The rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// An item in flight far longer than its stage's p99, or past its timeout.
    StuckItem,
    /// A worker busy on one item with no completion for a long window while its queue
    /// waits.
    StalledWorker,
    /// Work queued at a stage that nothing takes (all its workers paused, or none left),
    /// or a stage idling while the stage before it is saturated.
    StarvedStage,
    /// More retries than successes at a stage, or most attempts failing with one error.
    RetryStorm,
    /// A queue that keeps growing because items arrive faster than they are served.
    GrowingQueue,
    /// After the run ends, items that are neither completed, failed nor cancelled.
    LostItems,
    /// The async runtime runs ready tasks late: something blocks its threads.
    BlockedRuntime,
    /// A join's group waiting far longer than groups take to fill.
    SlowGroup,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::StuckItem,
        Rule::StalledWorker,
        Rule::StarvedStage,
        Rule::RetryStorm,
        Rule::GrowingQueue,
        Rule::LostItems,
        Rule::BlockedRuntime,
        Rule::SlowGroup,
    ];

    /// The name the wire, the config file, the log and Prometheus use.
    pub fn name(self) -> &'static str {
        match self {
            Rule::StuckItem => "stuck_item",
            Rule::StalledWorker => "stalled_worker",
            Rule::StarvedStage => "starved_stage",
            Rule::RetryStorm => "retry_storm",
            Rule::GrowingQueue => "growing_queue",
            Rule::LostItems => "lost_items",
            Rule::BlockedRuntime => "blocked_runtime",
            Rule::SlowGroup => "slow_group",
        }
    }

    /// Whether its warnings are about a stage (or the whole pipeline).
    pub fn per_stage(self) -> bool {
        !matches!(self, Rule::LostItems | Rule::BlockedRuntime)
    }

    /// A short title for the pages.
    pub fn title(self) -> &'static str {
        match self {
            Rule::StuckItem => "Stuck item",
            Rule::StalledWorker => "Stalled worker",
            Rule::StarvedStage => "Starved stage",
            Rule::RetryStorm => "Retry storm",
            Rule::GrowingQueue => "Growing queue",
            Rule::LostItems => "Lost items",
            Rule::BlockedRuntime => "Blocked runtime",
            Rule::SlowGroup => "Slow group",
        }
    }
}

/// A warning, firing or cleared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub rule: Rule,
    /// The stage it is about; `None` for the whole pipeline.
    pub stage: Option<String>,
    /// The worker it is about, within the stage.
    pub worker: Option<u16>,
    /// The items it is about (a stuck item, a stalled worker's item), for links.
    #[serde(default)]
    pub items: Vec<ItemId>,
    /// What is wrong, naming the stage, worker and items, and the numbers compared.
    pub message: String,
    /// When the condition was first seen and last seen, and when the warning cleared: in
    /// milliseconds of the pipeline's uptime (add the snapshot's `started_unix_ms` for a
    /// date).
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub cleared_ms: Option<u64>,
}

impl Warning {
    /// Whether it is firing now (not cleared).
    pub fn firing(&self) -> bool {
        self.cleared_ms.is_none()
    }
}
