//! The seam between the app and the server that renders it: [`Backend`], what the server
//! gives the app to read from (provided as context for every request, as [`BackendRef`]),
//! and [`Viewer`], who is looking. Server functions (`fetch`) answer through it; the app
//! never names the server's types.

use std::sync::Arc;

use flowdeck_protocol::{
    logs::{LogFilter, LogPage},
    metrics::{SeriesData, SeriesInfo, SeriesQuery},
    page::{CheckResult, PageSpec, Site, TableData},
    runs::{RunInfo, RunTaskPage, RunTaskQuery, RunView, StoreStatus, Timeline},
    stream::Full,
    AuditEntry, ItemId, TaskDetail,
};

/// What the server gives the app to render from: provided as context for every request.
pub trait Backend: Send + Sync + 'static {
    /// The current picture, with only the newest `items` items.
    fn view(&self, items: usize) -> Full;
    /// One item's detail and provenance: while the pipeline retains it, or as the run
    /// store kept it when it finished (`TaskDetail::from_store`).
    fn task(&self, id: ItemId) -> BoxFuture<Result<Option<TaskDetail>, String>>;
    /// Who sent the request being served: whether they may control, and the CSRF token
    /// their control requests repeat.
    fn viewer(&self) -> Viewer;
    /// The control actions taken, oldest first.
    fn audit(&self) -> Vec<AuditEntry>;
    /// Captured log records; the error names a bad level or glob.
    fn logs(&self, filter: &LogFilter) -> Result<LogPage, String>;
    /// The title, logo and custom pages for the header.
    fn site(&self) -> Site;
    /// A custom page's spec.
    fn page(&self, slug: &str) -> Option<PageSpec>;
    /// The metric series there are.
    fn metrics(&self) -> Vec<SeriesInfo>;
    /// Series over a time range; the error names a bad range or an unknown series.
    fn series(&self, query: &SeriesQuery) -> Result<Vec<SeriesData>, String>;
    /// A table source's rows (a user's source may take a while, so this is async).
    fn table(&self, source: String) -> BoxFuture<Result<TableData, String>>;
    /// The named health checks' outcomes, run now.
    fn checks(&self, names: Vec<String>) -> BoxFuture<Vec<CheckResult>>;
    /// A custom widget's content (made at most once per its refresh); `None` for a page
    /// or widget there is not.
    fn widget(
        &self,
        slug: String,
        id: String,
    ) -> BoxFuture<Option<flowdeck_protocol::page::WidgetData>>;
    /// The runs the run store keeps, newest first, and how the store is doing; `Err` says
    /// why there are none (no store).
    fn runs(&self) -> BoxFuture<Result<(Vec<RunInfo>, StoreStatus), String>>;
    /// A stored run as its pages show it, at its end or, with `at`, as it was at that ms
    /// of its uptime (replay); `Ok(None)` for an unknown run.
    fn run_view(&self, id: i64, at: Option<u64>) -> BoxFuture<Result<Option<RunView>, String>>;
    /// A stored run's timeline for replay; `Ok(None)` for an unknown run.
    fn run_timeline(&self, id: i64) -> BoxFuture<Result<Option<Timeline>, String>>;
    /// The pipelines the dashboard serves, as its list shows them.
    fn pipelines(
        &self,
        query: flowdeck_protocol::pipelines::PipelineQuery,
    ) -> BoxFuture<Result<Vec<flowdeck_protocol::pipelines::PipelineRow>, String>>;
    /// A page of a stored run's items with its filter's counts.
    fn run_tasks(&self, id: i64, query: RunTaskQuery) -> BoxFuture<Result<RunTaskPage, String>>;
    /// One stored item with its provenance; `Ok(None)` when the store has not kept it.
    fn run_task(&self, id: i64, item: ItemId) -> BoxFuture<Result<Option<TaskDetail>, String>>;
    /// The metric series kept over a stored run; `Ok(None)` for an unknown run.
    fn run_metrics(&self, id: i64) -> BoxFuture<Result<Option<Vec<SeriesInfo>>, String>>;
    /// Series over a stored run, a point a minute at most, from the store's rollups.
    fn run_series(&self, id: i64, query: SeriesQuery)
        -> BoxFuture<Result<Vec<SeriesData>, String>>;
    /// How the run store is doing (degraded on a full disk, items shed under load); `None`
    /// without a store.
    fn store_status(&self) -> Option<StoreStatus>;
    /// The worker processes of distributed stages, as their heartbeats show them.
    fn processes(&self) -> Vec<flowdeck_protocol::ProcessSnapshot>;
    /// The alerts configured, each with its last deliveries (no secret, no full URL).
    fn alerts(&self) -> Vec<flowdeck_protocol::alerts::AlertInfo>;
    /// A page of questions people are asked: the live run's, or a stored run's.
    fn questions(
        &self,
        query: flowdeck_protocol::question::QuestionQuery,
    ) -> BoxFuture<Result<flowdeck_protocol::question::QuestionPage, String>>;
}

/// A future the backend returns for work that may wait (a user's check or source).
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Who is looking at the dashboard, as the server sees the request.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Viewer {
    /// The signed-in user or token; `None` when authentication is off.
    pub name: Option<String>,
    /// "admin" or "viewer".
    pub role: String,
    /// False on a readonly dashboard and for viewers: the buttons are hidden.
    pub can_control: bool,
    /// The session's CSRF token, which control requests send in `X-CSRF-Token`.
    pub csrf: Option<String>,
}

/// The server's [`Backend`], as context.
#[derive(Clone)]
pub struct BackendRef(pub Arc<dyn Backend>);
