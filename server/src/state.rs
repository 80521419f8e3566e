//! What every request handler can reach, and how it is built: one [`AppState`] per
//! pipeline the dashboard serves (its hub, metrics, run in the store), sharing the
//! dashboard's audit log, shutdown, registry and reporters.
//!
//! The types a state holds are defined in modules that never name the state: handlers
//! depend on it, it depends on nothing that handles requests.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use flowdeck_protocol::pipelines::slug;
use flowdeck_runtime::{logs::LogBuffer, metrics::MetricsStore, PipelineHandle};

use crate::{
    audit::Audit,
    auth::Auth,
    branding::Branding,
    config::Config,
    cors,
    hub::Hub,
    origin::{AllowedHosts, Guard},
    pages::Pages,
    persist,
    pipelines::{self, Entry, Pipelines},
    reporters::Reporters,
};

#[derive(Clone)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub hub: Hub,
    /// When set, control actions answer 403.
    pub readonly: bool,
    pub audit: Audit,
    /// Users, tokens and sessions; `None` when authentication is off.
    pub auth: Option<Arc<Auth>>,
    /// Set once the server is shutting down: live streams end so that it can.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Time series: the pipeline's, the process's and the user's (`metrics::counter!`...).
    pub metrics: MetricsStore,
    /// Recent log records captured from `tracing`.
    pub logs: LogBuffer,
    /// The theme for browsers that have not chosen one.
    pub theme: flowdeck_app::theme::Theme,
    /// Cross-origin access for configured origins; `None` sends no CORS headers.
    pub cors: Option<tower_http::cors::CorsLayer>,
    /// Those origins, which may also send state-changing requests (with a token).
    pub cors_origins: Arc<[String]>,
    /// Host names answered besides loopback names and IP addresses.
    pub allowed_hosts: Arc<AllowedHosts>,
    /// The user's pages, table sources and health checks.
    pub pages: Pages,
    /// Title, logo and custom stylesheet.
    pub branding: Arc<Branding>,
    /// The run store and the live run's id in it; `None` when runs are kept in memory only.
    pub store: Option<(flowdeck_store::Store, flowdeck_store::RunId)>,
    /// Becomes true once the live run's end is in the store: a server that stops after its
    /// pipeline finished waits for it, or the restarted dashboard would call the run
    /// interrupted.
    pub recorded: Option<tokio::sync::watch::Receiver<bool>>,
    /// Where this state's pages are: "" at the root, `/p/{slug}` under a pipeline's base.
    pub base: Arc<str>,
    /// Every pipeline the dashboard serves, for the list; empty when it serves one.
    pub pipelines: Pipelines,
    /// The other pipelines' states, each with its slug (the root's state only): the router
    /// puts each under its base.
    pub scopes: Arc<[(String, AppState)]>,
    /// The reporters' token; `None` takes no reports.
    pub ingest_token: Option<Arc<str>>,
    /// The pipelines that report to this dashboard, by slug.
    pub reporters: Reporters,
    /// What the state was made from: a reporting pipeline's state is made the same way.
    pub config: Arc<Config>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// What sign-in reads: the users, tokens and sessions, if it is on.
impl FromRef<AppState> for Option<Arc<Auth>> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for Arc<Branding> {
    fn from_ref(state: &AppState) -> Self {
        state.branding.clone()
    }
}

impl FromRef<AppState> for Guard {
    fn from_ref(state: &AppState) -> Self {
        Guard {
            hosts: state.allowed_hosts.clone(),
            cors_origins: state.cors_origins.clone(),
        }
    }
}

/// The state for a dashboard of `pipeline` with no custom pages
/// ([`crate::dashboard::Dashboard::state`] adds them).
pub fn state(config: &Config, pipeline: PipelineHandle) -> AppState {
    AppState::build(config, Pages::default(), pipeline, None)
}

/// Items a reporting pipeline's mirror keeps the detail of (as a local pipeline's tracker
/// retains by default).
pub const REPORTED_RETENTION: usize = 10_000;

