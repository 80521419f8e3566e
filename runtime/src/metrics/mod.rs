//! The metrics store: counters, gauges and histograms by name and labels, each kept as a
//! time series at several resolutions (see [`series`]). Recording touches only the
//! series' current second; a tick each second files it into the rings. Calls made through
//! the `metrics` crate (`metrics::counter!` and friends) land here once [`MetricsStore::install`]
//! has made the store the process's recorder.
//!
//! ```
//! use flowdeck_runtime::metrics::{Agg, MetricsStore};
//!
//! let store = MetricsStore::new();
//! let done = store.counter("records_in", &[("source", "kafka")]);
//! done.increment(5);
//! store.tick_at(1_000);
//! done.increment(7);
//! store.tick_at(1_001);
//! let series = store.read("records_in", &[], 1_000, 1_002, 1, Agg::Sum).unwrap();
//! assert_eq!(series[0].points, vec![(1_000, Some(5.0)), (1_001, Some(7.0))]);
//! ```

pub mod cumulative;
mod recorder;
pub mod series;
pub mod sketch;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub use flowdeck_protocol::metrics::{Agg, Kind, SeriesData, SeriesInfo, SeriesKey};
use flowdeck_protocol::Snapshot;
use parking_lot::{Mutex, RwLock};
pub use recorder::Recorder;
use series::{Bucket, Ring, RESOLUTIONS};
use sketch::Sketch;

/// Series beyond this many are not kept (a label with unbounded values would otherwise grow
/// memory without end); the first refusal is logged.
pub const MAX_SERIES: usize = 10_000;

/// One series: its current second and its rings.
pub struct SeriesRings {
    kind: Kind,
    current: Mutex<Current>,
    rings: Mutex<Vec<Ring>>,
}

#[derive(Default)]
struct Current {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// A counter's running total, a gauge's value.
    value: f64,
    sketch: Option<Sketch>,
    /// A histogram's observations since the start (never reset by a tick).
    all_time: Option<Box<cumulative::Cumulative>>,
}

impl SeriesRings {
    fn new(kind: Kind) -> Self {
        SeriesRings {
            kind,
            current: Mutex::new(Current::default()),
            rings: Mutex::new(RESOLUTIONS.iter().map(|&(w, c)| Ring::new(w, c)).collect()),
        }
    }

    fn observe(&self, v: f64, value: impl FnOnce(f64) -> f64) {
        let mut c = self.current.lock();
        if c.count == 0 {
            c.min = v;
            c.max = v;
        } else {
            c.min = c.min.min(v);
            c.max = c.max.max(v);
        }
        c.count += 1;
        c.sum += v;
        c.value = value(c.value);
        if self.kind == Kind::Histogram {
            c.sketch.get_or_insert_with(Sketch::default).add(v);
            c.all_time.get_or_insert_with(Default::default).add(v);
        }
    }

    /// Adds to a counter.
    pub fn increment(&self, n: u64) {
        self.observe(n as f64, |total| total + n as f64);
    }

    /// Sets a counter's total (from a source that counts itself); never goes down.
    pub fn absolute(&self, total: u64) {
        let mut c = self.current.lock();
        let total = total as f64;
        if total > c.value {
            let delta = total - c.value;
            drop(c);
            self.observe(delta, |_| total);
        } else {
            c.value = c.value.max(total);
        }
    }

    /// Sets a gauge.
    pub fn set(&self, v: f64) {
        self.observe(v, |_| v);
    }

    /// Moves a gauge by `delta`.
    pub fn add(&self, delta: f64) {
        let now = self.current.lock().value + delta;
        self.observe(now, |_| now);
    }

