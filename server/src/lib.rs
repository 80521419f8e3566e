//! The flowdeck server: the dashboard's routes, the SSE stream, the embedded site, and the
//! demo pipeline. [`router`] builds the whole app without a socket, so tests can drive it;
//! [`serve`] binds and runs it.

pub mod api;
mod assets;
pub mod auth;
pub mod branding;
mod config;
pub mod console;
mod cors;
mod csp;
pub mod dashboard;
pub mod demo;
mod history;
pub mod hub;
pub mod ingest;
pub mod origin;
mod persist;
pub mod pipelines;
pub mod prometheus;
mod serving;
pub mod settings;
mod state;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use flowdeck_app::{shell, theme::Theme, App, Backend, BackendRef, BoxFuture, Viewer};
use flowdeck_protocol::{
    metrics::SeriesQuery,
    page::{CheckResult, PageSpec, Site, TableData},
    runs::{RunInfo, RunTaskPage, RunTaskQuery, RunView, StoreStatus, Timeline},
    stream::Full,
    ItemId, TaskDetail,
};
use flowdeck_runtime::{
    logs::{LogBuffer, LogFilter, LogPage, LogQuery},
    metrics::{MetricsStore, SeriesData, SeriesInfo},
    PipelineHandle,
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::{limit::RequestBodyLimitLayer, set_header::SetResponseHeaderLayer};

pub use config::{Config, LOG_RECORDS};
pub use cors::layer as cors_layer;
pub use hub::Hub;
pub use serving::{serve, Serving};
pub use state::AppState;

/// Leptos' options, set in code: the binary needs no Cargo.toml and no LEPTOS_* variables.
fn leptos_options(addr: SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("flowdeck")
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .env(leptos::config::Env::PROD)
        .build()
}

/// The state for a dashboard of `pipeline` with no custom pages
/// ([`dashboard::Dashboard::state`] adds them).
pub fn state(config: &Config, pipeline: PipelineHandle) -> AppState {
    state_with(config, dashboard::Pages::default(), pipeline, None)
}

fn state_with(
    config: &Config,
    pages: dashboard::Pages,
    pipeline: PipelineHandle,
    store: Option<flowdeck_store::Store>,
) -> AppState {
    if config.standalone {
        // The placeholder is not recorded; the store's runs are the reporters'.
        let mut root = pipeline_state(config, pages, pipeline, None, true);
        root.store = store.clone().map(|s| (s, 0));
        root.pipelines = pipelines::Pipelines::standalone(store);
        return root;
    }
    let mut root = pipeline_state(config, pages, pipeline.clone(), store.clone(), true);
    if config.pipelines.is_empty() {
        return root;
    }
    // Checked by the dashboard before it serves; numbered here if a caller did not.
    let slugs = pipelines::slugs(&pipeline, &config.pipelines).unwrap_or_else(|_| {
        (0..=config.pipelines.len())
            .map(|i| format!("pipeline-{}", i + 1))
            .collect()
    });
    let mut scopes = vec![(slugs[0].clone(), root.clone())];
    for (p, slug) in config.pipelines.iter().zip(&slugs[1..]) {
        scopes.push((slug.clone(), sibling_state(&root, p.clone(), slug)));
    }
    let registry = pipelines::Pipelines::new(&scopes, store);
    for (slug, s) in &mut scopes {
        s.base = format!("/p/{slug}").into();
        s.pipelines = registry.clone();
    }
    root.pipelines = registry;
    root.scopes = scopes.into();
    root
}

/// One pipeline's state. The `first` one's metrics are the dashboard's (the user's
/// declared series, and the process's), and it keeps the store's metrics and logs; the
/// others have metrics of their own, in memory.
fn pipeline_state(
    config: &Config,
    pages: dashboard::Pages,
    pipeline: PipelineHandle,
    store: Option<flowdeck_store::Store>,
    first: bool,
) -> AppState {
    let metrics = if first {
        config.metrics.clone()
    } else {
        MetricsStore::new()
    };
    let metrics = sample(metrics, pipeline.clone());
    if let Some(t) = &config.warnings {
        if let Err(e) = pipeline.set_warning_thresholds(t.clone()) {
            tracing::warn!("the [warnings] settings were not applied: {e}");
        }
    }
    let (store, recorded) = match store {
        Some(store) => {
            let (run, recorded) = persist::record(&store, &pipeline, &metrics, &config.logs, first);
            (Some((store, run)), Some(recorded))
        }
        None => (None, None),
    };
    AppState {
        leptos: leptos_options(config.addr),
        hub: Hub::start(pipeline, config.refresh, config.stream_log),
        readonly: config.readonly,
        audit: api::Audit::new(store.as_ref().map(|(s, _)| s.clone())),
        auth: config.auth.clone(),
        shutdown: tokio::sync::watch::Sender::new(false),
        metrics,
        logs: config.logs.clone(),
        theme: config.theme,
        cors: cors::layer(&config.cors_origins).unwrap_or_else(|e| {
            tracing::warn!("{e}: cross-origin access stays off");
            None
        }),
        cors_origins: config.cors_origins.clone().into(),
        allowed_hosts: Arc::new(config.allowed_hosts.clone()),
        pages,
        branding: Arc::new(config.branding.clone()),
        store,
        recorded,
        base: "".into(),
        pipelines: pipelines::Pipelines::default(),
        scopes: Arc::new([]),
        ingest_token: config.ingest_token.as_deref().map(Arc::from),
        reporters: ingest::Reporters::default(),
        config: Arc::new(config.clone()),
    }
}

/// Items a reporting pipeline's mirror keeps the detail of (as a local pipeline's tracker
/// retains by default).
pub const REPORTED_RETENTION: usize = 10_000;

/// The state of another pipeline of the dashboard of `root` (one of its own beside the
/// first, or one that reports to it), under `/p/{slug}`: made as the first's is, with
/// metrics of its own, sharing one audit log, one shutdown that ends every live stream,
/// the registry and the reporters.
pub(crate) fn sibling_state(root: &AppState, pipeline: PipelineHandle, slug: &str) -> AppState {
    let store = root.store.as_ref().map(|(s, _)| s.clone());
    let mut s = pipeline_state(
        &root.config,
        dashboard::Pages::default(),
        pipeline,
        store,
        false,
    );
    s.audit = root.audit.clone();
    s.shutdown = root.shutdown.clone();
    s.base = format!("/p/{slug}").into();
    s.pipelines = root.pipelines.clone();
    s.reporters = root.reporters.clone();
    s
}

/// Fills `metrics` once a second with the pipeline's per-stage series and the process's
/// memory and CPU, then files the second into the store's rings. One loop does both, so
/// that each filed second holds exactly one sample: with two timers of different phase
/// some seconds would get two samples and others none, and a counter's rate would read as
/// a saw-tooth.
fn sample(metrics: MetricsStore, pipeline: PipelineHandle) -> MetricsStore {
    let store = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_cpu: Option<f64> = None;
        loop {
            every.tick().await;
            store.record_snapshot(&pipeline.snapshot());
            let p = prometheus::process();
            if let Some(bytes) = p.resident_bytes {
                store
                    .gauge("process_resident_memory_bytes", &[])
                    .set(bytes as f64);
            }
            if let Some(cpu) = p.cpu_seconds {
                if let Some(before) = last_cpu {
                    store
                        .gauge("process_cpu_ratio", &[])
                        .set((cpu - before).max(0.0));
                }
                last_cpu = Some(cpu);
            }
            store.tick();
        }
    });
    metrics
}

