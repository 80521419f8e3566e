//! Pages are data: a user's page is a [`PageSpec`] built in Rust (or read from TOML) on the
//! server and sent to the browser, where generic widgets render it. The wasm bundle never
//! changes when a user adds a page, which is what lets one prebuilt binary carry anyone's
//! dashboard.
//!
//! The specs say what to show, not the data: each widget fetches its own data (a series, a
//! table, health checks, log records) while it is on screen.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::metrics::{parse_secs, SeriesRef};
use crate::metrics::{secs, Agg};

/// Columns in a page's grid; a widget's column plus its width must fit.
pub const GRID_COLUMNS: u16 = 4;

/// The longest time range a widget may show: the store keeps a day.
pub const MAX_RANGE_SECS: u64 = 24 * 3600;

/// One custom page: its address (`/pages/{slug}`), its title in the navigation, and its
/// widgets on a grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageSpec {
    pub slug: String,
    pub title: String,
    #[serde(default)]
    pub widgets: Vec<Placed>,
}

/// A widget and where it sits: `at` is (column, row) from 0, `span` is (columns, rows).
/// On the wire the widget is a key beside them: `{"at": [0, 0], "chart": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Placed {
    pub at: (u16, u16),
    #[serde(default = "one_by_one")]
    pub span: (u16, u16),
    #[serde(flatten)]
    pub widget: Widget,
}

fn one_by_one() -> (u16, u16) {
    (1, 1)
}

/// The keys a widget entry may have besides its widget.
const PLACE_KEYS: [&str; 2] = ["at", "span"];
/// The widget keys, one of which an entry has.
pub const WIDGET_KEYS: [&str; 7] = [
    "metric", "chart", "gauge", "table", "status", "log", "custom",
];

/// By hand rather than with serde's `flatten`, which cannot refuse a misspelt key (a
/// `spna` would vanish without a word) and costs the browser's bundle a buffering
/// deserializer.
impl<'de> Deserialize<'de> for Placed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = Placed;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a widget entry: at, span and one widget")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Placed, A::Error> {
                use serde::de::Error;
                let (mut at, mut span, mut widgets) = (None, None, Vec::new());
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "at" => at = Some(map.next_value()?),
                        "span" => span = Some(map.next_value()?),
                        "metric" => widgets.push(Widget::Metric(map.next_value()?)),
                        "chart" => widgets.push(Widget::Chart(map.next_value()?)),
                        "gauge" => widgets.push(Widget::Gauge(map.next_value()?)),
                        "table" => widgets.push(Widget::Table(map.next_value()?)),
                        "status" => widgets.push(Widget::Status(map.next_value()?)),
                        "log" => widgets.push(Widget::Log(map.next_value()?)),
                        "custom" => widgets.push(Widget::Custom(map.next_value()?)),
                        other => {
                            return Err(A::Error::custom(format!(
                                "unknown key {other:?}; a widget has {} and one of {}",
                                PLACE_KEYS.join(", "),
                                WIDGET_KEYS.join(", ")
                            )))
                        }
                    }
                }
                let found = widgets.len();
                let (Some(widget), 1) = (widgets.pop(), found) else {
                    return Err(A::Error::custom(format!(
                        "give exactly one of {} (found {found})",
                        WIDGET_KEYS.join(", ")
                    )));
                };
                Ok(Placed {
                    at: at.ok_or_else(|| A::Error::missing_field("at"))?,
                    span: span.unwrap_or_else(one_by_one),
                    widget,
                })
            }
        }
        d.deserialize_map(Entry)
    }
}

/// The widgets: six built in, and the user's own (`custom`). Externally tagged, so TOML reads naturally:
/// `chart = { title = "Throughput", series = ["flowdeck_items_total{outcome=completed}"] }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Widget {
    Metric(MetricSpec),
    Chart(ChartSpec),
    Gauge(GaugeSpec),
    Table(TableSpec),
    Status(StatusSpec),
    Log(LogSpec),
    Custom(CustomSpec),
}

impl Widget {
    pub fn title(&self) -> &str {
        match self {
            Widget::Metric(w) => &w.title,
            Widget::Chart(w) => &w.title,
            Widget::Gauge(w) => &w.title,
            Widget::Table(w) => &w.title,
            Widget::Status(w) => &w.title,
            Widget::Log(w) => &w.title,
            Widget::Custom(w) => &w.title,
        }
    }

