//! The config file (TOML): the command line's settings, plus the `[auth]` section that only
//! a file can hold. A flag or environment variable given at start wins over the file.
//!
//! ```toml
//! host = "127.0.0.1"
//! port = 3000
//! refresh_ms = 250
//! readonly = false
//! theme = "system"            # or "light", "dark"
//! cors_origins = []           # origins whose pages may call the API (with a token)
//! allowed_hosts = []          # names it is reached by, besides loopback and IP addresses
//! db = "/var/lib/flowdeck/flowdeck.db"   # the run store, or "none"
//! keep_days = 30              # how long the run store keeps runs, metrics, warnings, audit
//! keep_mb = 1024              # the size it deletes its oldest runs to stay under
//! title = "Acme pipelines"    # in the header and the tab
//! logo = "logo.svg"           # .svg, .png, .jpg or .webp; paths are relative to this file
//! css = "brand.css"           # linked after the built-in stylesheet
//!
//! [palette]                   # bg, panel, border, text, muted, accent, ok, warn, bad
//! accent = "#d9480f"          # both schemes
//! bg = ["#fffdf8", "#14110f"] # light, dark
//!
//! [metrics]                   # series pages may name before anything records them
//! orders_total = "counter"
//!
//! [[pages]]                   # custom pages, as the Rust builder makes them
//! slug = "orders"
//! title = "Orders"
//! [[pages.widgets]]
//! at = [0, 0]                 # column, row (the grid has 4 columns)
//! span = [2, 1]
//! chart = { title = "Orders", series = ["orders_total"], style = "area", range = "30m" }
//! [[pages.widgets]]
//! at = [2, 0]
//! gauge = { title = "Memory", series = "process_resident_memory_bytes", max = 4e9, warn = 2e9, fail = 3e9, format = "{value:bytes}" }
//!
//! [[alerts]]                  # who is told when something goes wrong (docs/alerts.md)
//! name = "ops"
//! to = "env:SLACK_WEBHOOK_URL" # a URL, or env:NAME / file:PATH holding one
//! format = "slack"            # json (default), slack, discord
//! on = ["warnings", "run", "failures"]
//! failures = { over = 20, within = "5m", stage = "enrich", kind = "timeout" }
//! secret = "env:FLOWDECK_ALERT_SECRET"   # signs each body (HMAC-SHA256)
//! throttle = "5m"             # what repeats within it is grouped into one message
//!
//! [warnings]                  # health warnings (docs/warnings.md): any threshold, by name
//! disabled = ["growing_queue"]
//! stuck_floor_ms = 30000
//!
//! [auth]
//! session_minutes = 720
//!
//! [[auth.users]]
//! name = "ada"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."   # flowdeck hash-password
//! role = "admin"                                          # or "viewer"
//!
//! [[auth.tokens]]
//! name = "ci"
//! sha256 = "9f86d08..."                                   # flowdeck new-token
//! role = "viewer"
//! ```

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::{Path, PathBuf},
};

use flowdeck_protocol::{metrics::Kind, page::PageSpec};
use serde::Deserialize;

use crate::{auth::AuthConfig, branding::Colour};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
    pub refresh_ms: Option<u64>,
    pub readonly: Option<bool>,
    pub demo_rate: Option<u32>,
    pub demo_latency: Option<f64>,
    pub drain_timeout_secs: Option<u64>,
    /// system, light or dark: for browsers that have not chosen with the toggle.
    pub theme: Option<flowdeck_app::theme::Theme>,
    /// Origins whose pages may call the API with a token, such as "https://tools.example".
    pub cors_origins: Option<Vec<String>>,
    /// Host names the dashboard is reached by besides loopback names and IP addresses.
    pub allowed_hosts: Option<Vec<String>>,
    /// The run store's file, or "none".
    pub db: Option<String>,
    /// Days the run store keeps what it keeps.
    pub keep_days: Option<u64>,
    /// The size in MB the run store stays under, deleting its oldest runs.
    pub keep_mb: Option<u64>,
    pub auth: Option<AuthConfig>,
    /// The health warnings' rules and thresholds, applied to the pipeline served.
    pub warnings: Option<flowdeck_runtime::warnings::Thresholds>,
    pub title: Option<String>,
    pub logo: Option<PathBuf>,
    pub css: Option<PathBuf>,
    pub palette: Option<BTreeMap<String, Colour>>,
    /// Series that pages may name before anything records them, with their kind.
    pub metrics: Option<BTreeMap<String, Kind>>,
    #[serde(default)]
    pub pages: Vec<PageSpec>,
    /// Who is told when something goes wrong ([`crate::alerts::AlertFile`]).
    #[serde(default)]
    pub alerts: Vec<crate::alerts::AlertFile>,
    /// The directory relative paths are read from: the file's own.
    #[serde(skip)]
    pub dir: Option<PathBuf>,
}

