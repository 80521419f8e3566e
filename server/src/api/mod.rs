//! The JSON API under `/api/v1`: what the dashboard shows, for scripts.
//!
//! Reads: summary, stages, workers, tasks (filtered, cursor-paged), one task with its
//! history and provenance, the error summary, metrics, logs, pages, sources and checks.
//! Control (`control`): pause, resume, scale, retry, cancel, drain, stop, with an audit
//! log. Every parameter is validated; bad input is a 400 with a JSON body naming the
//! problem, an unknown id a 404.

mod control;
pub mod grammar;
mod observe;
mod pipelines;
pub(crate) mod query;
mod questions;
mod runs;

use axum::{
    extract::{Path, State},
    routing::get,
    Json, Router,
};
use flowdeck_protocol::{
    ErrorSummary, ItemId, ItemStatus, ItemSummary, PipelineState, StageSnapshot, TaskDetail,
    WorkerSnapshot, WorkerState,
};
use serde::{Deserialize, Serialize};

pub use crate::error::{json_errors, ApiError};
pub use control::viewer;
pub use observe::{read_series, ReadError};
pub(crate) use query::Strict;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    let v1 = Router::new()
        .route("/summary", get(summary))
        .route("/stages", get(stages))
        .route("/workers", get(workers))
        .route("/processes", get(processes))
        .route("/tasks", get(tasks))
        .route("/tasks/{id}", get(task))
        .route("/errors", get(errors))
        .route("/warnings", get(warnings))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(observe::metrics))
        .route("/logs", get(observe::logs))
        .route("/logs/stream", get(observe::logs_stream))
        .route("/pages", get(pages))
        .route("/pages/{slug}", get(page))
        .route("/pages/{slug}/widgets/{id}", get(widget))
        .route("/sources/{name}", get(source))
        .route("/checks", get(checks))
        .route("/alerts", get(alerts))
        .route("/alerts/deliveries", get(deliveries))
        .route("/pipelines", get(pipelines::list))
        .route(
            "/{*rest}",
            get(|| async { ApiError::NotFound("no such API endpoint".into()) }),
        )
        .merge(control::router())
        .merge(questions::router())
        .merge(runs::router());
    Router::new()
        .nest("/api/v1", v1)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

#[derive(Serialize)]
struct PageInfo {
    path: String,
    title: String,
    /// Whether the page is the user's own (its spec is at `/api/v1/pages/{slug}`).
    custom: bool,
}

/// The dashboard's pages, in navigation order: the built-in ones, then the custom ones.
async fn pages(State(state): State<AppState>) -> Json<Vec<PageInfo>> {
    let builtin = flowdeck_app::PAGES.iter().map(|&(path, title)| PageInfo {
        path: path.to_owned(),
        title: title.to_owned(),
        custom: false,
    });
    let custom = state.pages.links().into_iter().map(|l| PageInfo {
        path: format!("/pages/{}", l.slug),
        title: l.title,
        custom: true,
    });
    Json(builtin.chain(custom).collect())
}