    /// "metric", "chart", ...: the widget's kind, as tests and styles find it.
    pub fn kind(&self) -> &'static str {
        match self {
            Widget::Metric(_) => "metric",
            Widget::Chart(_) => "chart",
            Widget::Gauge(_) => "gauge",
            Widget::Table(_) => "table",
            Widget::Status(_) => "status",
            Widget::Log(_) => "log",
            Widget::Custom(_) => "custom",
        }
    }

    /// The series the widget reads, for checking that they exist.
    pub fn series(&self) -> Vec<&SeriesRef> {
        match self {
            Widget::Metric(w) => vec![&w.series],
            Widget::Chart(w) => w.series.iter().collect(),
            Widget::Gauge(w) => vec![&w.series],
            Widget::Custom(w) => w.series.iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// One number: a series aggregated over the last `window`, formatted, with a sparkline of
/// the last `range` and the change since the sparkline's start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub title: String,
    pub series: SeriesRef,
    /// last, sum, rate, avg, ... (default: the series kind's own: rate for counters).
    #[serde(default)]
    pub agg: Option<Agg>,
    /// `{value}`, `{value:.1}/s`, `{value:bytes}`.
    #[serde(default = "plain")]
    pub format: String,
    /// How far back the sparkline reaches.
    #[serde(default = "five_minutes", with = "secs")]
    pub range: u64,
}

/// How a chart draws its series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartStyle {
    #[default]
    Line,
    Area,
    Bar,
}

/// Series over time, on a canvas: one line (or area, or bars) per series, with a legend
/// and a tooltip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartSpec {
    pub title: String,
    pub series: Vec<SeriesRef>,
    #[serde(default)]
    pub style: ChartStyle,
    #[serde(default)]
    pub agg: Option<Agg>,
    /// How far back, from 5 minutes to 24 hours.
    #[serde(default = "fifteen_minutes", with = "secs")]
    pub range: u64,
}

/// A value against a scale with thresholds: green below `warn`, yellow from `warn`, red
/// from `fail`. When `warn` is above `fail` the scale reads the other way (low is bad, as
/// for free disk).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaugeSpec {
    pub title: String,
    pub series: SeriesRef,
    #[serde(default)]
    pub agg: Option<Agg>,
    #[serde(default)]
    pub min: f64,
    pub max: f64,
    pub warn: f64,
    pub fail: f64,
    #[serde(default = "plain")]
    pub format: String,
}

/// Where a value stands against a gauge's thresholds, or a health check's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Ok,
    Warn,
    Fail,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Warn => "warn",
            Health::Fail => "fail",
        }
    }
}

impl GaugeSpec {
    pub fn health(&self, v: f64) -> Health {
        let (warn, fail) = (self.warn, self.fail);
        let past = |t: f64| if warn <= fail { v >= t } else { v <= t };
        if past(fail) {
            Health::Fail
        } else if past(warn) {
            Health::Warn
        } else {
            Health::Ok
        }
    }

    /// Where `v` sits between `min` and `max`, clamped to 0..=1.
    pub fn fraction(&self, v: f64) -> f64 {
        ((v - self.min) / (self.max - self.min)).clamp(0.0, 1.0)
    }
}

/// Rows from a data source (`stages`, `workers`, `tasks`, `errors`, or one the user
/// registered), sortable, filterable and paged in the browser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub title: String,
    pub source: String,
    /// The columns to show, in order; empty shows all the source's columns.
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default = "ten")]
    pub page_size: usize,
}

/// The data sources every dashboard has.
pub const BUILTIN_SOURCES: [&str; 4] = ["stages", "workers", "tasks", "errors"];

/// Named health checks, each ok, warn or fail with a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSpec {
    pub title: String,
    pub checks: Vec<String>,
}

/// The checks every dashboard has: `pipeline`, the health the Overview shows
/// ([`crate::stream::LiveState::health`]).
pub const BUILTIN_CHECKS: [&str; 1] = ["pipeline"];

