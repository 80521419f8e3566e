//! The types that cross a boundary: from the runtime to the server, and from the server to
//! the browser. They are plain data with serde, and nothing else, so that this crate compiles
//! for the wasm32 frontend as well as for the server (the split tokio-console makes with
//! `console-api`).
//!
//! Ids are small integers on purpose: an event names its stage and worker by index into the
//! [`Snapshot`]'s `stages` and the stage's `workers`, so the change feed stays cheap to build
//! and to ship.

pub mod alerts;
pub mod audit;
mod event;
pub mod filter;
pub mod format;
mod item;
pub mod logs;
pub mod metrics;
pub mod page;
pub mod pipelines;
pub mod question;
pub mod report;
pub mod resources;
pub mod runs;
mod snapshot;
pub mod sources;
pub mod stream;
mod warning;
pub mod window;

pub use audit::AuditEntry;
pub use event::{ErrorInfo, Event, EventKind, ItemStatus, Value};
pub use item::{
    provenance, Ancestor, ErrorSummary, ErrorsDelta, FailedItem, ItemDetail, ItemSummary, Preview,
    StageVisit, TaskDetail, MAX_ANCESTORS, RECENT_FAILURES,
};
pub use resources::Resources;
pub use snapshot::{
    Edge, JoinSnapshot, Latency, OldestGroup, PipelineState, ProcessSnapshot, ProcessStage,
    Snapshot, StageSnapshot, Totals, WorkerSnapshot, WorkerState, HELD_BACK, SATURATED,
};
pub use warning::{Rule, Warning};

/// An item's id: unique within one pipeline run, allocated in increasing order.
pub type ItemId = u64;

/// A stage's index in [`Snapshot::stages`].
pub type StageIndex = u16;
