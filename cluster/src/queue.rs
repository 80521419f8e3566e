//! A distributed stage's queue on JetStream: its work-queue stream, the durable pull
//! consumer its workers share, and publishing an item into it under its message id.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, PullConsumer},
    message::PublishMessage,
    stream::{self, RetentionPolicy, StorageType},
};
use bytes::Bytes;

use crate::{ClusterError, StageQueue};

/// How a stage's queue delivers.
#[derive(Clone, Debug)]
pub struct QueueOptions {
    /// How long a worker may hold an item without acking it (or sending `Progress`) before
    /// it is delivered to another.
    pub ack_wait: Duration,
    /// Deliveries an item gets at most: the retry policy's attempts.
    pub max_deliver: i64,
    /// The waits before each redelivery of an item that was not acked (at most
    /// `max_deliver` of them); empty: `ack_wait` each time.
    pub backoff: Vec<Duration>,
    /// How long a message id is remembered, so that a republished item is dropped.
    pub duplicate_window: Duration,
    /// Items out with workers at once, across every process.
    pub max_ack_pending: i64,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            backoff: Vec::new(),
            duplicate_window: Duration::from_secs(120),
            max_ack_pending: 1_000,
        }
    }
}

fn nats(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Nats(e.to_string())
}

/// Creates (or opens) the stage's work-queue stream and its workers' consumer.
pub async fn stage_queue(
    js: &jetstream::Context,
    q: &StageQueue,
    o: &QueueOptions,
) -> Result<PullConsumer, ClusterError> {
    let stream = js
        .get_or_create_stream(stream::Config {
            name: q.stream(),
            subjects: vec![q.subject()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            duplicate_window: o.duplicate_window,
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    stream
        .get_or_create_consumer(
            &q.consumer(),
            pull::Config {
                durable_name: Some(q.consumer()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: o.ack_wait,
                max_deliver: o.max_deliver,
                backoff: o.backoff.clone(),
                max_ack_pending: o.max_ack_pending,
                ..Default::default()
            },
        )
        .await
        .map_err(nats)
}

/// Publishes an item into the stage's queue under `id` ([`crate::msg_id`]), waiting for
/// the stream to have it. Answers whether it was a duplicate (already published under that
/// id within the window, so dropped).
pub async fn publish(
    js: &jetstream::Context,
    q: &StageQueue,
    id: &str,
    payload: Bytes,
) -> Result<bool, ClusterError> {
    let ack = js
        .send_publish(
            q.subject(),
            PublishMessage::build().message_id(id).payload(payload),
        )
        .await
        .map_err(nats)?
        .await
        .map_err(nats)?;
    Ok(ack.duplicate)
}