/// Captured log records, newest last, with the Logs page's filters set to start from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    pub title: String,
    #[serde(default = "hundred")]
    pub lines: usize,
    #[serde(default = "info")]
    pub level: String,
    /// A glob over the source, such as `worker-*`.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

/// A widget the user made, whose content the server renders: HTML from a template over
/// the widget's data, or a [`Block`] view the site draws natively. The browser fetches it
/// from `/api/v1/pages/{slug}/widgets/{id}` every `every`, so a new widget needs no new
/// wasm. Built in Rust (`Custom::new` with a closure), or in the config file with a
/// template file and a data source the dashboard already has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomSpec {
    pub title: String,
    /// Its name within the page, for its data's address; by default made from the title
    /// (`"Queue by tenant"` is `queue-by-tenant`).
    #[serde(default)]
    pub id: String,
    /// How often it refreshes, from 1 second to an hour.
    #[serde(default = "five_seconds", with = "secs")]
    pub every: u64,
    /// Config file only: the template file, rendered on the server over the data (a path
    /// relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Config file only: the data is this table source's rows (`{columns, rows}`)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// ...or these series over the last `range` (`[{key, points}]`); with neither, the
    /// data is the pipeline's snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<SeriesRef>,
    #[serde(default = "five_minutes", with = "secs")]
    pub range: u64,
}

impl CustomSpec {
    /// The widget's id: the given one, or its title in lowercase words joined by `-`.
    pub fn id(&self) -> String {
        if !self.id.is_empty() {
            return self.id.clone();
        }
        let words: Vec<String> = self
            .title
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| w.to_ascii_lowercase())
            .collect();
        words.join("-")
    }

    fn validate(&self) -> Result<(), String> {
        let id = self.id();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "id {id:?} must be lowercase letters, digits and - (give one with id)"
            ));
        }
        if !(1..=3600).contains(&self.every) {
            return Err(format!(
                "every must be between 1 second and 1 hour, got {}s",
                self.every
            ));
        }
        if self.source.is_some() && !self.series.is_empty() {
            return Err("give source or series, not both".into());
        }
        Ok(())
    }
}

/// What a custom widget shows now: its HTML, or the error that kept it from being made.
/// A template's HTML is sanitized on the server; a view is drawn there too, into markup
/// of the theme's classes, and also sent as blocks for `flowdeck top` and scripts. The
/// browser reads only the HTML: the blocks' decoder and their drawing code would cost
/// every custom page's wasm module 3 KB.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WidgetData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(target_arch = "wasm32", serde(skip))]
    pub view: Option<Vec<Block>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was made, in Unix milliseconds.
    pub at_unix_ms: u64,
    /// Seconds until it is made again.
    pub every: u64,
    /// The data the widget's closure or source gave (for scripts; the browser shows the
    /// HTML or the view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(target_arch = "wasm32", serde(skip))]
    pub data: Option<serde_json::Value>,
}

/// One piece of a declarative custom widget, drawn by the site like the built-in widgets
/// and in the theme's colours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    /// A big number with its label, an optional hint beneath and a health colour.
    Stat {
        label: String,
        value: String,
        #[serde(default)]
        hint: Option<String>,
        #[serde(default)]
        health: Option<Health>,
    },
    /// A horizontal bar: `value` of `max`.
    Bar {
        label: String,
        value: f64,
        max: f64,
    },
    /// A line of recent values.
    Sparkline {
        label: String,
        points: Vec<f64>,
    },
    Table {
        columns: Vec<String>,
        rows: Vec<Vec<Cell>>,
    },
    List {
        items: Vec<String>,
    },
    KeyValue {
        pairs: Vec<(String, String)>,
    },
    Badge {
        text: String,
        health: Health,
    },
    /// Progress towards a total, drawn as a bar with "done of total".
    Progress {
        label: String,
        done: f64,
        total: f64,
    },
    /// Markdown, rendered and sanitized on the server.
    Text {
        html: String,
    },
}

/// The log levels, least severe last.
pub const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

fn plain() -> String {
    "{value}".to_owned()
}
fn five_minutes() -> u64 {
    300
}
fn fifteen_minutes() -> u64 {
    900
}
fn five_seconds() -> u64 {
    5
}
fn ten() -> usize {
    10
}
fn hundred() -> usize {
    100
}
fn info() -> String {
    "info".to_owned()
}