/// A custom page's spec: its widgets and where they sit.
async fn page(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<flowdeck_protocol::page::PageSpec>, ApiError> {
    state
        .pages
        .spec(&slug)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no custom page {slug:?}")))
}

/// A custom widget's content now: its HTML or view, or its error, and its data.
async fn widget(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<flowdeck_protocol::page::WidgetData>, ApiError> {
    if state.pages.spec(&slug).is_none() {
        return Err(ApiError::NotFound(format!("no custom page {slug:?}")));
    }
    let run = state.store.as_ref().map(|(_, run)| *run);
    widget_content(
        &state.pages,
        &state.hub,
        &state.metrics,
        (run, state.theme.as_str()),
        &slug,
        &id,
    )
    .await
    .map(Json)
    .ok_or_else(|| ApiError::NotFound(format!("the page {slug:?} has no custom widget {id:?}")))
}

/// A custom widget's content, read from this dashboard's pipeline, sources and series,
/// with `context` (the run's id, the theme) for its template; `None` for a page or widget
/// there is not.
pub(crate) async fn widget_content(
    pages: &crate::pages::Pages,
    hub: &crate::hub::Hub,
    metrics: &flowdeck_runtime::metrics::MetricsStore,
    context: (Option<i64>, &str),
    slug: &str,
    id: &str,
) -> Option<flowdeck_protocol::page::WidgetData> {
    let table = |name: String| {
        let (pages, hub) = (pages.clone(), hub.clone());
        Box::pin(async move { pages.table(&hub, &name).await })
            as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>
    };
    let series = |q: &flowdeck_protocol::metrics::SeriesQuery| {
        read_series(metrics, q)
            .map(|(_, _, s)| s)
            .map_err(|e| e.to_string())
    };
    let from = crate::custom::Sources {
        hub,
        table: &table,
        series: &series,
        run: context.0,
        theme: context.1,
    };
    pages.widget(&from, slug, id).await
}

/// A table source's rows: a built-in one (stages, workers, tasks, errors) or a user's.
async fn source(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<flowdeck_protocol::page::TableData>, ApiError> {
    let known = flowdeck_protocol::page::BUILTIN_SOURCES.contains(&name.as_str())
        || state.pages.has_source(&name);
    if !known {
        return Err(ApiError::NotFound(format!(
            "no table source named {name:?}"
        )));
    }
    state
        .pages
        .table(&state.hub, &name)
        .await
        .map(Json)
        .map_err(ApiError::Unavailable)
}

/// `GET /api/v1/checks` parameters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ChecksQuery {
    /// Comma-separated check names; default: all of them.
    names: Option<String>,
}

/// Runs health checks now and answers their outcomes.
async fn checks(
    State(state): State<AppState>,
    Strict(q): Strict<ChecksQuery>,
) -> Result<Json<Vec<flowdeck_protocol::page::CheckResult>>, ApiError> {
    let all = state.pages.check_names();
    let names: Vec<String> = match q.names.as_deref() {
        None => all,
        Some(raw) => {
            let names: Vec<String> = raw
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            if let Some(unknown) = names.iter().find(|n| !all.contains(n)) {
                return Err(ApiError::NotFound(format!(
                    "no health check named {unknown:?}; there are {}",
                    all.join(", ")
                )));
            }
            names
        }
    };
    Ok(Json(state.pages.checks(&state.hub, &names).await))
}

/// The OpenAPI 3.1 description of this API, kept beside the code it describes; a test
/// checks every documented path against real answers, and CI runs schemathesis, which
/// generates requests from it, against the real binary.
const OPENAPI: &str = include_str!("openapi.json");

/// The document as served: the file, with the names only this dashboard knows (its
/// stages, pages and table sources) as the `enum` of the parameters that take them, so
/// that the document is exact about which values are valid.
async fn openapi(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let mut doc: serde_json::Value = serde_json::from_str(OPENAPI)
        .map_err(|e| ApiError::Unavailable(format!("the OpenAPI document is broken: {e}")))?;
    let stages = state.hub.pipeline().stage_names().to_vec();
    let slugs: Vec<String> = state.pages.links().into_iter().map(|l| l.slug).collect();
    let sources = state.pages.source_names();
    let alerts: Vec<String> = state
        .config
        .alerts
        .list()
        .into_iter()
        .map(|a| a.name)
        .collect();
    let paths = doc["paths"].as_object_mut().into_iter().flatten();
    for (path, ops) in paths {
        for op in ops.as_object_mut().into_iter().flatten().map(|(_, op)| op) {
            let params = op.get_mut("parameters").and_then(|p| p.as_array_mut());
            for param in params.into_iter().flatten() {
                let names = match (param["in"].as_str(), param["name"].as_str()) {
                    (Some("query"), Some("stage")) => &stages,
                    (Some("path"), Some("name")) if path.starts_with("/api/v1/stages/") => &stages,
                    (Some("path"), Some("name")) if path.starts_with("/api/v1/alerts/") => &alerts,
                    (Some("path"), Some("slug")) => &slugs,
                    (Some("path"), Some("source")) => &sources,
                    _ => continue,
                };
                if !names.is_empty() {
                    param["schema"]["enum"] = serde_json::json!(names);
                }
            }
        }
    }
    // The task filter's grammar names the stages too.
    let filter = flowdeck_protocol::filter::pattern(&stages);
    let bulk = &mut doc["components"]["schemas"]["BulkBody"]["properties"];
    bulk["q"]["pattern"] = filter.clone().into();
    if !stages.is_empty() {
        // null stands for "any stage", as absent does.
        let mut names = serde_json::json!(stages);
        if let Some(list) = names.as_array_mut() {
            list.push(serde_json::Value::Null);
        }
        bulk["stage"]["enum"] = names;
    }
    for path in ["/api/v1/tasks", "/api/events"] {
        let params = doc["paths"][path]["get"]["parameters"].as_array_mut();
        for param in params.into_iter().flatten() {
            if param["name"] == "q" {
                param["schema"]["pattern"] = filter.clone().into();
            }
        }
    }
    Ok(Json(doc))
}

/// The alerts: where each goes (by scheme and host only: the rest of a webhook's URL is
/// its key), on what, whether it signs, what it sent and dropped, its last deliveries.
async fn alerts(State(state): State<AppState>) -> Json<Vec<crate::alerts::AlertInfo>> {
    Json(state.config.alerts.list())
}

/// Every alert's recent deliveries, newest first.
async fn deliveries(State(state): State<AppState>) -> Json<Vec<crate::alerts::Delivery>> {
    Json(state.config.alerts.deliveries())
}

/// What `/healthz` and `/readyz` answer.
#[derive(Serialize)]
struct Probe {
    status: &'static str,
    pipeline: PipelineState,
}

/// Liveness: answers while the process serves.
async fn healthz(State(state): State<AppState>) -> Json<Probe> {
    Json(Probe {
        status: "ok",
        pipeline: state.hub.pipeline().state(),
    })
}

/// Readiness: 200 while the pipeline takes work, 503 once it drains, finishes or aborts.
async fn readyz(State(state): State<AppState>) -> (axum::http::StatusCode, Json<Probe>) {
    let pipeline = state.hub.pipeline().state();
    let ready = pipeline == PipelineState::Running;
    let code = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let status = if ready { "ready" } else { "not_ready" };
    (code, Json(Probe { status, pipeline }))
}

#[derive(Serialize)]
struct Summary {
    name: String,
    status: PipelineState,
    uptime_ms: u64,
    workers: WorkerCounts,
    tasks: TaskCounts,
    /// Items leaving the pipeline per second.
    throughput: f64,
    /// Health warnings firing now.
    warnings: usize,
    /// Questions waiting for a person's answer.
    questions: u64,
    /// What the process uses (CPU, memory, threads, open files, its async runtime), as
    /// sampled every second; absent until the first sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<flowdeck_protocol::Resources>,
}

#[derive(Serialize)]
struct WorkerCounts {
    total: usize,
    /// Idle and able to take an item.
    ready: usize,
    busy: usize,
    /// Holding a finished item while the next stage's queue is full.
    blocked: usize,
}

#[derive(Serialize)]
struct TaskCounts {
    queued: u64,
    active: u64,
    /// Waiting for a person's answer, holding no worker.
    waiting: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
}

async fn summary(State(state): State<AppState>) -> Json<Summary> {
    let s = state.hub.snapshot();
    let all = || s.stages.iter().flat_map(|st| &st.workers);
    Json(Summary {
        name: s.pipeline.clone(),
        status: s.state,
        uptime_ms: s.uptime_ms,
        workers: WorkerCounts {
            total: all().count(),
            ready: all().filter(|w| w.state == WorkerState::Idle).count(),
            busy: all().filter(|w| w.state == WorkerState::Busy).count(),
            blocked: all().filter(|w| w.state == WorkerState::Blocked).count(),
        },
        tasks: TaskCounts {
            queued: s.totals.queued,
            active: s.totals.running,
            waiting: s.totals.waiting,
            completed: s.totals.completed,
            failed: s.totals.failed,
            cancelled: s.totals.cancelled,
        },
        throughput: s.totals.throughput,
        warnings: s.warnings.iter().filter(|w| w.firing()).count(),
        questions: s.questions_pending,
        resources: s.resources.clone(),
    })
}

async fn stages(State(state): State<AppState>) -> Json<Vec<StageSnapshot>> {
    Json(state.hub.snapshot().stages)
}

#[derive(Serialize)]
struct Worker {
    stage: String,
    #[serde(flatten)]
    worker: WorkerSnapshot,
}

async fn workers(State(state): State<AppState>) -> Json<Vec<Worker>> {
    let s = state.hub.snapshot();
    Json(
        s.stages
            .into_iter()
            .flat_map(|st| {
                let name = st.name;
                st.workers.into_iter().map(move |w| Worker {
                    stage: name.clone(),
                    worker: w,
                })
            })
            .collect(),
    )
}

/// The worker processes of distributed stages (flowdeck-cluster), as their heartbeats
/// show them; empty for a pipeline in one process.
async fn processes(State(state): State<AppState>) -> Json<Vec<flowdeck_protocol::ProcessSnapshot>> {
    Json(state.hub.snapshot().processes)
}

/// `GET /api/v1/tasks` parameters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    /// One of queued, running, retrying, completed, failed, cancelled.
    status: Option<ItemStatus>,
    /// A stage's name.
    stage: Option<String>,
    /// The task filter (`flowdeck_protocol::filter`): words match the id, the stage's
    /// name or the error's kind or message; `status:`, `stage:`, `kind:` match exactly;
    /// `-term` or `key:!value` excludes.
    q: Option<String>,
    /// Items per page, 1 to 1,000 (default 100).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page: items older than it.
    cursor: Option<ItemId>,
}

#[derive(Serialize)]
struct TaskPage {
    items: Vec<ItemSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<ItemId>,
}

pub const MAX_PAGE: usize = 1000;

async fn tasks(
    State(state): State<AppState>,
    Strict(query): Strict<TaskQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}, got {limit}"
        )));
    }
    let pipeline = state.hub.pipeline();
    let selection = crate::bulk::Selection::new(
        pipeline,
        query.status,
        query.stage.as_deref(),
        query.q.as_deref(),
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Newest first; one more than asked tells whether there is a next page.
    let mut items = selection.find(pipeline, query.cursor, limit + 1);
    let next_cursor = (items.len() > limit).then(|| {
        items.truncate(limit);
        items.last().map(|s| s.id)
    });
    Ok(Json(TaskPage {
        items,
        next_cursor: next_cursor.flatten(),
    }))
}

