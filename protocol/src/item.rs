//! What the tracker knows about one item, and the error summary.

use serde::{Deserialize, Serialize};

use crate::{ErrorInfo, Event, ItemId, ItemStatus, StageIndex, Value};

/// One visit of an item to one stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageVisit {
    pub stage: StageIndex,
    pub worker: Option<u16>,
    pub attempts: u32,
    pub queued_us: u64,
    pub started_us: Option<u64>,
    pub finished_us: Option<u64>,
    /// How the visit ended; `None` while it goes on.
    pub outcome: Option<ItemStatus>,
}

/// Everything kept about one item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemDetail {
    pub id: ItemId,
    pub status: ItemStatus,
    /// The stage the item is at, or was at when it finished.
    pub stage: StageIndex,
    pub created_us: u64,
    pub updated_us: u64,
    pub visits: Vec<StageVisit>,
    /// The items this one was made from (empty for pipeline input).
    pub parents: Vec<ItemId>,
    pub error: Option<ErrorInfo>,
    pub annotations: Vec<(String, Value)>,
    /// Every status change, oldest first.
    pub history: Vec<Event>,
}

/// A line in a list of items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemSummary {
    pub id: ItemId,
    pub status: ItemStatus,
    pub stage: StageIndex,
    pub attempts: u32,
    pub updated_us: u64,
    pub error: Option<ErrorInfo>,
}

/// One ancestor in an item's provenance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ancestor {
    pub id: ItemId,
    /// Distance from the item asked about: 0 is the item itself.
    pub depth: u32,
    pub parents: Vec<ItemId>,
    /// The stages it passed through, in order.
    pub stages: Vec<StageIndex>,
    /// False when the item's detail is no longer retained (only its id is known).
    pub retained: bool,
}

/// A failed item as the error summary lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedItem {
    pub id: ItemId,
    pub stage: StageIndex,
    pub at_us: u64,
    pub error: ErrorInfo,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorSummary {
    /// Items that failed for good.
    pub total: u64,
    /// Failures by error kind, most frequent first.
    pub by_kind: Vec<(String, u64)>,
    /// Failures per stage, indexed like the snapshot's stages.
    pub by_stage: Vec<u64>,
    /// The most recent failures, newest first (bounded).
    pub recent: Vec<FailedItem>,
}

/// What the task page shows: the item's detail, where it came from, and the stage names
/// its indices refer to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskDetail {
    pub detail: ItemDetail,
    pub provenance: Vec<Ancestor>,
    pub stage_names: Vec<String>,
}
