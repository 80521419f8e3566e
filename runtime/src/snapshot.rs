//! Snapshots: the whole pipeline at one moment, from the workers' own counters (always
//! current) and the tracker's status counts (exact once it has caught up).

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use flowdeck_protocol::{
    Latency, PipelineState, Snapshot, StageSnapshot, Totals, WorkerSnapshot, WorkerState,
};

use crate::{
    clock::micros,
    handle::PipelineHandle,
    histogram::Counts,
    pipeline::{Dashboard, Shared},
};

/// Rates and percentiles are measured over windows of at least this.
const MIN_WINDOW: Duration = Duration::from_millis(100);

#[derive(Default, Clone)]
struct StagePrev {
    done: u64,
    hist: Counts,
    busy_us: Vec<u64>,
    busy_ratio: Vec<f64>,
    throughput: f64,
    latency: Latency,
}

/// What the previous snapshot saw, to turn counters into rates.
#[derive(Default)]
pub(crate) struct Rates {
    at: Option<Instant>,
    left: u64,
    throughput: f64,
    stages: Vec<StagePrev>,
}

pub(crate) fn take(shared: &Shared) -> Snapshot {
    let now = Instant::now();
    let now_us = shared.env.clock.now_us();
    let mut rates = shared.rates.lock();
    let window = rates.at.map(|at| now - at);
    let refresh = window.is_none_or(|w| w >= MIN_WINDOW);
    let secs = window.map_or(0.0, |w| w.as_secs_f64());
    rates
        .stages
        .resize(shared.stages.len(), StagePrev::default());

    let mut stages = Vec::with_capacity(shared.stages.len());
    let (mut left, mut failed, mut cancelled, mut retried, mut queued, mut running) =
        (0, 0, 0, 0, 0, 0);
    for (stage, prev) in shared.stages.iter().zip(rates.stages.iter_mut()) {
        let slots = stage.slots();
        let mut hist = Counts::default();
        let mut workers = Vec::with_capacity(slots.len());
        let mut s = StageSnapshot {
            name: stage.name().to_owned(),
            paused: stage.is_paused(),
            capacity: stage.capacity(),
            queued: stage.queued() as u64,
            oldest_queued_ms: stage.oldest_queued_us(now_us) / 1000,
            ..StageSnapshot::default()
        };
        for slot in &slots {
            let i = usize::from(slot.index);
            if prev.busy_us.len() <= i {
                prev.busy_us.resize(i + 1, 0);
                prev.busy_ratio.resize(i + 1, 0.0);
            }
            let busy = slot.busy_us.load(Ordering::Relaxed);
            if refresh && secs > 0.0 {
                let delta = busy.saturating_sub(prev.busy_us[i]) as f64 / 1e6;
                prev.busy_ratio[i] = (delta / secs).clamp(0.0, 1.0);
            }
            if refresh {
                prev.busy_us[i] = busy;
            }
            let state = slot.state();
            let w = WorkerSnapshot {
                id: slot.index,
                state,
                current_item: slot.current(),
                processed: slot.processed.load(Ordering::Relaxed),
                failed: slot.failed.load(Ordering::Relaxed),
                busy_ratio: prev.busy_ratio[i],
            };
            s.completed += w.processed;
            s.failed += w.failed;
            s.retried += slot.retried.load(Ordering::Relaxed);
            s.cancelled += slot.cancelled.load(Ordering::Relaxed);
            left += slot.exited.load(Ordering::Relaxed);
            if state == WorkerState::Busy {
                s.in_flight += 1;
            }
            slot.latency.add_to(&mut hist);
            workers.push(w);
        }
        s.workers = workers;
        let done = s.completed + s.failed;
        if refresh {
            if secs > 0.0 {
                prev.throughput = done.saturating_sub(prev.done) as f64 / secs;
            }
            let recent = hist.since(&prev.hist);
            if recent.total() > 0 {
                prev.latency = Latency {
                    p50_us: recent.quantile(0.50),
                    p95_us: recent.quantile(0.95),
                    p99_us: recent.quantile(0.99),
                };
            }
            prev.done = done;
            prev.hist = hist;
        }
        s.throughput = prev.throughput;
        s.latency = prev.latency;
        failed += s.failed;
        cancelled += s.cancelled;
        retried += s.retried;
        queued += s.queued;
        running += s.in_flight;
        stages.push(s);
    }
    if refresh {
        if secs > 0.0 {
            rates.throughput = left.saturating_sub(rates.left) as f64 / secs;
        }
        rates.left = left;
        rates.at = Some(now);
    }

    let totals = if shared.tracking {
        let st = shared.tracker.stats();
        Totals {
            submitted: st.submitted,
            queued: st.queued,
            running: st.running + st.retrying,
            completed: st.completed,
            failed: st.failed,
            cancelled: st.cancelled,
            retried,
            throughput: rates.throughput,
        }
    } else {
        Totals {
            submitted: shared.env.ids_issued(),
            queued,
            running,
            completed: left,
            failed,
            cancelled,
            retried,
            throughput: rates.throughput,
        }
    };
    let expected = *shared.expected.lock();
    let finished = totals.completed + totals.failed + totals.cancelled;
    let eta_ms = expected.and_then(|n| {
        let remaining = n.saturating_sub(finished);
        (rates.throughput > 0.0).then(|| (remaining as f64 / rates.throughput * 1000.0) as u64)
    });
    Snapshot {
        pipeline: shared.name.clone(),
        state: *shared.state.borrow(),
        seq: shared.tracker.seq(),
        uptime_ms: micros(shared.env.clock.elapsed()) / 1000,
        started_unix_ms: shared.env.clock.started_unix_ms(),
        totals,
        stages,
        edges: shared.edges.clone(),
        expected,
        eta_ms,
    }
}

/// Runs one [`Dashboard`] for the life of the pipeline.
pub(crate) async fn drive(
    mut dashboard: Box<dyn Dashboard>,
    every: Duration,
    handle: PipelineHandle,
) {
    dashboard.on_start(&handle.snapshot());
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let done = handle.wait();
    tokio::pin!(done);
    loop {
        tokio::select! {
            _ = &mut done => break,
            _ = tick.tick() => dashboard.on_update(&handle.snapshot()),
        }
    }
    let last = handle.snapshot();
    debug_assert!(matches!(
        last.state,
        PipelineState::Finished | PipelineState::Aborted
    ));
    dashboard.on_finish(&last);
}
