//! Stored runs read back for their pages and the API: a run's picture in the shape of the
//! live stream's (its last snapshot, its error summary counted over the kept items, its
//! throughput a point a minute from the stored metric rollups), a page of its items with
//! the filter tabs' counts, one item with its provenance. Every function blocks on SQLite:
//! call them off the runtime's threads.

use flowdeck_protocol::{
    metrics::{Agg, Kind, SeriesData, SeriesInfo, SeriesKey, SeriesQuery},
    page::SeriesRef,
    runs::{RunInfo, RunTaskPage, RunTaskQuery, RunView, StoreStatus, StoredRun, Timeline},
    stream::{Full, Point},
    ItemId, TaskDetail,
};
use flowdeck_store::{ItemQuery, MetricPoint, RunId, Store, StoreError};

/// The runs, newest first (only `pipeline`'s when given), and the store's state (`live`: the live run's id).
pub fn runs(
    store: &Store,
    live: RunId,
    pipeline: Option<String>,
) -> Result<(Vec<RunInfo>, StoreStatus), StoreError> {
    let q = flowdeck_store::RunQuery {
        pipeline,
        ..Default::default()
    };
    Ok((store.runs(&q)?, store.status(live)))
}

/// A run's picture for its pages, at its end or as it was at `at` ms of its uptime;
/// `None` for an unknown run. A run with no snapshot kept shows its end.
pub fn run_view(store: &Store, id: RunId, at: Option<u64>) -> Result<Option<RunView>, StoreError> {
    let Some(mut run) = store.run(id)? else {
        return Ok(None);
    };
    let mut warnings = std::mem::take(&mut run.warnings);
    let moment = match at {
        Some(at) => store.moment(id, at)?,
        None => None,
    };
    let mut snapshot = match moment {
        // Replay: the snapshot kept at or just before `at`, with the warnings firing then.
        Some(moment) => {
            let then = moment.at_ms;
            warnings.retain(|w| w.first_seen_ms <= then && w.cleared_ms.is_none_or(|c| c > then));
            moment.snapshot
        }
        None => {
            let mut last = run.snapshot.clone().unwrap_or_default();
            if let Some(end) = run.info.ended_ms {
                last.uptime_ms = end.saturating_sub(run.info.started_ms);
            }
            last
        }
    };
    // Every warning the run had (or had then), not just those its snapshot carried.
    snapshot.warnings = warnings;
    snapshot.pipeline = run.info.pipeline.clone();
    snapshot.started_unix_ms = run.info.started_ms;
    let errors = store.errors(id, run.stages.len())?;
    let history = throughput(store, &run)?;
    Ok(Some(RunView {
        full: Full {
            id: 0,
            snapshot,
            retention: 0,
            items: Vec::new(),
            history,
            errors,
            questions: Vec::new(),
        },
        run,
    }))
}

/// A stored run's timeline for replay; `None` for an unknown run.
pub fn run_timeline(store: &Store, id: RunId) -> Result<Option<Timeline>, StoreError> {
    if store.run(id)?.is_none() {
        return Ok(None);
    }
    let (points, step) = thin(store.timeline(id)?, TIMELINE_POINTS);
    Ok(Some(Timeline {
        resolution_ms: crate::persist::PROGRESS_EVERY.as_millis() as u64 * step as u64,
        points,
    }))
}

/// The most points a timeline answers: an hour of snapshots at 5 s. A day's run keeps
/// 17,280, too many for a slider's stops or one response; past this the timeline keeps one
/// point in every `step` (and always the last, the run's end). `/at` still reads any
/// moment at the snapshots' own resolution.
pub const TIMELINE_POINTS: usize = 720;

/// Every `step`th of `points` and the last, with the smallest step that keeps at most `max`.
fn thin<T>(points: Vec<T>, max: usize) -> (Vec<T>, usize) {
    if points.len() <= max || max < 2 {
        return (points, 1);
    }
    // `max - 1` evenly spaced points from the first, then the last.
    let step = (points.len() - 1).div_ceil(max - 1);
    let last = points.len() - 1;
    let kept = points
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i == last)
        .map(|(_, p)| p)
        .collect();
    (kept, step)
}

