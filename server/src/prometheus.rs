//! `GET /prometheus`: the pipeline and the process in the Prometheus text format (0.0.4),
//! for a scraper. Not under `/metrics`, which is the dashboard's Metrics page. Behind the
//! same sign-in as the rest: give the scraper an API token (`bearer_token` in its config).

use std::fmt::Write;

use axum::{extract::State, http::header, response::IntoResponse};
use flowdeck_protocol::{Rule, Snapshot, StageSnapshot, WorkerState};
use flowdeck_runtime::{
    metrics::{Kind, MetricsStore},
    LatencyHistogram,
};

use crate::{resources::RESOURCE_SERIES, state::AppState};

/// The text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn handler(State(state): State<AppState>) -> impl IntoResponse {
    let pipeline = state.hub.pipeline();
    let mut text = render(&state.hub.snapshot(), &pipeline.latency_histograms());
    alerts(&mut text, &state.config.alerts);
    user_metrics(&mut text, &state.metrics);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text)
}

/// `flowdeck_alerts_sent_total{alert,outcome}`: messages delivered, given up on
/// (`failed`), and events dropped by a full queue, per alert; absent without alerts.
fn alerts(text: &mut String, alerts: &crate::alerts::Alerts) {
    let counts = alerts.counts();
    if counts.is_empty() {
        return;
    }
    let mut o = Out(std::mem::take(text));
    let name = "flowdeck_alerts_sent_total";
    o.family(
        name,
        "counter",
        "Alert messages by alert and outcome: delivered, failed (every try failed, or the receiver refused), dropped (an event its full queue could not take).",
    );
    for (alert, by) in counts {
        for (outcome, n) in by {
            o.sample(name, &[("alert", &alert), ("outcome", outcome)], n as f64);
        }
    }
    *text = o.0;
}

/// A per-stage family: its name, type, help, and the value it reads from a stage.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&StageSnapshot) -> f64,
);

/// Escapes a label value as the format requires.
fn label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Writes families: a `# HELP` and `# TYPE` line, then its samples.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<f64>) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.0, " {}", value.into());
    }

    /// One histogram: `_bucket{le}` cumulative counts ending with `+Inf`, `_sum`, `_count`.
    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        below: impl IntoIterator<Item = (String, u64)>,
        count: u64,
        sum: f64,
    ) {
        let bucket = format!("{name}_bucket");
        let with_le = |le: &str, out: &mut Self, n: u64| {
            let mut l: Vec<(&str, &str)> = labels.to_vec();
            l.push(("le", le));
            out.sample(&bucket, &l, n as f64);
        };
        for (le, n) in below {
            with_le(&le, self, n);
        }
        with_le("+Inf", self, count);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }

    /// A family with one sample per stage.
    fn per_stage(
        &mut self,
        s: &Snapshot,
        name: &str,
        kind: &str,
        help: &str,
        f: impl Fn(&StageSnapshot) -> f64,
    ) {
        self.family(name, kind, help);
        for st in &s.stages {
            self.sample(
                name,
                &[("pipeline", &s.pipeline), ("stage", &st.name)],
                f(st),
            );
        }
    }
}

