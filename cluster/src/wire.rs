//! What travels on NATS, as JSON: a dispatched item ([`Envelope`]), a worker's answer
//! ([`Reply`]), questions for people and their answers ([`QuestionNotice`],
//! [`AnswerCommand`]), the driver's controls ([`ControlState`]) and a worker process's heartbeat
//! (the protocol's `ProcessSnapshot`, which the dashboard shows as it came).
//!
//! JSON, and not a compact binary format: a JetStream round trip costs tens of
//! microseconds, so encoding hardly shows; JSON can be read with `nats sub` while
//! debugging, published by a program in any language, and is what the dashboard already
//! shows an item's data in.

use serde::{Deserialize, Serialize};

/// An item dispatched to a distributed stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// The driver's run: replies of another run are not this one's.
    pub run: String,
    /// The driver's number for this dispatch, which its reply names.
    pub dispatch: u64,
    /// The item's id in the driver's pipeline (its page, its provenance).
    pub item: u64,
    pub value: T,
}

/// A worker's answer to a dispatch: published (under [`crate::reply_id`]) before the item
/// is acked or terminated, so that an item never ends without one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// `None` for a message that did not decode far enough to tell.
    pub run: Option<String>,
    pub dispatch: Option<u64>,
    pub item: Option<u64>,
    /// Which delivery of the item this was (1 for the first).
    pub deliveries: i64,
    /// The worker process: `host:pid`.
    pub process: String,
    pub outcome: Answer,
}

/// How a dispatch ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The stage's outputs (one for a map, any number for a flat map).
    Done(Vec<serde_json::Value>),
    /// Failed for good: the retry policy's last attempt, an error it does not retry, or a
    /// message that was not an item of this stage (`kind` "Decode").
    Failed {
        kind: String,
        message: String,
        /// The start of the message's body, when it did not decode.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
    },
}

/// A worker's word that an attempt failed and the item goes back to be retried (`Nak`).
/// Sent on core NATS, at most once: a lost one only hides a retry from the item's page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryNotice {
    pub run: String,
    pub dispatch: u64,
    /// Which delivery failed.
    pub delivery: i64,
    pub kind: String,
    pub message: String,
}

/// A question a worker process's task asked about a dispatched item, or its closing there:
/// the driver shows it on its dashboard as the item's, and sends answers back as
/// [`AnswerCommand`]s. Sent on core NATS each time it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuestionNotice {
    pub run: String,
    pub dispatch: u64,
    /// The worker process: its answers go to its own subject.
    pub process: String,
    /// The question as the process's registry has it (its numbering, the driver's item).
    pub change: flowdeck_protocol::question::QuestionChange,
}

/// An answer given on the driver's dashboard to a worker process's question (checked
/// there against its options and form), for that process to take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnswerCommand {
    /// The question's id in the worker process.
    pub question: u64,
    pub reply: flowdeck_protocol::question::Reply,
    pub by: Option<String>,
}

/// The driver's controls over its distributed stages, published when they change and
/// every second, so a worker process that joins late learns them within a second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlState {
    pub run: String,
    /// By distributed index.
    pub paused: Vec<bool>,
}
