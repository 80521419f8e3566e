//! The live store: the one place pages read pipeline state from.
//!
//! On the server it holds the picture the page is rendered with (loaded through the
//! [`initial_view`] server function, so the browser hydrates from the same data). In the
//! browser, one EventSource per tab keeps a [`LiveState`] current by applying the stream's
//! frames in order; pages never open their own connections (browsers allow six HTTP/1.1
//! connections per origin).
//!
//! The state itself is not a signal: a 100,000-item state is updated in place, and a
//! version counter tells the pages to read it again. Pausing the view stops the counter,
//! not the stream, so nothing is missed while the page holds still.

use std::sync::Arc;

use flowdeck_protocol::{
    logs::{LogFilter, LogPage},
    metrics::{SeriesData, SeriesInfo, SeriesQuery},
    page::{CheckResult, PageSpec, Site, TableData},
    runs::{RunInfo, RunTaskPage, RunTaskQuery, RunView, StoreStatus, Timeline},
    stream::{Full, LiveState},
    AuditEntry, ItemId, TaskDetail,
};
use leptos::prelude::*;

/// What the server gives the app to render from: provided as context for every request.
pub trait Backend: Send + Sync + 'static {
    /// The current picture, with only the newest `items` items.
    fn view(&self, items: usize) -> Full;
    /// One item's detail and provenance: while the pipeline retains it, or as the run
    /// store kept it when it finished (`TaskDetail::from_store`).
    fn task(&self, id: ItemId) -> BoxFuture<Result<Option<TaskDetail>, String>>;
    /// Who sent the request being served: whether they may control, and the CSRF token
    /// their control requests repeat.
    fn viewer(&self) -> Viewer;
    /// The control actions taken, oldest first.
    fn audit(&self) -> Vec<AuditEntry>;
    /// The theme for browsers that have not chosen one.
    fn theme(&self) -> crate::theme::Theme;
    /// Captured log records; the error names a bad level or glob.
    fn logs(&self, filter: &LogFilter) -> Result<LogPage, String>;
    /// The title, logo and custom pages for the header.
    fn site(&self) -> Site;
    /// A custom page's spec.
    fn page(&self, slug: &str) -> Option<PageSpec>;
    /// The metric series there are.
    fn metrics(&self) -> Vec<SeriesInfo>;
    /// Series over a time range; the error names a bad range or an unknown series.
    fn series(&self, query: &SeriesQuery) -> Result<Vec<SeriesData>, String>;
    /// A table source's rows (a user's source may take a while, so this is async).
    fn table(&self, source: String) -> BoxFuture<Result<TableData, String>>;
    /// The named health checks' outcomes, run now.
    fn checks(&self, names: Vec<String>) -> BoxFuture<Vec<CheckResult>>;
    /// The runs the run store keeps, newest first, and how the store is doing; `Err` says
    /// why there are none (no store).
    fn runs(&self) -> BoxFuture<Result<(Vec<RunInfo>, StoreStatus), String>>;
    /// A stored run as its pages show it, at its end or, with `at`, as it was at that ms
    /// of its uptime (replay); `Ok(None)` for an unknown run.
    fn run_view(&self, id: i64, at: Option<u64>) -> BoxFuture<Result<Option<RunView>, String>>;
    /// A stored run's timeline for replay; `Ok(None)` for an unknown run.
    fn run_timeline(&self, id: i64) -> BoxFuture<Result<Option<Timeline>, String>>;
    /// The pipelines the dashboard serves, as its list shows them.
    fn pipelines(
        &self,
        query: flowdeck_protocol::pipelines::PipelineQuery,
    ) -> BoxFuture<Result<Vec<flowdeck_protocol::pipelines::PipelineRow>, String>>;
    /// A page of a stored run's items with its filter's counts.
    fn run_tasks(&self, id: i64, query: RunTaskQuery) -> BoxFuture<Result<RunTaskPage, String>>;
    /// One stored item with its provenance; `Ok(None)` when the store has not kept it.
    fn run_task(&self, id: i64, item: ItemId) -> BoxFuture<Result<Option<TaskDetail>, String>>;
    /// The metric series kept over a stored run; `Ok(None)` for an unknown run.
    fn run_metrics(&self, id: i64) -> BoxFuture<Result<Option<Vec<SeriesInfo>>, String>>;
    /// Series over a stored run, a point a minute at most, from the store's rollups.
    fn run_series(&self, id: i64, query: SeriesQuery)
        -> BoxFuture<Result<Vec<SeriesData>, String>>;
    /// How the run store is doing (degraded on a full disk, items shed under load); `None`
    /// without a store.
    fn store_status(&self) -> Option<StoreStatus>;
    /// The worker processes of distributed stages, as their heartbeats show them.
    fn processes(&self) -> Vec<flowdeck_protocol::ProcessSnapshot>;
}

