//! Alerts: telling someone when nobody is watching. What can fire ([`On`]): a health
//! warning raised or cleared, a run finished or aborted, failures over a threshold in a
//! window, a question waiting for a person, the run store degraded or recovered, a worker
//! process lost or back. Where it goes: a webhook with a versioned JSON body
//! ([`payload`]), Slack's or Discord's incoming webhook format, email, or a closure of the
//! program's own ([`Alerts::on_alert`]).
//!
//! Quiet and sure: only transitions fire (a warning that stays raised alerts once, its
//! clearing once); per alert, what comes within the throttle window after a message is
//! grouped into the next one, with a count; each delivery is retried with backoff on a
//! 5xx, a refused connection or a time-out, and signed with HMAC-SHA256 when the alert has
//! a secret ([`sign`]); the queue in front of each alert is bounded and never blocks the
//! pipeline or the dashboard: what it drops is counted and shown.
//!
//! Secrets (the signing secret, and the target URL, which for Slack and Discord is itself
//! a secret) are read from the environment or a file, and never shown: the API and the
//! logs name an alert's target by its scheme and host only.

mod deliver;
mod email;
pub mod payload;
pub mod sign;
mod watch;

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use flowdeck_protocol::ItemId;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use email::{Smtp, SmtpFile};
pub use flowdeck_protocol::alerts::{AlertInfo, Delivery, FailuresInfo, Format, On, Outcome, Sent};
pub use watch::watch;

/// More than `over` failures within `within`, at `stage` and of `kind` when given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failures {
    pub over: u64,
    /// As the API writes durations: `90s`, `5m`, `1h`.
    pub within: String,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

/// One alert as the config file's `[[alerts]]` writes it:
///
/// ```toml
/// [[alerts]]
/// name = "ops"
/// to = "env:SLACK_WEBHOOK_URL"    # a URL, or env:NAME / file:PATH holding one
/// format = "slack"                # json (default), slack, discord
/// on = ["warnings", "run", "failures"]
/// failures = { over = 20, within = "5m", stage = "enrich", kind = "timeout" }
/// secret = "env:FLOWDECK_ALERT_SECRET"   # signs the body; env:NAME or file:PATH only
/// throttle = "5m"                 # what repeats within it is grouped (default 1m)
/// tries = 8                       # deliveries tried at most (default 8)
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertFile {
    pub name: String,
    pub to: String,
    #[serde(default)]
    pub format: Format,
    pub on: Vec<On>,
    #[serde(default)]
    pub failures: Option<Failures>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub throttle: Option<String>,
    #[serde(default)]
    pub tries: Option<u32>,
    /// For `format = "email"`: the SMTP server.
    #[serde(default)]
    pub smtp: Option<SmtpFile>,
}

/// A value that must not be shown: kept out of `Debug`, and of everything else.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// An alert: where it goes, in which format, on what, and how it is delivered.
#[derive(Clone, Debug)]
pub struct Alert {
    pub(crate) name: String,
    pub(crate) to: Secret,
    pub(crate) format: Format,
    pub(crate) on: Vec<On>,
    pub(crate) failures: Option<FailureRule>,
    pub(crate) secret: Option<Secret>,
    pub(crate) throttle: Duration,
    pub(crate) tries: u32,
    /// The first retry's wait; each next one doubles, up to [`MAX_BACKOFF`].
    pub(crate) backoff: Duration,
    /// For an email alert: the server and the recipients.
    pub(crate) smtp: Option<(Smtp, Vec<lettre::message::Mailbox>)>,
}

/// A failure threshold, checked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FailureRule {
    pub over: u64,
    pub within: Duration,
    pub stage: Option<String>,
    pub kind: Option<String>,
}

/// The longest wait between two tries of a delivery.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// What an alert's queue holds before it drops (and counts) what comes.
pub const QUEUE: usize = 1_024;

impl Alert {
    /// A webhook alert to `url` (flowdeck's JSON; see [`Alert::format`]), on `on`.
    pub fn webhook(name: impl Into<String>, url: Secret, on: impl IntoIterator<Item = On>) -> Self {
        Alert {
            name: name.into(),
            to: url,
            format: Format::Json,
            on: on.into_iter().collect(),
            failures: None,
            secret: None,
            throttle: Duration::from_secs(60),
            tries: 8,
            backoff: Duration::from_secs(1),
            smtp: None,
        }
    }

