//! Who may look and who may act. Off unless the config lists users or tokens; then every
//! route but the login page, the health checks and the static files needs a session cookie
//! (from the login page) or an API token (`Authorization: Bearer ...`).
//!
//! Roles: an admin may use the control actions, a viewer may only watch. Requests that
//! change state and ride on a session cookie must repeat the session's CSRF token in the
//! `X-CSRF-Token` header (the page's buttons do); tokens are not sent by browsers on their
//! own, so requests with one need no CSRF token.

mod config;
mod login;
mod proxy;
pub(crate) mod secret;
mod sessions;

use std::collections::HashMap;

use axum::{
    extract::{Request, State},
    http::{header, Method},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};

pub use config::{AuthConfig, ConfigError, TokenConfig, UserConfig};
pub use secret::{hash_password, new_token, token_digest};
use sessions::Sessions;

use crate::pipelines::unscoped;

use crate::error::ApiError;

/// What sign-in reads from the dashboard's state: its users, tokens and sessions, or
/// `None` when sign-in is off.
pub type SignIn = Option<std::sync::Arc<Auth>>;

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

/// Who sent a request, as the auth layer found it. Every request past the layer carries
/// one in its extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user or token name; `None` when authentication is off.
    pub name: Option<String>,
    pub role: Role,
    /// The session's CSRF token, for requests that came with a session cookie.
    pub csrf: Option<String>,
}

impl Principal {
    /// Everyone, when authentication is off: the readonly setting alone decides.
    pub fn open() -> Self {
        Principal {
            name: None,
            role: Role::Admin,
            csrf: None,
        }
    }

    /// Stands in where no principal was found: may watch, may not act.
    pub fn nobody() -> Self {
        Principal {
            name: None,
            role: Role::Viewer,
            csrf: None,
        }
    }

    /// The name the audit log records.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("anonymous")
    }
}

/// The name of the session cookie.
pub const COOKIE: &str = "flowdeck_session";
/// The header a cookie-authenticated state-changing request repeats its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The users, tokens and live sessions of a server with authentication on.
pub struct Auth {
    users: HashMap<String, UserConfig>,
    /// Token digest (hex SHA-256) to its name and role.
    tokens: HashMap<String, TokenConfig>,
    sessions: Sessions,
    limiter: login::Limiter,
    proxies: proxy::TrustedProxies,
    secure_cookie: bool,
    /// A hash of nothing anyone knows, checked when the user name is unknown so that the
    /// answer takes as long as for a real user.
    dummy: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field(
                "tokens",
                &self.tokens.values().map(|t| &t.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Checks the config (hash formats, duplicate names) and sets up an empty session store.
    pub fn new(config: AuthConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Auth {
            users: config
                .users
                .into_iter()
                .map(|u| (u.name.clone(), u))
                .collect(),
            tokens: config
                .tokens
                .into_iter()
                .map(|t| (t.sha256.to_ascii_lowercase(), t))
                .collect(),
            sessions: Sessions::new(std::time::Duration::from_secs(config.session_minutes * 60)),
            limiter: login::Limiter::new(config.login_attempts_per_minute),
            proxies: proxy::TrustedProxies::new(&config.trusted_proxies)
                .map_err(ConfigError::Proxies)?,
            secure_cookie: config.secure_cookie,
            dummy: hash_password(&secret::random_hex()).map_err(ConfigError::Hashing)?,
        })
    }

    /// The principal behind a request's credentials: `Ok(None)` when it carries none,
    /// `Err` when it carries a token that is not valid (a script should hear about that
    /// rather than be sent to a login page).
    fn identify(&self, req: &Request) -> Result<Option<Principal>, ApiError> {
        if let Some(value) = req.headers().get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    ApiError::Unauthorized(
                        "the Authorization header must be: Bearer <token>".into(),
                    )
                })?;
            let t = self
                .tokens
                .get(&token_digest(token.trim()))
                .ok_or_else(|| ApiError::Unauthorized("unknown API token".into()))?;
            return Ok(Some(Principal {
                name: Some(t.name.clone()),
                role: t.role,
                csrf: None,
            }));
        }
        Ok(cookie(req, COOKIE).and_then(|id| self.sessions.get(id)))
    }
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Paths anyone may fetch: the login page, health checks for orchestrators, and the
/// site's static files (code and styles, no data).
fn public(path: &str) -> bool {
    matches!(
        path,
        "/login" | "/healthz" | "/readyz" | "/favicon.svg" | "/favicon.ico"
    ) || path.starts_with("/pkg/")
}

/// The auth layer: finds the principal, refuses what it may not do, and hands it on.
pub async fn layer(State(sign_in): State<SignIn>, mut req: Request, next: Next) -> Response {
    let Some(auth) = sign_in.as_deref() else {
        req.extensions_mut().insert(Principal::open());
        return next.run(req).await;
    };
    let path = req.uri().path();
    if public(unscoped(path)) {
        return next.run(req).await;
    }
    let principal =
        match auth.identify(&req) {
            Ok(Some(p)) => p,
            Ok(None) if unscoped(path).starts_with("/api/") => return ApiError::Unauthorized(
                "sign in first: send a session cookie from /login or Authorization: Bearer <token>"
                    .into(),
            )
            .into_response(),
            Ok(None) => {
                let next_path = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                let query = serde_urlencoded::to_string([("next", next_path)]).unwrap_or_default();
                return Redirect::to(&format!("/login?{query}")).into_response();
            }
            Err(e) => return e.into_response(),
        };
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // The logout form carries its token in the body; its handler checks it.
    if changes_state && path != "/logout" {
        if let Some(expected) = &principal.csrf {
            let sent = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !secret::same(sent, expected) {
                return ApiError::Forbidden(format!(
                    "missing or wrong {CSRF_HEADER} header: requests that change state must repeat the session's CSRF token"
                ))
                .into_response();
            }
        }
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// `/login` and `/logout`, on any state that gives sign-in its part.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    SignIn: axum::extract::FromRef<S>,
{
    Router::new()
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
}

/// Where a signed-in user lands: `next` when it is a clean path on this site, else `/`.
/// Browsers drop tabs and newlines from a `Location` and read a backslash as `/`, so
/// `/\t/evil.example` would become `//evil.example`, another site: a path with a control
/// character, whitespace or a backslash anywhere is refused, as is `//` at its start.
fn landing(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == '\\') =>
        {
            p
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::landing;

    #[test]
    fn only_clean_same_site_paths_are_landed_on() {
        for ok in [
            "/",
            "/tasks?status=failed",
            "/tasks/42#timeline",
            "/pages/model",
        ] {
            assert_eq!(landing(Some(ok)), ok);
        }
        for off_site in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/x\\..\\evil",
            "https://evil.example",
            "evil.example",
            "",
        ] {
            assert_eq!(landing(Some(off_site)), "/", "{off_site:?}");
        }
        assert_eq!(landing(None), "/");
    }
}