/// The whole app as a router: pages, server functions, the SSE stream and static files.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let ctx = page_context(&state);
    let app = Router::new()
        .route("/api/events", get(hub::events))
        .route("/prometheus", get(prometheus::handler))
        .route("/custom.css", get(branding::css))
        .route("/logo", get(branding::logo))
        // Server functions have their own routes (leptos_routes_with_context adds them);
        // anything else under /api/ is no endpoint.
        .route(
            "/api/{*rest}",
            axum::routing::any(|| async { api::ApiError::NotFound("no such API endpoint".into()) }),
        )
        .merge(api::router())
        .merge(auth::router())
        .leptos_routes_with_context(&state, routes, ctx, || shell(assets::assets().clone()))
        // Pipelines that report to this dashboard (those of this process are nested below).
        // (A catch-all matches no empty rest: the overview's `/p/{slug}/` needs its own.)
        .route("/p/{slug}", axum::routing::any(pipelines::dispatch))
        .route("/p/{slug}/", axum::routing::any(pipelines::dispatch))
        .route("/p/{slug}/{*rest}", axum::routing::any(pipelines::dispatch))
        .fallback(fallback);
    // Several pipelines: each under its base, and `/` sends a browser to their list.
    let app = state.scopes.iter().fold(app, |app, (slug, s)| {
        app.nest_service(&format!("/p/{slug}"), pipelines::scope(s.clone()))
    });
    let app = if state.pipelines.many() {
        app.layer(axum::middleware::from_fn(pipelines::home))
    } else {
        app
    };
    let app = app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::layer,
    ));
    let cors = state.cors.clone();
    let guard = axum::middleware::from_fn_with_state(state.clone(), origin::layer);
    let server_fns: Arc<std::collections::HashSet<&'static str>> = Arc::new(
        leptos::server_fn::axum::server_fn_paths()
            .map(|(path, _)| path)
            .collect(),
    );
    // Reports come in bigger bodies than the API's, and with a token of their own.
    let app = harden(app).merge(ingest::router()).with_state(state);
    let app = match cors {
        // Outside sign-in, so that it answers preflights before sign-in is asked for.
        Some(layer) => app.layer(layer),
        None => app,
    };
    // A request for a host this server does not answer gets nothing else.
    let app = app.layer(guard);
    // So that every error under /api/ is JSON, whichever layer answered it.
    let app = app.layer(axum::middleware::from_fn(move |req, next| {
        api::json_errors(server_fns.clone(), req, next)
    }));
    // Outermost: pages, JSON and CSS go out compressed when the client accepts it. The
    // site's big files are precompressed (and so passed through), the live streams are
    // not compressed (each event must leave at once).
    app.layer(tower_http::compression::CompressionLayer::new())
}

