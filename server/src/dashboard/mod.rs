//! The dashboard as a user builds it in Rust: the server's [`Config`], the metrics they
//! record, their own table sources and health checks, and their pages.
//!
//! ```no_run
//! use flowdeck_server::{dashboard::*, Config};
//! # async fn run(pipeline: flowdeck_runtime::PipelineHandle) -> Result<(), DashboardError> {
//! Dashboard::new(Config::default())
//!     .page(
//!         Page::new("monitor", "Production Monitor")
//!             .widget(Chart::new("Tasks completed").series(&builtin::tasks_completed()).area(), (0, 0))
//!             .widget(Gauge::new("Memory", &builtin::memory()).scale(0.0, 4e9).thresholds(2e9, 3e9).format("{value:bytes}"), (2, 0))
//!             .widget(Table::new("Workers", &Source::workers()).span(4, 1), (0, 1)),
//!     )
//!     .serve(pipeline)
//!     .await
//! # }
//! ```
//!
//! Everything a page names is checked before the server binds: a stage that the pipeline
//! does not have, a series nobody declared, a source or check nobody registered, or a
//! widget that does not fit the grid stops startup with a message naming the page and the
//! widget, rather than leaving a blank widget for someone to notice.

mod custom;
mod widgets;

use std::{collections::BTreeSet, future::Future, sync::Arc};

use flowdeck_protocol::{
    metrics::Kind,
    page::{PageSpec, SeriesRef, BUILTIN_CHECKS, BUILTIN_SOURCES},
};
use flowdeck_runtime::PipelineHandle;

pub use crate::pages::{Outcome, Pages};
pub use crate::serving::DashboardError;
pub use custom::{Custom, View, WidgetCx};
pub use flowdeck_protocol::{
    metrics::Agg,
    page::{Cell, Health, TableData},
};
pub use widgets::{
    builtin, Chart, Check, Gauge, Log, Metric, Page, Series, Source, Spanned, Status, Table, HOUR,
    MINUTE,
};

use crate::{Config, Serving};

/// A dashboard being put together; [`Dashboard::serve`] checks it and runs it.
pub struct Dashboard {
    config: Config,
    pages: Vec<PageSpec>,
    registry: crate::pages::Builder,
    /// The Rust custom widgets' closures: page slug, widget id, closure.
    customs: Vec<(String, String, custom::Pending)>,
}

impl Dashboard {
    pub fn new(config: Config) -> Self {
        Dashboard {
            config,
            pages: Vec::new(),
            registry: crate::pages::Builder::default(),
            customs: Vec::new(),
        }
    }

    /// Tells someone when something goes wrong ([`crate::alerts`]): a webhook, Slack or
    /// Discord, on warnings, the run's end, failures over a threshold, questions, the store.
    pub fn alert(self, alert: crate::alerts::Alert) -> Self {
        self.config.alerts.add(alert);
        self
    }

    /// Calls `f` with every alert event, for anything the built-in targets do not reach.
    /// A panic in it is caught; it runs on the alerts' watcher, so keep it short.
    pub fn on_alert(self, f: impl Fn(&crate::alerts::AlertEvent) + Send + Sync + 'static) -> Self {
        self.config.alerts.on_alert(f);
        self
    }

    /// The config it will serve with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves `pipeline` too, beside the one handed to [`Dashboard::serve`]: `/` becomes
    /// the list of them all, and each has today's pages and API under `/p/{slug}/`, its
    /// slug made from its name (`"Data Processing"` is `/p/data-processing/`). The first
    /// pipeline's pages also stay at the root. Two names with the same slug stop startup.
    /// Custom pages and declared metrics are the first pipeline's.
    pub fn pipeline(mut self, pipeline: PipelineHandle) -> Self {
        self.config.pipelines.push(pipeline);
        self
    }

    /// Declares a counter and returns its handle: record through it (or through
    /// `metrics::counter!` with the same name) and put it on pages.
    pub fn counter(&self, name: &str) -> Series {
        self.declare(name, Kind::Counter)
    }

    /// Declares a gauge.
    pub fn gauge(&self, name: &str) -> Series {
        self.declare(name, Kind::Gauge)
    }

    /// Declares a histogram.
    pub fn histogram(&self, name: &str) -> Series {
        self.declare(name, Kind::Histogram)
    }

    fn declare(&self, name: &str, kind: Kind) -> Series {
        let store = &self.config.metrics;
        let handle = match kind {
            Kind::Counter => store.counter(name, &[]),
            Kind::Gauge => store.gauge(name, &[]),
            Kind::Histogram => store.histogram(name, &[]),
        };
        Series::declared(SeriesRef::new(name, &[]), kind, handle)
    }

    /// Registers a table source: `rows` is called whenever a Table widget on the source
    /// refreshes (once per refresh interval while it is on screen), and its error, if
    /// any, is shown in the widget.
    pub fn source<F, Fut>(&mut self, name: &str, rows: F) -> Source
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<TableData, String>> + Send + 'static,
    {
        self.registry
            .sources
            .insert(name.to_owned(), Arc::new(move || Box::pin(rows())));
        Source(name.to_owned())
    }

