//! One status change of one item, as recorded by the runtime's tracker.

use serde::{Deserialize, Serialize};

use crate::{ItemId, StageIndex};

/// Where an item is in its life. An item that leaves a stage for the next one is
/// `Queued` again, at the next stage; `Completed` means it left the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Queued,
    Running,
    Retrying,
    Completed,
    Failed,
    Cancelled,
    /// Its stage asked a person and waits for the answer, holding no worker.
    Waiting,
}

impl ItemStatus {
    /// Every status, in the order a dashboard lists them.
    pub const ALL: [ItemStatus; 7] = [
        ItemStatus::Queued,
        ItemStatus::Running,
        ItemStatus::Retrying,
        ItemStatus::Completed,
        ItemStatus::Failed,
        ItemStatus::Cancelled,
        ItemStatus::Waiting,
    ];

    /// The lower-case name used on the wire and in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Queued => "queued",
            ItemStatus::Running => "running",
            ItemStatus::Retrying => "retrying",
            ItemStatus::Completed => "completed",
            ItemStatus::Failed => "failed",
            ItemStatus::Cancelled => "cancelled",
            ItemStatus::Waiting => "waiting",
        }
    }

    /// Whether the item is done with the pipeline, one way or another.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ItemStatus::Completed | ItemStatus::Failed | ItemStatus::Cancelled
        )
    }

    /// Parses the name [`ItemStatus::as_str`] gives.
    pub fn parse(name: &str) -> Option<ItemStatus> {
        ItemStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A task's error as it is kept and shown: the error's type and its message. The type is what
/// the error summary groups by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub kind: String,
    pub message: String,
}

/// What happened to an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Entered a stage's queue.
    Queued,
    /// A worker began an attempt.
    Started,
    /// An attempt failed and another one will follow after a backoff.
    Retrying,
    /// The stage finished with the item. `Event::last` tells whether it left the pipeline.
    Completed,
    /// The last attempt failed; the item stops here.
    Failed,
    /// Cancelled by the control handle, or dropped by an abort.
    Cancelled,
    /// The attempt asked a person and waits for the answer; its worker goes on with
    /// other items.
    Waiting,
    /// The answer came (or the default was taken, or the question closed): the attempt
    /// goes on.
    Answered,
}

impl EventKind {
    /// The status an item has right after this event.
    pub fn status_after(self, last: bool) -> ItemStatus {
        match self {
            EventKind::Queued => ItemStatus::Queued,
            EventKind::Started => ItemStatus::Running,
            EventKind::Retrying => ItemStatus::Retrying,
            EventKind::Completed if last => ItemStatus::Completed,
            // Not last: the item goes on to the next stage, whose `Queued` event follows.
            EventKind::Completed => ItemStatus::Queued,
            EventKind::Failed => ItemStatus::Failed,
            EventKind::Cancelled => ItemStatus::Cancelled,
            EventKind::Waiting => ItemStatus::Waiting,
            EventKind::Answered => ItemStatus::Running,
        }
    }
}

/// One status change. Times are microseconds since the pipeline started, so events from one
/// run compare directly and fit in 8 bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Monotonic, gap-free within a run: the change feed's position.
    pub seq: u64,
    pub item: ItemId,
    pub stage: StageIndex,
    /// The worker's index within its stage; `None` for events no worker caused (queued).
    pub worker: Option<u16>,
    pub kind: EventKind,
    /// The attempt number, from 1.
    pub attempt: u32,
    pub at_us: u64,
    /// How long the attempt ran, for `Completed`, `Failed` and `Retrying`.
    pub duration_us: Option<u64>,
    /// For `Completed`: the item left the pipeline (no next stage took it).
    pub last: bool,
    pub error: Option<ErrorInfo>,
    /// In the change feed (and so in a report): the status the item left, `None` for its
    /// first event. Carried rather than derived because workers' batches reach the tracker
    /// in any order, so a reader that derived it from the item's last known status would
    /// miscount. `None` in an item's history, where the order is settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ItemStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for s in ItemStatus::ALL {
            assert_eq!(ItemStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ItemStatus::parse("done"), None);
    }

    #[test]
    fn completed_not_last_means_queued_at_the_next_stage() {
        assert_eq!(EventKind::Completed.status_after(false), ItemStatus::Queued);
        assert_eq!(
            EventKind::Completed.status_after(true),
            ItemStatus::Completed
        );
    }

    #[test]
    fn event_json_shape_is_stable() {
        let e = Event {
            seq: 7,
            item: 3,
            stage: 1,
            worker: Some(0),
            kind: EventKind::Failed,
            attempt: 2,
            at_us: 10,
            duration_us: Some(4),
            last: false,
            error: Some(ErrorInfo {
                kind: "Timeout".into(),
                message: "took too long".into(),
            }),
            from: Some(ItemStatus::Running),
        };
        let json = serde_json::to_string(&e).unwrap_or_default();
        assert!(json.contains(r#""kind":"failed""#), "{json}");
        let back: Event = serde_json::from_str(&json).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(back, e);
    }
}

/// A value a worker attaches to its item (tokens used, model name, bytes): shown in the
/// item's details.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Text(v) => f.write_str(v),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