/// A future the backend returns for work that may wait (a user's check or source).
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Who is looking at the dashboard, as the server sees the request.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Viewer {
    /// The signed-in user or token; `None` when authentication is off.
    pub name: Option<String>,
    /// "admin" or "viewer".
    pub role: String,
    /// False on a readonly dashboard and for viewers: the buttons are hidden.
    pub can_control: bool,
    /// The session's CSRF token, which control requests send in `X-CSRF-Token`.
    pub csrf: Option<String>,
}

/// The server's [`Backend`], as context.
#[derive(Clone)]
pub struct BackendRef(pub Arc<dyn Backend>);

/// How many items a server-rendered page carries (the stream brings the rest).
pub const FIRST_PAINT_ITEMS: usize = 200;

/// The state of the tab's stream connection, shown in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Rendered by the server; the browser has not connected yet.
    Static,
    Live,
    /// The stream dropped; the browser is reconnecting on its own.
    Reconnecting,
}

/// The live store, provided as context by [`provide`].
#[derive(Clone, Copy)]
pub struct Live {
    initial: Resource<Result<Full, ServerFnError>>,
    viewer: Resource<Result<Viewer, ServerFnError>>,
    state: StoredValue<Option<LiveState>>,
    /// Bumped whenever pages should read the state again.
    version: RwSignal<u64>,
    pub connection: RwSignal<Connection>,
    /// While set, the page holds still; frames are still applied underneath.
    pub frozen: RwSignal<bool>,
    /// Frames received since the page loaded.
    pub received: RwSignal<u64>,
    /// A render is scheduled for the next animation frame.
    render_pending: StoredValue<bool>,
}

impl Live {
    /// Runs `f` on the state the page shows: the streamed one once it arrives, the server's
    /// until then. Reactive: call it inside a closure in the view, under a `<Suspense>`.
    pub fn with<R>(&self, f: impl FnOnce(&LiveState) -> R) -> Option<R> {
        self.version.track();
        if self.state.with_value(Option::is_some) {
            return self.state.with_value(|s| s.as_ref().map(f));
        }
        let full = self.initial.get()?.ok()?;
        Some(f(&LiveState::from_full(full)))
    }

    /// Who is looking. Until the server has said, nobody who may control.
    pub fn viewer(&self) -> Viewer {
        self.viewer.get().and_then(Result::ok).unwrap_or_default()
    }

    /// Whether control buttons are hidden.
    pub fn readonly(&self) -> bool {
        !self.viewer().can_control
    }

    /// Flips the frozen state; on thaw, shows what arrived meanwhile.
    pub fn toggle_frozen(&self) {
        let frozen = !self.frozen.get_untracked();
        self.frozen.set(frozen);
        if !frozen {
            self.version.update(|v| *v += 1);
        }
    }

    /// Applies one stream message. An error means the state cannot go on from it: the
    /// caller reconnects for a fresh full frame.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn accept(&self, event: &str, data: &str) -> Result<(), String> {
        use flowdeck_protocol::stream::{Delta, DELTA_EVENT, FULL_EVENT};
        match event {
            FULL_EVENT => {
                let full: Full = serde_json::from_str(data).map_err(|e| e.to_string())?;
                self.state.set_value(Some(LiveState::from_full(full)));
            }
            DELTA_EVENT => {
                let delta: Delta = serde_json::from_str(data).map_err(|e| e.to_string())?;
                #[cfg(feature = "hydrate")]
                crate::probe::record(delta.snapshot.started_unix_ms, delta.oldest_change_us);
                let applied = self.state.try_update_value(|s| match s {
                    Some(state) => state.apply_delta(delta).map_err(|gap| gap.to_string()),
                    None => Err("a delta before the first full frame".to_owned()),
                });
                applied.unwrap_or_else(|| Err("the page is gone".to_owned()))?;
            }
            other => return Err(format!("unknown stream event {other:?}")),
        }
        self.received.update(|n| *n += 1);
        if self.connection.get_untracked() != Connection::Live {
            self.connection.set(Connection::Live);
        }
        self.schedule_render();
        Ok(())
    }

    /// Asks the pages to read the state again at the next animation frame, once however
    /// many frames arrive before it: applying a frame and drawing it are separate browser
    /// tasks, and the page never draws more often than the screen refreshes.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn schedule_render(&self) {
        if self.render_pending.get_value() {
            return;
        }
        self.render_pending.set_value(true);
        let live = *self;
        request_animation_frame(move || {
            live.render_pending.set_value(false);
            if !live.frozen.get_untracked() {
                live.version.update(|v| *v += 1);
            }
        });
    }
}