/// `s`'s process figures are its `resources` (none before the first sample).
pub fn render(s: &Snapshot, latency: &[LatencyHistogram]) -> String {
    let p = &s.resources.clone().unwrap_or_default();
    let mut o = Out(String::new());
    let pl = [("pipeline", s.pipeline.as_str())];
    let state = format!("{:?}", s.state).to_lowercase();
    o.family(
        "flowdeck_pipeline_info",
        "gauge",
        "The pipeline and its state (always 1).",
    );
    o.sample(
        "flowdeck_pipeline_info",
        &[("pipeline", &s.pipeline), ("state", &state)],
        1.0,
    );
    o.family(
        "flowdeck_uptime_seconds",
        "gauge",
        "Seconds since the pipeline started.",
    );
    o.sample("flowdeck_uptime_seconds", &pl, s.uptime_ms as f64 / 1000.0);

    let t = s.totals;
    o.family(
        "flowdeck_items_total",
        "counter",
        "Items by how they left the pipeline (submitted: entered it).",
    );
    for (outcome, n) in [
        ("submitted", t.submitted),
        ("completed", t.completed),
        ("failed", t.failed),
        ("cancelled", t.cancelled),
    ] {
        o.sample(
            "flowdeck_items_total",
            &[("pipeline", &s.pipeline), ("outcome", outcome)],
            n as f64,
        );
    }
    o.family(
        "flowdeck_items",
        "gauge",
        "Items in the pipeline now: queued, running, or waiting for a person's answer.",
    );
    o.sample(
        "flowdeck_items",
        &[("pipeline", &s.pipeline), ("state", "queued")],
        t.queued as f64,
    );
    o.sample(
        "flowdeck_items",
        &[("pipeline", &s.pipeline), ("state", "running")],
        t.running as f64,
    );
    o.sample(
        "flowdeck_items",
        &[("pipeline", &s.pipeline), ("state", "waiting")],
        t.waiting as f64,
    );
    o.family(
        "flowdeck_questions_pending",
        "gauge",
        "Questions the pipeline's stages asked that wait for a person.",
    );
    o.sample(
        "flowdeck_questions_pending",
        &pl,
        s.questions_pending as f64,
    );
    o.family(
        "flowdeck_retries_total",
        "counter",
        "Attempts that were retried.",
    );
    o.sample("flowdeck_retries_total", &pl, t.retried as f64);

    // One family per stage measure: (name, type, help, value).
    let per_stage: [Family; 11] = [
        (
            "flowdeck_stage_queued",
            "gauge",
            "Items waiting in the stage's queue.",
            |st| st.queued as f64,
        ),
        (
            "flowdeck_stage_capacity",
            "gauge",
            "The bound of the stage's queue.",
            |st| st.capacity as f64,
        ),
        (
            "flowdeck_stage_in_flight",
            "gauge",
            "Items the stage's workers are running.",
            |st| st.in_flight as f64,
        ),
        (
            "flowdeck_stage_waiting",
            "gauge",
            "The stage's items waiting for a person's answer, holding no worker.",
            |st| st.waiting as f64,
        ),
        (
            "flowdeck_stage_completed_total",
            "counter",
            "Items the stage finished.",
            |st| st.completed as f64,
        ),
        (
            "flowdeck_stage_failed_total",
            "counter",
            "Items that failed for good at the stage.",
            |st| st.failed as f64,
        ),
        (
            "flowdeck_stage_retried_total",
            "counter",
            "Attempts retried at the stage.",
            |st| st.retried as f64,
        ),
        (
            "flowdeck_stage_cancelled_total",
            "counter",
            "Items cancelled at the stage.",
            |st| st.cancelled as f64,
        ),
        (
            "flowdeck_stage_throughput",
            "gauge",
            "Items the stage finished per second, recently.",
            |st| st.throughput,
        ),
        (
            "flowdeck_stage_lag_seconds",
            "gauge",
            "Age of the oldest item in the stage's queue.",
            |st| st.oldest_queued_ms as f64 / 1000.0,
        ),
        (
            "flowdeck_stage_paused",
            "gauge",
            "1 while the stage is paused.",
            |st| f64::from(u8::from(st.paused)),
        ),
    ];
    for (name, kind, help, value) in per_stage {
        o.per_stage(s, name, kind, help, value);
    }

    o.family(
        "flowdeck_stage_latency_seconds",
        "histogram",
        "Attempt durations at the stage since the start.",
    );
    for h in latency {
        // Bounds are whole microseconds: written as exact decimal seconds.
        let below = h
            .below
            .iter()
            .map(|&(us, n)| (format!("{}.{:06}", us / 1_000_000, us % 1_000_000), n));
        o.histogram(
            "flowdeck_stage_latency_seconds",
            &[("pipeline", &s.pipeline), ("stage", &h.stage)],
            below,
            h.count,
            h.sum_us as f64 / 1e6,
        );
    }
    o.family(
        "flowdeck_stage_workers",
        "gauge",
        "The stage's workers by state.",
    );
    for st in &s.stages {
        for ws in WorkerState::ALL {
            let name = ws.as_str();
            let n = st.workers.iter().filter(|w| w.state == ws).count();
            o.sample(
                "flowdeck_stage_workers",
                &[
                    ("pipeline", &s.pipeline),
                    ("stage", &st.name),
                    ("state", name),
                ],
                n as f64,
            );
        }
    }

    o.family(
        "flowdeck_warnings",
        "gauge",
        "Health warnings firing, by rule and stage (stage \"\" for the whole pipeline); every pair is listed, at 0 when quiet, so an alert can be `flowdeck_warnings > 0`.",
    );
    for rule in Rule::ALL {
        let stages: Vec<&str> = if rule.per_stage() {
            s.stages.iter().map(|st| st.name.as_str()).collect()
        } else {
            vec![""]
        };
        for stage in stages {
            let n = s
                .warnings
                .iter()
                .filter(|w| {
                    w.firing() && w.rule == rule && w.stage.as_deref().unwrap_or("") == stage
                })
                .count();
            o.sample(
                "flowdeck_warnings",
                &[
                    ("pipeline", &s.pipeline),
                    ("rule", rule.name()),
                    ("stage", stage),
                ],
                n as f64,
            );
        }
    }

    if let Some(bytes) = p.resident_bytes {
        o.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        o.sample("process_resident_memory_bytes", &[], bytes as f64);
    }
    if let Some(secs) = p.cpu_seconds {
        o.family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        o.sample("process_cpu_seconds_total", &[], secs);
    }
    for (name, help, read) in RESOURCE_SERIES {
        if let Some(v) = read(p) {
            o.family(name, "gauge", help);
            o.sample(name, &[], v);
        }
    }
    o.0
}