/// The largest request body accepted: the API takes small JSON and forms only.
const MAX_BODY: usize = 64 * 1024;

/// Headers every response carries: no MIME sniffing, no framing by other sites, no
/// referrer leaking to other origins.
fn harden(router: Router<AppState>) -> Router<AppState> {
    let set =
        |name, value| SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value));
    router
        .layer(axum::middleware::from_fn(deadline))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::CONTENT_SECURITY_POLICY, csp::NO_SCRIPT))
        .layer(set(header::REFERRER_POLICY, "same-origin"))
}

/// How long a request may take to produce its response (a stream's body may then flow for
/// as long as it likes): a handler stuck on a full queue answers instead of hanging.
const DEADLINE: Duration = Duration::from_secs(30);

async fn deadline(req: Request<Body>, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(DEADLINE, next.run(req)).await {
        Ok(response) => response,
        Err(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "error": "timeout",
                "message": format!("the request took longer than {} s", DEADLINE.as_secs()),
            })),
        )
            .into_response(),
    }
}

/// What pages render from: the hub's mirror of the stream and the runtime's tracker.
struct HubBackend {
    hub: Hub,
    store: Option<(flowdeck_store::Store, flowdeck_store::RunId)>,
    readonly: bool,
    audit: api::Audit,
    theme: Theme,
    logs: LogBuffer,
    metrics: MetricsStore,
    pages: dashboard::Pages,
    branding: Arc<branding::Branding>,
    /// Every pipeline (this one alone when it is the only one), for the list.
    pipelines: pipelines::Pipelines,
}

