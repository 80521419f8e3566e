//! Runs from the run store, live or finished, under `/api/v1/runs`: the list of runs, one
//! run with its graph and last snapshot, its tasks (filtered, sorted and counted by SQLite,
//! so a count is exact however many there are), one task with its provenance, its error
//! summary, and its timeline for replay with the run as it was at any moment of it.
//! `/api/v1/store` says where the store is and whether it writes.
//! Without a store (`--db none`), each answers 404 saying so.

use axum::{
    extract::{Path, State},
    routing::get,
    Json, Router,
};
use flowdeck_protocol::{runs::StoreStatus, ErrorSummary, ItemStatus, TaskDetail};
use flowdeck_store::{
    ItemPage, ItemQuery, ItemSort, Moment, RunInfo, RunQuery, RunState, Store, StoredRun, Timeline,
};
use serde::Deserialize;

use super::{grammar, query::Strict, ApiError, MAX_PAGE};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/tasks", get(tasks))
        .route("/runs/{id}/tasks/{item}", get(task))
        .route("/runs/{id}/errors", get(errors))
        .route("/runs/{id}/timeline", get(timeline))
        .route("/runs/{id}/at", get(moment))
        .route("/store", get(status))
}

fn store(state: &AppState) -> Result<Store, ApiError> {
    state.store.as_ref().map(|(s, _)| s.clone()).ok_or_else(|| {
        ApiError::NotFound(
            "this dashboard keeps no run store (it was started with --db none)".into(),
        )
    })
}

/// Runs a store query off the runtime's threads (SQLite reads block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, flowdeck_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the store's query failed: {e}")))?
        .map_err(|e| ApiError::Unavailable(e.to_string()))
}

fn run_id(raw: &str) -> Result<i64, ApiError> {
    grammar::task_id(raw)
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
        .ok_or_else(|| ApiError::BadRequest(format!("run id must be a number, got {raw:?}")))
}

async fn stored_run(store: &Store, id: i64) -> Result<StoredRun, ApiError> {
    let s = store.clone();
    blocking(move || s.run(id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no run {id} in the store")))
}

/// `GET /api/v1/runs` parameters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    pipeline: Option<String>,
    state: Option<RunState>,
    /// Runs started before this (Unix ms): the previous page's last `started_ms`.
    before: Option<u64>,
    /// 1 to 1,000 (default 100).
    limit: Option<usize>,
}

async fn runs(
    State(state): State<AppState>,
    Strict(q): Strict<RunsQuery>,
) -> Result<Json<Vec<RunInfo>>, ApiError> {
    let limit = page_limit(q.limit)?;
    let store = store(&state)?;
    let query = RunQuery {
        pipeline: q.pipeline,
        state: q.state,
        before_ms: q.before,
        limit: Some(limit),
    };
    Ok(Json(blocking(move || store.runs(&query)).await?))
}

fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}, got {limit}"
        )))
    }
}

async fn run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StoredRun>, ApiError> {
    let store = store(&state)?;
    Ok(Json(stored_run(&store, run_id(&id)?).await?))
}

/// `GET /api/v1/runs/{id}/tasks` parameters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RunTasksQuery {
    status: Option<ItemStatus>,
    /// A stage's name.
    stage: Option<String>,
    /// The item of that number (`#` optional), and items whose error's kind or message contains the text.
    q: Option<String>,
    sort: Option<ItemSort>,
    /// 1 to 1,000 (default 100).
    limit: Option<usize>,
    /// Items to skip, at most 1,000,000,000.
    offset: Option<u64>,
    /// Lists the items as they were at this moment, in ms of the run's uptime: those
    /// created by then, each where its history says it was then. A status of queued,
    /// running or retrying then means "not finished by then".
    at: Option<u64>,
}

async fn tasks(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Strict(q): Strict<RunTasksQuery>,
) -> Result<Json<ItemPage>, ApiError> {
    let limit = page_limit(q.limit)?;
    let offset = q.offset.unwrap_or(0);
    if offset > 1_000_000_000 {
        return Err(ApiError::BadRequest(format!(
            "offset must be at most 1000000000, got {offset}"
        )));
    }
    let store = store(&state)?;
    let id = run_id(&id)?;
    let run = stored_run(&store, id).await?;
    let stage = match q.stage {
        None => None,
        Some(name) => Some(
            run.stages
                .iter()
                .position(|s| *s == name)
                .map(|i| i as u16)
                .ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "run {id} has no stage named {name:?}; its stages are {}",
                        run.stages.join(", ")
                    ))
                })?,
        ),
    };
    let query = ItemQuery {
        status: q.status,
        stage,
        text: q.q,
        sort: q.sort.unwrap_or_default(),
        offset,
        limit,
        at_us: q.at.map(|ms| ms.saturating_mul(1000)),
    };
    Ok(Json(blocking(move || store.items(id, &query)).await?))
}

async fn task(
    State(state): State<AppState>,
    Path((id, item)): Path<(String, String)>,
) -> Result<Json<TaskDetail>, ApiError> {
    let store = store(&state)?;
    let id = run_id(&id)?;
    let item = grammar::task_id(&item)
        .ok_or_else(|| ApiError::BadRequest(format!("task id must be a number, got {item:?}")))?;
    blocking(move || crate::history::run_task(&store, id, item))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("run {id} has no task {item} in the store")))
}

async fn errors(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ErrorSummary>, ApiError> {
    let store = store(&state)?;
    let id = run_id(&id)?;
    let stages = stored_run(&store, id).await?.stages.len();
    Ok(Json(blocking(move || store.errors(id, stages)).await?))
}

/// A run's timeline for replay: the totals of each snapshot kept, about one every
/// [`crate::persist::PROGRESS_EVERY`] and the last at its end (the same answer the run's
/// page reads, from `history::run_timeline`).
async fn timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Timeline>, ApiError> {
    let store = store(&state)?;
    let id = run_id(&id)?;
    blocking(move || crate::history::run_timeline(&store, id))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no run {id} in the store")))
}

/// `GET /api/v1/runs/{id}/at` parameters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct MomentQuery {
    /// The moment, in ms of the run's uptime.
    ms: u64,
}

/// A run as it was at a moment: its snapshot then (at the timeline's resolution) with the
/// bottleneck of that moment.
async fn moment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Strict(q): Strict<MomentQuery>,
) -> Result<Json<Moment>, ApiError> {
    let store = store(&state)?;
    let id = run_id(&id)?;
    stored_run(&store, id).await?;
    blocking(move || store.moment(id, q.ms))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("run {id} has no snapshots kept yet")))
}

async fn status(State(state): State<AppState>) -> Result<Json<StoreStatus>, ApiError> {
    let (store, run) = state.store.clone().ok_or_else(|| {
        ApiError::NotFound(
            "this dashboard keeps no run store (it was started with --db none)".into(),
        )
    })?;
    Ok(Json(store.status(run)))
}
