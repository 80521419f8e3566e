//! The Rust side of custom pages: a [`Page`] of widgets on a grid, each widget a small
//! builder over its protocol spec. Widgets take typed handles ([`Series`], [`Source`],
//! [`Check`]) rather than names, so a page cannot name a series, data source or check
//! that does not exist: the handles come only from the [`super::Dashboard`] that made
//! them, or from the built-in ones.

use flowdeck_protocol::{
    metrics::{Agg, Kind},
    page::{
        ChartSpec, ChartStyle, GaugeSpec, LogSpec, MetricSpec, PageSpec, Placed, SeriesRef,
        StatusSpec, TableSpec, Widget,
    },
};
use flowdeck_runtime::metrics::Handle;

/// Seconds in a minute, for ranges: `.range(30 * MINUTE)`.
pub const MINUTE: u64 = 60;
/// Seconds in an hour.
pub const HOUR: u64 = 3600;

/// A handle to a metric series the dashboard knows: made by [`super::Dashboard::counter`] and friends
/// (which also record through it) or by the functions in [`builtin`].
#[derive(Clone)]
pub struct Series {
    pub(crate) series: SeriesRef,
    pub(crate) kind: Kind,
    handle: Option<Handle>,
}

impl Series {
    pub(crate) fn declared(series: SeriesRef, kind: Kind, handle: Handle) -> Self {
        Series {
            series,
            kind,
            handle: Some(handle),
        }
    }

    fn builtin(name: &str, labels: &[(&str, &str)], kind: Kind) -> Self {
        Series {
            series: SeriesRef::new(name, labels),
            kind,
            handle: None,
        }
    }

    /// Adds to a counter (built-in series are the dashboard's to record: no effect).
    pub fn increment(&self, n: u64) {
        if let Some(h) = &self.handle {
            h.increment(n);
        }
    }

    /// Sets a gauge.
    pub fn set(&self, v: f64) {
        if let Some(h) = &self.handle {
            h.set(v);
        }
    }

    /// Records one observation of a histogram.
    pub fn record(&self, v: f64) {
        if let Some(h) = &self.handle {
            h.record(v);
        }
    }

    /// Counter, gauge or histogram: what a widget reads by default (a rate, the value,
    /// the 95th percentile).
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The series as pages name it, `name{k=v}`.
    pub fn name(&self) -> String {
        self.series.to_string()
    }
}

/// The series every dashboard records. Per-stage series name a stage, which is checked
/// against the pipeline when the dashboard starts.
pub mod builtin {
    use super::{Kind, Series};

    /// Items finished successfully, a counter (charts show it per second).
    pub fn tasks_completed() -> Series {
        Series::builtin(
            "flowdeck_items_total",
            &[("outcome", "completed")],
            Kind::Counter,
        )
    }

    /// Items that failed for good, a counter.
    pub fn tasks_failed() -> Series {
        Series::builtin(
            "flowdeck_items_total",
            &[("outcome", "failed")],
            Kind::Counter,
        )
    }

    /// The process's resident memory in bytes.
    pub fn memory() -> Series {
        Series::builtin("flowdeck_process_resident_memory_bytes", &[], Kind::Gauge)
    }

    /// The process's CPU use: CPU seconds per second (1.0 is one core).
    pub fn cpu() -> Series {
        Series::builtin("flowdeck_process_cpu_ratio", &[], Kind::Gauge)
    }

    /// Threads of the process.
    pub fn threads() -> Series {
        Series::builtin("flowdeck_process_threads", &[], Kind::Gauge)
    }

    /// Open file descriptors of the process (Linux only).
    pub fn open_files() -> Series {
        Series::builtin("flowdeck_process_open_files", &[], Kind::Gauge)
    }

    /// Share of the last second the tokio runtime's workers were busy, 0 to 1.
    pub fn runtime_busy() -> Series {
        Series::builtin("flowdeck_runtime_busy_ratio", &[], Kind::Gauge)
    }

    /// Tasks waiting in the tokio runtime's global queue.
    pub fn runtime_queue() -> Series {
        Series::builtin("flowdeck_runtime_global_queue_depth", &[], Kind::Gauge)
    }

    /// A stage's completions per second.
    pub fn stage_throughput(stage: &str) -> Series {
        Series::builtin(
            "flowdeck_stage_throughput",
            &[("stage", stage)],
            Kind::Gauge,
        )
    }

    /// Items waiting in a stage's queue.
    pub fn stage_queued(stage: &str) -> Series {
        Series::builtin("flowdeck_stage_queued", &[("stage", stage)], Kind::Gauge)
    }

    /// Items a stage's workers hold.
    pub fn stage_in_flight(stage: &str) -> Series {
        Series::builtin("flowdeck_stage_in_flight", &[("stage", stage)], Kind::Gauge)
    }

