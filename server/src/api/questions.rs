//! Questions a pipeline's stages ask people (`Ctx::ask`): listed, read and answered.
//!
//! `GET /api/v1/questions` (pending first, oldest first; then the closed ones kept, newest
//! first), `GET /api/v1/questions/{id}`, and `POST /api/v1/questions/{id}/answer` with
//! `{"choice": .., "data": {..}}`. An answer is checked against the question's options
//! and form: a wrong one is a 400 naming the field, and the question stays open; the first
//! valid answer wins, a later one is a 409 naming who answered and when. With sign-in on,
//! admins answer (only those named, when the question names its answerers); viewers never.

use axum::{
    extract::{rejection::JsonRejection, Path, State},
    routing::{get, post},
    Json, Router,
};
use flowdeck_protocol::question::{QuestionInfo, QuestionPage, Reply, Which};
use serde::Deserialize;

use super::{control::Actor, grammar, query::Strict, ApiError, MAX_PAGE};
use crate::{questions, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/questions", get(list))
        .route("/questions/{id}", get(one))
        .route("/questions/{id}/answer", post(answer))
}

/// `GET /api/v1/questions` parameters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<Which>,
    /// Only the questions about this item.
    item: Option<u64>,
    /// 1 to 1,000 (default 100).
    limit: Option<usize>,
    /// Questions to skip, at most 1,000,000.
    offset: Option<usize>,
}

async fn list(
    State(state): State<AppState>,
    Strict(q): Strict<ListQuery>,
) -> Result<Json<QuestionPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}, got {limit}"
        )));
    }
    let offset = q.offset.unwrap_or(0);
    if offset > 1_000_000 {
        return Err(ApiError::BadRequest(format!(
            "offset must be at most 1000000, got {offset}"
        )));
    }
    let which = q.state.unwrap_or_default();
    Ok(Json(crate::questions::page(
        state.hub.pipeline(),
        which,
        q.item,
        offset,
        limit,
    )))
}

fn question_id(raw: &str) -> Result<u64, ApiError> {
    grammar::task_id(raw)
        .ok_or_else(|| ApiError::BadRequest(format!("question id must be a number, got {raw:?}")))
}

async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<QuestionInfo>, ApiError> {
    let id = question_id(&id)?;
    state
        .hub
        .pipeline()
        .questions()
        .get(id)
        .map(|q| Json(questions::for_page(q)))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no question {id} (the dashboard keeps the pending ones and the {} most recent closed ones)",
                flowdeck_runtime::ask::CLOSED_KEPT
            ))
        })
}

async fn answer(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<Reply>, JsonRejection>,
) -> Result<Json<QuestionInfo>, ApiError> {
    let id = question_id(&id)?;
    let Actor(who) = actor;
    // Who may answer is checked before the body, as for every control.
    if let Some(q) = state.hub.pipeline().questions().get(id) {
        if let Some(no) = questions::refusal(state.readonly, &who, &q) {
            state.audit.record(
                who.label(),
                "answer",
                &format!("question {id}"),
                no.to_string(),
            );
            return Err(no);
        }
    }
    let Json(reply) = body.map_err(|e| match e {
        JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest(
            "answers must be JSON: send Content-Type: application/json and {\"choice\": ..., \"data\": {...}}".into(),
        ),
        other => ApiError::BadRequest(format!("bad JSON body: {}", other.body_text())),
    })?;
    questions::answer(
        state.hub.pipeline(),
        &state.audit,
        state.readonly,
        &who,
        id,
        &reply,
    )
    .map(|q| Json(questions::for_page(q)))
}