/// The current picture for the first render of a page.
#[server(endpoint = "view", input = leptos::server_fn::codec::GetUrl)]
pub async fn initial_view() -> Result<Full, ServerFnError> {
    let backend = backend()?;
    Ok(backend.0.view(FIRST_PAINT_ITEMS))
}

/// Who is looking, and what they may do.
#[server(endpoint = "viewer", input = leptos::server_fn::codec::GetUrl)]
pub async fn whoami() -> Result<Viewer, ServerFnError> {
    let backend = backend()?;
    Ok(backend.0.viewer())
}

/// The audit log of control actions, newest first.
#[server(endpoint = "audit", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_audit() -> Result<Vec<AuditEntry>, ServerFnError> {
    let backend = backend()?;
    let mut entries = backend.0.audit();
    entries.reverse();
    Ok(entries)
}

/// Captured log records matching a filter. A bad filter (level, glob) is the inner error:
/// the user's mistake, answered with a 200 and shown on the page, not a server failure.
#[server(endpoint = "logs", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_logs(filter: LogFilter) -> Result<Result<LogPage, String>, ServerFnError> {
    let backend = backend()?;
    Ok(backend.0.logs(&filter))
}

/// The backend, or the error a server function answers without one.
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
fn backend() -> Result<BackendRef, ServerFnError> {
    use_context::<BackendRef>()
        .ok_or_else(|| ServerFnError::new("no pipeline is attached to this server"))
}

/// The worker processes of distributed stages, for the workers page. Asked for by that
/// page rather than carried in every frame's snapshot to the browser: only it shows them,
/// and their decoding stays out of the first load's wasm.
#[server(endpoint = "processes", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_processes() -> Result<Vec<flowdeck_protocol::ProcessSnapshot>, ServerFnError> {
    Ok(backend()?.0.processes())
}

/// The header's title, logo and custom pages.
#[server(endpoint = "site", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_site() -> Result<Site, ServerFnError> {
    Ok(backend()?.0.site())
}

/// A custom page's spec; `None` for an unknown slug (the page says so).
#[server(endpoint = "page", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_page(slug: String) -> Result<Option<PageSpec>, ServerFnError> {
    Ok(backend()?.0.page(&slug))
}

/// The metric series there are, for the Metrics page: live ones, or those kept over a
/// stored `run`.
#[server(endpoint = "metric_list", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_metric_list(run: Option<i64>) -> Result<Vec<SeriesInfo>, ServerFnError> {
    let backend = backend()?;
    match run {
        None => Ok(backend.0.metrics()),
        Some(id) => match backend.0.run_metrics(id).await {
            Ok(Some(list)) => Ok(list),
            Ok(None) => Err(ServerFnError::new(format!("The store has no run {id}."))),
            Err(e) => Err(ServerFnError::new(e)),
        },
    }
}

/// Series over a time range: live, or over a stored `run` from its minute rollups.
#[server(endpoint = "series", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_series(
    query: SeriesQuery,
    run: Option<i64>,
) -> Result<Result<Vec<SeriesData>, String>, ServerFnError> {
    let backend = backend()?;
    Ok(match run {
        None => backend.0.series(&query),
        Some(id) => backend.0.run_series(id, query).await,
    })
}

/// A table source's rows, or what went wrong with the source.
#[server(endpoint = "table", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_table(source: String) -> Result<Result<TableData, String>, ServerFnError> {
    let backend = backend()?;
    Ok(backend.0.table(source).await)
}

/// The named health checks, run now.
#[server(endpoint = "checks", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_checks(names: Vec<String>) -> Result<Vec<CheckResult>, ServerFnError> {
    let backend = backend()?;
    Ok(backend.0.checks(names).await)
}

/// One item's detail and provenance.
#[server(endpoint = "task", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_task(id: ItemId) -> Result<Option<TaskDetail>, ServerFnError> {
    let backend = backend()?;
    backend.0.task(id).await.map_err(ServerFnError::new)
}

/// The run store's runs and its state.
#[server(endpoint = "runs", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_runs() -> Result<Result<(Vec<RunInfo>, StoreStatus), String>, ServerFnError> {
    Ok(backend()?.0.runs().await)
}

