//! Who may talk to the server at all, before sign-in is asked: the Host a request names and,
//! for requests that change state, the Origin of the page that sent it.
//!
//! Loopback is not a boundary by itself. With DNS rebinding, a page from
//! `attacker.example` has its name resolve to 127.0.0.1 and then calls this server from the
//! user's own browser, as same-origin: the browser sends `Host: attacker.example:3000`.
//! A rebinding needs a name, so answering only IP literals, `localhost` (and
//! `*.localhost`) and the hosts configured with `--allowed-host` defeats it. Cross-site
//! form posts and fetches carry the sending page's `Origin`, so a state-changing request
//! whose Origin is not this server (nor a configured CORS origin) is refused too.

use std::net::IpAddr;

use axum::{
    extract::{Request, State},
    http::{header, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::error::ApiError;

/// What the guard checks requests against: the hosts answered and the origins allowed to
/// change state. Made from the dashboard's state; the guard needs nothing else of it.
#[derive(Clone)]
pub struct Guard {
    pub hosts: std::sync::Arc<AllowedHosts>,
    pub cors_origins: std::sync::Arc<[String]>,
}

/// The hosts a server answers besides loopback names and IP addresses.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// Host names (`dash.example.com`) or wildcards for a domain's subdomains
    /// (`*.example.com`); a port, if given, is ignored.
    pub fn new(hosts: impl IntoIterator<Item = impl AsRef<str>>) -> Result<Self, String> {
        let mut out = Vec::new();
        for h in hosts {
            let h = h.as_ref().trim().to_ascii_lowercase();
            let name = strip_port(&h);
            let bare = name.strip_prefix("*.").unwrap_or(name);
            let valid = !bare.is_empty()
                && bare.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !valid {
                return Err(format!(
                    "allowed host {h:?} is not a host name (like dash.example.com or *.example.com)"
                ));
            }
            out.push(name.to_owned());
        }
        Ok(AllowedHosts(out))
    }

    /// Whether a request naming `host` (the Host header, port included) is answered.
    pub fn allows(&self, host: &str) -> bool {
        let name = strip_port(host).to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        if name.is_empty() {
            return false;
        }
        let ip = name.trim_start_matches('[').trim_end_matches(']');
        if ip.parse::<IpAddr>().is_ok() {
            return true;
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        self.0
            .iter()
            .any(|allowed| match allowed.strip_prefix("*.") {
                Some(domain) => name
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                None => name == allowed,
            })
    }
}

/// `host:port` → `host`, `[::1]:3000` → `[::1]`, `::1` stays whole.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// Whether `origin` (scheme://host[:port]) is the server the request was sent to.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && rest.eq_ignore_ascii_case(host)
}

/// The layer: refuses unknown Hosts (403), and cross-site state-changing requests (403).
pub async fn layer(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    // A request without a Host (HTTP/1.0 from a script) cannot come from a rebound page.
    if let Some(host) = host {
        if !guard.hosts.allows(host) {
            tracing::warn!(host, "refused a request for an unknown host");
            return ApiError::Forbidden(format!(
                "this server does not answer for host {host:?}: it answers loopback names, \
                 IP addresses and the hosts given with --allowed-host (a guard against DNS rebinding)"
            ))
            .into_response();
        }
    }
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let cross_site = headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
        let allowed = match origin {
            // No Origin: not sent by a browser page (browsers send it on every POST).
            None => !cross_site,
            Some(o) => {
                host.is_some_and(|h| same_origin(o, h)) || guard.cors_origins.iter().any(|c| c == o)
            }
        };
        if !allowed {
            tracing::warn!(origin, method = %req.method(), path = req.uri().path(), "refused a cross-site request");
            return ApiError::Forbidden(format!(
                "requests that change state must come from this dashboard's own pages (Origin {})",
                origin.unwrap_or("absent, but the browser says cross-site")
            ))
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_ip_addresses_and_configured_hosts_are_answered() {
        let hosts = AllowedHosts::new(["dash.example.com", "*.corp.example"]).unwrap();
        for ok in [
            "localhost",
            "localhost:3000",
            "app.localhost:3000",
            "127.0.0.1:3000",
            "10.1.2.3",
            "[::1]:3000",
            "[fe80::1]",
            "DASH.example.com:443",
            "dash.example.com.",
            "a.corp.example",
            "a.b.corp.example:8080",
        ] {
            assert!(hosts.allows(ok), "{ok} should be answered");
        }
        for refused in [
            "attacker.example:3000",
            "example.com",
            "corp.example",
            "evilcorp.example",
            "localhost.attacker.example",
            "dash.example.com.attacker.example",
            "",
            ":3000",
        ] {
            assert!(!hosts.allows(refused), "{refused} should be refused");
        }
    }

    #[test]
    fn bad_allowed_hosts_are_named() {
        assert!(AllowedHosts::new(["dash.example.com:8080"]).is_ok());
        let e = AllowedHosts::new(["http://x"]).unwrap_err();
        assert!(e.contains("\"http://x\""), "{e}");
        assert!(AllowedHosts::new(["*."]).is_err());
    }

    #[test]
    fn same_origin_compares_scheme_host_and_port() {
        assert!(same_origin("http://127.0.0.1:3000", "127.0.0.1:3000"));
        assert!(same_origin("https://Dash.example.com", "dash.example.com"));
        assert!(!same_origin("http://127.0.0.1:3001", "127.0.0.1:3000"));
        assert!(!same_origin(
            "http://attacker.example:3000",
            "127.0.0.1:3000"
        ));
        assert!(!same_origin("null", "127.0.0.1:3000"));
    }
}