    /// An email alert to `to` (`mailto:a@example.com,b@example.com`) through `smtp`.
    pub fn email(
        name: impl Into<String>,
        to: &str,
        smtp: Smtp,
        on: impl IntoIterator<Item = On>,
    ) -> Result<Self, String> {
        let recipients = email::recipients(to)?;
        let mut alert = Alert::webhook(name, Secret::new(to), on).format(Format::Email);
        alert.smtp = Some((smtp, recipients));
        Ok(alert)
    }

    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Signs each body with HMAC-SHA256 ([`sign`]).
    pub fn secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// What comes within `window` after a message is grouped into the next one.
    pub fn throttle(mut self, window: Duration) -> Self {
        self.throttle = window;
        self
    }

    /// Fires when more than `over` failures happen within `within` (at `stage`, of
    /// `kind`, when given); adds [`On::Failures`].
    pub fn failures(
        mut self,
        over: u64,
        within: Duration,
        stage: Option<&str>,
        kind: Option<&str>,
    ) -> Self {
        self.failures = Some(FailureRule {
            over,
            within,
            stage: stage.map(str::to_owned),
            kind: kind.map(str::to_owned),
        });
        if !self.on.contains(&On::Failures) {
            self.on.push(On::Failures);
        }
        self
    }

    /// Tries each delivery at most `tries` times, waiting `first` before the first retry
    /// and twice as long before each next one (at most [`MAX_BACKOFF`]).
    pub fn retries(mut self, tries: u32, first: Duration) -> Self {
        self.tries = tries.max(1);
        self.backoff = first;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads a `[[alerts]]` entry: the target and the secret from the environment or a
    /// file, the durations by the API's grammar. The error names the alert and the field.
    pub fn from_file(f: AlertFile) -> Result<Self, String> {
        let name = f.name.trim().to_owned();
        let bad = |field: &str, why: String| format!("alert {name:?}: {field}: {why}");
        if name.is_empty() {
            return Err("an alert needs a name".into());
        }
        let to = read_secret(&f.to, true).map_err(|e| bad("to", e))?;
        let url = to.expose();
        let smtp = match (f.format, &f.smtp) {
            (Format::Email, Some(s)) => {
                let recipients = email::recipients(url).map_err(|e| bad("to", e))?;
                Some((Smtp::from_file(s).map_err(|e| bad("smtp", e))?, recipients))
            }
            (Format::Email, None) => {
                return Err(bad(
                    "smtp",
                    "an email alert needs smtp = { host = .., from = .. }".into(),
                ))
            }
            (_, Some(_)) => {
                return Err(bad(
                    "smtp",
                    "only an email alert has one (format = \"email\")".into(),
                ))
            }
            (_, None) => None,
        };
        if smtp.is_none() && !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad(
                "to",
                format!("must be an http(s) URL, got one starting {:?}", shown(url)),
            ));
        }
        let secret = match &f.secret {
            Some(s) => Some(read_secret(s, false).map_err(|e| bad("secret", e))?),
            None => None,
        };
        let duration = |field: &str, raw: &str| {
            crate::api::grammar::duration(raw)
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    bad(
                        field,
                        format!("{raw:?} is not a duration such as 90s, 5m or 1h"),
                    )
                })
        };
        let throttle = match &f.throttle {
            Some(t) => duration("throttle", t)?,
            None => Duration::from_secs(60),
        };
        let failures = match &f.failures {
            Some(r) => Some(FailureRule {
                over: r.over,
                within: duration("failures.within", &r.within)?,
                stage: r.stage.clone(),
                kind: r.kind.clone(),
            }),
            None => None,
        };
        if f.on.contains(&On::Failures) && failures.is_none() {
            return Err(bad(
                "failures",
                "on = [\"failures\"] needs failures = { over = .., within = \"5m\" }".into(),
            ));
        }
        if f.on.is_empty() {
            return Err(bad("on", "names nothing to alert on".into()));
        }
        Ok(Alert {
            name,
            to,
            format: f.format,
            on: f.on,
            failures,
            secret,
            throttle,
            tries: f.tries.unwrap_or(8).clamp(1, 100),
            backoff: Duration::from_secs(1),
            smtp,
        })
    }

    /// Checks what only the pipeline knows: the failure rule's stage.
    pub(crate) fn check(&self, stages: &[String]) -> Result<(), String> {
        if let Some(stage) = self.failures.as_ref().and_then(|f| f.stage.as_ref()) {
            if !stages.contains(stage) {
                return Err(format!(
                    "alert {:?}: failures.stage: no stage named {stage:?}; the stages are {}",
                    self.name,
                    stages.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// `env:NAME` or `file:PATH`; a plain value only where `plain` (a URL that is no secret).
fn read_secret(raw: &str, plain: bool) -> Result<Secret, String> {
    if let Some(var) = raw.strip_prefix("env:") {
        return std::env::var(var)
            .map(|v| Secret(v.trim().to_owned()))
            .map_err(|_| format!("the environment variable {var} is not set"));
    }
    if let Some(path) = raw.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|v| Secret(v.trim().to_owned()))
            .map_err(|e| format!("cannot read {path}: {e}"));
    }
    if plain {
        Ok(Secret(raw.to_owned()))
    } else {
        Err(
            "must be env:NAME or file:PATH, so that the secret is not written in the config file"
                .into(),
        )
    }
}

/// A target as it may be shown: its scheme and host, never its path (a Slack or Discord
/// webhook's path is its key) nor its query.
pub fn shown(url: &str) -> String {
    if let Some(list) = url.strip_prefix("mailto:") {
        let domains: Vec<&str> = list
            .split(',')
            .filter_map(|a| a.trim().rsplit_once('@').map(|(_, d)| d))
            .collect();
        return format!("mailto:…@{}", domains.join(",…@"));
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}/…")
}

/// Something that happened, as an alert tells it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// `warning.raised`, `warning.cleared`, `run.finished`, `run.aborted`,
    /// `failures.over`, `question.waiting`, `store.degraded`, `store.recovered`,
    /// `process.lost`, `process.back`, `test`.
    pub event: String,
    pub pipeline: String,
    /// The run in the run store, when there is one.
    pub run: Option<i64>,
    pub stage: Option<String>,
    /// The items it is about (at most 20).
    pub items: Vec<ItemId>,
    pub error_kind: Option<String>,
    pub message: String,
    /// A count the event carries: failures in the window, questions waiting.
    pub count: u64,
    pub at_unix_ms: u64,
    /// The dashboard page that shows it.
    pub link: String,
}

/// The program's own handler of every alert event ([`Alerts::on_alert`]).
pub type Hook = Arc<dyn Fn(&AlertEvent) + Send + Sync>;

/// A dashboard's alerts: the configured ones, the program's hooks, and what was sent.
#[derive(Clone, Default)]
pub struct Alerts {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    alerts: Mutex<Vec<Arc<Alert>>>,
    hooks: Mutex<Vec<Hook>>,
    /// Where deliveries are kept, if anywhere ([`Alerts::keep_in`]).
    store: Mutex<Option<flowdeck_store::Store>>,
    /// Each alert's queue and record, once started.
    running: Mutex<Option<Vec<deliver::Handle>>>,
}

impl fmt::Debug for Alerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .inner
            .alerts
            .lock()
            .iter()
            .map(|a| a.name.clone())
            .collect();
        f.debug_struct("Alerts").field("alerts", &names).finish()
    }
}

