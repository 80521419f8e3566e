//! Which items a task filter finds ([`Selection`]: a status, a stage and the filter
//! grammar of `flowdeck_protocol::filter`), for the task list and for the bulk actions
//! that act on all of them: retry every failed one, cancel every unfinished one.
//!
//! A bulk action is one decision, so it is audited as one entry (the filter and the
//! counts), and it answers with what it did to each: the items it could not act on are
//! counted and named with the reason (a failed item whose input the stage no longer keeps
//! cannot be retried), never skipped in silence.

use flowdeck_protocol::{
    filter::{BulkOutcome, Facts, FilterError, Skipped, TaskFilter, NAMED_SKIPS},
    ItemId, ItemStatus, ItemSummary, StageIndex,
};
use flowdeck_runtime::PipelineHandle;

/// A status, a stage and a filter, as `GET /api/v1/tasks` and the bulk actions take them.
#[derive(Clone, Debug)]
pub struct Selection {
    status: Option<ItemStatus>,
    stage: Option<StageIndex>,
    filter: TaskFilter,
    stages: Vec<String>,
    /// How a person wrote it, for the audit log.
    said: String,
}

/// Why a selection was refused, for a 400.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("no stage named {name:?}; the stages are {stages}")]
    UnknownStage { name: String, stages: String },
    #[error("q: {0}")]
    Filter(#[from] FilterError),
}

impl SelectionError {
    /// `name` is not one of `stages`: the message lists them, for whoever typed it.
    pub fn unknown_stage(name: &str, stages: &[String]) -> Self {
        SelectionError::UnknownStage {
            name: name.to_owned(),
            stages: stages.join(", "),
        }
    }
}

impl Selection {
    pub fn new(
        pipeline: &PipelineHandle,
        status: Option<ItemStatus>,
        stage: Option<&str>,
        q: Option<&str>,
    ) -> Result<Self, SelectionError> {
        let stages = pipeline.stage_names().to_vec();
        let stage_index = match stage {
            Some(name) => Some(
                pipeline
                    .stage_index(name)
                    .map_err(|_| SelectionError::unknown_stage(name, &stages))?,
            ),
            None => None,
        };
        let filter = TaskFilter::parse(q.unwrap_or_default(), &stages)?;
        let said = [
            status.map(|s| format!("status={}", s.as_str())),
            stage.map(|s| format!("stage={s}")),
            q.map(str::trim)
                .filter(|q| !q.is_empty())
                .map(|q| format!("q={q:?}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        Ok(Selection {
            status,
            stage: stage_index,
            filter,
            stages,
            said: if said.is_empty() {
                "every item".to_owned()
            } else {
                said
            },
        })
    }

    /// The selection in words, for the audit log.
    pub fn said(&self) -> &str {
        &self.said
    }

    /// Whether a summary is found, its status aside (the tracker checks that first).
    pub fn admits(&self, s: &ItemSummary) -> bool {
        let facts = Facts {
            id: s.id,
            status: s.status,
            stage: s.stage,
            kind: s.error.as_ref().map(|e| e.kind.as_str()),
            message: s.error.as_ref().map(|e| e.message.as_str()),
        };
        self.filter.matches(&facts, &self.stages)
    }

    /// Up to `limit` retained items found, newest first, from before `cursor`.
    pub fn find(
        &self,
        pipeline: &PipelineHandle,
        cursor: Option<ItemId>,
        limit: usize,
    ) -> Vec<ItemSummary> {
        pipeline
            .tracker()
            .find(cursor, limit, self.status, self.stage, |s| self.admits(s))
    }
}

/// What a bulk action does to the items found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Puts each failed item back in the queue of the stage it failed at.
    Retry,
    /// Cancels each unfinished item (queued, running, retrying or waiting for a person).
    Cancel,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
        }
    }

    /// Whether the action applies to an item in this state; the others are not matched.
    fn applies(self, status: ItemStatus) -> bool {
        match self {
            Action::Retry => status == ItemStatus::Failed,
            Action::Cancel => !status.is_terminal(),
        }
    }
}

/// What a bulk action did.
pub type Outcome = BulkOutcome;

/// The counts in words, for the audit log.
pub fn said(o: &Outcome) -> String {
    format!(
        "ok: {} matched, {} acted, {} skipped",
        o.matched, o.acted, o.skipped_count
    )
}

/// Runs `action` on every retained item `selection` finds that it applies to (only
/// counts them when `dry_run`).
pub fn run(
    pipeline: &PipelineHandle,
    selection: &Selection,
    action: Action,
    dry_run: bool,
) -> Outcome {
    let mut found: Vec<(ItemId, StageIndex)> = pipeline
        .tracker()
        .find(None, usize::MAX, selection.status, selection.stage, |s| {
            action.applies(s.status) && selection.admits(s)
        })
        .into_iter()
        .map(|s| (s.id, s.stage))
        .collect();
    // Oldest first: retried items go back into their queues in the order they came.
    found.reverse();
    let matched = found.len() as u64;
    if dry_run {
        return Outcome {
            matched,
            dry_run,
            ..Outcome::default()
        };
    }
    let refused = match action {
        Action::Retry => pipeline.retry_many(&found),
        Action::Cancel => found
            .iter()
            .filter_map(|&(id, _)| pipeline.cancel(id).err().map(|e| (id, e)))
            .collect(),
    };
    Outcome {
        matched,
        acted: matched - refused.len() as u64,
        skipped_count: refused.len() as u64,
        skipped: refused
            .into_iter()
            .take(NAMED_SKIPS)
            .map(|(id, e)| Skipped {
                id,
                why: e.to_string(),
            })
            .collect(),
        dry_run,
    }
}