/// Rate points a server-rendered page carries (a minute at the default refresh).
const FIRST_PAINT_POINTS: usize = 240;

impl Backend for HubBackend {
    fn view(&self, items: usize) -> Full {
        self.hub.with_state(|s| Full {
            id: s.id,
            snapshot: s.snapshot.clone(),
            retention: s.retention,
            items: s.items.values().rev().take(items).rev().cloned().collect(),
            history: s.recent_history(FIRST_PAINT_POINTS).collect(),
            errors: s.errors.clone(),
        })
    }

    fn task(&self, id: ItemId) -> BoxFuture<Result<Option<TaskDetail>, String>> {
        let (hub, store) = (self.hub.clone(), self.store.clone());
        Box::pin(async move { history::live_task(&hub, store, id).await })
    }

    fn viewer(&self) -> Viewer {
        // The request being rendered or answered, with the principal the auth layer found.
        let who = leptos::prelude::use_context::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<auth::Principal>().cloned())
            .unwrap_or_else(auth::Principal::nobody);
        api::viewer(self.readonly, &who)
    }

    fn audit(&self) -> Vec<flowdeck_protocol::AuditEntry> {
        self.audit.entries()
    }

    fn processes(&self) -> Vec<flowdeck_protocol::ProcessSnapshot> {
        self.hub.snapshot().processes
    }

    fn theme(&self) -> Theme {
        self.theme
    }

    fn logs(&self, filter: &LogFilter) -> Result<LogPage, String> {
        let mut q = LogQuery::from_filter(filter)?;
        q.limit = Some(q.limit.unwrap_or(200).min(2000));
        Ok(self.logs.page(&q))
    }

    fn site(&self) -> Site {
        Site {
            title: self.branding.title(),
            logo: self.branding.logo.is_some(),
            custom_css: self.branding.css.is_some(),
            pages: self.pages.links(),
            pipelines: if self.pipelines.many() {
                self.pipelines.links()
            } else {
                Vec::new()
            },
        }
    }

    fn page(&self, slug: &str) -> Option<PageSpec> {
        self.pages.spec(slug)
    }

    fn metrics(&self) -> Vec<SeriesInfo> {
        self.metrics.list()
    }

    fn series(&self, query: &SeriesQuery) -> Result<Vec<SeriesData>, String> {
        api::read_series(&self.metrics, query)
            .map(|(_, _, series)| series)
            .map_err(|e| e.to_string())
    }

    fn table(&self, source: String) -> BoxFuture<Result<TableData, String>> {
        let (pages, hub) = (self.pages.clone(), self.hub.clone());
        Box::pin(async move { pages.table(&hub, &source).await })
    }

    fn checks(&self, names: Vec<String>) -> BoxFuture<Vec<CheckResult>> {
        let (pages, hub) = (self.pages.clone(), self.hub.clone());
        Box::pin(async move { pages.checks(&hub, &names).await })
    }

    fn runs(&self) -> BoxFuture<Result<(Vec<RunInfo>, StoreStatus), String>> {
        // With several pipelines, each one's Runs page lists its own runs.
        let pipeline = self
            .pipelines
            .many()
            .then(|| self.hub.pipeline().name().to_owned());
        self.stored(move |store, live| history::runs(&store, live, pipeline))
    }

    fn run_view(&self, id: i64, at: Option<u64>) -> BoxFuture<Result<Option<RunView>, String>> {
        self.stored(move |store, _| history::run_view(&store, id, at))
    }

    fn pipelines(
        &self,
        query: flowdeck_protocol::pipelines::PipelineQuery,
    ) -> BoxFuture<Result<Vec<flowdeck_protocol::pipelines::PipelineRow>, String>> {
        let pipelines = self.pipelines.clone();
        Box::pin(async move { pipelines.read(query).await })
    }

    fn run_timeline(&self, id: i64) -> BoxFuture<Result<Option<Timeline>, String>> {
        self.stored(move |store, _| history::run_timeline(&store, id))
    }

    fn run_tasks(&self, id: i64, query: RunTaskQuery) -> BoxFuture<Result<RunTaskPage, String>> {
        let page = self.stored(move |store, _| history::run_tasks(&store, id, &query));
        Box::pin(async move {
            page.await?
                .ok_or_else(|| format!("The store has no run {id}."))
        })
    }

    fn run_task(&self, id: i64, item: ItemId) -> BoxFuture<Result<Option<TaskDetail>, String>> {
        self.stored(move |store, _| history::run_task(&store, id, item))
    }

    fn run_metrics(&self, id: i64) -> BoxFuture<Result<Option<Vec<SeriesInfo>>, String>> {
        let known = self.metrics.list();
        self.stored(move |store, _| history::run_metric_list(&store, id, &known))
    }

    fn run_series(
        &self,
        id: i64,
        query: SeriesQuery,
    ) -> BoxFuture<Result<Vec<SeriesData>, String>> {
        let known = self.metrics.list();
        let read = self.stored(move |store, _| history::run_series(&store, id, &query, &known));
        Box::pin(async move {
            read.await?
                .ok_or_else(|| format!("The store has no run {id}."))?
        })
    }

    fn store_status(&self) -> Option<StoreStatus> {
        self.store.as_ref().map(|(store, live)| store.status(*live))
    }
}