    /// Records one value into a histogram.
    pub fn record(&self, v: f64) {
        self.observe(v, |_| v);
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Files the current second under `second` and starts a new one.
    fn tick(&self, second: u64) {
        let bucket = {
            let mut c = self.current.lock();
            let b = Bucket {
                start: second,
                count: c.count,
                sum: c.sum,
                min: c.min,
                max: c.max,
                last: c.value,
                sketch: c.sketch.take().map(Box::new),
            };
            c.count = 0;
            c.sum = 0.0;
            b
        };
        for ring in self.rings.lock().iter_mut() {
            ring.add(&bucket);
        }
    }

    /// The latest value: a counter's total, a gauge's value, a histogram's last record.
    pub fn value(&self) -> f64 {
        self.current.lock().value
    }

    /// The minute starting at `start` (Unix seconds), from the one-minute ring, once filed.
    pub fn minute(&self, start: u64) -> Option<series::Bucket> {
        let rings = self.rings.lock();
        let ring = rings.iter().find(|r| r.width == 60)?;
        ring.buckets
            .iter()
            .rev()
            .find(|b| b.start == start)
            .cloned()
    }

    /// A histogram's observations since the start; `None` before the first.
    pub fn cumulative(&self) -> Option<cumulative::Cumulative> {
        self.current.lock().all_time.as_deref().cloned()
    }

    /// A histogram's quantiles over the last minute (from the 1-second ring).
    pub fn recent_quantiles(&self, qs: &[f64]) -> Vec<Option<f64>> {
        let rings = self.rings.lock();
        let mut merged = Sketch::default();
        for b in rings[0].buckets.iter().rev().take(60) {
            if let Some(s) = &b.sketch {
                merged.merge(s);
            }
        }
        qs.iter().map(|&q| merged.quantile(q)).collect()
    }
}

#[derive(Default)]
struct Inner {
    series: RwLock<BTreeMap<SeriesKey, Arc<SeriesRings>>>,
    descriptions: RwLock<BTreeMap<String, String>>,
    /// The last second filed; reads count "now" from it.
    now: Mutex<u64>,
    refused: std::sync::atomic::AtomicBool,
}

/// The store. Cheap to clone: clones share the series.
#[derive(Clone, Default)]
pub struct MetricsStore(Arc<Inner>);

/// Now, in Unix seconds: the clock the store files seconds by.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl MetricsStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The series for `key`, made on first use. A name already used with another kind
    /// keeps its first kind. `None` past [`MAX_SERIES`].
    pub fn series(&self, key: SeriesKey, kind: Kind) -> Option<Arc<SeriesRings>> {
        if let Some(s) = self.0.series.read().get(&key) {
            return Some(s.clone());
        }
        let mut map = self.0.series.write();
        if map.len() >= MAX_SERIES && !map.contains_key(&key) {
            if !self
                .0
                .refused
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(name = %key.name, "metrics store full ({MAX_SERIES} series): new series are dropped");
            }
            return None;
        }
        Some(
            map.entry(key)
                .or_insert_with(|| Arc::new(SeriesRings::new(kind)))
                .clone(),
        )
    }

    fn handle(&self, name: &str, labels: &[(&str, &str)], kind: Kind) -> Handle {
        Handle(self.series(SeriesKey::new(name, labels), kind))
    }

    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Handle {
        self.handle(name, labels, Kind::Counter)
    }

    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Handle {
        self.handle(name, labels, Kind::Gauge)
    }

    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Handle {
        self.handle(name, labels, Kind::Histogram)
    }

    pub fn describe(&self, name: &str, description: &str) {
        self.0
            .descriptions
            .write()
            .insert(name.to_owned(), description.to_owned());
    }

    /// Files the second that just ended for every series.
    pub fn tick_at(&self, second: u64) {
        let all: Vec<Arc<SeriesRings>> = self.0.series.read().values().cloned().collect();
        for s in all {
            s.tick(second);
        }
        *self.0.now.lock() = second + 1;
    }

    /// Files the second that just ended (by the wall clock) for every series.
    pub fn tick(&self) {
        self.tick_at(unix_now().saturating_sub(1));
    }

    /// Ticks once a second on the current tokio runtime, until the store is dropped
    /// everywhere else.
    pub fn spawn_ticker(&self) {
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                MetricsStore(inner).tick();
            }
        });
    }

    /// The series there are, sorted by name and labels.
    pub fn list(&self) -> Vec<SeriesInfo> {
        let descriptions = self.0.descriptions.read();
        self.0
            .series
            .read()
            .iter()
            .map(|(k, s)| SeriesInfo {
                key: k.clone(),
                kind: s.kind,
                description: descriptions.get(&k.name).cloned(),
            })
            .collect()
    }

    /// Every series named `name` whose labels include `labels`, over `[from, to)` in
    /// windows of `step` seconds. `None` when no series has that name.
    pub fn read(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        from: u64,
        to: u64,
        step: u64,
        agg: Agg,
    ) -> Option<Vec<SeriesData>> {
        let now = (*self.0.now.lock()).max(to.min(unix_now()));
        let map = self.0.series.read();
        let found: Vec<SeriesData> = map
            .iter()
            .filter(|(k, _)| k.name == name)
            .filter(|(k, _)| {
                labels
                    .iter()
                    .all(|(lk, lv)| k.labels.iter().any(|(k2, v2)| k2 == lk && v2 == lv))
            })
            .map(|(k, s)| {
                let (step, points) = series::read(&s.rings.lock(), now, from, to, step, agg);
                SeriesData {
                    key: k.clone(),
                    kind: s.kind,
                    agg,
                    step,
                    points,
                }
            })
            .collect();
        (!found.is_empty() || map.keys().any(|k| k.name == name)).then_some(found)
    }

    /// Every series with its latest value, for an exporter.
    pub fn current(&self) -> Vec<(SeriesInfo, Arc<SeriesRings>)> {
        let descriptions = self.0.descriptions.read();
        self.0
            .series
            .read()
            .iter()
            .map(|(k, s)| {
                (
                    SeriesInfo {
                        key: k.clone(),
                        kind: s.kind,
                        description: descriptions.get(&k.name).cloned(),
                    },
                    s.clone(),
                )
            })
            .collect()
    }

    /// Records the built-in series of a pipeline snapshot: per stage throughput, queue
    /// depth, in flight, lag and latency percentiles; totals by outcome.
    pub fn record_snapshot(&self, s: &Snapshot) {
        let p = s.pipeline.as_str();
        for st in &s.stages {
            let l = [("pipeline", p), ("stage", st.name.as_str())];
            self.gauge("flowdeck_stage_throughput", &l)
                .set(st.throughput);
            self.gauge("flowdeck_stage_queued", &l)
                .set(st.queued as f64);
            self.gauge("flowdeck_stage_in_flight", &l)
                .set(st.in_flight as f64);
            self.gauge("flowdeck_stage_lag_seconds", &l)
                .set(st.oldest_queued_ms as f64 / 1000.0);
            self.gauge("flowdeck_stage_latency_p50_seconds", &l)
                .set(st.latency.p50_us as f64 / 1e6);
            self.gauge("flowdeck_stage_latency_p99_seconds", &l)
                .set(st.latency.p99_us as f64 / 1e6);
        }
        let t = s.totals;
        for (outcome, n) in [
            ("completed", t.completed),
            ("failed", t.failed),
            ("cancelled", t.cancelled),
        ] {
            self.counter(
                "flowdeck_items_total",
                &[("pipeline", p), ("outcome", outcome)],
            )
            .absolute(n);
        }
    }
}

