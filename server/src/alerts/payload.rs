//! The bodies alerts send. flowdeck's own webhook body is versioned (`"version": 1`); a
//! field may be added within a version, never removed or changed:
//!
//! ```json
//! {
//!   "version": 1,
//!   "alert": "ops",
//!   "summary": "warning.raised at enrich: ... (and 3 more events)",
//!   "count": 4,
//!   "events": [
//!     { "event": "warning.raised", "pipeline": "demo", "run": 12, "stage": "enrich",
//!       "items": [4812], "error_kind": null, "message": "...", "count": 1,
//!       "at_unix_ms": 1764755000123, "link": "http://127.0.0.1:3000/workers" }
//!   ]
//! }
//! ```
//!
//! `count` is how many events the message stands for; `events` names the first
//! [`NAMED`] of them. Slack and Discord get their incoming webhooks' formats with the same
//! summary and links.

use serde::Serialize;
use serde_json::json;

use super::{Alert, AlertEvent, Format};

/// Events a grouped message names; its count covers the rest.
pub const NAMED: usize = 20;

/// flowdeck's webhook body.
#[derive(Serialize)]
pub struct Webhook<'a> {
    pub version: u32,
    pub alert: &'a str,
    pub summary: String,
    pub count: u64,
    pub events: &'a [AlertEvent],
}

/// One line for the first event, and how many more there are.
pub fn summary(group: &[AlertEvent], total: u64) -> String {
    let first = &group[0];
    let at = first
        .stage
        .as_deref()
        .map(|s| format!(" at {s}"))
        .unwrap_or_default();
    let more = match total.saturating_sub(1) {
        0 => String::new(),
        1 => " (and 1 more event)".to_owned(),
        n => format!(" (and {n} more events)"),
    };
    format!(
        "[{}] {}{at}: {}{more}",
        first.pipeline, first.event, first.message
    )
}

/// The body `alert` sends for `group`, which stands for `total` events.
pub fn body(alert: &Alert, group: &[AlertEvent], total: u64) -> String {
    let named = &group[..group.len().min(NAMED)];
    let summary = summary(group, total);
    let value = match alert.format {
        Format::Json => serde_json::to_value(Webhook {
            version: 1,
            alert: &alert.name,
            summary,
            count: total,
            events: named,
        })
        .unwrap_or_default(),
        Format::Slack => {
            let lines: Vec<String> = named
                .iter()
                .map(|e| format!("• <{}|{}> {}", e.link, e.event, e.message))
                .collect();
            json!({
                "text": summary,
                "blocks": [
                    { "type": "section", "text": { "type": "mrkdwn", "text": format!("*{summary}*") } },
                    { "type": "section", "text": { "type": "mrkdwn", "text": lines.join("\n") } },
                ],
            })
        }
        // Email bodies are made by the email module; this one is never sent.
        Format::Email => json!({ "summary": summary }),
        Format::Discord => json!({
            "content": summary,
            "embeds": named.iter().take(10).map(|e| json!({
                "title": e.event,
                "description": e.message,
                "url": e.link,
            })).collect::<Vec<_>>(),
        }),
    };
    value.to_string()
}