    /// Registers a health check: `check` runs each time a Status widget showing it
    /// refreshes; one that takes longer than [`crate::pages::CHECK_TIMEOUT`] fails.
    pub fn check<F, Fut>(&mut self, name: &str, check: F) -> Check
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        self.registry
            .checks
            .insert(name.to_owned(), Arc::new(move || Box::pin(check())));
        Check(name.to_owned())
    }

    /// Adds a page built in Rust.
    pub fn page(mut self, page: Page) -> Self {
        let slug = &page.spec.slug;
        self.customs.extend(
            page.customs
                .into_iter()
                .map(|(id, p)| (slug.clone(), id, p)),
        );
        self.pages.push(page.spec);
        self
    }

    /// Adds pages from data (the config file's `[[pages]]`): checked like the others.
    pub fn pages(mut self, pages: impl IntoIterator<Item = PageSpec>) -> Self {
        self.pages.extend(pages);
        self
    }

    /// Checks every page against the pipeline and what was registered.
    pub fn check_pages(&self, pipeline: &PipelineHandle) -> Result<(), DashboardError> {
        crate::pipelines::slugs(pipeline, &self.config.pipelines).map_err(DashboardError::Page)?;
        let stages: Vec<String> = pipeline
            .snapshot()
            .stages
            .into_iter()
            .map(|s| s.name)
            .collect();
        let known: BTreeSet<String> = self
            .config
            .metrics
            .list()
            .into_iter()
            .map(|i| i.key.name)
            .chain(BUILTIN_SERIES.iter().map(|s| (*s).to_owned()))
            .collect();
        let mut slugs = BTreeSet::new();
        for page in &self.pages {
            page.validate().map_err(DashboardError::Page)?;
            if !slugs.insert(page.slug.as_str()) {
                return Err(DashboardError::Page(format!(
                    "two pages have the slug {:?}",
                    page.slug
                )));
            }
            for (i, placed) in page.widgets.iter().enumerate() {
                let w = &placed.widget;
                let bad = |what: String| DashboardError::Page(page.widget_problem(i, what));
                for s in w.series() {
                    series_exists(s, &known, &stages).map_err(bad)?;
                }
                use flowdeck_protocol::page::Widget;
                match w {
                    Widget::Table(t)
                        if !BUILTIN_SOURCES.contains(&t.source.as_str())
                            && !self.registry.sources.contains_key(&t.source) =>
                    {
                        return Err(bad(format!(
                            "no table source named {:?} (built in: {}; or register one with Dashboard::source)",
                            t.source,
                            BUILTIN_SOURCES.join(", ")
                        )));
                    }
                    Widget::Custom(c)
                        if c.source.as_ref().is_some_and(|s| {
                            !BUILTIN_SOURCES.contains(&s.as_str())
                                && !self.registry.sources.contains_key(s)
                        }) =>
                    {
                        return Err(bad(format!(
                            "no table source named {:?} (built in: {})",
                            c.source.as_deref().unwrap_or_default(),
                            BUILTIN_SOURCES.join(", ")
                        )));
                    }
                    Widget::Status(s) => {
                        if let Some(c) = s.checks.iter().find(|c| {
                            !BUILTIN_CHECKS.contains(&c.as_str())
                                && !self.registry.checks.contains_key(*c)
                        }) {
                            return Err(bad(format!(
                                "no health check named {c:?} (built in: {}; or register one with Dashboard::check)",
                                BUILTIN_CHECKS.join(", ")
                            )));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Checks the pages and sets up their custom widgets: a Rust widget's template is
    /// parsed, a config file's template file read and parsed, each failure naming the page
    /// and the widget.
    fn finish(mut self, pipeline: &PipelineHandle) -> Result<(Config, Pages), DashboardError> {
        self.check_pages(pipeline)?;
        self.config
            .alerts
            .check(pipeline.stage_names())
            .map_err(DashboardError::Alert)?;
        use flowdeck_protocol::page::Widget;
        let mut rust: std::collections::HashMap<(String, String), custom::Pending> = self
            .customs
            .drain(..)
            .map(|(slug, id, p)| ((slug, id), p))
            .collect();
        for page in &self.pages {
            for (i, placed) in page.widgets.iter().enumerate() {
                let Widget::Custom(c) = &placed.widget else {
                    continue;
                };
                let bad = |what: String| DashboardError::Page(page.widget_problem(i, what));
                let id = c.id();
                if self.registry.customs.has(&page.slug, &id) {
                    return Err(bad(format!(
                        "two custom widgets of the page have the id {id:?}; give one another with id"
                    )));
                }
                let every = std::time::Duration::from_secs(c.every);
                let (producer, template, deadline) =
                    match (rust.remove(&(page.slug.clone(), id.clone())), &c.template) {
                        (Some(p), _) => (p.producer, p.template, p.deadline),
                        (None, Some(path)) => {
                            let source = std::fs::read_to_string(path).map_err(|e| {
                                bad(format!("cannot read its template file {path}: {e}"))
                            })?;
                            let producer = match (&c.source, c.series.is_empty()) {
                                (Some(name), _) => crate::custom::Producer::Source(name.clone()),
                                (None, false) => {
                                    crate::custom::Producer::Series(c.series.clone(), c.range)
                                }
                                (None, true) => crate::custom::Producer::Snapshot,
                            };
                            (producer, Some(source), crate::custom::DEFAULT_DEADLINE)
                        }
                        (None, None) => {
                            return Err(bad(
                                "a custom widget needs a template file (template = \"...\") in the config file, or a closure (Custom::new or Custom::view) in Rust".into(),
                            ))
                        }
                    };
                if template.is_none() && !matches!(producer, crate::custom::Producer::View(_)) {
                    return Err(bad(
                        "its closure gives data, which needs a template: add .template(...), or give a View with Custom::view".into(),
                    ));
                }
                self.registry
                    .customs
                    .add(&page.slug, &id, template, producer, every, deadline)
                    .map_err(bad)?;
            }
        }
        let pages = self.registry.finish(self.pages);
        Ok((self.config, pages))
    }

    /// Checks the pages, then serves the dashboard of `pipeline` until Ctrl-C or SIGTERM,
    /// as [`crate::serve`] does: the first signal drains the pipeline, a second stops it.
    pub async fn serve(self, pipeline: PipelineHandle) -> Result<(), DashboardError> {
        let (config, pages) = self.finish(&pipeline)?;
        crate::serving::run(config, pages, pipeline).await
    }

    /// Checks the pages, binds, and serves in the background: the returned handle says
    /// where ([`Serving::url`]), whether it still runs, and stops it. Ctrl-C stays the
    /// program's own. For a batch script: start the pipeline, start the dashboard, run,
    /// stop.
    pub async fn start(self, pipeline: PipelineHandle) -> Result<Serving, DashboardError> {
        let (config, pages) = self.finish(&pipeline)?;
        crate::serving::start(config, pages, pipeline, false).await
    }

    /// Like [`Dashboard::start`], but when the configured port is taken (another
    /// dashboard, a second run), serves on any free port instead of failing: the URL it
    /// prints and [`Serving::url`] say which.
    pub async fn start_or_any_port(
        self,
        pipeline: PipelineHandle,
    ) -> Result<Serving, DashboardError> {
        let (config, pages) = self.finish(&pipeline)?;
        match crate::serving::start(config.clone(), pages.clone(), pipeline.clone(), false).await {
            Err(DashboardError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                let mut config = config;
                config.addr.set_port(0);
                crate::serving::start(config, pages, pipeline, false).await
            }
            other => other,
        }
    }

    /// Checks the pages and returns the server's state, for a router without a socket.
    pub fn state(self, pipeline: PipelineHandle) -> Result<crate::AppState, DashboardError> {
        let (config, pages) = self.finish(&pipeline)?;
        let store = crate::serving::open_store(&config)?;
        Ok(crate::AppState::build(&config, pages, pipeline, store))
    }
}

/// Series the server records for every dashboard, whether or not they have a value yet.
pub const BUILTIN_SERIES: [&str; 17] = [
    "flowdeck_items_total",
    "flowdeck_stage_throughput",
    "flowdeck_stage_queued",
    "flowdeck_stage_in_flight",
    "flowdeck_stage_lag_seconds",
    "flowdeck_stage_latency_p50_seconds",
    "flowdeck_stage_latency_p99_seconds",
    "process_resident_memory_bytes",
    "process_cpu_ratio",
    "flowdeck_process_cpu_ratio",
    "flowdeck_process_resident_memory_bytes",
    "flowdeck_process_threads",
    "flowdeck_process_open_files",
    "flowdeck_runtime_workers",
    "flowdeck_runtime_busy_ratio",
    "flowdeck_runtime_global_queue_depth",
    "flowdeck_runtime_tasks",
];

fn series_exists(s: &SeriesRef, known: &BTreeSet<String>, stages: &[String]) -> Result<(), String> {
    if !known.contains(&s.name) {
        let names: Vec<&str> = known.iter().map(String::as_str).collect();
        return Err(format!(
            "no metric named {:?}; declare it with Dashboard::counter (or gauge, histogram) or under [metrics] in the config file; known: {}",
            s.name,
            names.join(", ")
        ));
    }
    let stage = s.labels.iter().find(|(k, _)| k == "stage");
    if let (true, Some((_, stage))) = (s.name.starts_with("flowdeck_stage_"), stage) {
        if !stages.contains(stage) {
            return Err(format!(
                "the pipeline has no stage {stage:?}; its stages are {}",
                stages.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