impl Alerts {
    /// Adds an alert (before serving starts).
    pub fn add(&self, alert: Alert) {
        self.inner.alerts.lock().push(Arc::new(alert));
    }

    /// Calls `f` with every alert event, whatever the alerts: for anything else (a pager,
    /// a chat bot). It runs on the watcher's task: a slow one delays only the alerts.
    pub fn on_alert(&self, f: impl Fn(&AlertEvent) + Send + Sync + 'static) {
        self.inner.hooks.lock().push(Arc::new(f));
    }

    pub fn is_empty(&self) -> bool {
        self.inner.alerts.lock().is_empty() && self.inner.hooks.lock().is_empty()
    }

    /// Keeps the deliveries in `store` and starts each alert's record from what it kept
    /// there. Takes effect if called before the alerts start (the dashboard calls it as it
    /// builds its state).
    pub fn keep_in(&self, store: flowdeck_store::Store) {
        *self.inner.store.lock() = Some(store);
    }

    /// Checks every alert against the pipeline's stages, and that names are unique.
    pub fn check(&self, stages: &[String]) -> Result<(), String> {
        let alerts = self.inner.alerts.lock();
        let mut seen = std::collections::BTreeSet::new();
        for a in alerts.iter() {
            if !seen.insert(a.name.as_str()) {
                return Err(format!("two alerts are named {:?}", a.name));
            }
            a.check(stages)?;
        }
        Ok(())
    }

    /// Starts each alert's delivery task, once (within a tokio runtime).
    fn started(&self) -> Vec<deliver::Handle> {
        let mut running = self.inner.running.lock();
        running
            .get_or_insert_with(|| {
                self.inner
                    .alerts
                    .lock()
                    .iter()
                    .map(|a| deliver::start(a.clone(), self.inner.store.lock().clone()))
                    .collect()
            })
            .clone()
    }

