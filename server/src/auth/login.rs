//! The login page, the login form's handler with its rate limit, and logout.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::NonZeroU32,
};

use axum::{
    extract::{rejection::FormRejection, ConnectInfo, Query, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    Form,
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

use super::{cookie, landing, secret, Auth, SignIn, COOKIE};

/// Login attempts per client address. Keyed by address, not by user name, so that a
/// stranger cannot lock an admin out by failing on purpose.
pub struct Limiter {
    per_minute: u32,
    inner: DefaultKeyedRateLimiter<IpAddr>,
}

impl Limiter {
    pub fn new(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        Limiter {
            per_minute: n.get(),
            inner: RateLimiter::keyed(Quota::per_minute(n)),
        }
    }

    /// Whether `ip` may try now; otherwise how many seconds to wait.
    fn check(&self, ip: IpAddr) -> Result<(), u64> {
        if self.inner.len() > 10_000 {
            self.inner.retain_recent();
        }
        self.inner
            .check_key(&ip)
            .map_err(|_| 60u64.div_ceil(u64::from(self.per_minute)))
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /login`
pub async fn page(Query(q): Query<NextQuery>) -> Response {
    form(StatusCode::OK, q.next.as_deref(), None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

/// `POST /login`: a form with `username`, `password` and `next`.
pub async fn submit(
    State(sign_in): State<SignIn>,
    req_parts: axum::http::request::Parts,
    form_data: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Some(auth) = sign_in.clone() else {
        return Redirect::to("/").into_response();
    };
    let Ok(Form(f)) = form_data else {
        return form(
            StatusCode::BAD_REQUEST,
            None,
            Some("The form needs a user name and a password."),
        );
    };
    let peer = req_parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let ip = auth.proxies.client(peer, &req_parts.headers);
    if let Err(wait) = auth.limiter.check(ip) {
        tracing::warn!(%ip, "login rate limit reached");
        let mut response = form(
            StatusCode::TOO_MANY_REQUESTS,
            f.next.as_deref(),
            Some("Too many attempts from this address: wait a minute and try again."),
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&wait.to_string()).unwrap_or(HeaderValue::from_static("60")),
        );
        return response;
    }
    let user = auth.users.get(&f.username).cloned();
    // Check a hash even for an unknown name, so the answer takes as long either way.
    let hash = user
        .as_ref()
        .map_or_else(|| auth.dummy.clone(), |u| u.password_hash.clone());
    let password = f.password;
    let ok = tokio::task::spawn_blocking(move || secret::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    match user {
        Some(u) if ok => {
            tracing::info!(user = %u.name, "signed in");
            let id = auth.sessions.create(&u.name, u.role);
            let mut response = Redirect::to(landing(f.next.as_deref())).into_response();
            set_cookie(&mut response, &session_cookie(&auth, &id));
            response
        }
        _ => {
            tracing::warn!(user = %f.username, %ip, "failed sign-in");
            form(
                StatusCode::UNAUTHORIZED,
                f.next.as_deref(),
                Some("Wrong user name or password."),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

/// `POST /logout`: a form carrying the session's CSRF token.
pub async fn logout(State(sign_in): State<SignIn>, req: Request) -> Response {
    let Some(auth) = sign_in else {
        return Redirect::to("/").into_response();
    };
    let session = cookie(&req, COOKIE).map(str::to_owned);
    let principal = req.extensions().get::<super::Principal>().cloned();
    let body = axum::body::to_bytes(req.into_body(), 4096)
        .await
        .unwrap_or_default();
    let sent = serde_urlencoded::from_bytes::<LogoutForm>(&body).map(|f| f.csrf);
    let expected = principal.and_then(|p| p.csrf);
    match (session, sent, expected) {
        (Some(id), Ok(sent), Some(expected)) if secret::same(&sent, &expected) => {
            auth.sessions.remove(&id);
            let mut response = Redirect::to("/login").into_response();
            set_cookie(
                &mut response,
                &format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
            );
            response
        }
        _ => crate::error::ApiError::Forbidden(
            "logout needs the session's CSRF token in the form field csrf".into(),
        )
        .into_response(),
    }
}

fn session_cookie(auth: &Auth, id: &str) -> String {
    let secure = if auth.secure_cookie { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        auth.sessions.ttl().as_secs()
    )
}

fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
}

/// The login page: plain HTML with the site's stylesheet and no script, so it works
/// before (and without) the wasm.
fn form(status: StatusCode, next: Option<&str>, error: Option<&str>) -> Response {
    let next = escape(landing(next));
    let error = error
        .map(|e| {
            format!(
                r#"<p class="error-box" role="alert" data-testid="login-error">{}</p>"#,
                escape(e)
            )
        })
        .unwrap_or_default();
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>Sign in · flowdeck</title>
<link rel="stylesheet" href="/pkg/flowdeck.css"/>
<link rel="icon" href="/favicon.svg"/>
</head>
<body>
<main class="login">
<h1>Sign in to flowdeck</h1>
{error}
<form method="post" action="/login">
<label>User name <input name="username" autocomplete="username" required autofocus/></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required/></label>
<input type="hidden" name="next" value="{next}"/>
<button class="btn" type="submit">Sign in</button>
</form>
</main>
</body>
</html>"#
    );
    (status, Html(html)).into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
