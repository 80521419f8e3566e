//! Control actions: pause and resume a stage, scale its workers, retry or cancel an item,
//! drain or stop the pipeline. Each is written to the audit log, whatever its outcome.
//!
//! Requests must be JSON (`Content-Type: application/json`): a page on another site cannot
//! send that without a CORS preflight, which this server never grants, so a browser cannot
//! be tricked into controlling the pipeline (the defence against cross-site requests while
//! sessions are off). Readonly mode answers 403 to all of them.

use std::future::Future;

use axum::{
    extract::{rejection::JsonRejection, FromRequestParts, Path, State},
    http::request::Parts,
    routing::{get, post},
    Json, Router,
};
use flowdeck_app::Viewer;
use flowdeck_protocol::{filter::BulkRequest, AuditEntry, ItemId};
use flowdeck_runtime::ControlError;
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::{
    auth::{Principal, Role},
    bulk,
    state::AppState,
};

/// The most workers one stage may be given from the API.
pub const MAX_WORKERS: usize = 1024;
/// The control routes, nested under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/stages/{name}/pause", post(pause))
        .route("/stages/{name}/resume", post(resume))
        .route("/stages/{name}/workers", post(scale))
        .route("/stages/{name}/workers/{worker}/restart", post(restart))
        .route("/tasks/retry", post(retry_all))
        .route("/tasks/cancel", post(cancel_all))
        .route("/tasks/{id}/retry", post(retry))
        .route("/tasks/{id}/cancel", post(cancel))
        .route("/alerts/{name}/test", post(test_alert))
        .route("/pipeline/drain", post(drain))
        .route("/pipeline/stop", post(stop))
        .route("/audit", get(audit))
        .route("/session", get(session))
}

#[derive(Serialize)]
pub struct Done {
    ok: bool,
}

type Reply = Result<Json<Done>, ApiError>;

/// The body of every action but scaling: an empty JSON object, `{}`. A field it does not
/// take is refused, not ignored.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// The body of scaling: `{"workers": n}`. Read as a JSON number, so that `4.0` (an
/// integer, as JSON Schema counts them) is taken like `4`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    workers: f64,
}

/// A body that must be a JSON object: serde would also take an array for a struct
/// (`[null, null]` as its first two fields), which the document does not allow.
fn object<B: serde::de::DeserializeOwned>(
    json: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<B, ApiError> {
    let value = body(json)?;
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object, such as {\"q\": \"kind:timeout\"}".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| ApiError::BadRequest(format!("bad JSON body: {e}")))
}

fn body<B>(json: Result<Json<B>, JsonRejection>) -> Result<B, ApiError> {
    json.map(|Json(b)| b).map_err(|e| match e {
        JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest(
            "control requests must be JSON: send Content-Type: application/json and a body such as {}".into(),
        ),
        other => ApiError::BadRequest(format!("bad JSON body: {}", other.body_text())),
    })
}

/// Who is acting: the principal the auth layer found (a viewer, should it be missing).
pub struct Actor(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Actor(
            parts
                .extensions
                .get::<Principal>()
                .cloned()
                .unwrap_or_else(Principal::nobody),
        ))
    }
}

/// Why `who` may not control the pipeline here, if they may not.
pub fn refusal(readonly: bool, who: &Principal) -> Option<ApiError> {
    if readonly {
        Some(ApiError::Forbidden("this dashboard is readonly".into()))
    } else if who.role != Role::Admin {
        Some(ApiError::Forbidden(format!(
            "{} is a viewer: only admins may control the pipeline",
            who.label()
        )))
    } else {
        None
    }
}

