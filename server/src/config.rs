//! How a dashboard is set up: the address, the refresh, sign-in, the theme, what it
//! answers for, where its metrics, logs and console go. From code, or from the
//! environment with [`Config::from_env`].

use std::{net::SocketAddr, sync::Arc, time::Duration};

use flowdeck_app::theme::Theme;
use flowdeck_runtime::{logs::LogBuffer, metrics::MetricsStore};

use crate::{auth, branding, console, hub, origin};

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    /// How often the live stream sends an update.
    pub refresh: Duration,
    /// How many past frames the stream keeps for reconnecting browsers.
    pub stream_log: hub::LogLimits,
    /// Refuse control actions (pause, scale, retry, cancel, drain, stop) with 403.
    pub readonly: bool,
    /// Users and tokens; `None` leaves the dashboard open to whoever reaches it (which is
    /// why the default address is loopback).
    pub auth: Option<Arc<auth::Auth>>,
    /// On SIGTERM or ctrl-c, how long the pipeline may take to finish its queued items
    /// before the rest is aborted.
    pub drain_timeout: Duration,
    /// Where the pipeline's and the process's series go, with whatever the `metrics` crate
    /// records once the store is installed as its recorder (the binary does that).
    pub metrics: MetricsStore,
    /// Where captured logs go; the binary adds its layer to the tracing subscriber.
    pub logs: LogBuffer,
    /// The theme for browsers that have not chosen one.
    pub theme: Theme,
    /// Origins whose pages may call the API (with a token, never a cookie); none by default.
    pub cors_origins: Vec<String>,
    /// Host names the server answers besides loopback names and IP addresses: the names
    /// it is reached by behind a proxy or on a network. Anything else is refused, which
    /// is what stops DNS rebinding.
    pub allowed_hosts: origin::AllowedHosts,
    /// The title, logo, palette and CSS file.
    pub branding: branding::Branding,
    /// Where the banner, the status line and the shutdown countdown go. `None`: standard
    /// output, opened when serving starts.
    pub console: Option<console::Console>,
    /// The run store the run is recorded in; `None` keeps everything in memory only (the
    /// default from code; the `flowdeck` command and [`Config::from_env`] use the platform's
    /// data directory unless told `--db none` / `FLOWDECK_DB=none`).
    pub store: Option<flowdeck_store::StoreConfig>,
    /// The health warnings' rules and thresholds, applied to the pipeline when serving
    /// starts (the config file's `[warnings]`); `None` keeps what the pipeline was built
    /// with.
    pub warnings: Option<flowdeck_runtime::warnings::Thresholds>,
    /// More pipelines to serve beside the one handed to `serve` (which comes first). With
    /// any, `/` is the list of them all and each has its pages under `/p/{slug}/`, its slug
    /// made from its name ([`crate::dashboard::Dashboard::pipeline`]).
    pub pipelines: Vec<flowdeck_runtime::PipelineHandle>,
    /// The token pipelines of other processes report with (`POST /api/v1/ingest`,
    /// `report_to`); `None` takes no reports.
    pub ingest_token: Option<String>,
    /// Serve no pipeline of this process, only those that report (`flowdeck serve
    /// --no-demo`): `/` is their list, and the pipeline handed to `serve` is a placeholder
    /// that is neither listed nor recorded.
    pub standalone: bool,
    /// How long a reporting pipeline may stay silent before its run is marked aborted,
    /// with a warning saying why: its process is gone, or cannot reach this dashboard.
    /// A reporter sends every 250 ms, and while it cannot get through it waits at most
    /// 5 s between tries, so 15 s is three missed tries.
    pub reporter_timeout: Duration,
    /// Who is told when something goes wrong (webhooks, Slack, Discord, the program's own
    /// hook): [`crate::alerts`]. The config file's `[[alerts]]` and
    /// [`crate::dashboard::Dashboard::alert`] add to it.
    pub alerts: crate::alerts::Alerts,
}

/// Log records kept for the Logs page and the API.
pub const LOG_RECORDS: usize = 10_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            refresh: Duration::from_millis(250),
            stream_log: hub::LogLimits::default(),
            readonly: false,
            auth: None,
            drain_timeout: Duration::from_secs(30),
            metrics: MetricsStore::new(),
            logs: LogBuffer::new(LOG_RECORDS),
            theme: Theme::System,
            cors_origins: Vec::new(),
            allowed_hosts: origin::AllowedHosts::default(),
            branding: branding::Branding::default(),
            console: None,
            store: None,
            warnings: None,
            pipelines: Vec::new(),
            ingest_token: None,
            standalone: false,
            reporter_timeout: Duration::from_secs(15),
            alerts: crate::alerts::Alerts::default(),
        }
    }
}

