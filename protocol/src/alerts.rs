//! Alerts as the API and the Alerts page show them: what each fires on and where it goes
//! (never its secret, and its target by scheme and host only), and what it delivered. The
//! server configures and sends them (`flowdeck_server::alerts`); the run store keeps the
//! deliveries, so that the page's record outlives a restart.

use serde::{Deserialize, Serialize};

/// What can fire an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum On {
    /// A health warning raised, and its clearing.
    Warnings,
    /// The run finished or was aborted.
    Run,
    /// Failures over the alert's threshold.
    Failures,
    /// A question waiting for a person's answer.
    Questions,
    /// The run store degraded (writes failing) or recovered.
    Store,
    /// A worker process of a distributed stage lost (no heartbeat), and back.
    Processes,
}

impl On {
    pub fn as_str(self) -> &'static str {
        match self {
            On::Warnings => "warnings",
            On::Run => "run",
            On::Failures => "failures",
            On::Questions => "questions",
            On::Store => "store",
            On::Processes => "processes",
        }
    }
}

/// The body a target takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// flowdeck's own, versioned JSON.
    #[default]
    Json,
    /// A Slack incoming webhook's `{"text", "blocks"}`.
    Slack,
    /// A Discord webhook's `{"content", "embeds"}`.
    Discord,
    /// A plain-text email over SMTP (`to = "mailto:.."`, with `smtp = { .. }`).
    Email,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Discord => "discord",
            Format::Email => "email",
        }
    }
}

/// An alert as `GET /api/v1/alerts` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertInfo {
    pub name: String,
    /// Scheme and host only: the rest of a webhook's URL is its key.
    pub to: String,
    pub format: Format,
    pub on: Vec<On>,
    pub failures: Option<FailuresInfo>,
    /// Whether bodies are signed (the secret itself is never shown).
    pub signed: bool,
    pub throttle_secs: u64,
    pub tries: u32,
    /// Since this process started.
    pub sent: Sent,
    /// Events its full queue could not take, since this process started.
    pub dropped: u64,
    /// Its last five deliveries, newest first (kept in the run store when there is one).
    pub last: Vec<Delivery>,
}

/// An alert's failure threshold: more than `over` within `within_secs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailuresInfo {
    pub over: u64,
    pub within_secs: u64,
    pub stage: Option<String>,
    pub kind: Option<String>,
}

/// Messages delivered, and given up on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub delivered: u64,
    pub failed: u64,
}

/// What became of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Delivered,
    /// Given up: a 4xx, or every try failed.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Failed => "failed",
        }
    }

    /// The word the run store keeps; `None` for one it does not know.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "delivered" => Some(Outcome::Delivered),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

/// One message sent (or given up on).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub alert: String,
    pub at_unix_ms: u64,
    /// The first event's name; `events` says how many the message grouped.
    pub event: String,
    pub events: u64,
    pub outcome: Outcome,
    /// The last try's HTTP status (or SMTP reply code), if it got one.
    pub status: Option<u16>,
    /// The last try's error, if it got no answer (never the URL).
    pub error: Option<String>,
    pub tries: u32,
}
