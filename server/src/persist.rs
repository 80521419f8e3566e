//! Recording a run into the run store, for as long as the dashboard serves it: the run's
//! start, every item that finishes (handed over by the tracker, shed under load by the
//! store's policy), its snapshot every few seconds, its end; each minute's metric rollups;
//! log records at warn and above; and the audit log (through [`crate::audit::Audit`]).
//! Everything here runs beside the pipeline and never holds it up.

use std::{sync::Arc, time::Duration};

use flowdeck_protocol::{ItemDetail, ItemStatus, PipelineState};
use flowdeck_runtime::{
    logs::{LogBuffer, LogQuery},
    metrics::{unix_now, MetricsStore},
    FinishedSink, PipelineHandle,
};
use flowdeck_store::{MetricPoint, RunId, RunStart, RunState, Store};

/// The tracker's way into the store.
struct Sink {
    store: Store,
    run: RunId,
}

impl FinishedSink for Sink {
    fn wants(&self, status: ItemStatus) -> bool {
        self.store.wants(status)
    }

    fn finished(&self, items: Vec<ItemDetail>) {
        for item in items {
            self.store.keep_item(self.run, item);
        }
    }

    fn skipped(&self, n: u64) {
        self.store.shed(self.run, n);
    }

    fn amended(&self, items: Vec<ItemDetail>) {
        for item in items {
            self.store.amend_item(self.run, item);
        }
    }
}

/// How often a running run's snapshot is written: the resolution of its replay.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How often captured logs are looked at for warnings to keep.
const LOGS_EVERY: Duration = Duration::from_secs(2);

/// Starts recording `pipeline`'s run; returns its id in the store, and a flag that turns
/// true once the run's end is committed. The tasks it spawns end with the run (logs and
/// metrics go on while the dashboard serves).
pub(crate) fn record(
    store: &Store,
    pipeline: &PipelineHandle,
    metrics: &MetricsStore,
    logs: &LogBuffer,
    process_wide: bool,
) -> (RunId, tokio::sync::watch::Receiver<bool>) {
    let snapshot = pipeline.snapshot();
    let run = store.begin_run(RunStart {
        pipeline: pipeline.name().to_owned(),
        started_ms: snapshot.started_unix_ms,
        stages: pipeline.stage_names().to_vec(),
        edges: snapshot.edges.clone(),
    });
    let sink = Sink {
        store: store.clone(),
        run,
    };
    let tracker = pipeline.tracker();
    tracker.set_sink(Arc::new(Sink {
        store: store.clone(),
        run,
    }));
    // The pipeline may have started before the dashboard did: what finished before the
    // sink was set is kept now, from the tracker's retention (an item that also reached
    // the sink is written twice, which the store's upsert makes harmless).
    for status in [
        ItemStatus::Failed,
        ItemStatus::Completed,
        ItemStatus::Cancelled,
    ] {
        let ids: Vec<_> = tracker
            .items(Some(status), None, usize::MAX)
            .into_iter()
            .map(|s| s.id)
            .collect();
        // A thousand items a lock: one lock for all would hold the pipeline's events up.
        let details: Vec<_> = ids.chunks(1_000).flat_map(|c| tracker.details(c)).collect();
        if sink.wants(status) {
            sink.finished(details);
        } else {
            sink.skipped(details.len() as u64);
        }
    }
    // The run is listed from the first request on: its record is committed now, not at
    // the writer's next window (a few milliseconds, once, at startup).
    store.flush();
    let (ended, recorded) = tokio::sync::watch::channel(false);
    tokio::spawn(keep_questions(store.clone(), pipeline.clone(), run));
    tokio::spawn(follow_run(
        store.clone(),
        pipeline.clone(),
        metrics.clone(),
        run,
        ended,
    ));
    // The metrics table keys series by name alone, and the logs are the process's: one
    // pipeline of a dashboard keeps them (the first), or names would collide.
    if process_wide {
        tokio::spawn(keep_metrics(store.clone(), metrics.clone()));
        tokio::spawn(keep_warnings(store.clone(), logs.clone()));
    }
    (run, recorded)
}

