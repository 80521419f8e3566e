//! A distributed stage's queues on JetStream: the work-queue stream of its input with the
//! durable pull consumer its workers share, the stream of the workers' replies with the
//! driver's consumer, and publishing into either under a message id.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, PullConsumer},
    message::PublishMessage,
    stream::{self, RetentionPolicy, StorageType},
};
use bytes::Bytes;
use futures::StreamExt;

use crate::{ClusterError, StageQueue};

/// How a stage's queue delivers.
#[derive(Clone, Debug)]
pub struct QueueOptions {
    /// How long a worker may hold an item without acking it (or sending `Progress`) before
    /// it is delivered to another.
    pub ack_wait: Duration,
    /// Deliveries an item gets at most; -1 (the default): no limit on the server. The
    /// workers end an item themselves (the retry policy's last attempt, or a poison item
    /// delivered far more often than it had attempts), so that it always ends with a
    /// reply: an item the server drops after `max_deliver` would be lost to the driver.
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
            max_deliver: -1,
            backoff: Vec::new(),
            duplicate_window: Duration::from_secs(120),
            max_ack_pending: 1_000,
        }
    }
}

pub(crate) fn nats(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Nats(e.to_string())
}

/// Creates (or opens) a work-queue stream on one subject, in file storage so that it
/// outlives a restart of the server.
async fn work_queue(
    js: &jetstream::Context,
    name: String,
    subject: String,
    o: &QueueOptions,
) -> Result<stream::Stream, ClusterError> {
    js.get_or_create_stream(stream::Config {
        name,
        subjects: vec![subject],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        duplicate_window: o.duplicate_window,
        ..Default::default()
    })
    .await
    .map_err(nats)
}

/// Creates (or opens) the stage's input stream and its workers' consumer. With `purge`,
/// empties the stream first: a new run's driver drops what a run that died left behind.
pub async fn stage_queue(
    js: &jetstream::Context,
    q: &StageQueue,
    o: &QueueOptions,
) -> Result<PullConsumer, ClusterError> {
    let stream = work_queue(js, q.stream(), q.subject(), o).await?;
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

/// Creates (or opens) the stream of the stage's replies, and a consumer of it for run
/// `run` only. Consumers of earlier runs are deleted first: a driver of an earlier run
/// still reading (the same program running its pipeline again) must not take this run's
/// replies, and a work-queue stream allows one unfiltered consumer.
pub async fn replies_queue(
    js: &jetstream::Context,
    q: &StageQueue,
    o: &QueueOptions,
    run: &str,
) -> Result<PullConsumer, ClusterError> {
    let stream = work_queue(js, q.replies_stream(), q.replies_subject(), o).await?;
    let mut names = stream.consumer_names();
    let mut old = Vec::new();
    while let Some(name) = names.next().await {
        old.push(name.map_err(nats)?);
    }
    for name in old {
        stream.delete_consumer(&name).await.map_err(nats)?;
    }
    let name = format!("{}-{run}", q.replies_consumer());
    stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                // A driver that died leaves its consumer behind; the server drops it.
                inactive_threshold: Duration::from_secs(3600),
                ..Default::default()
            },
        )
        .await
        .map_err(nats)
}

/// Empties the stage's streams: what a driver does when its run starts, so that items and
/// replies a dead run left behind are not taken for its own.
pub async fn purge(js: &jetstream::Context, q: &StageQueue) -> Result<(), ClusterError> {
    for name in [q.stream(), q.replies_stream()] {
        js.get_stream(&name)
            .await
            .map_err(nats)?
            .purge()
            .await
            .map_err(nats)?;
    }
    Ok(())
}

/// A pull consumer read in batches that survives the server going away: each fetch asks
/// for up to `max` messages for half a second; a failed fetch waits a quarter second, and
/// the first of a run of failures is logged (`what` says which reader).
pub(crate) struct Fetcher {
    consumer: PullConsumer,
    what: &'static str,
    failing: bool,
}

impl Fetcher {
    pub(crate) fn new(consumer: PullConsumer, what: &'static str) -> Self {
        Fetcher {
            consumer,
            what,
            failing: false,
        }
    }

    /// The next batch, or `None` after a failed fetch (already waited for: call again).
    pub(crate) async fn fetch(&mut self, max: usize) -> Option<pull::Batch> {
        let batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .expires(Duration::from_millis(500))
            .messages()
            .await;
        match batch {
            Ok(b) => {
                self.failing = false;
                Some(b)
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!("cannot {} from NATS ({e}); trying again", self.what);
                    self.failing = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                None
            }
        }
    }
}

/// Publishes `payload` on `subject` under `id` ([`crate::msg_id`], [`crate::reply_id`]),
/// waiting for the stream to have it. Answers whether it was a duplicate (already
/// published under that id within the window, so dropped).
pub async fn publish(
    js: &jetstream::Context,
    subject: String,
    id: &str,
    payload: Bytes,
) -> Result<bool, ClusterError> {
    let ack = js
        .send_publish(
            subject,
            PublishMessage::build().message_id(id).payload(payload),
        )
        .await
        .map_err(nats)?
        .await
        .map_err(nats)?;
    Ok(ack.duplicate)
}