/// How the run store is doing, for the top bar's badge.
#[server(endpoint = "store_status", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_store_status() -> Result<Option<StoreStatus>, ServerFnError> {
    Ok(backend()?.0.store_status())
}

/// A stored run as its pages show it.
#[server(endpoint = "run_view", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_run_view(
    id: i64,
    at: Option<u64>,
) -> Result<Result<Option<RunView>, String>, ServerFnError> {
    Ok(backend()?.0.run_view(id, at).await)
}

/// The pipelines' list.
#[server(endpoint = "pipelines", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_pipelines(
    query: flowdeck_protocol::pipelines::PipelineQuery,
) -> Result<Result<Vec<flowdeck_protocol::pipelines::PipelineRow>, String>, ServerFnError> {
    Ok(backend()?.0.pipelines(query).await)
}

#[server(endpoint = "run_timeline", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_run_timeline(
    id: i64,
) -> Result<Result<Option<Timeline>, String>, ServerFnError> {
    Ok(backend()?.0.run_timeline(id).await)
}

/// A page of a stored run's items.
#[server(endpoint = "run_tasks", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_run_tasks(
    id: i64,
    query: RunTaskQuery,
) -> Result<Result<RunTaskPage, String>, ServerFnError> {
    Ok(backend()?.0.run_tasks(id, query).await)
}

/// One stored item of a run.
#[server(endpoint = "run_task", input = leptos::server_fn::codec::GetUrl)]
pub async fn fetch_run_task(
    id: i64,
    item: ItemId,
) -> Result<Result<Option<TaskDetail>, String>, ServerFnError> {
    Ok(backend()?.0.run_task(id, item).await)
}

/// Creates the store and, in the browser, opens the tab's stream.
pub fn provide() {
    let live = Live {
        initial: Resource::new(|| (), |_| initial_view()),
        viewer: Resource::new(|| (), |_| whoami()),
        state: StoredValue::new(None),
        version: RwSignal::new(0),
        connection: RwSignal::new(Connection::Static),
        frozen: RwSignal::new(false),
        received: RwSignal::new(0),
        render_pending: StoredValue::new(false),
    };
    provide_context(live);
    // Effects run only in the browser: the server never connects.
    Effect::new(move |started: Option<()>| {
        if started.is_none() {
            untrack(|| stream::connect_once_hydrated(live));
        }
    });
}

/// Tells the store that the whole page is hydrated, lazily loaded page included: the
/// stream may change the state from now on. Called by the wasm entry point.
pub fn hydrated() {
    #[cfg(feature = "hydrate")]
    stream::hydrated();
}

/// The store provided by [`provide`].
pub fn use_live() -> Live {
    expect_context::<Live>()
}

/// The SSE path the server streams on.
pub const EVENTS_PATH: &str = "/api/events";

#[cfg(feature = "hydrate")]
mod stream {
    //! The browser side of the stream, on the browser's own EventSource: one listener per
    //! event name, called in the order the frames arrive (two separate async streams
    //! could interleave a full frame and the delta after it).

    use std::cell::RefCell;

    use flowdeck_protocol::stream::{DELTA_EVENT, FULL_EVENT};
    use leptos::prelude::*;
    use wasm_bindgen::{closure::Closure, JsCast};
    use web_sys::{EventSource, MessageEvent};

    use super::{Connection, Live, EVENTS_PATH};

    /// The open connection and the callbacks it holds (dropping them would detach them).
    struct Open {
        source: EventSource,
        _on_frame: Vec<Closure<dyn FnMut(MessageEvent)>>,
        _on_error: Closure<dyn FnMut(web_sys::Event)>,
    }

    thread_local! {
        static OPEN: RefCell<Option<Open>> = const { RefCell::new(None) };
    }

    thread_local! {
        /// Whether hydration is over, and the store waiting for it to be.
        static HYDRATION: RefCell<(bool, Option<Live>)> = const { RefCell::new((false, None)) };
    }

    /// Opens the stream, but not before the page is hydrated. A lazily loaded page
    /// hydrates after its module arrives, while the shell already runs: a frame applied in
    /// between would make that page render other rows than the server did, and hydration
    /// would fail on the difference.
    pub(super) fn connect_once_hydrated(live: Live) {
        let ready = HYDRATION.with_borrow_mut(|(done, waiting)| {
            if !*done {
                *waiting = Some(live);
            }
            *done
        });
        if ready {
            connect(live);
        }
    }

    pub(super) fn hydrated() {
        // For scripts and browser tests: clicks before this are lost.
        if let Some(root) = document().document_element() {
            _ = root.set_attribute("data-hydrated", "");
        }
        if let Some(live) = HYDRATION.with_borrow_mut(|(done, waiting)| {
            *done = true;
            waiting.take()
        }) {
            connect(live);
        }
    }