impl Config {
    /// The defaults, changed by the environment variables the `flowdeck` command also
    /// reads: `FLOWDECK_HOST`, `FLOWDECK_PORT`, `FLOWDECK_REFRESH_MS`, `FLOWDECK_THEME`,
    /// `FLOWDECK_READONLY`, `FLOWDECK_ALLOWED_HOSTS` (comma-separated) and `FLOWDECK_DB` (a
    /// path, or `none`; unset: `flowdeck.db` in the platform's data directory). A program
    /// deployed in a container is configured with no code of its own; a bad value is an
    /// error naming the variable.
    pub fn from_env() -> Result<Config, String> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        fn parse<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
            v.trim()
                .parse()
                .map_err(|_| format!("{name}={v:?} is not valid"))
        }
        let mut c = Config::default();
        if let Some(v) = var("FLOWDECK_HOST") {
            c.addr.set_ip(parse("FLOWDECK_HOST", &v)?);
        }
        if let Some(v) = var("FLOWDECK_PORT") {
            c.addr.set_port(parse("FLOWDECK_PORT", &v)?);
        }
        if let Some(v) = var("FLOWDECK_REFRESH_MS") {
            let ms: u64 = parse("FLOWDECK_REFRESH_MS", &v)?;
            if !(50..=10_000).contains(&ms) {
                return Err(format!(
                    "FLOWDECK_REFRESH_MS must be between 50 and 10000, got {ms}"
                ));
            }
            c.refresh = Duration::from_millis(ms);
        }
        if let Some(v) = var("FLOWDECK_THEME") {
            c.theme = v
                .trim()
                .parse()
                .map_err(|e| format!("FLOWDECK_THEME: {e}"))?;
        }
        if let Some(v) = var("FLOWDECK_READONLY") {
            c.readonly = match v.trim() {
                "1" | "true" | "yes" => true,
                "" | "0" | "false" | "no" => false,
                other => {
                    return Err(format!(
                        "FLOWDECK_READONLY must be true or false, got {other:?}"
                    ))
                }
            };
        }
        c.store = match var("FLOWDECK_DB").as_deref().map(str::trim) {
            Some("none") => None,
            Some(path) if !path.is_empty() => Some(flowdeck_store::StoreConfig::new(path)),
            _ => flowdeck_store::StoreConfig::default_path().map(flowdeck_store::StoreConfig::new),
        };
        if let Some(store) = c.store.as_mut() {
            if let Some(v) = var("FLOWDECK_KEEP_DAYS") {
                let days: u64 = parse("FLOWDECK_KEEP_DAYS", &v)?;
                if !(1..=3650).contains(&days) {
                    return Err(format!(
                        "FLOWDECK_KEEP_DAYS must be between 1 and 3650, got {days}"
                    ));
                }
                store.retention.max_age = Duration::from_secs(days * 24 * 3600);
            }
            if let Some(v) = var("FLOWDECK_KEEP_MB") {
                let mb: u64 = parse("FLOWDECK_KEEP_MB", &v)?;
                if !(1..=1 << 20).contains(&mb) {
                    return Err(format!(
                        "FLOWDECK_KEEP_MB must be between 1 and 1048576, got {mb}"
                    ));
                }
                store.retention.max_bytes = mb << 20;
            }
        }
        if let Some(v) = var("FLOWDECK_ALLOWED_HOSTS") {
            c.allowed_hosts =
                origin::AllowedHosts::new(v.split(',').filter(|h| !h.trim().is_empty()))
                    .map_err(|e| format!("FLOWDECK_ALLOWED_HOSTS: {e}"))?;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_configures_and_bad_values_are_named() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let c = Config::from_vars(vars(&[
            ("FLOWDECK_PORT", "8080"),
            ("FLOWDECK_HOST", "0.0.0.0"),
            ("FLOWDECK_READONLY", "true"),
            ("FLOWDECK_ALLOWED_HOSTS", "dash.example.com"),
        ]))
        .unwrap();
        assert_eq!(c.addr.to_string(), "0.0.0.0:8080");
        assert!(c.readonly);
        assert!(c.allowed_hosts.allows("dash.example.com:8080"));
        assert!(c.store.is_some(), "a store by default");
        let c = Config::from_vars(vars(&[("FLOWDECK_DB", "none")])).unwrap();
        assert!(c.store.is_none());
        let e = Config::from_vars(vars(&[("FLOWDECK_PORT", "eighty")])).unwrap_err();
        assert!(e.contains("FLOWDECK_PORT"), "{e}");
        let e = Config::from_vars(vars(&[("FLOWDECK_REFRESH_MS", "5")])).unwrap_err();
        assert!(e.contains("between 50 and 10000"), "{e}");
        let c = Config::from_vars(vars(&[
            ("FLOWDECK_DB", "/var/lib/flowdeck/runs.db"),
            ("FLOWDECK_KEEP_DAYS", "7"),
            ("FLOWDECK_KEEP_MB", "10"),
        ]))
        .unwrap();
        let store = c.store.unwrap();
        assert_eq!(
            store.path,
            std::path::Path::new("/var/lib/flowdeck/runs.db")
        );
        assert_eq!(store.retention.max_age, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(store.retention.max_bytes, 10 << 20);
        let e = Config::from_vars(vars(&[("FLOWDECK_KEEP_DAYS", "0")])).unwrap_err();
        assert!(
            e.contains("FLOWDECK_KEEP_DAYS must be between 1 and 3650"),
            "{e}"
        );
    }
}
