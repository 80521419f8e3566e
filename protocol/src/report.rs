//! What a pipeline in another process sends the dashboard it reports to
//! (`POST /api/v1/ingest`), and the control commands it gets back.

use serde::{Deserialize, Serialize};

use crate::{Edge, ItemDetail, ItemId, Snapshot};

/// Items a batch may carry. Small enough that a batch of them fits the dashboard's 8 MiB
/// body limit however plain its items, so that too many items is a 400 that says so, not
/// a 413.
pub const MAX_ITEMS: usize = 5_000;

/// One batch of a reporting pipeline's news.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportBatch {
    /// The pipeline's name: the dashboard serves it under the slug of it.
    pub pipeline: String,
    pub stages: Vec<String>,
    pub edges: Vec<Edge>,
    /// When the run started, in Unix ms: a new value is a new run on the dashboard.
    pub started_unix_ms: u64,
    /// The latest snapshot, when one was taken since the previous batch.
    pub snapshot: Option<Snapshot>,
    /// The items that changed since the previous batch, each with its whole current
    /// detail (status, visits, history, parents, annotations, captured data): a period's
    /// news per item, not every event, so a fast pipeline costs its reporter per item and
    /// period. Sending an item twice is harmless.
    pub items: Vec<ItemDetail>,
    /// Finished items whose end the reporter has not sent and no longer can (it sends at
    /// most so many a period, and keeps the rest only while its tracker retains them):
    /// their counts are in the snapshot, their rows are not on the dashboard.
    pub dropped: u64,
    /// Questions the pipeline's stages asked people, and their closings, since the
    /// previous batch (all pending ones when the dashboard asked for them again): the
    /// dashboard shows them and sends answers back as [`Command::Answer`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub questions: Vec<crate::question::QuestionChange>,
    /// What the reporting process uses, sampled as the batch was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<crate::Resources>,
}

/// A control action for a reporting pipeline, pressed on the dashboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Command {
    Pause {
        stage: String,
    },
    Resume {
        stage: String,
    },
    Scale {
        stage: String,
        workers: usize,
    },
    Cancel {
        item: ItemId,
    },
    Retry {
        item: ItemId,
    },
    Drain,
    Stop,
    /// A question answered on the dashboard (checked there against its options and form).
    Answer {
        question: crate::question::QuestionId,
        reply: crate::question::Reply,
        by: Option<String>,
    },
}

/// The dashboard's answer to a batch: what to do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestReply {
    pub commands: Vec<Command>,
    /// The dashboard does not know this run's questions (it has just met the run, or it
    /// restarted): the next batch carries every pending one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resend_questions: bool,
}
