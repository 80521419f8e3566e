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
    /// What the item carried into this stage, when the stage captures its inputs
    /// (`Stage::capture`): always for a failure, for a sample of the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Preview>,
    /// What the stage made of it, when the stage captures outputs
    /// (`Stage::capture_output`), for a sample of its items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Preview>,
}

/// An item's data as kept for its page: redacted, pretty-printed JSON, cut at the stage's
/// byte cap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    /// The JSON, whole or cut (at a character boundary) to the cap.
    pub text: String,
    /// The JSON's size before it was cut, in bytes.
    pub bytes: u64,
}

impl Preview {
    /// Whether `text` is only the start of the JSON.
    pub fn truncated(&self) -> bool {
        (self.text.len() as u64) < self.bytes
    }
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

/// The most ancestors a provenance lists: a fan-in of fan-outs can name thousands, and
/// a task page (or a store read per ancestor) must stay quick.
pub const MAX_ANCESTORS: usize = 1_000;

/// What a provenance walk needs of an item: its parents and the stages it passed through.
pub type Lineage = (Vec<ItemId>, Vec<StageIndex>);

/// The provenance of `id`: the item itself, then its parents, theirs and so on, breadth
/// first (nearest first), each once, at most [`MAX_ANCESTORS`]. `lookup` tells an item's
/// parents and the stages it passed through, or `None` when its detail is no longer kept
/// (it is listed, not retained, and the walk stops there). The tracker walks its ring with
/// it, the run store its rows.
pub fn provenance<E>(
    id: ItemId,
    mut lookup: impl FnMut(ItemId) -> Result<Option<Lineage>, E>,
) -> Result<Vec<Ancestor>, E> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut queue = std::collections::VecDeque::from([(id, 0u32)]);
    while let Some((id, depth)) = queue.pop_front() {
        if out.len() >= MAX_ANCESTORS {
            break;
        }
        if !seen.insert(id) {
            continue;
        }
        let ancestor = match lookup(id)? {
            Some((parents, stages)) => {
                queue.extend(parents.iter().map(|p| (*p, depth + 1)));
                Ancestor {
                    id,
                    depth,
                    parents,
                    stages,
                    retained: true,
                }
            }
            None => Ancestor {
                id,
                depth,
                parents: Vec::new(),
                stages: Vec::new(),
                retained: false,
            },
        };
        out.push(ancestor);
    }
    Ok(out)
}

/// A failed item as the error summary lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedItem {
    pub id: ItemId,
    pub stage: StageIndex,
    pub at_us: u64,
    pub error: ErrorInfo,
}

/// How many of the most recent failures an error summary lists.
pub const RECENT_FAILURES: usize = 1_000;

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

/// What changed in an error summary from one stream frame to the next. Under steady
/// failures a frame carries the few new failures, not the thousand the summary lists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorsDelta {
    pub total: u64,
    /// Kinds whose count changed, with their new counts.
    pub by_kind: Vec<(String, u64)>,
    /// Every stage's count (one number a stage), when any changed.
    pub by_stage: Option<Vec<u64>>,
    /// Failures since the previous frame, newest first.
    pub recent: Vec<FailedItem>,
}

impl ErrorSummary {
    /// What turns `before` into `self`; `None` when nothing changed.
    pub fn delta_from(&self, before: &ErrorSummary) -> Option<ErrorsDelta> {
        if self == before {
            return None;
        }
        let new = usize::try_from(self.total.saturating_sub(before.total)).unwrap_or(usize::MAX);
        Some(ErrorsDelta {
            total: self.total,
            by_kind: self
                .by_kind
                .iter()
                .filter(|(kind, n)| !before.by_kind.iter().any(|(k, m)| k == kind && m == n))
                .cloned()
                .collect(),
            by_stage: (self.by_stage != before.by_stage).then(|| self.by_stage.clone()),
            recent: self.recent.iter().take(new).cloned().collect(),
        })
    }

    /// Applies a delta made by [`ErrorSummary::delta_from`].
    pub fn apply(&mut self, d: ErrorsDelta) {
        self.total = d.total;
        for (kind, n) in d.by_kind {
            match self.by_kind.iter_mut().find(|(k, _)| *k == kind) {
                Some(entry) => entry.1 = n,
                None => self.by_kind.push((kind, n)),
            }
        }
        // Most frequent first, then by name: the order the tracker gives.
        self.by_kind
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if let Some(by_stage) = d.by_stage {
            self.by_stage = by_stage;
        }
        let mut recent = d.recent;
        recent.append(&mut self.recent);
        recent.truncate(RECENT_FAILURES);
        self.recent = recent;
    }
}