/// Formats a value with a widget's format: `{value}` (up to two decimals, no trailing
/// zeros), `{value:.N}` (N decimals), `{value:bytes}` (KiB, MiB, GiB), `{value:%}` (a ratio
/// as a percentage); anything around the placeholder is kept.
pub fn format_value(format: &str, v: f64) -> String {
    match placeholder(format) {
        Ok((before, spec, after)) => format!("{before}{}{after}", render(spec, v)),
        Err(_) => render("", v),
    }
}

/// Splits a format into the text before, the spec inside, and the text after `{value...}`.
fn placeholder(format: &str) -> Result<(&str, &str, &str), String> {
    let start = format
        .find("{value")
        .ok_or_else(|| format!("format {format:?} has no {{value}} placeholder"))?;
    let end = format[start..]
        .find('}')
        .map(|e| start + e)
        .ok_or_else(|| format!("format {format:?}: the placeholder is not closed"))?;
    let inner = &format[start + "{value".len()..end];
    let spec = match inner.strip_prefix(':') {
        Some(spec) => spec,
        None if inner.is_empty() => "",
        None => {
            return Err(format!(
                "format {format:?}: write {{value}} or {{value:.1}}"
            ))
        }
    };
    let known = spec.is_empty()
        || spec == "bytes"
        || spec == "%"
        || spec
            .strip_prefix('.')
            .is_some_and(|n| n.parse::<u8>().is_ok_and(|n| n <= 9));
    if !known {
        return Err(format!(
            "format {format:?}: unknown spec {spec:?} (use .N, bytes or %)"
        ));
    }
    Ok((&format[..start], spec, &format[end + 1..]))
}

fn render(spec: &str, v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    match spec {
        "bytes" => {
            let units = ["B", "KiB", "MiB", "GiB", "TiB"];
            let mut x = v;
            let mut i = 0;
            while x.abs() >= 1024.0 && i < units.len() - 1 {
                x /= 1024.0;
                i += 1;
            }
            format!("{} {}", trim(x, 1), units[i])
        }
        "%" => format!("{}%", trim(v * 100.0, 1)),
        "" => trim(v, 2),
        n => format!("{v:.*}", n[1..].parse::<usize>().unwrap_or(0)),
    }
}

