//! `POST /api/v1/ingest`: pipelines in other processes report here (`report_to`), and the
//! dashboard serves each as one of its pipelines, under `/p/{slug}/`.
//!
//! Each reporting pipeline is a runtime mirror (`flowdeck_runtime::mirror`): its items'
//! details go into a tracker of its own and its snapshots stand for its workers, so its pages, API,
//! stream, run store records and row in the list are those of a pipeline of this process.
//! A control pressed on its pages becomes a command, answered to its next batch.
//!
//! The endpoint takes its own token (`Config::ingest_token`, `--ingest-token`), not a
//! user's: a reporter is a program, and one leaked reporter token cannot read or control
//! anything. Without one configured the endpoint answers 401, saying so.

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap},
    routing::post,
    Json, Router,
};
use flowdeck_protocol::{
    pipelines::slug,
    report::{IngestReply, ReportBatch, MAX_ITEMS},
};
use flowdeck_runtime::Mirror;

use crate::{error::ApiError, state::AppState, REPORTED_RETENTION};

/// The largest batch accepted: a reporter sends at most 2,000 items a batch by default,
/// about 2 MB of JSON for three-stage items.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// The ingest route, with its own body limit (the API's is 64 KiB).
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/ingest", post(ingest)).layer(
        tower_http::limit::RequestBodyLimitLayer::new(MAX_BATCH_BYTES),
    )
}

/// Checks the reporter's token.
fn authorized(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    // No token configured: no credentials can be right, so a 401 that says why.
    let Some(expected) = state.ingest_token.as_deref() else {
        return Err(ApiError::Unauthorized(
            "this dashboard takes no reports: start it with --ingest-token (or FLOWDECK_INGEST_TOKEN)".into(),
        ));
    };
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if sent.is_empty() || !crate::auth::secret::same(sent, expected) {
        return Err(ApiError::Unauthorized(
            "send the dashboard's ingest token as Authorization: Bearer <token>".into(),
        ));
    }
    Ok(())
}

/// What is wrong with a batch, if anything: names the field.
fn check(b: &ReportBatch) -> Result<(), String> {
    if b.pipeline.trim().is_empty() || b.pipeline.len() > 200 {
        return Err("pipeline must be a name of 1 to 200 bytes".into());
    }
    if b.stages.is_empty() || b.stages.len() > 1_000 {
        return Err(format!(
            "stages must name 1 to 1000 stages, got {}",
            b.stages.len()
        ));
    }
    if let Some(s) = b
        .stages
        .iter()
        .find(|s| s.trim().is_empty() || s.len() > 200)
    {
        return Err(format!("stage names must be 1 to 200 bytes, got {s:?}"));
    }
    let n = b.stages.len();
    if let Some(e) = b
        .edges
        .iter()
        .find(|e| usize::from(e.to) >= n || e.from.is_some_and(|f| usize::from(f) >= n))
    {
        return Err(format!("edge {e:?} names a stage past the {n} stages"));
    }
    if b.items.len() > MAX_ITEMS {
        return Err(format!(
            "a batch carries at most {MAX_ITEMS} items, got {}",
            b.items.len()
        ));
    }
    for (i, d) in b.items.iter().enumerate() {
        let stages = std::iter::once(d.stage)
            .chain(d.visits.iter().map(|v| v.stage))
            .chain(d.history.iter().map(|e| e.stage));
        if let Some(s) = stages.into_iter().find(|s| usize::from(*s) >= n) {
            return Err(format!(
                "items[{i}] (item {}) names stage {s}, past the {n} stages",
                d.id
            ));
        }
    }
    if b.questions.len() > 10_000 {
        return Err(format!(
            "a batch carries at most 10000 question changes, got {}",
            b.questions.len()
        ));
    }
    for (i, c) in b.questions.iter().enumerate() {
        let q = c.question();
        if usize::from(q.stage) >= n {
            return Err(format!(
                "questions[{i}] (question {}) names stage {}, past the {n} stages",
                q.id, q.stage
            ));
        }
        if q.id == 0 || q.title.trim().is_empty() || q.options.is_empty() {
            return Err(format!(
                "questions[{i}] needs an id above 0, a title and at least one option"
            ));
        }
    }
    if let Some(s) = &b.snapshot {
        if s.stages.len() != n {
            return Err(format!(
                "the snapshot has {} stages, the batch names {n}",
                s.stages.len()
            ));
        }
    }
    Ok(())
}

async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<IngestReply>, ApiError> {
    authorized(&state, &headers)?;
    // A good batch is read at full speed; a bad one again, for the path of what is wrong
    // ("items[3].status: unknown variant ..."), not only where.
    let batch: ReportBatch = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(plain) => {
            let why = serde_path_to_error::deserialize::<_, ReportBatch>(
                &mut serde_json::Deserializer::from_slice(&body),
            )
            .err()
            .map_or_else(|| plain.to_string(), |e| e.to_string());
            return Err(ApiError::BadRequest(format!(
                "the batch is not a report: {why}"
            )));
        }
    };
    check(&batch).map_err(ApiError::BadRequest)?;
    let slug = slug(&batch.pipeline);
    if state.pipelines.is_local(&slug) {
        return Err(ApiError::Conflict(format!(
            "/p/{slug}/ is a pipeline of the dashboard's own process; report under another name"
        )));
    }
    let (mirror, new) = mirror_for(&state, &slug, &batch);
    state.reporters.heard(&slug, &batch.pipeline, batch.dropped);
    mirror.items(batch.items);
    mirror.questions(batch.questions);
    if let Some(r) = batch.resources {
        mirror.resources(r);
    }
    if let Some(snapshot) = batch.snapshot {
        mirror.snapshot(snapshot);
    }
    Ok(Json(IngestReply {
        commands: mirror.take_commands(),
        // A run met now (a new one, or after this dashboard restarted) may have questions
        // pending from before: its next batch brings them all.
        resend_questions: new,
    }))
}

/// The mirror of the batch's run: the one already served, or a new one (a new pipeline,
/// or a new run of it) put under its base; and whether it is new.
fn mirror_for(state: &AppState, slug: &str, batch: &ReportBatch) -> (Mirror, bool) {
    let timeout = state.config.reporter_timeout;
    let mut new = false;
    let mirror =
        state
            .reporters
            .mirror(slug, batch.started_unix_ms, &batch.stages, timeout, || {
                new = true;
                let (handle, mirror) = flowdeck_runtime::mirror(
                    batch.pipeline.clone(),
                    batch.stages.clone(),
                    batch.edges.clone(),
                    REPORTED_RETENTION,
                );
                // Its run starts when the reporter's did, before anything reads it. Not with
                // the batch's snapshot: a run shorter than a batch arrives finished, and a
                // mirror told so before its hub subscribes would end its feed with nobody
                // having read the events.
                mirror.snapshot(flowdeck_protocol::Snapshot {
                    pipeline: batch.pipeline.clone(),
                    state: flowdeck_protocol::PipelineState::Running,
                    started_unix_ms: batch.started_unix_ms,
                    edges: batch.edges.clone(),
                    stages: batch
                        .stages
                        .iter()
                        .map(|name| flowdeck_protocol::StageSnapshot {
                            name: name.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                });
                let scope = state.sibling(handle, slug);
                // A reporter's process going silent marks its run aborted with a warning
                // that says so: both are alerts, as for a pipeline of this process.
                scope.watch_alerts();
                state
                    .pipelines
                    .put_reported(scope.entry(slug), crate::scopes::scope(scope));
                tracing::info!(pipeline = %batch.pipeline, slug, "a pipeline reports");
                mirror
            });
    (mirror, new)
}
