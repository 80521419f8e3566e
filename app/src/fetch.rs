//! The server functions the pages call: each is a public endpoint under `/api/`, answered
//! on the server by the [`Backend`](crate::Backend) of the page's pipeline, and a fetch in
//! the browser. Errors the user can act on (a bad filter, a run the store does not have)
//! are the inner `Err(String)`, shown on the page; the outer error is a failed request.

use flowdeck_protocol::{
    logs::{LogFilter, LogPage},
    metrics::{SeriesData, SeriesInfo, SeriesQuery},
    page::{CheckResult, PageSpec, Site, TableData},
    runs::{RunInfo, RunTaskPage, RunTaskQuery, RunView, StoreStatus, Timeline},
    stream::Full,
    AuditEntry, ItemId, TaskDetail,
};
use leptos::prelude::*;

use crate::backend::{BackendRef, Viewer};

/// How many items a server-rendered page carries (the stream brings the rest).
pub const FIRST_PAINT_ITEMS: usize = 200;

/// The current picture for the first render of a page.
#[server(endpoint = "view", input = leptos::server_fn::codec::GetUrl)]
pub async fn initial_view() -> Result<Full, ServerFnError> {
    let backend = backend()?;
    Ok(backend.0.view(FIRST_PAINT_ITEMS))
}

/// Who is looking, and what they may do.
#[server(endpoint = "viewer", input = leptos::server_fn::codec::GetUrl)]
pub async fn whoami() -> Result<Viewer, ServerFnError> {
    let backend = backend()?;
    Ok(backend.0.viewer())
}

/// The audit log of control actions, newest first.
#[server(endpoint = "audit", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_audit() -> Result<Vec<AuditEntry>, ServerFnError> {
    let backend = backend()?;
    let mut entries = backend.0.audit();
    entries.reverse();
    Ok(entries)
}

/// Captured log records matching a filter. A bad filter (level, glob) is the inner error:
/// the user's mistake, answered with a 200 and shown on the page, not a server failure.
#[server(endpoint = "logs", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_logs(filter: LogFilter) -> Result<Result<LogPage, String>, ServerFnError> {
    let backend = backend()?;
    Ok(backend.0.logs(&filter))
}

/// The backend, or the error a server function answers without one.
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
fn backend() -> Result<BackendRef, ServerFnError> {
    use_context::<BackendRef>()
        .ok_or_else(|| ServerFnError::new("no pipeline is attached to this server"))
}

/// The alerts configured and their last deliveries, for the Alerts page.
#[server(endpoint = "alerts", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_alerts() -> Result<Vec<flowdeck_protocol::alerts::AlertInfo>, ServerFnError> {
    Ok(backend()?.0.alerts())
}

/// The worker processes of distributed stages, for the workers page. Asked for by that
/// page rather than carried in every frame's snapshot to the browser: only it shows them,
/// and their decoding stays out of the first load's wasm.
#[server(endpoint = "processes", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_processes() -> Result<Vec<flowdeck_protocol::ProcessSnapshot>, ServerFnError> {
    Ok(backend()?.0.processes())
}

/// The header's title, logo and custom pages.
#[server(endpoint = "site", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_site() -> Result<Site, ServerFnError> {
    Ok(backend()?.0.site())
}

/// A custom page's spec; `None` for an unknown slug (the page says so).
#[server(endpoint = "page", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_page(slug: String) -> Result<Option<PageSpec>, ServerFnError> {
    Ok(backend()?.0.page(&slug))
}

/// The metric series there are, for the Metrics page: live ones, or those kept over a
/// stored `run`.
#[server(endpoint = "metric_list", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_metric_list(run: Option<i64>) -> Result<Vec<SeriesInfo>, ServerFnError> {
    let backend = backend()?;
    match run {
        None => Ok(backend.0.metrics()),
        Some(id) => match backend.0.run_metrics(id).await {
            Ok(Some(list)) => Ok(list),
            Ok(None) => Err(ServerFnError::new(format!("The store has no run {id}."))),
            Err(e) => Err(ServerFnError::new(e)),
        },
    }
}

/// Series over a time range: live, or over a stored `run` from its minute rollups.
#[server(endpoint = "series", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_series(
    query: SeriesQuery,
    run: Option<i64>,
) -> Result<Result<Vec<SeriesData>, String>, ServerFnError> {
    let backend = backend()?;
    Ok(match run {
        None => backend.0.series(&query),
        Some(id) => backend.0.run_series(id, query).await,
    })
}

/// A table source's rows, or what went wrong with the source.
#[server(endpoint = "table", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_table(source: String) -> Result<Result<TableData, String>, ServerFnError> {
    let backend = backend()?;
    Ok(backend.0.table(source).await)
}

/// A custom widget's content: its HTML, its view or its error.
#[server(endpoint = "widget", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_widget(
    slug: String,
    id: String,
) -> Result<Option<flowdeck_protocol::page::WidgetData>, ServerFnError> {
    let backend = backend()?;
    Ok(backend.0.widget(slug, id).await)
}

/// The named health checks, run now.
#[server(endpoint = "checks", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_checks(names: Vec<String>) -> Result<Vec<CheckResult>, ServerFnError> {
    let backend = backend()?;
    Ok(backend.0.checks(names).await)
}

/// One item's detail and provenance.
#[server(endpoint = "task", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_task(id: ItemId) -> Result<Option<TaskDetail>, ServerFnError> {
    let backend = backend()?;
    backend.0.task(id).await.map_err(ServerFnError::new)
}

/// The run store's runs and its state.
#[server(endpoint = "runs", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_runs() -> Result<Result<(Vec<RunInfo>, StoreStatus), String>, ServerFnError> {
    Ok(backend()?.0.runs().await)
}

/// How the run store is doing, for the top bar's badge.
#[server(endpoint = "store_status", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_store_status() -> Result<Option<StoreStatus>, ServerFnError> {
    Ok(backend()?.0.store_status())
}

/// A stored run as its pages show it.
#[server(endpoint = "run_view", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_run_view(
    id: i64,
    at: Option<u64>,
) -> Result<Result<Option<RunView>, String>, ServerFnError> {
    Ok(backend()?.0.run_view(id, at).await)
}

/// The pipelines' list.
#[server(endpoint = "pipelines", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_pipelines(
    query: flowdeck_protocol::pipelines::PipelineQuery,
) -> Result<Result<Vec<flowdeck_protocol::pipelines::PipelineRow>, String>, ServerFnError> {
    Ok(backend()?.0.pipelines(query).await)
}

#[server(endpoint = "run_timeline", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_run_timeline(
    id: i64,
) -> Result<Result<Option<Timeline>, String>, ServerFnError> {
    Ok(backend()?.0.run_timeline(id).await)
}

/// A page of a stored run's items.
#[server(endpoint = "run_tasks", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_run_tasks(
    id: i64,
    query: RunTaskQuery,
) -> Result<Result<RunTaskPage, String>, ServerFnError> {
    Ok(backend()?.0.run_tasks(id, query).await)
}

/// One stored item of a run.
#[server(endpoint = "run_task", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_run_task(
    id: i64,
    item: ItemId,
) -> Result<Result<Option<TaskDetail>, String>, ServerFnError> {
    Ok(backend()?.0.run_task(id, item).await)
}

/// A page of questions for people: the Questions page's, or one item's.
#[server(endpoint = "questions", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_questions(
    query: flowdeck_protocol::question::QuestionQuery,
) -> Result<Result<flowdeck_protocol::question::QuestionPage, String>, ServerFnError> {
    Ok(backend()?.0.questions(query).await)
}
