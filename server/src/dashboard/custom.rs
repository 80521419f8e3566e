//! Custom widgets in Rust: a closure that gives data for a template, or a declarative
//! [`View`] the site draws itself. Either way the prebuilt site shows it, so a widget of
//! your own needs no wasm tools and no rebuild of the site.
//!
//! ```no_run
//! use flowdeck_server::dashboard::*;
//! use serde_json::json;
//! let tenants = Custom::new("Queue by tenant", |cx: WidgetCx| async move {
//!         let queued = cx.snapshot.totals.queued;
//!         Ok::<_, String>(json!({ "rows": [["acme", queued]] }))
//!     })
//!     .template("<table>{% for r in data.rows %}<tr><td>{{ r[0] }}</td><td>{{ r[1] }}</td></tr>{% endfor %}</table>")
//!     .every(std::time::Duration::from_secs(2));
//! let health = Custom::view("Backlog", |cx: WidgetCx| async move {
//!     Ok::<_, String>(View::new().stat("Queued", cx.snapshot.totals.queued.to_string()))
//! });
//! Page::new("ops", "Operations").widget(tenants, (0, 0)).widget(health, (2, 0));
//! ```

use std::{fmt::Display, future::Future, sync::Arc, time::Duration};

use flowdeck_protocol::page::{Block, Cell, CustomSpec, Health, Widget};
use futures::FutureExt;
use serde_json::Value;

pub use crate::custom::WidgetCx;
use crate::custom::{Producer, DEFAULT_DEADLINE};

/// What a Rust custom widget brings besides its spec: its closure, template and deadline.
#[derive(Clone)]
pub(crate) struct Pending {
    pub producer: Producer,
    pub template: Option<String>,
    pub deadline: Duration,
}

/// A widget of your own: `Custom::new(title, data).template(html)` or
/// `Custom::view(title, view)`.
pub struct Custom {
    pub(crate) spec: CustomSpec,
    pub(crate) span: (u16, u16),
    pub(crate) pending: Pending,
}

impl Custom {
    /// A widget whose closure gives JSON data for its [`Custom::template`], rendered on the
    /// server. An `Err` (or a panic, or no answer by the deadline) shows in the widget.
    pub fn new<F, Fut, E>(title: &str, data: F) -> Self
    where
        F: Fn(WidgetCx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, E>> + Send + 'static,
        E: Display,
    {
        let data = Arc::new(move |cx| {
            data(cx)
                .map(|r: Result<Value, E>| r.map_err(|e| e.to_string()))
                .boxed()
        });
        Self::with(title, Producer::Data(data))
    }

    /// A widget whose closure gives a [`View`], drawn in the built-in widgets' classes.
    pub fn view<F, Fut, E>(title: &str, view: F) -> Self
    where
        F: Fn(WidgetCx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<View, E>> + Send + 'static,
        E: Display,
    {
        let view = Arc::new(move |cx| {
            view(cx)
                .map(|r: Result<View, E>| r.map(|v| v.0).map_err(|e| e.to_string()))
                .boxed()
        });
        Self::with(title, Producer::View(view))
    }

    fn with(title: &str, producer: Producer) -> Self {
        Custom {
            spec: CustomSpec {
                title: title.to_owned(),
                id: String::new(),
                every: 5,
                template: None,
                source: None,
                series: Vec::new(),
                range: 300,
            },
            span: (2, 1),
            pending: Pending {
                producer,
                template: None,
                deadline: DEFAULT_DEADLINE,
            },
        }
    }

    /// The template (minijinja, HTML autoescaped) over `data` (what the closure gave),
    /// `pipeline`, `state`, `run`, `theme` and `counts` (submitted, queued, running,
    /// waiting, completed, failed, cancelled, throughput). Its output is sanitized. A
    /// template that does not parse stops startup, naming the page and widget.
    pub fn template(mut self, source: &str) -> Self {
        self.pending.template = Some(source.to_owned());
        self
    }

    /// How often it refreshes (whole seconds, 1 s to 1 h; default 5 s). However many
    /// browsers look, the closure runs at most once per refresh.
    pub fn every(mut self, every: Duration) -> Self {
        self.spec.every = every.as_secs();
        self
    }

    /// How long the closure may take before the widget shows a time-out (default 5 s).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.pending.deadline = deadline;
        self
    }

    /// Its id within the page, for `/api/v1/pages/{slug}/widgets/{id}` (default: from
    /// the title).
    pub fn id(mut self, id: &str) -> Self {
        self.spec.id = id.to_owned();
        self
    }

    /// How many grid columns and rows it covers (default 2 by 1).
    pub fn span(mut self, columns: u16, rows: u16) -> Self {
        self.span = (columns, rows);
        self
    }
}

impl From<Custom> for super::Spanned {
    fn from(c: Custom) -> Self {
        super::Spanned(Widget::Custom(c.spec), c.span, Some(c.pending))
    }
}

/// A declarative widget: blocks drawn one under the other, in the theme.
#[derive(Clone, Debug, Default)]
pub struct View(pub(crate) Vec<Block>);

impl View {
    pub fn new() -> Self {
        View(Vec::new())
    }

    /// A big number with a label.
    pub fn stat(mut self, label: &str, value: impl Into<String>) -> Self {
        self.0.push(Block::Stat {
            label: label.to_owned(),
            value: value.into(),
            hint: None,
            health: None,
        });
        self
    }

    /// A big number with a hint beneath and a health colour.
    pub fn stat_with(
        mut self,
        label: &str,
        value: impl Into<String>,
        hint: &str,
        health: Health,
    ) -> Self {
        self.0.push(Block::Stat {
            label: label.to_owned(),
            value: value.into(),
            hint: Some(hint.to_owned()),
            health: Some(health),
        });
        self
    }

    /// A horizontal bar, `value` of `max`.
    pub fn bar(mut self, label: &str, value: f64, max: f64) -> Self {
        self.0.push(Block::Bar {
            label: label.to_owned(),
            value,
            max,
        });
        self
    }

    pub fn sparkline(mut self, label: &str, points: Vec<f64>) -> Self {
        self.0.push(Block::Sparkline {
            label: label.to_owned(),
            points,
        });
        self
    }

    pub fn table(mut self, columns: &[&str], rows: Vec<Vec<Cell>>) -> Self {
        self.0.push(Block::Table {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows,
        });
        self
    }

    pub fn list(mut self, items: impl IntoIterator<Item = String>) -> Self {
        self.0.push(Block::List {
            items: items.into_iter().collect(),
        });
        self
    }

    pub fn key_value(mut self, pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        self.0.push(Block::KeyValue {
            pairs: pairs.into_iter().collect(),
        });
        self
    }

    pub fn badge(mut self, text: &str, health: Health) -> Self {
        self.0.push(Block::Badge {
            text: text.to_owned(),
            health,
        });
        self
    }

    pub fn progress(mut self, label: &str, done: f64, total: f64) -> Self {
        self.0.push(Block::Progress {
            label: label.to_owned(),
            done,
            total,
        });
        self
    }

    /// Markdown, rendered and sanitized on the server (HTML in it is shown as text).
    pub fn markdown(mut self, text: &str) -> Self {
        self.0.push(Block::Text {
            html: crate::questions::render(text),
        });
        self
    }
}