/// Writes the run's questions as they are asked and closed: first those it has now, then
/// each change. A lag (over a thousand changes at once) writes them all again.
async fn keep_questions(store: Store, pipeline: PipelineHandle, run: RunId) {
    use tokio::sync::broadcast::error::RecvError;
    let questions = pipeline.questions();
    let mut changes = questions.subscribe();
    let write_all = |store: &Store| {
        let questions = pipeline.questions();
        for q in questions.pending().into_iter().chain(questions.closed()) {
            store.keep_question(run, q);
        }
    };
    write_all(&store);
    let done = pipeline.wait();
    tokio::pin!(done);
    loop {
        let change = tokio::select! {
            c = changes.recv() => c,
            _ = &mut done => break,
        };
        match change {
            Ok(c) => {
                let store = store.clone();
                let q = c.question().clone();
                // The writer's queue may be full for a moment: wait for room off the runtime.
                let _ = tokio::task::spawn_blocking(move || store.keep_question(run, q)).await;
            }
            Err(RecvError::Lagged(_)) => write_all(&store),
            Err(RecvError::Closed) => break,
        }
    }
    // The run's end closed what still waited: written as it closed.
    while let Ok(c) = changes.try_recv() {
        store.keep_question(run, c.question().clone());
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes the run's snapshot every few seconds, and its end.
async fn follow_run(
    store: Store,
    pipeline: PipelineHandle,
    metrics: MetricsStore,
    run: RunId,
    ended: tokio::sync::watch::Sender<bool>,
) {
    let mut every = tokio::time::interval(PROGRESS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let done = pipeline.wait();
    tokio::pin!(done);
    let mut warnings = KeptWarnings::default();
    loop {
        tokio::select! {
            _ = &mut done => break,
            _ = every.tick() => {
                store.progress(run, pipeline.snapshot(), now_ms());
                store.keep_warnings(run, warnings.changed(&pipeline));
            }
        }
    }
    // The warnings' last check follows the end by moments: what fired clears then.
    let _ = tokio::time::timeout(Duration::from_secs(2), pipeline.warnings_settled()).await;
    let snapshot = pipeline.snapshot();
    store.keep_warnings(run, warnings.changed(&pipeline));
    let state = match snapshot.state {
        PipelineState::Aborted => RunState::Aborted,
        _ => RunState::Finished,
    };
    // The run's last seconds of metrics, which the next periodic write might not see.
    store.metrics(minute_points(&metrics, unix_now() / 60 * 60));
    let store2 = store.clone();
    // The end waits for room in the writer's queue: off the runtime's threads.
    let _ = tokio::task::spawn_blocking(move || {
        store2.end_run(run, state, snapshot, now_ms());
        store2.flush();
    })
    .await;
    ended.send_replace(true);
}

/// The warnings as last written: each is written again only when it was seen again or
/// cleared since.
#[derive(Default)]
struct KeptWarnings(std::collections::HashMap<WarningKey, (u64, Option<u64>)>);

/// A warning's identity: its rule, stage and worker, and when it was first seen.
type WarningKey = (flowdeck_protocol::Rule, Option<String>, Option<u16>, u64);

impl KeptWarnings {
    /// Only the warnings the engine still lists are remembered: one that has left its
    /// list of recent ones never comes back, so the map stays as small as that list.
    fn changed(&mut self, pipeline: &PipelineHandle) -> Vec<flowdeck_protocol::Warning> {
        let (current, recent) = pipeline.warnings();
        let mut listed = std::collections::HashMap::with_capacity(current.len() + recent.len());
        let changed = current
            .into_iter()
            .chain(recent)
            .filter(|w| {
                let key = (w.rule, w.stage.clone(), w.worker, w.first_seen_ms);
                let now = (w.last_seen_ms, w.cleared_ms);
                let same = self.0.get(&key) == Some(&now);
                listed.insert(key, now);
                !same
            })
            .collect();
        self.0 = listed;
        changed
    }
}

/// How often the minute under way is written (again): a run's metrics are in the store
/// this soon, and a crash loses at most this much of them.
const METRICS_EVERY: Duration = Duration::from_secs(5);

/// Keeps every series' minute rollups: the minute under way every few seconds (each write
/// replaces the last), and a minute once more when it is whole.
async fn keep_metrics(store: Store, metrics: MetricsStore) {
    let mut every = tokio::time::interval(METRICS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_minute = unix_now() / 60 * 60;
    loop {
        every.tick().await;
        let minute = unix_now() / 60 * 60;
        if minute != last_minute {
            store.metrics(minute_points(&metrics, last_minute));
            last_minute = minute;
        }
        store.metrics(minute_points(&metrics, minute));
    }
}

/// Every series' rollup of one minute (Unix seconds of its start).
fn minute_points(metrics: &MetricsStore, minute: u64) -> Vec<MetricPoint> {
    metrics
        .current()
        .into_iter()
        .filter_map(|(info, series)| {
            let b = series.minute(minute)?;
            (b.count > 0 || b.last != 0.0).then(|| MetricPoint {
                series: info.key.display(),
                minute,
                count: b.count,
                sum: b.sum,
                min: b.min,
                max: b.max,
                last: b.last,
            })
        })
        .collect()
}

/// Keeps the log records at warn and above.
async fn keep_warnings(store: Store, logs: LogBuffer) {
    let mut every = tokio::time::interval(LOGS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut since = 0;
    loop {
        every.tick().await;
        let Ok(mut q) = LogQuery::parse(Some("warn"), None, None, Some(since), None) else {
            return;
        };
        q.limit = Some(10_000);
        let page = logs.page(&q);
        since = page.latest.max(since);
        store.logs(page.records);
    }
}
