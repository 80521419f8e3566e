//! flowdeck: a pipeline runtime with a live browser dashboard, in one binary.
//!
//! Write a pipeline as typed stages with N async workers each (a line or a DAG, with
//! retries, timeouts and rate limits), then watch it in the browser: what is queued,
//! running, done and failed, where the bottleneck is, why an item failed and where it came
//! from. Pages of your own are built in Rust from six widgets. The browser side is prebuilt
//! and ships inside the crate, so `cargo build` is all it takes: no wasm toolchain.
//!
//! ```no_run
//! use flowdeck::prelude::*;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let pipeline = Line::<u64>::new("squares")
//!         .stage(Stage::map("square", |n: u64, _cx| async move { Ok::<_, String>(n * n) }).workers(4))
//!         .build()?;
//!     // The dashboard is open at http://127.0.0.1:3000 for the length of the run.
//!     let report = pipeline.run_with_dashboard(0..1_000_000).await?;
//!     println!("{} outputs", report.outputs.len());
//!     Ok(())
//! }
//! ```
//!
//! An always-on service serves until Ctrl-C (which drains the pipeline first):
//!
//! ```no_run
//! use flowdeck::prelude::*;
//!
//! # async fn run(pipeline: Pipeline<u64, u64>) -> Result<(), DashboardError> {
//! let running = pipeline.start();
//! Dashboard::new(Config::default())
//!     .page(Page::new("ops", "Operations")
//!         .widget(Chart::new("Done per second").series(&builtin::tasks_completed()), (0, 0)))
//!     .serve(running.handle.clone())
//!     .await
//! # }
//! ```
//!
//! Features: `dashboard` (on by default) is the web side; without it flowdeck is the
//! runtime alone, with no web dependencies. `report` (on by default) reports to a
//! dashboard in another process; `cluster` (off) runs stages' workers in other processes
//! over NATS JetStream.

pub use flowdeck_protocol as protocol;
pub use flowdeck_runtime as runtime;
#[cfg(feature = "progress")]
pub use flowdeck_runtime::progress::{LogWriter, Progress};
pub use flowdeck_runtime::{
    BuildError, Capture, Closed, ControlError, Ctx, Feeder, Graph, Joined, Joined2,
    LatencyHistogram, Line, Missing, Monitor, Partial, Pipeline, PipelineHandle, Report,
    RetryPolicy, Running, Stage, StageRef, Summary, Tracker, Why,
};

/// Distributed stages, their workers in other processes and machines, on NATS JetStream:
/// `cluster.distribute(stage)`. Feature `cluster`; see `docs/cluster.md`.
#[cfg(feature = "cluster")]
pub use flowdeck_cluster as cluster;
#[cfg(feature = "dashboard")]
mod run;
/// Reporting to a standalone dashboard in another process: `handle.report_to(url, token)`.
#[cfg(feature = "report")]
pub use flowdeck_report as report;
#[cfg(feature = "report")]
pub use flowdeck_report::ReportTo;
#[cfg(feature = "dashboard")]
pub use flowdeck_server as server;
/// Telling someone when nobody is watching: webhooks, Slack, Discord, your own hook.
#[cfg(feature = "dashboard")]
pub use flowdeck_server::alerts;
#[cfg(feature = "dashboard")]
pub use flowdeck_server::{
    console::Console,
    dashboard::{
        builtin, Agg, Cell, Chart, Check, Custom, Dashboard, DashboardError, Gauge, Health, Log,
        Metric, Outcome, Page, Series, Source, Status, Table, TableData, View, WidgetCx, HOUR,
        MINUTE,
    },
    Config, Serving,
};
#[cfg(feature = "dashboard")]
pub use run::RunWithDashboard;

/// What a pipeline program names: `use flowdeck::prelude::*`.
pub mod prelude {
    #[cfg(feature = "progress")]
    pub use crate::Progress;
    #[cfg(feature = "report")]
    pub use crate::ReportTo;
    #[cfg(feature = "dashboard")]
    pub use crate::{
        builtin, Chart, Check, Config, Custom, Dashboard, DashboardError, Gauge, Log, Metric,
        Outcome, Page, RunWithDashboard, Source, Status, Table, View, WidgetCx, HOUR, MINUTE,
    };
    pub use crate::{
        Capture, Ctx, Graph, Joined, Joined2, Line, Monitor, Partial, Pipeline, PipelineHandle,
        Report, RetryPolicy, Running, Stage,
    };
}
