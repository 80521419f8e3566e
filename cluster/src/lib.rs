//! Past one machine, on NATS JetStream (issue #16): stages whose workers run in other
//! processes and on other machines.
//!
//! ```no_run
//! use flowdeck_cluster::{Cluster, Settings};
//! use flowdeck_runtime::{Line, Stage};
//!
//! # async fn doc(worker_mode: bool) -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = Cluster::connect("nats://127.0.0.1:4222", "docs", Settings::default()).await?;
//! let pipeline = Line::<String>::new("docs")
//!     .stage(Stage::map("parse", |s: String, _cx| async move { Ok::<_, String>(s.len() as u64) }))
//!     // Its items go to worker processes over JetStream.
//!     .stage(cluster.distribute(
//!         Stage::map("embed", |n: u64, _cx| async move { Ok::<_, String>(n * 2) }).workers(8),
//!     ))
//!     .stage(Stage::map("store", |n: u64, _cx| async move { Ok::<_, String>(n) }))
//!     .build()?;
//! if worker_mode {
//!     // `mypipe worker --nats URL`: the same binary, serving the distributed stages.
//!     cluster.serve().await?.run().await;
//! } else {
//!     let running = pipeline.start();
//!     cluster.watch(&running.handle);
//!     let report = running.run(vec!["a".to_string(), "bb".to_string()]).await;
//!     assert_eq!(report.outputs, vec![2, 4]);
//! }
//! # Ok(()) }
//! ```
//!
//! A distributed stage's input queue is a JetStream **work-queue stream**: each item is one
//! message, taken by one worker of any process through a durable **pull consumer**, and
//! removed when acknowledged. What JetStream gives, and what flowdeck builds on:
//! - `ack_wait`: an item whose worker died is delivered again to another;
//! - `Nak(delay)`: the stage's retry policy and backoff;
//! - `Progress`: a long item keeps its claim;
//! - deduplication by `Nats-Msg-Id` within the stream's duplicate window: a worker's reply
//!   is published under an id made of (run, stage, dispatch), so a worker that crashed
//!   after replying and before acking produces no second reply.
//!
//! JetStream accepts an ack that comes after `ack_wait` (nats-server #4786): a slow worker
//! can remove an item another worker is processing again. So nothing here counts on which
//! delivery acks: replies are deduplicated by their ids, and the driver hands each
//! dispatch's first reply on and only counts any later one.
//!
//! [`driver`] is the driver's side, [`worker`] a worker process's, [`wire`] what they
//! send, [`layout`] the names on NATS, [`queue`] the streams.

mod cluster;
pub mod driver;
pub mod layout;
pub mod queue;
mod serve;
pub mod wire;
pub mod worker;

pub use cluster::{Cluster, ClusterStats, Settings, CONTROL_EVERY, HEARTBEAT, LOST_AFTER};
pub use driver::{Remote, RemoteError};
pub use layout::{msg_id, reply_id, StageQueue};
pub use queue::{publish, purge, replies_queue, stage_queue, QueueOptions};
pub use serve::WorkerProcess;

/// The old name of [`WorkerProcess`], which also meant a stage's workers elsewhere.
#[deprecated(
    since = "0.1.0",
    note = "renamed WorkerProcess: the stages a worker process serves"
)]
pub type Workers = WorkerProcess;

/// What went wrong talking to NATS, or with a name given.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    Name(String),
    #[error("NATS: {0}")]
    Nats(String),
}