/// At most `places` decimals, without trailing zeros.
fn trim(v: f64, places: usize) -> String {
    let s = format!("{v:.places$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

impl PageSpec {
    /// A problem with widget `i` (from 0), named so the user can find it:
    /// `page "ops", widget 2 (chart "Throughput"): ...`.
    pub fn widget_problem(&self, i: usize, what: impl fmt::Display) -> String {
        let w = &self.widgets[i].widget;
        format!(
            "page {:?}, widget {} ({} {:?}): {what}",
            self.slug,
            i + 1,
            w.kind(),
            w.title()
        )
    }

    /// Checks what can be checked without the server: the slug, positions inside the grid
    /// and not overlapping, ranges, thresholds, formats and sizes. Names of series,
    /// sources and checks are the server's to check.
    pub fn validate(&self) -> Result<(), String> {
        let slug_ok = !self.slug.is_empty()
            && self
                .slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !slug_ok {
            return Err(format!(
                "page slug {:?} must be lowercase letters, digits and -",
                self.slug
            ));
        }
        if self.title.trim().is_empty() {
            return Err(format!("page {:?} has no title", self.slug));
        }
        let mut taken: Vec<(u16, u16)> = Vec::new();
        for (i, p) in self.widgets.iter().enumerate() {
            let bad = |what: String| self.widget_problem(i, what);
            let ((col, row), (w, h)) = (p.at, p.span);
            if w == 0 || h == 0 || col + w > GRID_COLUMNS || h > 12 {
                return Err(bad(format!(
                    "at {:?} with span {:?} does not fit the grid of {GRID_COLUMNS} columns",
                    p.at, p.span
                )));
            }
            for c in col..col + w {
                for r in row..row + h {
                    if taken.contains(&(c, r)) {
                        return Err(bad(format!("overlaps another widget at ({c}, {r})")));
                    }
                    taken.push((c, r));
                }
            }
            p.widget.validate().map_err(bad)?;
        }
        Ok(())
    }
}

impl Widget {
    fn validate(&self) -> Result<(), String> {
        let range = |r: u64| {
            if (60..=MAX_RANGE_SECS).contains(&r) {
                Ok(())
            } else {
                Err(format!(
                    "range must be between 1 minute and 24 hours, got {r}s"
                ))
            }
        };
        match self {
            Widget::Metric(m) => {
                placeholder(&m.format)?;
                range(m.range)
            }
            Widget::Chart(c) if c.series.is_empty() => Err("a chart needs a series".into()),
            Widget::Chart(c) => range(c.range),
            Widget::Gauge(g) => {
                placeholder(&g.format)?;
                if g.max.partial_cmp(&g.min) != Some(std::cmp::Ordering::Greater) {
                    return Err(format!("max ({}) must be above min ({})", g.max, g.min));
                }
                Ok(())
            }
            Widget::Table(t) if !(1..=500).contains(&t.page_size) => Err(format!(
                "page_size must be between 1 and 500, got {}",
                t.page_size
            )),
            Widget::Table(_) => Ok(()),
            Widget::Status(s) if s.checks.is_empty() => Err("a status needs a check".into()),
            Widget::Status(_) => Ok(()),
            Widget::Log(l) if !(1..=1000).contains(&l.lines) => {
                Err(format!("lines must be between 1 and 1000, got {}", l.lines))
            }
            Widget::Log(l) if !LEVELS.contains(&l.level.as_str()) => Err(format!(
                "level must be one of {}, got {:?}",
                LEVELS.join(", "),
                l.level
            )),
            Widget::Log(_) => Ok(()),
            Widget::Custom(c) => c.validate(),
        }
    }
}

/// A page's entry in the navigation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageLink {
    pub slug: String,
    pub title: String,
}

/// What the header shows: the dashboard's title, whether it has a logo (served at
/// `/logo`), and the custom pages for the navigation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub title: String,
    pub logo: bool,
    /// Whether the server has a custom stylesheet (palette or CSS file) at `/custom.css`.
    pub custom_css: bool,
    pub pages: Vec<PageLink>,
    /// The pipelines the dashboard serves, when more than one: (slug, name) of each.
    #[serde(default)]
    pub pipelines: Vec<(String, String)>,
}

/// A table's data: column names and rows of cells.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TableData {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// One table cell: numbers sort as numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    Num(f64),
    Text(String),
}

impl Cell {
    pub fn text(&self) -> String {
        match self {
            Cell::Num(n) => trim(*n, 3),
            Cell::Text(t) => t.clone(),
        }
    }

