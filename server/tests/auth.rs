//! Authentication over real HTTP: pages send strangers to the login page and the API
//! answers them 401; a login sets an HttpOnly SameSite cookie; a viewer watches but cannot
//! control; state changes on a session need its CSRF token; API tokens work without one;
//! logout ends the session; login attempts are rate-limited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{pipeline, serve_config};
use flowdeck_server::{
    auth::{hash_password, new_token, Auth, AuthConfig, Role, TokenConfig, UserConfig},
    Config,
};
use reqwest::{redirect::Policy, Client, StatusCode};
use serde_json::Value;

struct Server {
    base: String,
    http: Client,
    viewer_token: String,
    admin_token: String,
    handle: flowdeck_runtime::PipelineHandle,
}

async fn server(attempts_per_minute: u32) -> Server {
    let (viewer_token, viewer_digest) = new_token();
    let (admin_token, admin_digest) = new_token();
    let user = |name: &str, password: &str, role| UserConfig {
        name: name.into(),
        password_hash: hash_password(password).unwrap(),
        role,
    };
    let token = |name: &str, sha256: String, role| TokenConfig {
        name: name.into(),
        sha256,
        role,
    };
    let auth = Auth::new(AuthConfig {
        users: vec![
            user("ada", "ada-secret", Role::Admin),
            user("vic", "vic-secret", Role::Viewer),
        ],
        tokens: vec![
            token("ci", viewer_digest, Role::Viewer),
            token("ops", admin_digest, Role::Admin),
        ],
        session_minutes: 60,
        login_attempts_per_minute: attempts_per_minute,
        secure_cookie: false,
        // The tests' own address stands in for a reverse proxy.
        trusted_proxies: vec!["127.0.0.1".into()],
    })
    .unwrap();
    let running = pipeline(1000);
    let handle = running.handle.clone();
    // Keep the input open so the pipeline stays running (and its stages pausable).
    std::mem::forget(running.input);
    let config = Config {
        auth: Some(Arc::new(auth)),
        ..Config::default()
    };
    let base = serve_config(handle.clone(), config).await;
    Server {
        base,
        http: Client::builder().redirect(Policy::none()).build().unwrap(),
        viewer_token,
        admin_token,
        handle,
    }
}

impl Server {
    /// Signs in; returns the cookie pair to send back, or the refusal's status and page.
    async fn login(
        &self,
        user: &str,
        password: &str,
        next: &str,
    ) -> Result<(String, String), (StatusCode, String)> {
        let res = self
            .http
            .post(format!("{}/login", self.base))
            .form(&[("username", user), ("password", password), ("next", next)])
            .send()
            .await
            .unwrap();
        if res.status() != StatusCode::SEE_OTHER {
            let status = res.status();
            return Err((status, res.text().await.unwrap()));
        }
        let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(set.contains("HttpOnly"), "{set}");
        assert!(set.contains("SameSite=Strict"), "{set}");
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let pair = set.split(';').next().unwrap().to_owned();
        Ok((pair, location))
    }