/// What the task page shows: the item's detail, where it came from, and the stage names
/// its indices refer to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskDetail {
    pub detail: ItemDetail,
    pub provenance: Vec<Ancestor>,
    pub stage_names: Vec<String>,
    /// When the pipeline started (Unix ms): event times count from here.
    #[serde(default)]
    pub started_unix_ms: u64,
    /// The pipeline's clock when this was read (ms since the start), for "… ago".
    #[serde(default)]
    pub now_ms: u64,
    /// For a failed item of a live pipeline: whether the stage where it failed still keeps
    /// its input, so that it can be retried (it keeps the newest `keep_failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// The live pipeline no longer retains the item (newer ones took its slot in the
    /// retention ring), so this is the copy the run store kept when it finished: links into
    /// the live run (from the errors page, a warning, a log line, `flowdeck top`) keep
    /// working, and the page says where the detail came from.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_store: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_walks_nearest_first_once_each_and_stops_at_the_cap() {
        // 7 has parents 5 and 6, both made from 4; 5's detail is gone.
        let parents = |id: ItemId| -> Result<Option<Lineage>, ()> {
            Ok(match id {
                7 => Some((vec![5, 6], vec![2])),
                6 => Some((vec![4], vec![1])),
                4 => Some((vec![], vec![0])),
                _ => None,
            })
        };
        let chain = provenance(7, parents).unwrap();
        let ids: Vec<(ItemId, u32, bool)> =
            chain.iter().map(|a| (a.id, a.depth, a.retained)).collect();
        assert_eq!(
            ids,
            [(7, 0, true), (5, 1, false), (6, 1, true), (4, 2, true)]
        );
        // A line of 5,000 ancestors lists the nearest MAX_ANCESTORS.
        let line = provenance(5_000, |id| {
            Ok::<_, ()>(Some((
                (id > 0).then(|| id - 1).into_iter().collect(),
                vec![],
            )))
        })
        .unwrap();
        assert_eq!(line.len(), MAX_ANCESTORS);
        assert_eq!(
            line.last().map(|a| a.id),
            Some(5_000 - MAX_ANCESTORS as u64 + 1)
        );
    }

    fn failure(id: ItemId, kind: &str) -> FailedItem {
        FailedItem {
            id,
            stage: (id % 3) as StageIndex,
            at_us: id * 10,
            error: ErrorInfo {
                kind: kind.into(),
                message: format!("item {id}"),
            },
        }
    }

    /// A summary as the tracker keeps it, after failures `0..n`.
    fn summary(n: u64) -> ErrorSummary {
        let kinds = ["Timeout", "Empty", "Quota"];
        let mut by_kind: Vec<(String, u64)> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    k.to_string(),
                    (0..n).filter(|x| x % 3 == i as u64).count() as u64,
                )
            })
            .filter(|(_, c)| *c > 0)
            .collect();
        by_kind.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ErrorSummary {
            total: n,
            by_kind,
            by_stage: (0..3)
                .map(|s| (0..n).filter(|x| x % 3 == s).count() as u64)
                .collect(),
            recent: (0..n)
                .rev()
                .take(RECENT_FAILURES)
                .map(|i| failure(i, kinds[(i % 3) as usize]))
                .collect(),
        }
    }

    #[test]
    fn deltas_rebuild_the_summary_and_carry_only_what_is_new() {
        let mut client = summary(0);
        let mut seen = 0;
        for now in [1, 2, 2, 7, 400, 1_300, 1_301, 2_900] {
            let server = summary(now);
            match server.delta_from(&client) {
                None => assert_eq!(now, seen, "no delta although {} failed", now - seen),
                Some(d) => {
                    let new = (now - seen) as usize;
                    assert_eq!(d.recent.len(), new.min(RECENT_FAILURES));
                    assert!(d.by_kind.len() <= 3);
                    client.apply(d);
                }
            }
            assert_eq!(client, server, "after {now} failures");
            seen = now;
        }
    }
}