impl AppState {
    /// The dashboard's state: the first pipeline's at the root, with its custom `pages`,
    /// and one for each of `config.pipelines` under its base; in standalone mode, a
    /// placeholder at the root and the store's runs those of the pipelines that report.
    pub(crate) fn build(
        config: &Config,
        pages: Pages,
        pipeline: PipelineHandle,
        store: Option<flowdeck_store::Store>,
    ) -> AppState {
        if let Some(store) = &store {
            config.alerts.keep_in(store.clone());
        }
        if config.standalone {
            // The placeholder is not recorded; the store's runs are the reporters'.
            let mut root = AppState::of_pipeline(config, pages, pipeline, None, true);
            root.store = store.clone().map(|s| (s, 0));
            root.pipelines = Pipelines::standalone(store);
            return root;
        }
        let mut root = AppState::of_pipeline(config, pages, pipeline.clone(), store.clone(), true);
        if config.pipelines.is_empty() {
            root.watch_alerts();
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
            scopes.push((slug.clone(), root.sibling(p.clone(), slug)));
        }
        let entries = scopes.iter().map(|(slug, s)| s.entry(slug)).collect();
        let registry = Pipelines::new(entries, store);
        for (slug, s) in &mut scopes {
            s.base = format!("/p/{slug}").into();
            s.pipelines = registry.clone();
        }
        root.pipelines = registry;
        for (_, s) in &scopes {
            s.watch_alerts();
        }
        root.scopes = scopes.into();
        root
    }

    /// Starts the alerts' watcher of this state's pipeline; its links go to this state's
    /// pages.
    pub(crate) fn watch_alerts(&self) {
        let origin = format!("http://{}{}", self.config.addr, self.base);
        crate::alerts::watch(
            &self.config.alerts,
            self.hub.pipeline().clone(),
            self.store.clone(),
            move |path| format!("{origin}{path}"),
        );
    }

    /// One pipeline's state. The `first` one's metrics are the dashboard's (the user's
    /// declared series, and the process's), and it keeps the store's metrics and logs; the
    /// others have metrics of their own, in memory.
    fn of_pipeline(
        config: &Config,
        pages: Pages,
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
                let (run, recorded) =
                    persist::record(&store, &pipeline, &metrics, &config.logs, first);
                (Some((store, run)), Some(recorded))
            }
            None => (None, None),
        };
        AppState {
            leptos: leptos_options(config.addr),
            hub: Hub::start(pipeline, config.refresh, config.stream_log),
            readonly: config.readonly,
            audit: Audit::new(store.as_ref().map(|(s, _)| s.clone())),
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
            pipelines: Pipelines::default(),
            scopes: Arc::new([]),
            ingest_token: config.ingest_token.as_deref().map(Arc::from),
            reporters: Reporters::default(),
            config: Arc::new(config.clone()),
        }
    }

    /// The state of another pipeline of this dashboard (one of its own beside the first,
    /// or one that reports to it), under `/p/{slug}`: made as the first's is, with metrics
    /// of its own, sharing one audit log, one shutdown that ends every live stream, the
    /// registry and the reporters.
    pub(crate) fn sibling(&self, pipeline: PipelineHandle, slug: &str) -> AppState {
        let store = self.store.as_ref().map(|(s, _)| s.clone());
        let mut s = AppState::of_pipeline(&self.config, Pages::default(), pipeline, store, false);
        s.audit = self.audit.clone();
        s.shutdown = self.shutdown.clone();
        s.base = format!("/p/{slug}").into();
        s.pipelines = self.pipelines.clone();
        s.reporters = self.reporters.clone();
        s
    }

    /// The pipelines the list shows: the registry, or this dashboard's one pipeline as a
    /// list of one.
    pub(crate) fn listed(&self) -> Pipelines {
        if self.pipelines.is_single() {
            Pipelines::new(
                vec![self.entry(&slug(self.hub.pipeline().name()))],
                self.store.as_ref().map(|(s, _)| s.clone()),
            )
        } else {
            self.pipelines.clone()
        }
    }

    /// This pipeline as the registry lists it, at `slug`.
    pub(crate) fn entry(&self, slug: &str) -> Entry {
        Entry::new(slug, &self.hub, self.store.as_ref().map(|(_, run)| *run))
    }
}

/// Leptos' options, set in code: the binary needs no Cargo.toml and no LEPTOS_* variables.
fn leptos_options(addr: SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("flowdeck")
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .env(leptos::config::Env::PROD)
        .build()
}

/// Fills `metrics` once a second with the pipeline's per-stage series and the process's
/// resources (which its snapshots carry too), then files the second into the store's
/// rings. One loop does both, so that each filed second holds exactly one sample:
/// with two timers of different phase some seconds would get two samples and others none,
/// and a counter's rate would read as a saw-tooth.
fn sample(metrics: MetricsStore, pipeline: PipelineHandle) -> MetricsStore {
    let store = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            store.record_snapshot(&pipeline.snapshot());
            let r = crate::resources::now();
            crate::resources::record(&store, &r);
            pipeline.set_resources(r);
            store.tick();
        }
    });
    metrics
}
