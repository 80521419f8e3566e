//! Snapshots: the whole pipeline at one moment, from the workers' own counters (always
//! current) and the tracker's status counts (exact once it has caught up).

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use flowdeck_protocol::{Latency, Snapshot, StageSnapshot, Totals, WorkerSnapshot, WorkerState};

use crate::{
    clock::micros,
    histogram::Counts,
    shared::{Shared, StagePrev},
};

/// Rates and percentiles are measured over windows of at least this.
const MIN_WINDOW: Duration = Duration::from_millis(100);

pub(crate) fn take(shared: &Shared) -> Snapshot {
    if let Some(reported) = &shared.reported {
        // A mirror: the reported numbers, at the position of the events applied here.
        let mut s = reported.lock().clone();
        s.seq = shared.tracker.seq();
        s.state = *shared.state.borrow();
        // Its questions are those relayed here (answered on this dashboard).
        s.questions_pending = shared.env.questions.pending_count() as u64;
        s.questions_seq = shared.env.questions.seq();
        if shared.processes.lock().is_some() {
            s.processes = processes(shared);
        }
        // The reporting process's, sent beside its snapshots.
        (s.resources, s.usage) = shared.resources();
        return s;
    }
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
    let mut waiting = 0;
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
            waiting: stage.waiting() as u64,
            max_waiting: stage.max_waiting() as u64,
            join: stage.join_stats(),
            ..StageSnapshot::default()
        };
        // Totals sum over every slot the stage ever had, so scaling down never makes them
        // shrink; the worker list shows only the live ones.
        for slot in &slots {
            let i = usize::from(slot.index);
            if prev.busy_us.len() <= i {
                prev.busy_us.resize(i + 1, 0);
                prev.busy_ratio.resize(i + 1, 0.0);
                prev.blocked_us.resize(i + 1, 0);
                prev.blocked_ratio.resize(i + 1, 0.0);
            }
            let (busy, blocked) = slot.busy_and_blocked_us(now_us);
            if refresh && secs > 0.0 {
                let ratio = |now: u64, before: u64| {
                    (now.saturating_sub(before) as f64 / 1e6 / secs).clamp(0.0, 1.0)
                };
                prev.busy_ratio[i] = ratio(busy, prev.busy_us[i]);
                prev.blocked_ratio[i] = ratio(blocked, prev.blocked_us[i]);
            }
            if refresh {
                prev.busy_us[i] = busy;
                prev.blocked_us[i] = blocked;
            }
            let processed = slot.processed.load(Ordering::Relaxed);
            let failed = slot.failed.load(Ordering::Relaxed);
            s.completed += processed;
            s.failed += failed;
            s.retried += slot.retried.load(Ordering::Relaxed);
            s.cancelled += slot.cancelled.load(Ordering::Relaxed);
            left += slot.exited.load(Ordering::Relaxed);
            slot.latency.add_to(&mut hist);
            if !stage.is_live(slot) {
                continue;
            }
            let state = slot.state();
            if state == WorkerState::Busy {
                s.in_flight += 1;
            }
            s.busy_ratio += prev.busy_ratio[i];
            s.blocked_ratio += prev.blocked_ratio[i];
            workers.push(WorkerSnapshot {
                id: slot.index,
                state,
                current_item: slot.current(),
                processed,
                failed,
                busy_ratio: prev.busy_ratio[i],
                blocked_ratio: prev.blocked_ratio[i],
            });
        }
        if !workers.is_empty() {
            s.busy_ratio /= workers.len() as f64;
            s.blocked_ratio /= workers.len() as f64;
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
        waiting += s.waiting;
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
            waiting: st.waiting,
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
            waiting,
        }
    };
    let expected = *shared.expected.lock();
    let finished = totals.completed + totals.failed + totals.cancelled;
    let eta_ms = expected.and_then(|n| {
        let remaining = n.saturating_sub(finished);
        (rates.throughput > 0.0).then(|| (remaining as f64 / rates.throughput * 1000.0) as u64)
    });
    let (resources, usage) = shared.resources();
    Snapshot {
        pipeline: shared.name.clone(),
        state: *shared.state.borrow(),
        seq: shared.tracker.seq(),
        uptime_ms: micros(shared.env.clock.elapsed()) / 1000,
        started_unix_ms: shared.env.clock.started_unix_ms(),
        totals,
        stages,
        edges: shared.edges.clone(),
        questions_pending: shared.env.questions.pending_count() as u64,
        questions_seq: shared.env.questions.seq(),
        expected,
        eta_ms,
        warnings: shared
            .health
            .as_ref()
            .map(|e| e.lock().shown())
            .unwrap_or_default(),
        processes: processes(shared),
        resources,
        usage,
    }
}

/// The worker processes of distributed stages, when something lists them.
pub(crate) fn processes(shared: &Shared) -> Vec<flowdeck_protocol::ProcessSnapshot> {
    let list = shared.processes.lock().clone();
    list.and_then(|f| crate::guard::call(|| f()).ok())
        .unwrap_or_default()
}