impl FileConfig {
    /// Reads and parses a config file; the error names the file and, for bad TOML, the
    /// line and the key.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
        let mut config =
            Self::parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
        config.dir = path.parent().map(Path::to_path_buf);
        // Custom widgets' template files are relative to the config file too.
        let dir = config.dir.clone();
        for page in &mut config.pages {
            for placed in &mut page.widgets {
                if let flowdeck_protocol::page::Widget::Custom(c) = &mut placed.widget {
                    if let (Some(t), Some(dir)) = (&mut c.template, &dir) {
                        if Path::new(t.as_str()).is_relative() {
                            *t = dir.join(&*t).display().to_string();
                        }
                    }
                }
            }
        }
        Ok(config)
    }

    /// A path from the file, relative to the file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match &self.dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// The title, logo, palette and CSS file, read and checked.
    pub fn branding(&self) -> Result<crate::branding::Branding, String> {
        let logo = self.logo.as_deref().map(|p| self.resolve(p));
        let css = self.css.as_deref().map(|p| self.resolve(p));
        crate::branding::Branding::load(
            self.title.clone(),
            &self.palette.clone().unwrap_or_default(),
            css.as_deref(),
            logo.as_deref(),
        )
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_and_unknown_keys_are_named() {
        let c = FileConfig::parse(
            r#"
            host = "0.0.0.0"
            port = 8080
            readonly = true
            [auth]
            [[auth.users]]
            name = "ada"
            password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
            role = "viewer"
            "#,
        )
        .unwrap();
        assert_eq!(c.port, Some(8080));
        assert_eq!(c.readonly, Some(true));
        let auth = c.auth.unwrap();
        assert_eq!(auth.users[0].name, "ada");
        assert_eq!(auth.session_minutes, 720);

        let err = FileConfig::parse("prot = 1").unwrap_err();
        assert!(err.contains("prot"), "{err}");
        let err = FileConfig::parse(
            "[auth]\n[[auth.users]]\nname = \"x\"\npassword_hash = \"h\"\nrole = \"root\"",
        )
        .unwrap_err();
        assert!(err.contains("root"), "{err}");
    }

    #[test]
    fn pages_palette_and_metrics_come_from_the_file() {
        let c = FileConfig::parse(
            r##"
            title = "Acme"
            [palette]
            accent = "#d9480f"
            bg = ["#fff", "#000"]
            [metrics]
            orders_total = "counter"
            [[pages]]
            slug = "orders"
            title = "Orders"
            [[pages.widgets]]
            at = [0, 0]
            span = [2, 1]
            chart = { title = "Orders", series = ["orders_total{shop=east}"], style = "area", range = "30m" }
            [[pages.widgets]]
            at = [2, 0]
            status = { title = "Health", checks = ["pipeline"] }
            "##,
        )
        .unwrap();
        assert_eq!(c.metrics.unwrap()["orders_total"], Kind::Counter);
        let page = &c.pages[0];
        page.validate().unwrap();
        assert_eq!(page.widgets.len(), 2);
        assert_eq!(page.widgets[0].span, (2, 1));
        let css = crate::branding::palette_css(&c.palette.unwrap()).unwrap();
        assert!(css.contains("--bg: light-dark(#fff, #000)"), "{css}");

        let err = FileConfig::parse(
            "[[pages]]\nslug = \"x\"\ntitle = \"X\"\n[[pages.widgets]]\nat = [0, 0]\nchart = { title = \"C\", series = [\"a\"], rnage = 60 }",
        )
        .unwrap_err();
        assert!(err.contains("rnage"), "{err}");

        let widget = |entry: &str| {
            FileConfig::parse(&format!(
                "[[pages]]\nslug = \"x\"\ntitle = \"X\"\n[[pages.widgets]]\nat = [0, 0]\n{entry}"
            ))
        };
        let err = widget("spna = [2, 1]\nlog = { title = \"L\" }").unwrap_err();
        assert!(err.contains("unknown key \"spna\""), "{err}");
        let err =
            widget("log = { title = \"L\" }\nstatus = { title = \"S\", checks = [\"pipeline\"] }")
                .unwrap_err();
        assert!(
            err.contains("exactly one") && err.contains("found 2"),
            "{err}"
        );
        widget("log = { title = \"L\" }").unwrap();
    }
}