/// What the page needs to know about who is looking.
pub fn viewer(readonly: bool, who: &Principal) -> Viewer {
    Viewer {
        name: who.name.clone(),
        role: match who.role {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
        .to_owned(),
        can_control: refusal(readonly, who).is_none(),
        csrf: who.csrf.clone(),
    }
}

/// `GET /api/v1/session`: who the request comes from and what they may do.
pub async fn session(State(s): State<AppState>, Actor(who): Actor) -> Json<Viewer> {
    Json(viewer(s.readonly, &who))
}

/// Runs an action unless the actor may not, and records it. The body is checked after the
/// refusal, so a readonly server or a viewer gets 403 whatever is sent.
async fn act<B, F>(
    state: &AppState,
    actor: Actor,
    action: &str,
    target: &str,
    body: Result<B, ApiError>,
    f: impl FnOnce(B) -> F,
) -> Reply
where
    F: Future<Output = Result<(), ApiError>>,
{
    act_with(state, actor, action, target, body, f, |()| "ok".to_owned())
        .await
        .map(|_| Json(Done { ok: true }))
}

/// [`act`] for an action that answers more than "done": `said` puts its answer in words
/// for the audit log.
async fn act_with<B, T, F>(
    state: &AppState,
    Actor(who): Actor,
    action: &str,
    target: &str,
    body: Result<B, ApiError>,
    f: impl FnOnce(B) -> F,
    said: impl FnOnce(&T) -> String,
) -> Result<Json<T>, ApiError>
where
    F: Future<Output = Result<T, ApiError>>,
{
    let outcome = match (refusal(state.readonly, &who), body) {
        (Some(no), _) => Err(no),
        (None, Ok(b)) => f(b).await,
        (None, Err(e)) => Err(e),
    };
    // One log serves every pipeline of a dashboard: each entry names its own.
    let target = if state.pipelines.many() {
        format!("{}: {target}", state.hub.pipeline().name())
    } else {
        target.to_owned()
    };
    let said = match &outcome {
        Ok(done) => said(done),
        Err(e) => e.to_string(),
    };
    state.audit.record(who.label(), action, &target, said);
    outcome.map(Json)
}

fn control(e: ControlError) -> ApiError {
    match e {
        ControlError::UnknownStage(_)
        | ControlError::UnknownItem(_)
        | ControlError::UnknownWorker { .. } => ApiError::NotFound(e.to_string()),
        _ => ApiError::Conflict(e.to_string()),
    }
}

fn item_id(raw: &str) -> Result<ItemId, ApiError> {
    super::grammar::task_id(raw)
        .ok_or_else(|| ApiError::BadRequest(format!("task id must be a number, got {raw:?}")))
}

async fn pause(
    State(s): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    json: Result<Json<Empty>, JsonRejection>,
) -> Reply {
    act(&s, actor, "pause", &name, body(json), |_| async {
        s.hub.pipeline().pause(&name).map_err(control)
    })
    .await
}

async fn resume(
    State(s): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    json: Result<Json<Empty>, JsonRejection>,
) -> Reply {
    act(&s, actor, "resume", &name, body(json), |_| async {
        s.hub.pipeline().resume(&name).map_err(control)
    })
    .await
}

async fn scale(
    State(s): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    json: Result<Json<Scale>, JsonRejection>,
) -> Reply {
    let body = body(json);
    let target = match &body {
        Ok(Scale { workers }) => format!("{name} to {workers} workers"),
        _ => name.clone(),
    };
    act(&s, actor, "scale", &target, body, |b| {
        let n = b.workers;
        std::future::ready(
            if n.fract() == 0.0 && (1.0..=MAX_WORKERS as f64).contains(&n) {
                s.hub
                    .pipeline()
                    .set_workers(&name, n as usize)
                    .map_err(control)
            } else {
                Err(ApiError::BadRequest(format!(
                    "workers must be a whole number between 1 and {MAX_WORKERS}, got {n}"
                )))
            },
        )
    })
    .await
}

/// Restarts a worker stuck on an attempt: the attempt fails with "restarted by {who}" and
/// the stage's retry policy takes it from there.
async fn restart(
    State(s): State<AppState>,
    actor: Actor,
    Path((name, worker)): Path<(String, String)>,
    json: Result<Json<Empty>, JsonRejection>,
) -> Reply {
    let by = actor.0.label().to_owned();
    let target = format!("{name} worker {worker}");
    act(&s, actor, "restart", &target, body(json), |_| async {
        let n: u16 = worker.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "worker must be a number from 0, as the workers page numbers them, got {worker:?}"
            ))
        })?;
        s.hub
            .pipeline()
            .restart_worker(&name, n, &by)
            .map(|_| ())
            .map_err(control)
    })
    .await
}

