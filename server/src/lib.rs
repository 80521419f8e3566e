//! The flowdeck server: the dashboard's routes, the SSE stream, the embedded site, and the
//! demo pipeline. [`router`] builds the whole app without a socket, so tests can drive it;
//! [`serve`] binds and runs it.
//!
//! What it is made of, from the bottom up: the pipeline's live picture ([`hub`]), the
//! stored runs read back (`history`), the user's pages (`pages`), sign-in ([`auth`]),
//! the registry of several pipelines ([`pipelines`]) and of those reporting from other
//! processes (`reporters`); then the state each request reaches (`state`), and what
//! answers requests: the JSON API ([`api`]), the stream (`events`), the pages rendered
//! through `backend`, Prometheus, ingest, each pipeline's routes (`scopes`), and the
//! guards (`origin`, [`auth`]) and hardening this file puts around them.

pub mod alerts;
pub mod api;
mod assets;
mod audit;
pub mod auth;
mod backend;
pub mod branding;
mod bulk;
mod compress;
mod config;
pub mod console;
mod cors;
mod csp;
mod custom;
pub mod dashboard;
pub mod demo;
mod error;
mod events;
mod history;
pub mod hub;
pub mod ingest;
pub mod origin;
mod pages;
mod persist;
pub mod pipelines;
pub mod prometheus;
mod questions;
mod reporters;
mod resources;
mod scopes;
mod serving;
pub mod settings;
mod state;
mod view;
pub mod windows;

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{FromRef, Request},
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use flowdeck_app::{shell, App};
use flowdeck_protocol::stream::EVENTS_PATH;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use tower_http::{limit::RequestBodyLimitLayer, set_header::SetResponseHeaderLayer};

pub use audit::{Audit, AuditEntry};
pub use config::{Config, LOG_RECORDS};
pub use cors::layer as cors_layer;
pub use error::ApiError;
pub use hub::Hub;
pub use serving::{serve, DashboardError, Serving};
pub use state::{state, AppState, REPORTED_RETENTION};

/// The app's routes, generated once per process. Leptos generates them by running the app
/// with a process-wide flag set, and a resource first polled while it is set stays pending
/// for good (leptos-rs/leptos#4773): a second dashboard built in this process while the
/// first renders a page would leave that page hanging until the deadline
/// (`server/tests/many_servers.rs`).
fn routes() -> Vec<AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The whole app as a router: pages, server functions, the SSE stream and static files.
pub fn router(state: AppState) -> Router {
    let routes = routes();
    let ctx = backend::page_context(&state);
    let app = Router::new()
        .route(EVENTS_PATH, get(events::events))
        .route("/prometheus", get(prometheus::handler))
        .route("/custom.css", get(branding::css))
        .route("/logo", get(branding::logo))
        // Server functions have their own routes (leptos_routes_with_context adds them);
        // anything else under /api/ is no endpoint.
        .route(
            "/api/{*rest}",
            axum::routing::any(|| async { ApiError::NotFound("no such API endpoint".into()) }),
        )
        .merge(api::router())
        .merge(auth::router())
        .leptos_routes_with_context(&state, routes, ctx, || shell(assets::assets().clone()))
        // Pipelines that report to this dashboard (those of this process are nested below).
        // (A catch-all matches no empty rest: the overview's `/p/{slug}/` needs its own.)
        .route("/p/{slug}", axum::routing::any(scopes::dispatch))
        .route("/p/{slug}/", axum::routing::any(scopes::dispatch))
        .route("/p/{slug}/{*rest}", axum::routing::any(scopes::dispatch))
        .fallback(backend::fallback);
    // Several pipelines: each under its base, and `/` sends a browser to their list.
    let app = state.scopes.iter().fold(app, |app, (slug, s)| {
        app.nest_service(&format!("/p/{slug}"), scopes::scope(s.clone()))
    });
    let app = if state.pipelines.many() {
        app.layer(axum::middleware::from_fn(scopes::home))
    } else {
        app
    };
    let app = app.layer(axum::middleware::from_fn_with_state(
        state.auth.clone(),
        auth::layer,
    ));
    let cors = state.cors.clone();
    let guard =
        axum::middleware::from_fn_with_state(origin::Guard::from_ref(&state), origin::layer);
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
        error::json_errors(server_fns.clone(), req, next)
    }));
    // Outermost: pages, JSON and CSS go out compressed when the client accepts it. The
    // site's big files are precompressed (and so passed through); the live stream
    // compresses itself, flushing every frame (crate::compress), and is passed through.
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

/// Whether this binary carries the site (always, unless the crate's `site/` was deleted).
pub fn site_embedded() -> bool {
    assets::present()
}

/// The digest of the sources the embedded site was built from, as
/// `scripts/site-digest.sh` computes it.
pub fn site_sources_digest() -> Option<String> {
    assets::sources_digest()
}