async fn task(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TaskDetail>, ApiError> {
    let id: ItemId = grammar::task_id(&id)
        .ok_or_else(|| ApiError::BadRequest(format!("task id must be a number, got {id:?}")))?;
    let task = crate::history::live_task(&state.hub, state.store.clone(), id)
        .await
        .map_err(ApiError::Unavailable)?;
    task.map(Json).ok_or_else(|| {
        let kept = if state.store.is_some() {
            ", and the run store has not kept it (it keeps finished items)"
        } else {
            ""
        };
        ApiError::NotFound(format!(
            "task {id} is not retained (the server keeps the {} most recent items){kept}",
            state.hub.pipeline().tracker().retention()
        ))
    })
}

/// The health warnings: those firing now, those that cleared (newest first), and the
/// thresholds in force. Times are milliseconds of the pipeline's uptime; add
/// `started_unix_ms` for dates.
#[derive(Serialize)]
struct Warnings {
    current: Vec<flowdeck_protocol::Warning>,
    recent: Vec<flowdeck_protocol::Warning>,
    started_unix_ms: u64,
    /// `null` when warnings were turned off for the pipeline.
    thresholds: Option<flowdeck_runtime::warnings::Thresholds>,
}

async fn warnings(State(state): State<AppState>) -> Json<Warnings> {
    let pipeline = state.hub.pipeline();
    let (current, recent) = pipeline.warnings();
    Json(Warnings {
        current,
        recent,
        started_unix_ms: pipeline.clock().0,
        thresholds: pipeline.warning_thresholds(),
    })
}

async fn errors(State(state): State<AppState>) -> Json<ErrorSummary> {
    Json(state.hub.pipeline().tracker().errors())
}
