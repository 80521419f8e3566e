//! What the pages are rendered from on the server: [`HubBackend`], the app's `Backend`
//! over one pipeline's hub, tracker, run store, metrics, logs and the user's pages; the
//! context every render and server function gets; and the fallback that serves the
//! embedded site's files or renders a page.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Request, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use flowdeck_app::{shell, Backend, BackendRef, BoxFuture, Viewer};
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
};
use leptos::prelude::provide_context;

use crate::{
    api, assets, audit::Audit, auth, branding, csp, history, hub::Hub, pages::Pages, pipelines,
    state::AppState,
};

/// What pages render from: the hub's mirror of the stream and the runtime's tracker.
pub(crate) struct HubBackend {
    hub: Hub,
    store: Option<(flowdeck_store::Store, flowdeck_store::RunId)>,
    readonly: bool,
    audit: Audit,
    alerts: crate::alerts::Alerts,
    logs: LogBuffer,
    metrics: MetricsStore,
    pages: Pages,
    branding: Arc<branding::Branding>,
    /// Every pipeline (this one alone when it is the only one), for the list.
    pipelines: pipelines::Pipelines,
    /// The server's default theme, for custom widgets' templates.
    theme: &'static str,
}

/// Rate points a server-rendered page carries (a minute at the default refresh).
const FIRST_PAINT_POINTS: usize = 240;

/// Questions a page lists at once (the Questions page pages through the rest).
const QUESTIONS_PER_PAGE: usize = 50;

impl Backend for HubBackend {
    fn view(&self, items: usize) -> Full {
        self.hub.with_state(|s| Full {
            id: s.id,
            snapshot: s.snapshot.clone(),
            retention: s.retention,
            items: s.items.values().rev().take(items).rev().cloned().collect(),
            history: s.recent_history(FIRST_PAINT_POINTS).collect(),
            errors: s.errors.clone(),
            // The browser does not read them: its pages ask for them.
            questions: Vec::new(),
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

    fn alerts(&self) -> Vec<flowdeck_protocol::alerts::AlertInfo> {
        self.alerts.list()
    }

    fn processes(&self) -> Vec<flowdeck_protocol::ProcessSnapshot> {
        self.hub.snapshot().processes
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

    fn widget(
        &self,
        slug: String,
        id: String,
    ) -> BoxFuture<Option<flowdeck_protocol::page::WidgetData>> {
        let (hub, metrics, pages) = (self.hub.clone(), self.metrics.clone(), self.pages.clone());
        let (run, theme) = (self.store.as_ref().map(|(_, run)| *run), self.theme);
        Box::pin(async move {
            api::widget_content(&pages, &hub, &metrics, (run, theme), &slug, &id).await
        })
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

    fn questions(
        &self,
        query: flowdeck_protocol::question::QuestionQuery,
    ) -> BoxFuture<Result<flowdeck_protocol::question::QuestionPage, String>> {
        let offset = query.offset.min(1_000_000) as usize;
        match query.run {
            None => {
                let page = crate::questions::page(
                    self.hub.pipeline(),
                    query.which,
                    query.item,
                    offset,
                    QUESTIONS_PER_PAGE,
                );
                Box::pin(async move { Ok(page) })
            }
            Some(run) => self.stored(move |store, _| {
                let which = match query.which {
                    flowdeck_protocol::question::Which::All => None,
                    flowdeck_protocol::question::Which::Pending => {
                        Some(flowdeck_store::QuestionsIn::Pending)
                    }
                    flowdeck_protocol::question::Which::Answered => {
                        Some(flowdeck_store::QuestionsIn::Answered)
                    }
                    flowdeck_protocol::question::Which::Closed => {
                        Some(flowdeck_store::QuestionsIn::Closed)
                    }
                };
                let (total, questions) =
                    store.questions(run, which, query.item, offset as u64, QUESTIONS_PER_PAGE)?;
                let (pending, _) =
                    store.questions(run, Some(flowdeck_store::QuestionsIn::Pending), None, 0, 0)?;
                Ok(flowdeck_protocol::question::QuestionPage {
                    total,
                    pending,
                    questions: questions
                        .into_iter()
                        .map(crate::questions::for_page)
                        .collect(),
                })
            }),
        }
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
pub(crate) fn page_context(state: &AppState) -> impl Fn() + Clone + Send + Sync + 'static {
    let source = backend(state);
    let base = flowdeck_app::scope::Base(state.base.to_string());
    let theme = flowdeck_app::theme::ServerDefault(state.theme);
    move || {
        provide_context(source.clone());
        provide_context(base.clone());
        provide_context(theme);
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
        alerts: state.config.alerts.clone(),
        logs: state.logs.clone(),
        metrics: state.metrics.clone(),
        pages: state.pages.clone(),
        branding: state.branding.clone(),
        pipelines: state.listed(),
        theme: state.theme.as_str(),
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