    /// Numbers before text, numbers by value, text alphabetically.
    pub fn compare(&self, other: &Cell) -> std::cmp::Ordering {
        match (self, other) {
            (Cell::Num(a), Cell::Num(b)) => a.total_cmp(b),
            (Cell::Num(_), Cell::Text(_)) => std::cmp::Ordering::Less,
            (Cell::Text(_), Cell::Num(_)) => std::cmp::Ordering::Greater,
            (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}
impl From<f64> for Cell {
    fn from(n: f64) -> Self {
        Cell::Num(n)
    }
}
impl From<u64> for Cell {
    fn from(n: u64) -> Self {
        Cell::Num(n as f64)
    }
}

/// One health check's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub health: Health,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: &str) -> Widget {
        Widget::Chart(ChartSpec {
            title: "Throughput".into(),
            series: vec![series.parse().unwrap()],
            style: ChartStyle::Area,
            agg: None,
            range: 1800,
        })
    }

    fn page(widgets: Vec<Placed>) -> PageSpec {
        PageSpec {
            slug: "ops".into(),
            title: "Ops".into(),
            widgets,
        }
    }

    #[test]
    fn formats_render_values() {
        assert_eq!(format_value("{value:.1}/s", 12.345), "12.3/s");
        assert_eq!(format_value("{value}", 2.5), "2.5");
        assert_eq!(format_value("{value}", 3.0), "3");
        assert_eq!(
            format_value("{value:bytes}", 3.5 * 1024.0 * 1024.0),
            "3.5 MiB"
        );
        assert_eq!(format_value("{value:%} busy", 0.256), "25.6% busy");
        assert_eq!(format_value("n = {value:.0}", f64::NAN), "n = –");
        assert!(placeholder("{value:x}")
            .unwrap_err()
            .contains("unknown spec"));
        assert!(placeholder("no value").is_err());
    }

    #[test]
    fn gauges_read_thresholds_both_ways() {
        let mut g = GaugeSpec {
            title: "Memory".into(),
            series: "mem".parse().unwrap(),
            agg: None,
            min: 0.0,
            max: 100.0,
            warn: 70.0,
            fail: 90.0,
            format: plain(),
        };
        assert_eq!(g.health(10.0), Health::Ok);
        assert_eq!(g.health(70.0), Health::Warn);
        assert_eq!(g.health(95.0), Health::Fail);
        assert_eq!(g.fraction(150.0), 1.0);
        assert_eq!(g.fraction(25.0), 0.25);
        // Free disk: low is bad.
        (g.warn, g.fail) = (30.0, 10.0);
        assert_eq!(g.health(50.0), Health::Ok);
        assert_eq!(g.health(20.0), Health::Warn);
        assert_eq!(g.health(5.0), Health::Fail);
    }

    #[test]
    fn pages_check_grid_ranges_and_sizes() {
        let at = |col, row, span, widget| Placed {
            at: (col, row),
            span,
            widget,
        };
        let ok = page(vec![
            at(0, 0, (2, 1), chart("a")),
            at(2, 0, (2, 2), chart("b")),
        ]);
        ok.validate().unwrap();

        let overlap = page(vec![
            at(0, 0, (2, 1), chart("a")),
            at(1, 0, (1, 1), chart("b")),
        ]);
        let err = overlap.validate().unwrap_err();
        assert!(
            err.contains("widget 2 (chart \"Throughput\")") && err.contains("overlaps"),
            "{err}"
        );

        let wide = page(vec![at(3, 0, (2, 1), chart("a"))]);
        assert!(wide.validate().unwrap_err().contains("does not fit"));

        let mut short = chart("a");
        if let Widget::Chart(c) = &mut short {
            c.range = 10;
        }
        assert!(page(vec![at(0, 0, (1, 1), short)])
            .validate()
            .unwrap_err()
            .contains("range"));

        let mut bad_slug = ok.clone();
        bad_slug.slug = "My Page".into();
        assert!(bad_slug.validate().unwrap_err().contains("slug"));
    }

    #[test]
    fn specs_round_trip_as_json_with_ranges_as_text_or_seconds() {
        let json = r#"{"slug":"ops","title":"Ops","widgets":[
            {"at":[0,0],"span":[2,1],"chart":{"title":"T","series":["x{a=b}"],"style":"bar","range":"30m"}},
            {"at":[2,0],"metric":{"title":"M","series":"x","agg":"rate","format":"{value:.1}/s"}},
            {"at":[3,0],"log":{"title":"L","source":"worker-*"}}
        ]}"#;
        let page: PageSpec = serde_json::from_str(json).unwrap();
        page.validate().unwrap();
        let Widget::Chart(c) = &page.widgets[0].widget else {
            panic!("not a chart")
        };
        assert_eq!((c.range, c.style), (1800, ChartStyle::Bar));
        assert_eq!(page.widgets[1].span, (1, 1));
        let Widget::Log(l) = &page.widgets[2].widget else {
            panic!("not a log")
        };
        assert_eq!((l.lines, l.level.as_str()), (100, "info"));
        let back: PageSpec = serde_json::from_str(&serde_json::to_string(&page).unwrap()).unwrap();
        assert_eq!(back, page);

        let typo = r#"{"title":"M","series":"x","formt":"{value}"}"#;
        let err = serde_json::from_str::<MetricSpec>(typo)
            .unwrap_err()
            .to_string();
        assert!(err.contains("formt"), "{err}");
    }

    #[test]
    fn cells_sort_numbers_before_text() {
        let mut cells = vec![
            Cell::from("b"),
            Cell::from(10.0),
            Cell::from("a"),
            Cell::from(2u64),
        ];
        cells.sort_by(Cell::compare);
        assert_eq!(
            cells,
            vec![Cell::Num(2.0), Cell::Num(10.0), "a".into(), "b".into()]
        );
    }
}