impl HubBackend {
    /// Runs a store read off the runtime's threads; without a store, says so.
    fn stored<T: Send + 'static>(
        &self,
        f: impl FnOnce(
                flowdeck_store::Store,
                flowdeck_store::RunId,
            ) -> Result<T, flowdeck_store::StoreError>
            + Send
            + 'static,
    ) -> BoxFuture<Result<T, String>> {
        let store = self.store.clone();
        Box::pin(async move {
            let (store, live) = store.ok_or_else(|| {
                "This dashboard keeps no run store (it was started with --db none): runs live in memory only.".to_owned()
            })?;
            tokio::task::spawn_blocking(move || f(store, live))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        })
    }
}
/// What every Leptos render and server function gets: the backend to read from, the base
/// of its pipeline's pages, and the page's CSP header with this response's nonce.
fn page_context(state: &AppState) -> impl Fn() + Clone + Send + Sync + 'static {
    let source = backend(state);
    let base = flowdeck_app::scope::Base(state.base.to_string());
    move || {
        provide_context(source.clone());
        provide_context(base.clone());
        if let Some(manifest) = assets::split_manifest() {
            provide_context(manifest);
        }
        csp::provide();
    }
}

fn backend(state: &AppState) -> BackendRef {
    BackendRef(Arc::new(HubBackend {
        hub: state.hub.clone(),
        store: state.store.clone(),
        readonly: state.readonly,
        audit: state.audit.clone(),
        theme: state.theme,
        logs: state.logs.clone(),
        metrics: state.metrics.clone(),
        pages: state.pages.clone(),
        branding: state.branding.clone(),
        pipelines: pipelines::all(state),
    }))
}

/// Static files from the embedded site; anything else renders the app's 404 page.
pub(crate) async fn fallback(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request<Body>,
) -> Response {
    let path = req.uri().path().trim_start_matches('/');
    if let Some(file) = assets::get(path, &headers) {
        return file;
    }
    let render = leptos_axum::render_app_to_stream_with_context(page_context(&state), || {
        shell(assets::assets().clone())
    });
    render(req).await.into_response()
}

/// Whether this binary carries the site (always, unless the crate's `site/` was deleted).
pub fn site_embedded() -> bool {
    assets::present()
}

/// The digest of the sources the embedded site was built from, as
/// `scripts/site-digest.sh` computes it.
pub fn site_sources_digest() -> Option<String> {
    assets::sources_digest()
}
