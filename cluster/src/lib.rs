//! Past one machine, on NATS JetStream (issue #16; this crate is its first part).
//!
//! A distributed stage's input queue is a JetStream **work-queue stream**: each item is one
//! message, taken by one worker of any process through a durable **pull consumer**, and
//! removed when acknowledged. What JetStream gives, and what flowdeck builds on:
//! - `ack_wait`: an item whose worker died is delivered again to another;
//! - `max_deliver` and `backoff`: the stage's retry policy, with `Nak(delay)`;
//! - `Progress`: a long item keeps its claim;
//! - deduplication by `Nats-Msg-Id` within the stream's duplicate window: an item's
//!   outputs are published under an id made of (run, stage, item, output), so a worker
//!   that crashed after publishing and before acking produces no duplicate downstream.
//!
//! JetStream accepts an ack that comes after `ack_wait` (nats-server #4786): a slow worker
//! can remove an item another worker is processing again. Outputs are therefore
//! deduplicated by their ids, never by which delivery made them.
//!
//! [`layout`] names the streams, subjects, consumers and message ids; [`queue`] creates a
//! stage's stream and consumer and publishes into it; [`worker`] is what a worker process
//! does with each item it pulls.
//!
//! Items travel as JSON ([`Envelope`]). A JetStream round trip costs tens of
//! microseconds, so the encoding's cost hardly shows; JSON can be read with `nats sub`
//! while debugging, published by a program in any language, and is what the dashboard
//! already shows an item's data in. A compact binary format would save bytes, not time
//! that matters here.

pub mod layout;
pub mod queue;
pub mod worker;

pub use layout::{msg_id, StageQueue};
pub use queue::{publish, stage_queue, QueueOptions};
pub use worker::{handle, Envelope, Outcome};

/// What went wrong talking to NATS, or with a name given.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    Name(String),
    #[error("NATS: {0}")]
    Nats(String),
}
