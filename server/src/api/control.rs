//! Control actions: pause and resume a stage, scale its workers, retry or cancel an item,
//! drain or stop the pipeline. Each is written to the audit log, whatever its outcome.
//!
//! Requests must be JSON (`Content-Type: application/json`): a page on another site cannot
//! send that without a CORS preflight, which this server never grants, so a browser cannot
//! be tricked into controlling the pipeline (the defence against cross-site requests while
//! sessions are off). Readonly mode answers 403 to all of them.

use std::{
    collections::VecDeque,
    future::Future,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{rejection::JsonRejection, Path, State},
    routing::{get, post},
    Json, Router,
};
use flowdeck_protocol::ItemId;
use flowdeck_runtime::ControlError;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::state::AppState;

/// The most workers one stage may be given from the API.
pub const MAX_WORKERS: usize = 1024;
/// Entries the audit log keeps (the oldest go first).
const AUDIT_ENTRIES: usize = 1000;

/// One control action, as the audit log records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    pub at_unix_ms: u64,
    pub action: String,
    pub target: String,
    /// "ok", or why it was refused.
    pub outcome: String,
}

/// The bounded log of control actions, newest last.
#[derive(Clone, Default)]
pub struct Audit(Arc<Mutex<VecDeque<AuditEntry>>>);

impl Audit {
    fn record(&self, action: &str, target: &str, outcome: &Result<(), ApiError>) {
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let outcome = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        tracing::info!(action, target, %outcome, "control");
        let mut log = self.0.lock();
        if log.len() == AUDIT_ENTRIES {
            log.pop_front();
        }
        log.push_back(AuditEntry {
            at_unix_ms,
            action: action.to_owned(),
            target: target.to_owned(),
            outcome,
        });
    }

    pub fn entries(&self) -> Vec<AuditEntry> {
        self.0.lock().iter().cloned().collect()
    }
}

/// The control routes, nested under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/stages/{name}/pause", post(pause))
        .route("/stages/{name}/resume", post(resume))
        .route("/stages/{name}/workers", post(scale))
        .route("/tasks/{id}/retry", post(retry))
        .route("/tasks/{id}/cancel", post(cancel))
        .route("/pipeline/drain", post(drain))
        .route("/pipeline/stop", post(stop))
        .route("/audit", get(audit))
}

#[derive(Serialize)]
pub struct Done {
    ok: bool,
}

type Reply = Result<Json<Done>, ApiError>;

/// The body every action takes: a JSON object (empty, or with the action's fields).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Body {
    workers: Option<usize>,
}

fn body(json: Result<Json<Body>, JsonRejection>) -> Result<Body, ApiError> {
    json.map(|Json(b)| b).map_err(|e| match e {
        JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest(
            "control requests must be JSON: send Content-Type: application/json and a body such as {}".into(),
        ),
        other => ApiError::BadRequest(format!("bad JSON body: {}", other.body_text())),
    })
}

/// Runs an action unless the server is readonly, and records it. The body is checked after
/// the readonly refusal, so a readonly server answers 403 whatever it is sent.
async fn act<F>(
    state: &AppState,
    action: &str,
    target: &str,
    body: Result<Body, ApiError>,
    f: impl FnOnce(Body) -> F,
) -> Reply
where
    F: Future<Output = Result<(), ApiError>>,
{
    let outcome = if state.readonly {
        Err(ApiError::Forbidden("this dashboard is readonly".into()))
    } else {
        match body {
            Ok(b) => f(b).await,
            Err(e) => Err(e),
        }
    };
    state.audit.record(action, target, &outcome);
    outcome.map(|()| Json(Done { ok: true }))
}

fn control(e: ControlError) -> ApiError {
    match e {
        ControlError::UnknownStage(_) | ControlError::UnknownItem(_) => {
            ApiError::NotFound(e.to_string())
        }
        _ => ApiError::Conflict(e.to_string()),
    }
}

fn item_id(raw: &str) -> Result<ItemId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("task id must be a number, got {raw:?}")))
}

async fn pause(
    State(s): State<AppState>,
    Path(name): Path<String>,
    json: Result<Json<Body>, JsonRejection>,
) -> Reply {
    act(&s, "pause", &name, body(json), |_| async {
        s.hub.pipeline().pause(&name).map_err(control)
    })
    .await
}

async fn resume(
    State(s): State<AppState>,
    Path(name): Path<String>,
    json: Result<Json<Body>, JsonRejection>,
) -> Reply {
    act(&s, "resume", &name, body(json), |_| async {
        s.hub.pipeline().resume(&name).map_err(control)
    })
    .await
}

async fn scale(
    State(s): State<AppState>,
    Path(name): Path<String>,
    json: Result<Json<Body>, JsonRejection>,
) -> Reply {
    let body = body(json);
    let target = match &body {
        Ok(Body { workers: Some(n) }) => format!("{name} to {n} workers"),
        _ => name.clone(),
    };
    act(&s, "scale", &target, body, |b| {
        std::future::ready(match b.workers {
            Some(n) if (1..=MAX_WORKERS).contains(&n) => {
                s.hub.pipeline().set_workers(&name, n).map_err(control)
            }
            Some(n) => Err(ApiError::BadRequest(format!(
                "workers must be between 1 and {MAX_WORKERS}, got {n}"
            ))),
            None => Err(ApiError::BadRequest(
                "the body needs \"workers\": a number".into(),
            )),
        })
    })
    .await
}

async fn retry(
    State(s): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<Body>, JsonRejection>,
) -> Reply {
    // Retrying re-queues the item, which may wait for room in the queue.
    act(&s, "retry", &id, body(json), |_| async {
        s.hub.pipeline().retry(item_id(&id)?).await.map_err(control)
    })
    .await
}

async fn cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<Body>, JsonRejection>,
) -> Reply {
    act(&s, "cancel", &id, body(json), |_| async {
        s.hub.pipeline().cancel(item_id(&id)?).map_err(control)
    })
    .await
}

async fn drain(State(s): State<AppState>, json: Result<Json<Body>, JsonRejection>) -> Reply {
    act(&s, "drain", "pipeline", body(json), |_| async {
        s.hub.pipeline().drain();
        Ok(())
    })
    .await
}

async fn stop(State(s): State<AppState>, json: Result<Json<Body>, JsonRejection>) -> Reply {
    act(&s, "stop", "pipeline", body(json), |_| async {
        s.hub.pipeline().abort();
        Ok(())
    })
    .await
}

async fn audit(State(s): State<AppState>) -> Json<Vec<AuditEntry>> {
    Json(s.audit.entries())
}
