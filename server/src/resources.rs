//! The process's resources as series: the gauges the dashboard files every second into
//! its metrics store (for the Metrics page and charts) and `/prometheus` exposes.

use std::time::{Duration, Instant};

use flowdeck_protocol::Resources;
use flowdeck_runtime::{metrics::MetricsStore, resources::Sampler};
use parking_lot::Mutex;

/// What this process uses now. Each pipeline of a dashboard files it every second, and
/// they all describe the one process: it is sampled at most twice a second, whichever
/// asks, rather than once per pipeline (a dashboard may serve a hundred).
pub fn now() -> Resources {
    type Last = Option<(Sampler, Instant, Resources)>;
    static LAST: Mutex<Last> = Mutex::new(None);
    let mut last = LAST.lock();
    match last.as_mut() {
        Some((_, at, r)) if at.elapsed() < Duration::from_millis(500) => r.clone(),
        Some((sampler, at, r)) => {
            (*at, *r) = (Instant::now(), sampler.sample());
            r.clone()
        }
        None => {
            let mut sampler = Sampler::new();
            let r = sampler.sample();
            *last = Some((sampler, Instant::now(), r.clone()));
            r
        }
    }
}

/// A resource gauge: its name, help, and how it reads a sample.
type ResourceSeries = (&'static str, &'static str, fn(&Resources) -> Option<f64>);

/// The process's resources as series, on the Metrics page, in charts and in `/prometheus`.
pub const RESOURCE_SERIES: [ResourceSeries; 8] = [
    (
        "flowdeck_process_cpu_ratio",
        "CPU seconds per second over the last second: 1 is one core busy.",
        |r| r.cpu_ratio,
    ),
    (
        "flowdeck_process_resident_memory_bytes",
        "Resident memory size in bytes.",
        |r| r.resident_bytes.map(|b| b as f64),
    ),
    ("flowdeck_process_threads", "Threads of the process.", |r| {
        r.threads.map(f64::from)
    }),
    (
        "flowdeck_process_open_files",
        "Open file descriptors of the process (Linux only).",
        |r| r.open_files.map(f64::from),
    ),
    (
        "flowdeck_runtime_workers",
        "Worker threads of the tokio runtime.",
        |r| Some(f64::from(r.runtime_workers)),
    ),
    (
        "flowdeck_runtime_busy_ratio",
        "Share of the last second the tokio runtime's workers spent running tasks.",
        |r| r.runtime_busy_ratio,
    ),
    (
        "flowdeck_runtime_global_queue_depth",
        "Tasks waiting in the tokio runtime's global queue.",
        |r| Some(r.runtime_global_queue as f64),
    ),
    (
        "flowdeck_runtime_tasks",
        "Tasks alive in the tokio runtime.",
        |r| Some(r.runtime_tasks as f64),
    ),
];

/// Files a resource sample into the metrics store: the `flowdeck_process_*` and
/// `flowdeck_runtime_*` gauges, and the two older names pages may still use
/// (`process_resident_memory_bytes`, `process_cpu_ratio`).
pub fn record(store: &MetricsStore, r: &Resources) {
    for (name, _, read) in RESOURCE_SERIES {
        if let Some(v) = read(r) {
            store.gauge(name, &[]).set(v);
        }
    }
    if let Some(bytes) = r.resident_bytes {
        store
            .gauge("process_resident_memory_bytes", &[])
            .set(bytes as f64);
    }
    if let Some(cpu) = r.cpu_ratio {
        store.gauge("process_cpu_ratio", &[]).set(cpu);
    }
}