/// A point a minute over the run, from the stored rollups of its counters (items in, out
/// and failed per second) and gauges (what was queued and running, summed over stages).
fn throughput(store: &Store, run: &StoredRun) -> Result<Vec<Point>, StoreError> {
    let p = run.info.pipeline.as_str();
    let from = run.info.started_ms / 1000 / 60 * 60;
    let to = run.info.ended_ms.unwrap_or(run.info.started_ms) / 1000 + 60;
    let counter = |outcome: &str| -> Result<Vec<(u64, f64)>, StoreError> {
        let key = SeriesKey::new(
            "flowdeck_items_total",
            &[("pipeline", p), ("outcome", outcome)],
        );
        Ok(store
            .metric_points(&key.display(), from, to)?
            .into_iter()
            .map(|m| (m.minute, m.sum / 60.0))
            .collect())
    };
    let gauge_sum = |name: &str| -> Result<Vec<(u64, f64)>, StoreError> {
        let mut by_minute = std::collections::BTreeMap::<u64, f64>::new();
        for stage in &run.stages {
            let key = SeriesKey::new(name, &[("pipeline", p), ("stage", stage.as_str())]);
            for m in store.metric_points(&key.display(), from, to)? {
                *by_minute.entry(m.minute).or_default() += m.last;
            }
        }
        Ok(by_minute.into_iter().collect())
    };
    let (completed, failed, cancelled) = (
        counter("completed")?,
        counter("failed")?,
        counter("cancelled")?,
    );
    let (queued, running) = (
        gauge_sum("flowdeck_stage_queued")?,
        gauge_sum("flowdeck_stage_in_flight")?,
    );
    let at = |list: &[(u64, f64)], minute: u64| {
        list.iter()
            .find(|(m, _)| *m == minute)
            .map_or(0.0, |(_, v)| *v)
    };
    let mut minutes: Vec<u64> = completed
        .iter()
        .chain(&failed)
        .chain(&queued)
        .map(|(m, _)| *m)
        .collect();
    minutes.sort_unstable();
    minutes.dedup();
    Ok(minutes
        .into_iter()
        .map(|m| {
            let out = at(&completed, m) + at(&failed, m) + at(&cancelled, m);
            Point {
                at_ms: (m * 1000).saturating_sub(run.info.started_ms),
                // What came in is what went out plus what the queues grew by: at a minute's
                // resolution, what went out is the honest figure for both.
                input_rate: out,
                output_rate: out,
                failed_rate: at(&failed, m),
                queued: at(&queued, m) as u64,
                running: at(&running, m) as u64,
            }
        })
        .collect())
}

/// A page of a run's items and the counts of its filter tabs; `None` for an unknown run.
pub fn run_tasks(
    store: &Store,
    id: RunId,
    q: &RunTaskQuery,
) -> Result<Option<RunTaskPage>, StoreError> {
    if store.run(id)?.is_none() {
        return Ok(None);
    }
    let text = Some(q.text.trim()).filter(|t| !t.is_empty());
    let (page, counts) = store.items_counted(
        id,
        &ItemQuery {
            status: q.status,
            stage: q.stage,
            text: text.map(str::to_owned),
            sort: q.sort,
            offset: q.offset,
            limit: 100,
            at_us: q.at_ms.map(|ms| ms.saturating_mul(1000)),
        },
    )?;
    Ok(Some(RunTaskPage { page, counts }))
}

/// One of a run's items with its provenance, as the task page shows it.
pub fn run_task(store: &Store, id: RunId, item: ItemId) -> Result<Option<TaskDetail>, StoreError> {
    let Some(run) = store.run(id)? else {
        return Ok(None);
    };
    let Some(detail) = store.item(id, item)? else {
        return Ok(None);
    };
    let provenance = store.provenance(id, item)?;
    let now_ms = run
        .info
        .ended_ms
        .unwrap_or(run.info.started_ms)
        .saturating_sub(run.info.started_ms);
    Ok(Some(TaskDetail {
        detail,
        provenance,
        stage_names: run.stages,
        started_unix_ms: run.info.started_ms,
        now_ms,
        retryable: None,
        from_store: false,
    }))
}

