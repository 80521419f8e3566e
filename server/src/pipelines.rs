//! Several pipelines in one dashboard: the registry of them, their list (`/pipelines` and
//! `/api/v1/pipelines`), and the routes that put each one's pages and API under its own
//! base, `/p/{slug}`.
//!
//! Each pipeline has a state of its own ([`AppState`]: its hub, its metrics, its run in the
//! store), so every page, API endpoint and stream under its base is today's, reading its
//! own state. The first pipeline also answers at the root, as a dashboard of one does; only
//! `/` differs, which sends a browser to the list.

use std::{collections::HashMap, sync::Arc};

use parking_lot::RwLock;
use tower::ServiceExt;

use axum::{
    body::Body,
    extract::{OriginalUri, Request, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use flowdeck_protocol::{
    pipelines::{is_slug, slug, PipelineQuery, PipelineRow, PipelineSort, Window},
    PipelineState,
};
use flowdeck_runtime::PipelineHandle;
use flowdeck_store::{RunId, Store, StoreError};
use serde::Deserialize;

use crate::{
    api::{self, ApiError},
    hub::{self, Hub},
    state::AppState,
};

/// One pipeline as the list reads it.
#[derive(Clone)]
struct Entry {
    slug: String,
    name: String,
    hub: Hub,
    run: Option<RunId>,
}

impl Entry {
    fn of(slug: &str, state: &AppState) -> Self {
        Entry {
            slug: slug.to_owned(),
            name: state.hub.pipeline().name().to_owned(),
            hub: state.hub.clone(),
            run: state.store.as_ref().map(|(_, run)| *run),
        }
    }
}

/// The pipelines a dashboard serves, in the order they were given, then those that
/// report to it in the order they first did. Empty for a dashboard of one (it has no
/// list). Cheap to clone; every clone sees pipelines added later.
#[derive(Clone, Default)]
pub struct Pipelines {
    entries: Arc<RwLock<Vec<Entry>>>,
    /// The routers of reporting pipelines, by slug: they arrive while the server runs, so
    /// their base is looked up per request ([`dispatch`]).
    reported: Arc<RwLock<HashMap<String, Router>>>,
    store: Option<Store>,
    /// Set in standalone mode: there is a list even with one pipeline, since the root
    /// serves none.
    standalone: bool,
}

impl Pipelines {
    /// The registry of `states`, each with its slug.
    pub(crate) fn new(states: &[(String, AppState)], store: Option<Store>) -> Self {
        let entries = states.iter().map(|(slug, s)| Entry::of(slug, s)).collect();
        Pipelines {
            entries: Arc::new(RwLock::new(entries)),
            reported: Arc::default(),
            store,
            standalone: false,
        }
    }

    /// The registry of a standalone dashboard: no pipeline of its own, those that report.
    pub(crate) fn standalone(store: Option<Store>) -> Self {
        Pipelines {
            store,
            standalone: true,
            ..Pipelines::default()
        }
    }

    /// Whether `/` is the list: more than one pipeline, or a standalone dashboard.
    pub fn many(&self) -> bool {
        self.standalone || self.entries.read().len() > 1
    }

    /// (slug, name) of each, in order.
    pub fn links(&self) -> Vec<(String, String)> {
        self.entries
            .read()
            .iter()
            .map(|e| (e.slug.clone(), e.name.clone()))
            .collect()
    }

    /// Whether `slug` is taken by a pipeline of this process (not a reporting one).
    pub(crate) fn is_local(&self, slug: &str) -> bool {
        self.entries.read().iter().any(|e| e.slug == slug)
            && !self.reported.read().contains_key(slug)
    }

    /// Serves a reporting pipeline's `state` under `/p/{slug}/`: a new one, or a new run
    /// of one (which replaces the previous run's routes and row).
    pub(crate) fn put_reported(&self, slug: &str, state: &AppState) {
        let entry = Entry::of(slug, state);
        {
            let mut entries = self.entries.write();
            match entries.iter_mut().find(|e| e.slug == slug) {
                Some(e) => *e = entry,
                None => entries.push(entry),
            }
        }
        self.reported
            .write()
            .insert(slug.to_owned(), scope(state.clone()));
    }

    /// The list's rows now, read off the runtime's threads: what the API and the page
    /// answer.
    pub(crate) async fn read(&self, q: PipelineQuery) -> Result<Vec<PipelineRow>, String> {
        let pipelines = self.clone();
        tokio::task::spawn_blocking(move || pipelines.rows(&q, crate::persist::now_ms()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// The list's rows, filtered and sorted. Reads the store (blocking): call off the
    /// runtime's threads. Two queries whatever the number of pipelines and items: the
    /// window's runs are counted from their recorded totals, not from their items.
    pub fn rows(&self, q: &PipelineQuery, now_ms: u64) -> Result<Vec<PipelineRow>, StoreError> {
        let entries = self.entries.read().clone();
        let live: Vec<RunId> = entries.iter().filter_map(|e| e.run).collect();
        let (before, last) = match &self.store {
            Some(store) => (
                match q.window.span_ms() {
                    Some(span) => store.pipeline_runs(now_ms.saturating_sub(span), &live)?,
                    None => HashMap::new(),
                },
                store.last_runs(&live)?,
            ),
            None => (HashMap::new(), HashMap::new()),
        };
        let mut rows: Vec<PipelineRow> = entries
            .iter()
            .map(|e| {
                let s = e.hub.pipeline().snapshot();
                let t = &s.totals;
                let earlier = before.get(&e.name).cloned().unwrap_or_default();
                PipelineRow {
                    slug: e.slug.clone(),
                    name: e.name.clone(),
                    state: s.state,
                    throughput: t.throughput,
                    queued: t.queued,
                    running: t.running,
                    completed: t.completed + earlier.completed,
                    failed: t.failed + earlier.failed,
                    cancelled: t.cancelled + earlier.cancelled,
                    runs: 1 + earlier.runs,
                    last_run: last.get(&e.name).cloned(),
                    warnings: s.warnings.iter().filter(|w| w.cleared_ms.is_none()).count() as u32,
                }
            })
            .collect();
        q.apply(&mut rows);
        Ok(rows)
    }
}

/// `GET /api/v1/pipelines` parameters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The runs counted: the live one, or those started in the last hour, day or week.
    window: Option<Window>,
    sort: Option<PipelineSort>,
    /// `asc` or `desc`; by default names ascend and numbers descend.
    order: Option<Order>,
    state: Option<PipelineState>,
    /// Part of a name or slug.
    q: Option<String>,
    /// Only pipelines with at least this many failures in the window.
    min_failed: Option<u64>,
    /// `true`: only pipelines with warnings firing.
    warning: Option<bool>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Order {
    Asc,
    Desc,
}

impl ListQuery {
    fn query(self) -> PipelineQuery {
        let sort = self.sort.unwrap_or_default();
        PipelineQuery {
            window: self.window.unwrap_or_default(),
            sort,
            desc: self
                .order
                .map_or(sort.largest_first(), |o| o == Order::Desc),
            state: self.state,
            text: self.q.unwrap_or_default(),
            min_failed: self.min_failed,
            warning: self.warning.unwrap_or(false),
        }
    }
}

/// The list, for scripts: the same rows the list page shows.
pub(crate) async fn list(
    State(state): State<AppState>,
    api::Strict(q): api::Strict<ListQuery>,
) -> Result<Json<Vec<PipelineRow>>, ApiError> {
    all(&state)
        .read(q.query())
        .await
        .map(Json)
        .map_err(ApiError::Unavailable)
}

/// The registry, or this dashboard's one pipeline as a list of one.
pub(crate) fn all(state: &AppState) -> Pipelines {
    if state.pipelines.entries.read().is_empty() && !state.pipelines.standalone {
        Pipelines::new(
            &[(slug(state.hub.pipeline().name()), state.clone())],
            state.store.as_ref().map(|(s, _)| s.clone()),
        )
    } else {
        state.pipelines.clone()
    }
}

/// `path` without the `/p/{slug}` base it is under, if any: what it is to the pipeline.
pub(crate) fn unscoped(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/p/") else {
        return path;
    };
    let (slug, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if is_slug(slug) {
        if tail.is_empty() {
            "/"
        } else {
            tail
        }
    } else {
        path
    }
}

/// The slugs of `first` and `more`, in order; an error naming two that share one.
pub(crate) fn slugs(
    first: &PipelineHandle,
    more: &[PipelineHandle],
) -> Result<Vec<String>, String> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(more.len() + 1);
    for p in std::iter::once(first).chain(more) {
        let name = p.name().to_owned();
        let s = slug(&name);
        if let Some(other) = seen.insert(s.clone(), name.clone()) {
            return Err(format!(
                "two pipelines would be served at /p/{s}/: {other:?} and {name:?}; give them names that differ in letters or digits"
            ));
        }
        out.push(s);
    }
    Ok(out)
}

/// Everything under one pipeline's base (`/p/{slug}`, nested there): its pages, API,
/// stream and server functions, each on its own state.
pub(crate) fn scope(state: AppState) -> Router {
    Router::new()
        .route("/api/events", get(hub::events))
        .route("/api/{*rest}", axum::routing::any(server_fn))
        .merge(api::router())
        .fallback(page)
        .with_state(state)
}

/// A server function of this pipeline's pages (the browser sends them under the base).
async fn server_fn(State(state): State<AppState>, req: Request<Body>) -> Response {
    let known =
        leptos::server_fn::axum::server_fn_paths().any(|(path, _)| path == req.uri().path());
    if !known {
        return ApiError::NotFound("no such API endpoint".into()).into_response();
    }
    leptos_axum::handle_server_fns_with_context(crate::page_context(&state), req)
        .await
        .into_response()
}

/// A page of this pipeline (or one of its site files), rendered at its whole address: the
/// app's router takes the base off itself, as the browser's does.
async fn page(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    mut req: Request<Body>,
) -> Response {
    *req.uri_mut() = uri;
    crate::fallback(State(state), headers, req).await
}

/// `/` of a dashboard of several pipelines: their list.
pub(crate) async fn home(req: Request<Body>, next: axum::middleware::Next) -> Response {
    if req.uri().path() == "/" {
        return axum::response::Redirect::temporary("/pipelines").into_response();
    }
    next.run(req).await
}

/// `/p/{slug}/...` of a pipeline that reports to this dashboard: its routes, found now
/// (the pipelines of this process are nested at startup and never get here).
pub(crate) async fn dispatch(
    State(state): State<AppState>,
    axum::extract::Path(params): axum::extract::Path<HashMap<String, String>>,
    req: Request<Body>,
) -> Response {
    let slug = params.get("slug").cloned().unwrap_or_default();
    let Some(router) = state.pipelines.reported.read().get(&slug).cloned() else {
        return ApiError::NotFound(format!("no pipeline at /p/{slug}/")).into_response();
    };
    // What nesting does: the pipeline's routes see the path below its base. The request
    // is made anew, so that this route's path parameters do not reach the pipeline's
    // routes; what the layers above found (who asks, from where) goes along.
    let (parts, body) = req.into_parts();
    let rest = unscoped(parts.uri.path()).to_owned();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let mut inner = Request::new(body);
    *inner.method_mut() = parts.method;
    *inner.headers_mut() = parts.headers;
    *inner.version_mut() = parts.version;
    *inner.uri_mut() = format!("{rest}{query}")
        .parse()
        .unwrap_or(parts.uri.clone());
    let ext = inner.extensions_mut();
    ext.insert(OriginalUri(
        parts
            .extensions
            .get::<OriginalUri>()
            .map_or(parts.uri.clone(), |o| o.0.clone()),
    ));
    if let Some(who) = parts.extensions.get::<crate::auth::Principal>() {
        ext.insert(who.clone());
    }
    if let Some(from) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        ext.insert(*from);
    }
    match router.oneshot(inner).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}