/// A metric name made valid for the format: other characters become `_`.
fn metric_name(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// The store's series other than the built-in ones above (which the store also keeps for
/// charts): what users record through the `metrics` crate. Counters end in `_total`;
/// histograms are real histograms since the start, with bounds at powers of two.
pub fn user_metrics(text: &mut String, store: &MetricsStore) {
    let mut o = Out(std::mem::take(text));
    let mut last_family = String::new();
    let mut emitted = std::collections::HashSet::new();
    for (info, series) in store.current() {
        let raw = &info.key.name;
        if raw.starts_with("flowdeck_") || raw.starts_with("process_") {
            continue;
        }
        let mut name = metric_name(raw);
        if info.kind == Kind::Counter && !name.ends_with("_total") {
            name.push_str("_total");
        }
        if name != last_family && !emitted.insert(name.clone()) {
            // Two names that read the same once made valid: the first one wins.
            continue;
        }
        if name != last_family {
            let help = info
                .description
                .clone()
                .unwrap_or_else(|| format!("{raw} (recorded through the metrics crate)."));
            let kind = match info.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            o.family(&name, kind, &help.replace('\\', r"\\").replace('\n', r"\n"));
            last_family = name.clone();
        }
        let labels: Vec<(String, String)> = info
            .key
            .labels
            .iter()
            .map(|(k, v)| (metric_name(k), v.clone()))
            .collect();
        let refs: Vec<(&str, &str)> = labels
            .iter()
            .filter(|(k, _)| k != "le")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match info.kind {
            Kind::Counter | Kind::Gauge => o.sample(&name, &refs, series.value()),
            Kind::Histogram => {
                let all = series.cumulative().unwrap_or_default();
                let below = all.below().into_iter().map(|(b, n)| (b.to_string(), n));
                o.histogram(&name, &refs, below, all.count, all.sum);
            }
        }
    }
    *text = o.0;
}