    async fn session(&self, cookie: &str) -> Value {
        let res = self
            .http
            .get(format!("{}/api/v1/session", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    fn pause(&self, stage: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/api/v1/stages/{stage}/pause", self.base))
            .json(&serde_json::json!({}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_the_login_page_or_a_401() {
    let s = server(100).await;
    let res = s
        .http
        .get(format!("{}/tasks?tab=failed", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()["location"],
        "/login?next=%2Ftasks%3Ftab%3Dfailed"
    );
    for path in ["/api/v1/summary", "/api/events", "/api/v1/audit"] {
        let res = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains("sign in"),
            "{body}"
        );
    }
    let res = s.pause("a").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    for path in ["/healthz", "/login"] {
        let res = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    let page = s
        .http
        .get(format!("{}/login?next=/errors", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"name="password""#));
    assert!(page.contains(r#"value="/errors""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_sets_a_session_cookie_that_opens_pages_api_and_stream() {
    let s = server(100).await;
    let (status, page) = s.login("ada", "wrong", "/").await.unwrap_err();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("Wrong user name or password"));
    let (status, _) = s.login("nobody", "ada-secret", "/").await.unwrap_err();
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (cookie, location) = s.login("ada", "ada-secret", "/errors").await.unwrap();
    assert_eq!(location, "/errors");
    // Only paths on this site: anything else lands on the overview.
    let (_, location) = s
        .login("ada", "ada-secret", "//evil.example/")
        .await
        .unwrap();
    assert_eq!(location, "/");

    let get = |path: &str| {
        s.http
            .get(format!("{}{path}", s.base))
            .header("cookie", &cookie)
            .send()
    };
    assert_eq!(get("/errors").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        get("/api/v1/summary").await.unwrap().status(),
        StatusCode::OK
    );
    let stream = get("/api/events").await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let me = s.session(&cookie).await;
    assert_eq!(me["name"], "ada");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["can_control"], true);
    // A cookie nobody issued opens nothing.
    let res = s
        .http
        .get(format!("{}/api/v1/summary", s.base))
        .header("cookie", "flowdeck_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_watches_but_cannot_control_and_an_admin_needs_the_csrf_token() {
    let s = server(100).await;
    let (viewer, _) = s.login("vic", "vic-secret", "/").await.unwrap();
    let me = s.session(&viewer).await;
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["can_control"], false);
    let csrf = me["csrf"].as_str().unwrap().to_owned();
    let res = s
        .pause("a")
        .header("cookie", &viewer)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("viewer"),
        "{body}"
    );
    // Restarting a worker is for admins too; the refusal is audited under the viewer's name.
    let res = s
        .http
        .post(format!("{}/api/v1/stages/a/workers/0/restart", s.base))
        .header("content-type", "application/json")
        .header("cookie", &viewer)
        .header("x-csrf-token", &csrf)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let refused: Value = res.json().await.unwrap();
    assert!(
        refused["message"].as_str().unwrap().contains("viewer"),
        "{refused}"
    );

    let (admin, _) = s.login("ada", "ada-secret", "/").await.unwrap();
    let csrf = s.session(&admin).await["csrf"].as_str().unwrap().to_owned();
    let res = s.pause("a").header("cookie", &admin).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("x-csrf-token"),
        "{body}"
    );
    let res = s
        .pause("a")
        .header("cookie", &admin)
        .header("x-csrf-token", "0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!s.handle.snapshot().stages[0].paused);

    let res = s
        .pause("a")
        .header("cookie", &admin)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(s.handle.snapshot().stages[0].paused);

    let audit: Value = s
        .http
        .get(format!("{}/api/v1/audit", s.base))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["user"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(users.len(), 3, "{audit}");
    for refused in &users[..2] {
        assert_eq!(refused.0, "vic");
        assert!(refused.1.contains("viewer"));
    }
    assert_eq!(audit[1]["action"], "restart");
    assert_eq!(users[2], ("ada".to_owned(), "ok".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_need_no_csrf_and_keep_their_role() {
    let s = server(100).await;
    let bearer = |t: &str| format!("Bearer {t}");
    let res = s
        .http
        .get(format!("{}/api/v1/summary", s.base))
        .header("authorization", bearer(&s.viewer_token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = s
        .pause("b")
        .header("authorization", bearer(&s.viewer_token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = s
        .pause("b")
        .header("authorization", bearer(&s.admin_token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(s.handle.snapshot().stages[1].paused);
    for bad in [bearer("fdk_nope"), "Basic YWRhOmFkYQ==".to_owned()] {
        let res = s
            .http
            .get(format!("{}/", s.base))
            .header("authorization", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let body: Value = res.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session() {
    let s = server(100).await;
    let (cookie, _) = s.login("ada", "ada-secret", "/").await.unwrap();
    let csrf = s.session(&cookie).await["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let logout = |form: Vec<(&'static str, String)>| {
        s.http
            .post(format!("{}/logout", s.base))
            .header("cookie", &cookie)
            .form(&form)
            .send()
    };
    assert_eq!(
        logout(vec![("csrf", "wrong".into())])
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.http
            .get(format!("{}/api/v1/summary", s.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let res = logout(vec![("csrf", csrf)]).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login");
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let res = s
        .http
        .get(format!("{}/api/v1/summary", s.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_rate_limited() {
    let s = server(3).await;
    for _ in 0..3 {
        let (status, _) = s.login("ada", "guess", "/").await.unwrap_err();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Even the right password waits now.
    let res = s
        .http
        .post(format!("{}/login", s.base))
        .form(&[("username", "ada"), ("password", "ada-secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "20");
    assert!(res.text().await.unwrap().contains("Too many attempts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_has_its_own_login_budget() {
    let s = server(2).await;
    let attempt = |client: &'static str| {
        s.http
            .post(format!("{}/login", s.base))
            .header("x-forwarded-for", format!("6.6.6.6, {client}"))
            .form(&[("username", "ada"), ("password", "guess")])
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            attempt("203.0.113.7").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        attempt("203.0.113.7").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy is not locked out by the first one's failures,
    // and the first cannot borrow another budget by forging the left of the header.
    assert_eq!(
        attempt("198.51.100.20").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let (cookie, _) = s.login("ada", "ada-secret", "/").await.unwrap();
    assert!(
        !cookie.is_empty(),
        "the proxy's own address still has its budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_only_leads_to_clean_paths_on_this_site() {
    let s = server(100).await;
    for bad in [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "/\n/evil.example",
    ] {
        let (_, location) = s.login("ada", "ada-secret", bad).await.unwrap();
        assert_eq!(location, "/", "next={bad:?}");
    }
    let (_, location) = s
        .login("ada", "ada-secret", "/tasks?status=failed")
        .await
        .unwrap();
    assert_eq!(location, "/tasks?status=failed");
    // The login page does not echo it either.
    let page = s
        .http
        .get(format!("{}/login?next=/%09/evil.example", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"name="next" value="/""#), "{page}");
}