    /// Opens the tab's stream and closes it when the app goes away.
    fn connect(live: Live) {
        crate::probe::install();
        open(live);
        on_cleanup(close);
    }

    fn open(live: Live) {
        close();
        let source = match EventSource::new(&crate::scope::href(EVENTS_PATH)) {
            Ok(source) => source,
            Err(err) => {
                leptos::logging::warn!("flowdeck: cannot open the event stream: {err:?}");
                live.connection.set(Connection::Reconnecting);
                return;
            }
        };
        let mut on_frame = Vec::new();
        for name in [FULL_EVENT, DELTA_EVENT] {
            let callback = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                let data = e.data().as_string().unwrap_or_default();
                if let Err(problem) = live.accept(name, &data) {
                    // Out of step: start over with a new connection, which gets a full frame.
                    leptos::logging::warn!("flowdeck: resyncing the stream: {problem}");
                    live.connection.set(Connection::Reconnecting);
                    // Not from inside this callback: reopening drops the callback itself.
                    leptos::task::spawn_local(async move { open(live) });
                }
            });
            if source
                .add_event_listener_with_callback(name, callback.as_ref().unchecked_ref())
                .is_err()
            {
                live.connection.set(Connection::Reconnecting);
            }
            on_frame.push(callback);
        }
        // The browser reconnects by itself (sending Last-Event-ID); say so until it has.
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            live.connection.set(Connection::Reconnecting);
        });
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        OPEN.with(|open| {
            *open.borrow_mut() = Some(Open {
                source,
                _on_frame: on_frame,
                _on_error: on_error,
            })
        });
    }

    fn close() {
        if let Some(open) = OPEN.with(|open| open.borrow_mut().take()) {
            open.source.close();
        }
    }
}

#[cfg(not(feature = "hydrate"))]
mod stream {
    pub(super) fn connect_once_hydrated(_live: super::Live) {}
}

/// The header's indicator of the stream's state.
#[component]
pub fn ConnectionBadge() -> impl IntoView {
    let live = use_live();
    let label = move || match live.connection.get() {
        Connection::Static => "connecting",
        Connection::Live => "live",
        Connection::Reconnecting => "reconnecting",
    };
    view! {
        <span class="badge" data-state=label role="status" aria-live="polite">
            {label}
        </span>
    }
}

/// A warning in the top bar while the run store is degraded (writes failing, such as on a
/// full disk: the pipeline runs on, history is not kept) or shedding finished items under
/// load; nothing while it keeps up. Rendered by the server with the page, then asked again
/// every 10 s, since neither state comes down the stream.
#[component]
pub fn StoreBadge() -> impl IntoView {
    let tick = crate::widgets::poll::ticker(std::time::Duration::from_secs(10));
    let status = Resource::new(move || tick.get(), |_| fetch_store_status());
    view! {
        <Transition fallback=|| ()>
            {move || status.get().and_then(Result::ok).flatten().and_then(|s| {
                if s.degraded {
                    let why = s.problem.unwrap_or_default();
                    Some(view! {
                        <a class="badge" data-state="degraded" href=crate::scope::href("/runs") data-testid="store-degraded" title=why>
                            "store degraded"
                        </a>
                    }.into_any())
                } else if s.items_shed > 0 {
                    let n = s.items_shed;
                    Some(view! {
                        <a class="badge" data-state="shedding" href=crate::scope::href("/runs") data-testid="store-shedding"
                            title=format!("{n} finished items were counted but not kept: the store's writer was behind")>
                            {format!("store: {} shed", crate::format::count(n))}
                        </a>
                    }.into_any())
                } else {
                    None
                }
            })}
        </Transition>
    }
}

/// The signed-in user and a logout button; nothing when sign-in is off. The logout form
/// posts the session's CSRF token, so it works before (and without) the wasm.
#[component]
pub fn Account() -> impl IntoView {
    let live = use_live();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let v = live.viewer.get().and_then(Result::ok)?;
                let name = v.name?;
                Some(view! {
                    <span class="account" data-testid="account">
                        <span>{name}</span>
                        <span class="muted">{format!(" · {}", v.role)}</span>
                        <form method="post" action="/logout">
                            <input type="hidden" name="csrf" value=v.csrf.unwrap_or_default()/>
                            <button class="btn link" type="submit">"Log out"</button>
                        </form>
                    </span>
                })
            }}
        </Suspense>
    }
}