/// One item of the live run: the tracker's detail while it retains the item, else the copy
/// the store kept when it finished. The tracker keeps the newest `retention` items, while
/// links into the live run (the errors page, a warning, a log line, `flowdeck top`) outlive
/// that; `from_store` tells the page where the detail came from. `None` when neither has it.
pub async fn live_task(
    hub: &crate::Hub,
    store: Option<(Store, RunId)>,
    item: ItemId,
) -> Result<Option<TaskDetail>, String> {
    if let Some(task) = hub.task(item) {
        return Ok(Some(task));
    }
    let Some((store, run)) = store else {
        return Ok(None);
    };
    let pipeline = hub.pipeline().clone();
    tokio::task::spawn_blocking(move || {
        let Some(mut task) = run_task(&store, run, item).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        task.now_ms = pipeline.clock().1;
        task.retryable = pipeline.can_retry(item);
        task.from_store = true;
        Ok(Some(task))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The minutes (Unix seconds, each a minute's start) a run spans: to its end, or to now
/// while it runs. Metric rollups are kept by the minute for the whole process, so a run's
/// metrics are the minutes it ran.
fn run_minutes(run: &StoredRun) -> (u64, u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let end = run.info.ended_ms.unwrap_or(now).max(run.info.started_ms);
    (run.info.started_ms / 60_000 * 60, end / 60_000 * 60)
}

/// A stored series' kind: as the live process declares it when it knows the name,
/// else from the Prometheus naming convention (`_total` counts).
fn kind_of(name: &str, known: &[SeriesInfo]) -> Kind {
    known
        .iter()
        .find(|i| i.key.name == name)
        .map(|i| i.kind)
        .unwrap_or(if name.ends_with("_total") {
            Kind::Counter
        } else {
            Kind::Gauge
        })
}

/// The series with points during a run, for its Metrics page; `None` for an unknown run.
pub fn run_metric_list(
    store: &Store,
    id: RunId,
    known: &[SeriesInfo],
) -> Result<Option<Vec<SeriesInfo>>, StoreError> {
    let Some(run) = store.run(id)? else {
        return Ok(None);
    };
    let (from, to) = run_minutes(&run);
    Ok(Some(
        store
            .metric_series(from, to)?
            .into_iter()
            .filter_map(|s| s.parse::<SeriesRef>().ok())
            .map(|r| SeriesInfo {
                kind: kind_of(&r.name, known),
                key: SeriesKey {
                    name: r.name,
                    labels: r.labels,
                },
                description: None,
            })
            .collect(),
    ))
}

/// Series over a stored run from the minute rollups: a point per minute (or per whole
/// number of minutes when `q.step` asks for fewer points). The store keeps each minute's
/// count, sum, min, max and last, so every aggregation but the percentiles can be read
/// back; a histogram is read as its mean unless another is asked for. `Ok(Err)` names a
/// query the store cannot answer; `None` is an unknown run.
pub fn run_series(
    store: &Store,
    id: RunId,
    q: &SeriesQuery,
    known: &[SeriesInfo],
) -> Result<Option<Result<Vec<SeriesData>, String>>, StoreError> {
    let Some(run) = store.run(id)? else {
        return Ok(None);
    };
    if matches!(q.agg, Some(Agg::P50 | Agg::P95 | Agg::P99)) {
        return Ok(Some(Err(
            "percentiles are not kept for past runs: each minute keeps count, sum, min, max \
             and last (use avg, min or max)"
                .into(),
        )));
    }
    let (from, to) = run_minutes(&run);
    let minutes = q.step.unwrap_or(60).div_ceil(60).max(1);
    let step = minutes * 60;
    let names = store.metric_series(from, to)?;
    let mut out = Vec::new();
    for wanted in &q.series {
        for name in &names {
            let Ok(r) = name.parse::<SeriesRef>() else {
                continue;
            };
            if r.name != wanted.name || !wanted.labels.iter().all(|l| r.labels.contains(l)) {
                continue;
            }
            let kind = kind_of(&r.name, known);
            let agg = q.agg.unwrap_or(match kind {
                Kind::Histogram => Agg::Avg,
                k => k.default_agg(),
            });
            let rows = store.metric_points(name, from, to)?;
            let mut points = Vec::new();
            let mut rest = rows.as_slice();
            let mut at = from;
            while at <= to {
                // Rows come oldest first: each window takes the next few.
                let n = rest.partition_point(|p| p.minute < at + step);
                let (window, later) = rest.split_at(n);
                points.push((at, fold(agg, window, step)));
                rest = later;
                at += step;
            }
            out.push(SeriesData {
                key: SeriesKey {
                    name: r.name,
                    labels: r.labels,
                },
                kind,
                agg,
                step,
                points,
            });
        }
    }
    Ok(Some(Ok(out)))
}

/// One window of minute rollups as one value; `None` for an empty window (or a
/// percentile, which the rollups cannot give).
fn fold(agg: Agg, window: &[MetricPoint], step: u64) -> Option<f64> {
    let last = window.last()?;
    let count: u64 = window.iter().map(|p| p.count).sum();
    let sum: f64 = window.iter().map(|p| p.sum).sum();
    Some(match agg {
        Agg::Last => last.last,
        Agg::Sum => sum,
        Agg::Rate => sum / step as f64,
        Agg::Avg => sum / count.max(1) as f64,
        Agg::Min => window.iter().map(|p| p.min).fold(f64::INFINITY, f64::min),
        Agg::Max => window
            .iter()
            .map(|p| p.max)
            .fold(f64::NEG_INFINITY, f64::max),
        Agg::Count => count as f64,
        Agg::P50 | Agg::P95 | Agg::P99 => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::thin;

    #[test]
    fn a_long_timeline_keeps_evenly_spaced_points_and_its_end() {
        let day: Vec<u32> = (0..17_280).collect();
        let (kept, step) = thin(day, 720);
        assert!(kept.len() <= 720, "{}", kept.len());
        assert_eq!(step, 25);
        assert_eq!(kept.first(), Some(&0));
        assert_eq!(kept.last(), Some(&17_279), "the run's end is always kept");
        assert!(kept.windows(2).all(|w| w[1] - w[0] <= 25));
        // Short ones are whole.
        assert_eq!(
            thin((0..720).collect::<Vec<u32>>(), 720),
            ((0..720).collect(), 1)
        );
        let (kept, step) = thin((0..721).collect::<Vec<u32>>(), 720);
        assert_eq!((kept.len(), step), (361, 2));
        assert_eq!(kept.last(), Some(&720));
    }
}
