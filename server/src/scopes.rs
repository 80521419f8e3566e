//! The routes of a dashboard of several pipelines: each pipeline's pages, API and stream
//! under its own base (`/p/{slug}`), and `/` sending a browser to the list.
//!
//! Each pipeline has a state of its own ([`AppState`]: its hub, its metrics, its run in the
//! store), so every page, API endpoint and stream under its base is today's, reading its
//! own state. The first pipeline also answers at the root, as a dashboard of one does; only
//! `/` differs, which sends a browser to the list.

use std::collections::HashMap;

use axum::{
    body::Body,
    extract::{OriginalUri, Request, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use flowdeck_protocol::stream::EVENTS_PATH;
use tower::ServiceExt;

use crate::{api, error::ApiError, pipelines::unscoped, state::AppState};

/// Everything under one pipeline's base (`/p/{slug}`, nested there): its pages, API,
/// stream and server functions, each on its own state.
pub(crate) fn scope(state: AppState) -> Router {
    Router::new()
        .route(EVENTS_PATH, get(crate::events::events))
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
    leptos_axum::handle_server_fns_with_context(crate::backend::page_context(&state), req)
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
    crate::backend::fallback(State(state), headers, req).await
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
    let Some(router) = state.pipelines.reported(&slug) else {
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
