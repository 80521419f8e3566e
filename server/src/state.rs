//! What every request handler can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use flowdeck_runtime::{logs::LogBuffer, metrics::MetricsStore};

use crate::{api::Audit, auth::Auth, hub::Hub};

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
    pub allowed_hosts: Arc<crate::origin::AllowedHosts>,
    /// The user's pages, table sources and health checks.
    pub pages: crate::dashboard::Pages,
    /// Title, logo and custom stylesheet.
    pub branding: Arc<crate::branding::Branding>,
    /// The run store and the live run's id in it; `None` when runs are kept in memory only.
    pub store: Option<(flowdeck_store::Store, flowdeck_store::RunId)>,
    /// Becomes true once the live run's end is in the store: a server that stops after its
    /// pipeline finished waits for it, or the restarted dashboard would call the run
    /// interrupted.
    pub recorded: Option<tokio::sync::watch::Receiver<bool>>,
    /// Where this state's pages are: "" at the root, `/p/{slug}` under a pipeline's base.
    pub base: Arc<str>,
    /// Every pipeline the dashboard serves, for the list; empty when it serves one.
    pub pipelines: crate::pipelines::Pipelines,
    /// The other pipelines' states, each with its slug (the root's state only): the router
    /// puts each under its base.
    pub scopes: Arc<[(String, AppState)]>,
    /// The reporters' token; `None` takes no reports.
    pub ingest_token: Option<Arc<str>>,
    /// The pipelines that report to this dashboard, by slug.
    pub reporters: crate::ingest::Reporters,
    /// What the state was made from: a reporting pipeline's state is made the same way.
    pub config: Arc<crate::Config>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}