    /// A stage's median attempt latency in seconds.
    pub fn stage_latency_p50(stage: &str) -> Series {
        Series::builtin(
            "flowdeck_stage_latency_p50_seconds",
            &[("stage", stage)],
            Kind::Gauge,
        )
    }

    /// A stage's 99th percentile attempt latency in seconds.
    pub fn stage_latency_p99(stage: &str) -> Series {
        Series::builtin(
            "flowdeck_stage_latency_p99_seconds",
            &[("stage", stage)],
            Kind::Gauge,
        )
    }
}

/// A table's data source: a built-in one ([`Source::stages`] ...) or one registered with
/// [`super::Dashboard::source`].
#[derive(Clone, Debug)]
pub struct Source(pub(crate) String);

impl Source {
    /// One row per stage: workers, queue, running, completed, failed, rate, latency.
    pub fn stages() -> Self {
        Source("stages".into())
    }
    /// One row per worker: its stage, state, current item, counts, busy share.
    pub fn workers() -> Self {
        Source("workers".into())
    }
    /// The newest retained items, with their status, stage and error.
    pub fn tasks() -> Self {
        Source("tasks".into())
    }
    /// Failures by error kind.
    pub fn errors() -> Self {
        Source("errors".into())
    }
}

/// A health check: the built-in [`Check::pipeline`] or one registered with
/// [`super::Dashboard::check`].
#[derive(Clone, Debug)]
pub struct Check(pub(crate) String);

impl Check {
    /// The health the Overview shows: fail once the run was aborted, warn while items
    /// fail or a stage falls more than five seconds behind, ok otherwise.
    pub fn pipeline() -> Self {
        Check("pipeline".into())
    }
}

/// A page: its address is `/pages/{slug}`, its title goes in the navigation.
#[derive(Clone)]
pub struct Page {
    pub(crate) spec: PageSpec,
    /// Its custom widgets' closures, by widget id.
    pub(crate) customs: Vec<(String, super::custom::Pending)>,
}

impl Page {
    pub fn new(slug: &str, title: &str) -> Self {
        Page {
            spec: PageSpec {
                slug: slug.to_owned(),
                title: title.to_owned(),
                widgets: Vec::new(),
            },
            customs: Vec::new(),
        }
    }

    /// Places a widget with its top left corner at `(column, row)`, counted from 0 on a
    /// grid [`flowdeck_protocol::page::GRID_COLUMNS`] wide.
    pub fn widget(mut self, widget: impl Into<Spanned>, at: (u16, u16)) -> Self {
        let Spanned(widget, span, pending) = widget.into();
        if let (Widget::Custom(c), Some(p)) = (&widget, pending) {
            self.customs.push((c.id(), p));
        }
        self.spec.widgets.push(Placed { at, span, widget });
        self
    }

    /// The spec the browser renders.
    pub fn spec(&self) -> &PageSpec {
        &self.spec
    }
}

/// A widget with the grid cells it spans (columns, rows), and a custom widget's closure;
/// what [`Page::widget`] takes.
pub struct Spanned(
    pub(crate) Widget,
    pub(crate) (u16, u16),
    pub(crate) Option<super::custom::Pending>,
);