impl std::fmt::Debug for MetricsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetricsStore({} series)", self.0.series.read().len())
    }
}

/// A handle to one series; does nothing when the store refused the series.
#[derive(Clone)]
pub struct Handle(Option<Arc<SeriesRings>>);

impl Handle {
    pub fn increment(&self, n: u64) {
        if let Some(s) = &self.0 {
            s.increment(n);
        }
    }

    pub fn absolute(&self, total: u64) {
        if let Some(s) = &self.0 {
            s.absolute(total);
        }
    }

    pub fn set(&self, v: f64) {
        if let Some(s) = &self.0 {
            s.set(v);
        }
    }

    pub fn add(&self, delta: f64) {
        if let Some(s) = &self.0 {
            s.add(delta);
        }
    }

    pub fn record(&self, v: f64) {
        if let Some(s) = &self.0 {
            s.record(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_histograms_and_counters_read_back_per_second() {
        let store = MetricsStore::new();
        let mem = store.gauge("memory", &[]);
        let lat = store.histogram("latency", &[("stage", "a")]);
        let other = store.histogram("latency", &[("stage", "b")]);
        let done = store.counter("done", &[]);
        for t in 0..10u64 {
            mem.set(100.0 + t as f64);
            for v in 1..=100 {
                lat.record(v as f64);
            }
            other.record(5.0);
            done.absolute(t * 10);
            store.tick_at(5_000 + t);
        }
        let m = store
            .read("memory", &[], 5_000, 5_010, 5, Agg::Max)
            .unwrap();
        assert_eq!(
            m[0].points,
            vec![(5_000, Some(104.0)), (5_005, Some(109.0))]
        );
        let l = store
            .read("latency", &[("stage", "a")], 5_000, 5_010, 10, Agg::P99)
            .unwrap();
        assert_eq!(l.len(), 1);
        let p99 = l[0].points[0].1.unwrap();
        assert!((p99 - 99.0).abs() < 2.0, "{p99}");
        assert_eq!(
            store
                .read("latency", &[], 5_000, 5_010, 10, Agg::Count)
                .unwrap()
                .len(),
            2
        );
        let d = store
            .read("done", &[], 5_000, 5_010, 10, Agg::Rate)
            .unwrap();
        assert_eq!(d[0].points[0].1, Some(9.0));
        assert!(store.read("nothing", &[], 0, 10, 1, Agg::Last).is_none());
        assert_eq!(store.list().len(), 4);
        // A total that goes back (a restarted source) does not make the counter go down.
        done.absolute(3);
        assert_eq!(
            store.0.series.read()[&SeriesKey::new("done", &[])].value(),
            90.0
        );
    }

    #[test]
    fn the_store_refuses_series_past_its_bound() {
        let store = MetricsStore::new();
        for i in 0..MAX_SERIES {
            store.counter("c", &[("i", &i.to_string())]).increment(1);
        }
        let extra = store.counter("c", &[("i", "overflow")]);
        extra.increment(1);
        assert!(extra.0.is_none());
        assert_eq!(store.list().len(), MAX_SERIES);
    }
}