    /// Runs the program's hooks. A hook is the program's code: its panic is its own, and
    /// leaves the watcher running.
    fn hooks(&self, event: &AlertEvent) {
        for hook in self.inner.hooks.lock().clone() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(event)));
        }
    }

    /// Hands `event` to the hooks and to every alert that fires on `on`.
    pub(crate) fn publish(&self, on: On, event: AlertEvent) {
        self.hooks(&event);
        for h in self.started() {
            if h.alert.on.contains(&on) || event.event == "test" {
                h.offer(event.clone());
            }
        }
    }

    /// Hands `event` to the hooks and to the alert `name` alone (its own threshold fired).
    pub(crate) fn publish_to(&self, name: &str, event: AlertEvent) {
        self.hooks(&event);
        if let Some(h) = self.started().into_iter().find(|h| h.alert.name == name) {
            h.offer(event);
        }
    }

    /// Queues a test event for the alert `name`; `false` if there is none.
    pub fn test(&self, name: &str, pipeline: &str, link: String) -> bool {
        let Some(h) = self.started().into_iter().find(|h| h.alert.name == name) else {
            return false;
        };
        h.offer(AlertEvent {
            event: "test".into(),
            pipeline: pipeline.to_owned(),
            run: None,
            stage: None,
            items: Vec::new(),
            error_kind: None,
            message: format!("A test of the alert {name:?}, sent from the dashboard."),
            count: 1,
            at_unix_ms: watch::now_ms(),
            link,
        });
        true
    }

    /// Each alert as the API shows it: no secret, the target by scheme and host.
    pub fn list(&self) -> Vec<AlertInfo> {
        let running = self.started();
        running
            .iter()
            .map(|h| {
                let a = &h.alert;
                let (sent, dropped, deliveries) = h.record();
                AlertInfo {
                    name: a.name.clone(),
                    to: shown(a.to.expose()),
                    format: a.format,
                    on: a.on.clone(),
                    failures: a.failures.as_ref().map(|f| FailuresInfo {
                        over: f.over,
                        within_secs: f.within.as_secs(),
                        stage: f.stage.clone(),
                        kind: f.kind.clone(),
                    }),
                    signed: a.secret.is_some(),
                    throttle_secs: a.throttle.as_secs(),
                    tries: a.tries,
                    sent,
                    dropped,
                    last: deliveries.into_iter().take(5).collect(),
                }
            })
            .collect()
    }

    /// Every alert's recent deliveries, newest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        let mut all: Vec<Delivery> = self.started().iter().flat_map(|h| h.record().2).collect();
        all.sort_by_key(|d| std::cmp::Reverse(d.at_unix_ms));
        all
    }

    /// Deliveries by alert and outcome, for `/prometheus`.
    pub fn counts(&self) -> Vec<(String, BTreeMap<&'static str, u64>)> {
        self.started()
            .iter()
            .map(|h| {
                let (sent, dropped, _) = h.record();
                let mut by = BTreeMap::new();
                by.insert("delivered", sent.delivered);
                by.insert("failed", sent.failed);
                by.insert("dropped", dropped);
                (h.alert.name.clone(), by)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_shown_by_scheme_and_host_only() {
        assert_eq!(
            shown("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            shown("http://user:pw@10.0.0.1:8080/x?k=1"),
            "http://10.0.0.1:8080/…"
        );
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }

    #[test]
    fn a_file_entry_is_checked_naming_the_field() {
        let entry = |extra: &str| -> Result<Alert, String> {
            let f: AlertFile = toml::from_str(&format!(
                "name = \"ops\"\nto = \"https://example.com/hook\"\non = [\"warnings\"]\n{extra}"
            ))
            .map_err(|e| e.to_string())?;
            Alert::from_file(f)
        };
        let a = entry("throttle = \"5m\"").unwrap();
        assert_eq!(a.throttle, Duration::from_secs(300));
        assert!(entry("secret = \"hunter2\"")
            .unwrap_err()
            .contains("secret: must be env:NAME"));
        assert!(entry("throttle = \"5 minutes\"")
            .unwrap_err()
            .contains("throttle"));
        assert!(entry("fromat = \"slack\"").unwrap_err().contains("fromat"));
        let err = entry("on = [\"failures\"]").unwrap_err();
        assert!(err.contains("duplicate") || err.contains("on"), "{err}");
        std::env::set_var("FLOWDECK_TEST_ALERT_SECRET", "s3cret");
        let a = entry("secret = \"env:FLOWDECK_TEST_ALERT_SECRET\"").unwrap();
        assert_eq!(a.secret.unwrap().expose(), "s3cret");
        assert!(entry("secret = \"env:FLOWDECK_NOT_SET_ANYWHERE\"")
            .unwrap_err()
            .contains("not set"));
    }
}
