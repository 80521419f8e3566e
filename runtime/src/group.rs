//! The groups a join waits for: every item that descends from one item of the join's
//! fan-out stage belongs to that item's group, and the group fires once each member has
//! either arrived at the join or ended somewhere else.
//!
//! An item carries its groups (a shared, immutable list: siblings share one) in its
//! envelope. The places where an item stops being itself tell its groups so: a fan-out
//! (the parent is replaced by its children), a failure after its retries, a cancel, an
//! item left at an output or filtered out, an arrival at a join. The last member to end
//! fires the group: its joined item goes to the join's queue from there, with the
//! backpressure any send has. Items outside every group pay one branch per end.

use std::{any::Any, sync::Arc};

use flowdeck_protocol::{ErrorInfo, ItemId};
use futures::future::BoxFuture;

use crate::{events::EventBuf, worker::WorkerSlot};

/// Why a part of a group never arrived at its join.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "why", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Why {
    /// It failed for good (after its retries) with this error.
    Failed { error: ErrorInfo },
    /// It was cancelled (from the dashboard, the API, or by a drain or stop).
    Cancelled,
    /// A stage made nothing of it (a `flat_map` with no output).
    FilteredOut { stage: String },
    /// It left the pipeline at another output, or ended at a stage with no edge for it.
    RoutedElsewhere { stage: String },
    /// It was still under way when the group's timeout fired it.
    TimedOut,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Failed { error } => write!(f, "failed: {}: {}", error.kind, error.message),
            Why::Cancelled => f.write_str("cancelled"),
            Why::FilteredOut { stage } => write!(f, "filtered out at {stage}"),
            Why::RoutedElsewhere { stage } => write!(f, "routed elsewhere from {stage}"),
            Why::TimedOut => f.write_str("still under way when the group timed out"),
        }
    }
}

/// How a member stopped being one.
pub(crate) enum End {
    /// It will never arrive, for this reason.
    Missing(Why),
    /// It became its children (each made a member before), or arrived at another join
    /// (whose joined item is a member already): nothing is missing.
    Replaced,
}

impl End {
    /// A member cancelled (from the dashboard, the API, a drain, a stop, a refused send).
    pub(crate) fn cancelled() -> End {
        End::Missing(Why::Cancelled)
    }
}

/// A group, whatever the types of its join.
pub(crate) trait Group: Send + Sync {
    /// `child` becomes a member, made from member `parent` (it sorts after it).
    fn spawned(&self, parent: ItemId, child: ItemId);
    /// Member `item` ended elsewhere; the last member to end fires the group.
    fn ended(&self, item: ItemId, end: &End, now_us: u64) -> Option<Fire>;
    fn as_any(&self) -> &dyn Any;
}

/// A group that fired: its joined item, on its way to the join's queue.
pub(crate) trait Firing: Send {
    /// Records the joined item and queues it at the join, waiting for room. What that
    /// ends in turn (a joined item that could not be queued, in its own groups) fires too.
    fn deliver<'a>(
        self: Box<Self>,
        buf: &'a mut EventBuf,
        slot: Option<&'a WorkerSlot>,
    ) -> BoxFuture<'a, Vec<Fire>>;
}

pub(crate) type Fire = Box<dyn Firing>;

/// The groups an item belongs to: none for most items, so the common case is a null
/// pointer.
#[derive(Clone, Default)]
pub(crate) struct Groups(Option<Arc<[Arc<dyn Group>]>>);

impl Groups {
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<dyn Group>> {
        self.0.iter().flat_map(|g| g.iter())
    }

    /// These groups and `more`.
    pub(crate) fn with(&self, more: Vec<Arc<dyn Group>>) -> Groups {
        if more.is_empty() {
            return self.clone();
        }
        let all: Vec<Arc<dyn Group>> = self.iter().cloned().chain(more).collect();
        Groups(Some(all.into()))
    }

    /// `child`, made from `parent`, joins each of these groups.
    #[inline]
    pub(crate) fn spawned(&self, parent: ItemId, child: ItemId) {
        for g in self.iter() {
            g.spawned(parent, child);
        }
    }

    /// Member `item` ended elsewhere (`end` is built only when it belongs to a group):
    /// tells each of its groups and delivers the groups that fired.
    #[inline]
    pub(crate) async fn end(
        &self,
        item: ItemId,
        end: impl FnOnce() -> End,
        now_us: u64,
        buf: &mut EventBuf,
        slot: Option<&WorkerSlot>,
    ) {
        if self.is_empty() {
            return;
        }
        let fires = self.ended(item, &end(), now_us);
        settle(fires, buf, slot).await;
    }

    /// Member `item` ended elsewhere: tells each of its groups, and returns those that
    /// fired, for the caller to deliver.
    pub(crate) fn ended(&self, item: ItemId, end: &End, now_us: u64) -> Vec<Fire> {
        self.iter()
            .filter_map(|g| g.ended(item, end, now_us))
            .collect()
    }
}

/// Delivers fired groups, and those their delivery fires in turn.
pub(crate) async fn settle(mut fires: Vec<Fire>, buf: &mut EventBuf, slot: Option<&WorkerSlot>) {
    while let Some(fire) = fires.pop() {
        let more = fire.deliver(buf, slot).await;
        fires.extend(more);
    }
}