/// Each builder is its spec and its span; they share `span` and the conversion into a
/// placed widget.
macro_rules! builder {
    ($(#[$doc:meta])* $name:ident, $variant:ident, $spec:ty) => {
        $(#[$doc])*
        pub struct $name {
            spec: $spec,
            span: (u16, u16),
        }

        impl $name {
            /// How many grid columns and rows the widget covers.
            pub fn span(mut self, columns: u16, rows: u16) -> Self {
                self.span = (columns, rows);
                self
            }
        }

        impl From<$name> for Spanned {
            fn from(b: $name) -> Spanned {
                Spanned(Widget::$variant(b.spec), b.span, None)
            }
        }
    };
}

builder!(
    /// One number: `Metric::new("Completed", &builtin::tasks_completed()).format("{value:.1}/s")`.
    Metric,
    Metric,
    MetricSpec
);

impl Metric {
    pub fn new(title: &str, metric: &Series) -> Self {
        Metric {
            spec: MetricSpec {
                title: title.to_owned(),
                series: metric.series.clone(),
                agg: None,
                format: "{value}".to_owned(),
                range: 5 * MINUTE,
            },
            span: (1, 1),
        }
    }
    /// How the series' windows become the number (default: rate for counters).
    pub fn agg(mut self, agg: Agg) -> Self {
        self.spec.agg = Some(agg);
        self
    }
    /// `{value:.1}/s`, `{value:bytes}`, `{value:%}`.
    pub fn format(mut self, format: &str) -> Self {
        self.spec.format = format.to_owned();
        self
    }
    /// How far back the sparkline reaches.
    pub fn range(mut self, seconds: u64) -> Self {
        self.spec.range = seconds;
        self
    }
}

builder!(
    /// Series over time: `Chart::new("Throughput").series(&records_in).area().range(30 * MINUTE)`.
    Chart,
    Chart,
    ChartSpec
);

impl Chart {
    pub fn new(title: &str) -> Self {
        Chart {
            spec: ChartSpec {
                title: title.to_owned(),
                series: Vec::new(),
                style: ChartStyle::Line,
                agg: None,
                range: 15 * MINUTE,
            },
            span: (2, 1),
        }
    }
    /// Adds a series (every series with its labels, when a metric has several).
    pub fn series(mut self, metric: &Series) -> Self {
        self.spec.series.push(metric.series.clone());
        self
    }
    pub fn line(mut self) -> Self {
        self.spec.style = ChartStyle::Line;
        self
    }
    pub fn area(mut self) -> Self {
        self.spec.style = ChartStyle::Area;
        self
    }
    pub fn bar(mut self) -> Self {
        self.spec.style = ChartStyle::Bar;
        self
    }
    pub fn agg(mut self, agg: Agg) -> Self {
        self.spec.agg = Some(agg);
        self
    }
    /// How far back, 5 minutes to 24 hours.
    pub fn range(mut self, seconds: u64) -> Self {
        self.spec.range = seconds;
        self
    }
}

builder!(
    /// A value on a scale: `Gauge::new("Memory", &builtin::memory()).scale(0.0, 2e9).thresholds(1.5e9, 1.8e9)`.
    Gauge,
    Gauge,
    GaugeSpec
);

impl Gauge {
    /// A gauge from 0 to 100, yellow from 70, red from 90, until told otherwise.
    pub fn new(title: &str, metric: &Series) -> Self {
        Gauge {
            spec: GaugeSpec {
                title: title.to_owned(),
                series: metric.series.clone(),
                agg: None,
                min: 0.0,
                max: 100.0,
                warn: 70.0,
                fail: 90.0,
                format: "{value}".to_owned(),
            },
            span: (1, 1),
        }
    }
    pub fn scale(mut self, min: f64, max: f64) -> Self {
        (self.spec.min, self.spec.max) = (min, max);
        self
    }
    /// Yellow from `warn`, red from `fail`; with `warn` above `fail`, low values are bad.
    pub fn thresholds(mut self, warn: f64, fail: f64) -> Self {
        (self.spec.warn, self.spec.fail) = (warn, fail);
        self
    }
    pub fn agg(mut self, agg: Agg) -> Self {
        self.spec.agg = Some(agg);
        self
    }
    pub fn format(mut self, format: &str) -> Self {
        self.spec.format = format.to_owned();
        self
    }
}

builder!(
    /// Rows from a source, sortable, filterable and paged: `Table::new("Workers", &Source::workers())`.
    Table,
    Table,
    TableSpec
);

impl Table {
    pub fn new(title: &str, source: &Source) -> Self {
        Table {
            spec: TableSpec {
                title: title.to_owned(),
                source: source.0.clone(),
                columns: Vec::new(),
                page_size: 10,
            },
            span: (2, 1),
        }
    }
    /// The columns to show, in order (default: all of the source's).
    pub fn columns(mut self, columns: &[&str]) -> Self {
        self.spec.columns = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }
    pub fn page_size(mut self, rows: usize) -> Self {
        self.spec.page_size = rows;
        self
    }
}

builder!(
    /// Health checks: `Status::new("Health").check(&Check::pipeline()).check(&database)`.
    Status,
    Status,
    StatusSpec
);

impl Status {
    pub fn new(title: &str) -> Self {
        Status {
            spec: StatusSpec {
                title: title.to_owned(),
                checks: Vec::new(),
            },
            span: (1, 1),
        }
    }
    pub fn check(mut self, check: &Check) -> Self {
        self.spec.checks.push(check.0.clone());
        self
    }
}

builder!(
    /// Captured logs, live: `Log::new("Model errors").level("warn").source("enrich-*")`.
    Log,
    Log,
    LogSpec
);

impl Log {
    pub fn new(title: &str) -> Self {
        Log {
            spec: LogSpec {
                title: title.to_owned(),
                lines: 100,
                level: "info".to_owned(),
                source: None,
                text: None,
            },
            span: (2, 1),
        }
    }
    /// The most lines shown, 1 to 1000.
    pub fn lines(mut self, n: usize) -> Self {
        self.spec.lines = n;
        self
    }
    /// The least severe level shown: error, warn, info, debug, trace.
    pub fn level(mut self, level: &str) -> Self {
        self.spec.level = level.to_owned();
        self
    }
    /// A glob over the record's source, such as `worker-*`.
    pub fn source(mut self, glob: &str) -> Self {
        self.spec.source = Some(glob.to_owned());
        self
    }
    /// Text the message or a field must contain.
    pub fn text(mut self, text: &str) -> Self {
        self.spec.text = Some(text.to_owned());
        self
    }
}
