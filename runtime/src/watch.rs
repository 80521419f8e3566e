//! What watches a running pipeline for its whole life, each in a task of its own: the
//! user's [`Monitor`]s, the health warnings' check once a second (with the probe of the
//! async runtime's scheduling delay), and the terminal progress display. Each follows the
//! run with [`every_until_end`] and looks once more at its end.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use flowdeck_protocol::{PipelineState, Snapshot};
use parking_lot::Mutex;

use crate::{
    handle::PipelineHandle,
    warnings::{Change, Engine, Signals, WarningCallback},
};

/// Watches a pipeline: called with a fresh snapshot at start, every interval, and at the end.
/// The hook for a terminal progress bar, a log line, or a custom exporter. (Not the web
/// dashboard: that is `flowdeck::Monitor`, which serves a pipeline.)
///
/// ```
/// use std::{sync::{Arc, Mutex}, time::Duration};
/// use flowdeck_runtime::{protocol::Snapshot, Monitor, Line, Stage};
///
/// struct Progress(Arc<Mutex<Vec<u64>>>);
/// impl Monitor for Progress {
///     fn on_update(&mut self, s: &Snapshot) {
///         self.0.lock().unwrap().push(s.totals.completed);
///     }
///     fn on_finish(&mut self, s: &Snapshot) {
///         self.0.lock().unwrap().push(s.totals.completed);
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let report = Line::<u32>::new("progress")
///     .stage(Stage::map("work", |n: u32, _cx| async move { Ok::<_, String>(n) }))
///     .monitor(Progress(seen.clone()), Duration::from_millis(10))
///     .build()
///     .unwrap()
///     .run(0..100)
///     .await;
/// assert_eq!(report.outputs.len(), 100);
/// assert_eq!(seen.lock().unwrap().last(), Some(&100)); // on_finish saw everything
/// # });
/// ```
pub trait Monitor: Send + 'static {
    fn on_start(&mut self, _snapshot: &Snapshot) {}
    fn on_update(&mut self, snapshot: &Snapshot);
    fn on_finish(&mut self, _snapshot: &Snapshot) {}
}

/// Runs one [`Monitor`] for the life of the pipeline. Its methods are user code: a panic in
/// one is logged and the monitor keeps being called.
pub(crate) async fn drive(mut monitor: Box<dyn Monitor>, every: Duration, handle: PipelineHandle) {
    let mut call = |f: &mut dyn FnMut(&mut dyn Monitor)| {
        if let Err(m) = crate::guard::call(|| f(monitor.as_mut())) {
            tracing::error!("a pipeline monitor panicked: {m}");
        }
    };
    call(&mut |m| m.on_start(&handle.snapshot()));
    every_until_end(&handle, every.max(Duration::from_millis(10)), || {
        call(&mut |m| m.on_update(&handle.snapshot()))
    })
    .await;
    let last = handle.snapshot();
    debug_assert!(matches!(
        last.state,
        PipelineState::Finished | PipelineState::Aborted
    ));
    call(&mut |m| m.on_finish(&last));
}

/// Calls `on_tick` every `every` (the first at once; missed ticks are skipped) until the
/// pipeline ends: the loop of every watcher that follows a run (monitors, the health
/// warnings, the progress display), each of which then looks once more at the end.
pub(crate) async fn every_until_end(
    handle: &PipelineHandle,
    every: Duration,
    mut on_tick: impl FnMut(),
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let done = handle.wait();
    tokio::pin!(done);
    loop {
        tokio::select! {
            _ = &mut done => break,
            _ = tick.tick() => on_tick(),
        }
    }
}

/// The engine run on the pipeline's snapshots once a second: it logs each firing at WARN
/// and each clearing at INFO, once, calls the `on_warning` callbacks, and leaves the state
/// where [`crate::PipelineHandle::warnings`] and the snapshots read it.
pub(crate) struct WarningWatch {
    pub engine: Arc<Mutex<Engine>>,
    pub callbacks: Vec<WarningCallback>,
}

/// How often the health monitor checks, and how often the probe measures the runtime's
/// scheduling delay (a sleep that wakes late was ready and not run).
const CHECK_EVERY: Duration = Duration::from_secs(1);
const PROBE_EVERY: Duration = Duration::from_millis(50);

impl WarningWatch {
    /// Checks the pipeline every second until it ends, then once more on its last state.
    /// Times come from tokio's clock, so a test with paused time runs the rules in no
    /// wall time.
    pub(crate) async fn watch(mut self, handle: PipelineHandle) {
        let start = tokio::time::Instant::now();
        let late = Arc::new(AtomicU64::new(0));
        let probe = tokio::spawn(probe(late.clone()));
        every_until_end(&handle, CHECK_EVERY, || {
            self.check(&handle, start, late.swap(0, Ordering::Relaxed))
        })
        .await;
        probe.abort();
        self.check(&handle, start, late.swap(0, Ordering::Relaxed));
        handle.shared.health_final.send_replace(true);
    }

    fn check(&mut self, handle: &PipelineHandle, start: tokio::time::Instant, late_ms: u64) {
        let snap = handle.snapshot();
        let h = handle.clone();
        let signals = Signals {
            late_ms,
            failures_by_kind: handle.tracker().errors_by_kind(),
            group_of: Some(crate::warnings::GroupOf(std::sync::Arc::new(move |id| {
                h.group_of(id)
            }))),
        };
        let at_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let changes = self.engine.lock().observe(at_ms, &snap, &signals);
        for c in &changes {
            match c {
                Change::Fired(w) => tracing::warn!(
                    rule = w.rule.name(),
                    stage = w.stage.as_deref().unwrap_or(""),
                    "{}",
                    w.message
                ),
                Change::Cleared(w) => tracing::info!(
                    rule = w.rule.name(),
                    stage = w.stage.as_deref().unwrap_or(""),
                    "cleared: {}",
                    w.message
                ),
            }
            for f in &self.callbacks {
                if let Err(m) = crate::guard::call(|| f(c)) {
                    tracing::error!("an on_warning callback panicked: {m}");
                }
            }
        }
    }
}

/// Measures how late the runtime runs a task that is ready: it sleeps [`PROBE_EVERY`] and
/// keeps the worst overshoot until the monitor takes it. A thread blocked by a task (a
/// blocking call, heavy CPU without `spawn_blocking`) shows here as a late wake-up. This
/// needs no `tokio_unstable` build, where tokio's scheduling-delay metrics (and
/// tokio-metrics' runtime monitor) do.
async fn probe(late: Arc<AtomicU64>) {
    loop {
        let before = tokio::time::Instant::now();
        tokio::time::sleep(PROBE_EVERY).await;
        let over = before.elapsed().saturating_sub(PROBE_EVERY);
        late.fetch_max(
            u64::try_from(over.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}