async fn retry(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    json: Result<Json<Empty>, JsonRejection>,
) -> Reply {
    // Retrying re-queues the item, which may wait for room in the queue.
    act(&s, actor, "retry", &id, body(json), |_| async {
        s.hub.pipeline().retry(item_id(&id)?).await.map_err(control)
    })
    .await
}

async fn cancel(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    json: Result<Json<Empty>, JsonRejection>,
) -> Reply {
    act(&s, actor, "cancel", &id, body(json), |_| async {
        s.hub.pipeline().cancel(item_id(&id)?).map_err(control)
    })
    .await
}

/// Retries every failed item the filter finds: one decision, one audit entry.
async fn retry_all(
    State(s): State<AppState>,
    actor: Actor,
    json: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<bulk::Outcome>, ApiError> {
    bulk_action(s, actor, bulk::Action::Retry, object(json)).await
}

/// Cancels every unfinished item the filter finds.
async fn cancel_all(
    State(s): State<AppState>,
    actor: Actor,
    json: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<bulk::Outcome>, ApiError> {
    bulk_action(s, actor, bulk::Action::Cancel, object(json)).await
}

async fn bulk_action(
    s: AppState,
    actor: Actor,
    action: bulk::Action,
    body: Result<BulkRequest, ApiError>,
) -> Result<Json<bulk::Outcome>, ApiError> {
    let pipeline = s.hub.pipeline().clone();
    // The filter in words names the entry; one that does not parse is refused (and
    // recorded) as it was sent.
    let selection = body.and_then(|b| {
        let pipeline = &pipeline;
        let selection =
            bulk::Selection::new(pipeline, b.status, b.stage.as_deref(), b.q.as_deref())
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok((selection, b.dry_run))
    });
    let count = |(sel, dry_run): (bulk::Selection, bool)| async move {
        // A pass over every retained item: off the async threads.
        tokio::task::spawn_blocking(move || bulk::run(&pipeline, &sel, action, dry_run))
            .await
            .map_err(|e| ApiError::Unavailable(format!("the bulk action failed: {e}")))
    };
    // A dry run only counts, as a read would: refused to those who may not act, but not
    // an entry of the audit log, which records what was done.
    if let Ok((_, true)) = &selection {
        if let Some(no) = refusal(s.readonly, &actor.0) {
            return Err(no);
        }
        return count(selection?).await.map(Json);
    }
    let target = match &selection {
        Ok((sel, _)) => sel.said().to_owned(),
        Err(_) => "items".to_owned(),
    };
    let name = format!("{} all", action.as_str());
    act_with(&s, actor, &name, &target, selection, count, bulk::said).await
}

/// Sends a test event through the alert `name`, as it would send any (admins only).
async fn test_alert(
    State(s): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    json: Result<Json<Empty>, JsonRejection>,
) -> Reply {
    let target = format!("alert {name}");
    act(&s, actor, "test alert", &target, body(json), |_| async {
        let link = format!("http://{}{}/", s.config.addr, s.base);
        if s.config.alerts.test(&name, s.hub.pipeline().name(), link) {
            Ok(())
        } else {
            let names: Vec<String> = s.config.alerts.list().into_iter().map(|a| a.name).collect();
            Err(ApiError::NotFound(format!(
                "no alert named {name:?}; the alerts are {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )))
        }
    })
    .await
}

async fn drain(
    State(s): State<AppState>,
    actor: Actor,
    json: Result<Json<Empty>, JsonRejection>,
) -> Reply {
    act(&s, actor, "drain", "pipeline", body(json), |_| async {
        s.hub.pipeline().drain();
        Ok(())
    })
    .await
}

async fn stop(
    State(s): State<AppState>,
    actor: Actor,
    json: Result<Json<Empty>, JsonRejection>,
) -> Reply {
    act(&s, actor, "stop", "pipeline", body(json), |_| async {
        s.hub.pipeline().abort();
        Ok(())
    })
    .await
}

async fn audit(State(s): State<AppState>) -> Json<Vec<AuditEntry>> {
    Json(s.audit.entries())
}
