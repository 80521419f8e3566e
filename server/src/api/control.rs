//! Control actions: pause and resume a stage, scale its workers, retry or cancel an item,
//! drain or stop the pipeline. Each is written to the audit log, whatever its outcome.
//!
//! Requests must be JSON (`Content-Type: application/json`): a page on another site cannot
//! send that without a CORS preflight, which this server never grants, so a browser cannot
//! be tricked into controlling the pipeline (the defence against cross-site requests while
//! sessions are off). Readonly mode answers 403 to all of them.

use std::{
    collections::VecDeque,
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

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/stages/{name}/pause", post(pause))
        .route("/api/v1/stages/{name}/resume", post(resume))
        .route("/api/v1/stages/{name}/workers", post(scale))
        .route("/api/v1/tasks/{id}/retry", post(retry))
        .route("/api/v1/tasks/{id}/cancel", post(cancel))
        .route("/api/v1/pipeline/drain", post(drain))
        .route("/api/v1/pipeline/stop", post(stop))
        .route("/api/v1/audit", get(audit))
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

/// Runs an action unless the server is readonly, and records it.
fn act(
    state: &AppState,
    action: &str,
    target: &str,
    f: impl FnOnce() -> Result<(), ApiError>,
) -> Reply {
    let outcome = if state.readonly {
        Err(ApiError::Forbidden("this dashboard is readonly".into()))
    } else {
        f()
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
    act(&s, "pause", &name, || {
        body(json)?;
        s.hub.pipeline().pause(&name).map_err(control)
    })
}

async fn resume(
    State(s): State<AppState>,
    Path(name): Path<String>,
    json: Result<Json<Body>, JsonRejection>,
) -> Reply {
    act(&s, "resume", &name, || {
        body(json)?;
        s.hub.pipeline().resume(&name).map_err(control)
    })
}

async fn scale(
    State(s): State<AppState>,
    Path(name): Path<String>,
    json: Result<Json<Body>, JsonRejection>,
) -> Reply {
    let wanted = body(json).map(|b| b.workers);
    let target = match &wanted {
        Ok(Some(n)) => format!("{name} to {n} workers"),
        _ => name.clone(),
    };
    act(&s, "scale", &target, || match wanted? {
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
}

async fn retry(
    State(s): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<Body>, JsonRejection>,
) -> Reply {
    // Retrying re-queues the item, which may wait for room in the queue.
    let outcome = if s.readonly {
        Err(ApiError::Forbidden("this dashboard is readonly".into()))
    } else {
        match body(json).and_then(|_| item_id(&id)) {
            Ok(item) => s.hub.pipeline().retry(item).await.map_err(control),
            Err(e) => Err(e),
        }
    };
    s.audit.record("retry", &id, &outcome);
    outcome.map(|()| Json(Done { ok: true }))
}

async fn cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<Body>, JsonRejection>,
) -> Reply {
    act(&s, "cancel", &id, || {
        body(json)?;
        s.hub.pipeline().cancel(item_id(&id)?).map_err(control)
    })
}

async fn drain(State(s): State<AppState>, json: Result<Json<Body>, JsonRejection>) -> Reply {
    act(&s, "drain", "pipeline", || {
        body(json)?;
        s.hub.pipeline().drain();
        Ok(())
    })
}

async fn stop(State(s): State<AppState>, json: Result<Json<Body>, JsonRejection>) -> Reply {
    act(&s, "stop", "pipeline", || {
        body(json)?;
        s.hub.pipeline().abort();
        Ok(())
    })
}

async fn audit(State(s): State<AppState>) -> Json<Vec<AuditEntry>> {
    Json(s.audit.entries())
}
