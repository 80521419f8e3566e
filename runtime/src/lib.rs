//! flowdeck's pipeline engine: typed stages with N async workers each, bounded queues
//! between them, retries, timeouts, panics caught, rate limits; control while running
//! (pause, resize, cancel, retry, drain, abort); a status tracker with callbacks, history,
//! provenance and an error summary; snapshots and a change feed for dashboards.
//! No web dependencies: usable without the dashboard.
//!
//! ```
//! use std::time::Duration;
//! use flowdeck_runtime::{Line, RetryPolicy, Stage};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let pipeline = Line::<u32>::new("demo")
//!     .stage(Stage::map("parse", |n: u32, _cx| async move { Ok::<_, String>(n * 10) }).workers(4))
//!     .stage(
//!         Stage::map("enrich", |n: u32, cx| async move {
//!             cx.annotate("tokens", n / 10);
//!             if n == 30 { Err(format!("cannot enrich {n}")) } else { Ok(n + 1) }
//!         })
//!         .workers(2)
//!         .retry(RetryPolicy::attempts(2).backoff(Duration::from_millis(1), Duration::from_millis(5))),
//!     )
//!     .build()
//!     .unwrap();
//! let report = pipeline.run(1..=5).await;
//! assert_eq!(report.outputs.len(), 4);
//! let s = report.summary;
//! assert_eq!((s.stats.completed, s.stats.failed), (4, 1));
//! assert_eq!(s.errors.by_kind, vec![("String".to_string(), 1)]);
//! assert_eq!(s.snapshot.stages[1].retried, 1);
//! # });
//! ```

mod abort;
pub mod ask;
mod capture;
mod clock;
mod error;
mod events;
mod graph;
mod group;
pub mod guard;
mod handle;
mod histogram;
mod join;
pub mod logs;
pub mod metrics;
mod mirror;
mod node;
mod pipeline;
mod port;
/// The terminal progress display (`Line::progress`): feature `progress`, on in the
/// `flowdeck` facade by default, so that the engine alone draws nothing and needs no
/// terminal crates.
#[cfg(feature = "progress")]
pub mod progress;
mod queue;
pub mod resources;
mod retry;
mod shared;
mod snapshot;
mod stage;
mod tracker;
pub mod warnings;
mod watch;
mod worker;

pub use ask::{Answer, Question, Unanswered};
pub use capture::{Capture, DEFAULT_MASK, MASKED};
pub use error::{BuildError, Closed, ControlError};
pub use flowdeck_protocol as protocol;
pub use flowdeck_protocol::JoinSnapshot;
pub use graph::{Graph, Line, StageRef};
pub use group::Why;
pub use handle::{LatencyHistogram, PipelineHandle, Summary};
pub use join::{Gather, Gathered, Join, JoinFn, Joined, Joined2, Missing, Partial};
pub use mirror::{mirror, Mirror};
pub use pipeline::{Feeder, Pipeline, Report, Running};
pub use retry::RetryPolicy;
pub use stage::{Classify, FlatMapFn, MapFn, Stage, StageParts, TaskFn};
pub use tracker::{Feed, FeedError, FinishedSink, StageCounts, Stats, Tracker};
pub use watch::Monitor;
pub use worker::Ctx;
