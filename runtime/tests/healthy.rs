//! No false positives: healthy reference pipelines raise no health warning over their whole
//! run, with the default thresholds. Time is paused, so each runs minutes of pipeline time
//! in well under a second. The count is printed (`cargo test --test healthy -- --nocapture`).
//! The demo at several rates is in the server's tests (`healthy_demo.rs`).
#![allow(clippy::unwrap_used)]

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use flowdeck_runtime::{
    protocol::Snapshot, warnings::Change, Feeder, Line, Monitor, PipelineHandle, Stage,
};

/// What a run went through: the warning changes it raised, and what its middle stage
/// ("work") looked like second by second, so that each test can check that the condition
/// it names happened (a queue that built up, a pause, a scale-down), not only that nothing
/// was raised.
#[derive(Debug, Default)]
struct Seen {
    changes: Vec<Change>,
    completed: u64,
    failed: u64,
    /// Pipeline seconds the run lasted.
    secs: u64,
    /// The most items queued at "work" in one sample.
    peak_queued: u64,
    /// The highest busy ratio of "work" in one sample.
    peak_busy: f64,
    /// Samples in which "work" was paused.
    paused_samples: u32,
    /// The numbers of workers "work" had, in the order seen.
    workers: Vec<usize>,
}

/// Samples the "work" stage every second.
struct Sampler(Arc<Mutex<Seen>>);

impl Monitor for Sampler {
    fn on_update(&mut self, s: &Snapshot) {
        let Some(work) = s.stages.get(1) else { return };
        let mut seen = self.0.lock().unwrap();
        seen.peak_queued = seen.peak_queued.max(work.queued);
        seen.peak_busy = seen.peak_busy.max(work.busy_ratio);
        seen.paused_samples += u32::from(work.paused);
        if seen.workers.last() != Some(&work.workers.len()) {
            seen.workers.push(work.workers.len());
        }
    }
}

/// Runs a three-stage pipeline (`ms` per item at the middle stage, with `workers`) through
/// `drive`, then drains it, and returns what it went through.
async fn run<F, Fut>(name: &str, ms: u64, workers: usize, drive: F) -> Seen
where
    F: FnOnce(Feeder<u32>, PipelineHandle) -> Fut,
    Fut: Future<Output = ()>,
{
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let running = Line::<u32>::new(name)
        .stage(Stage::map("parse", |n: u32, _cx| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok::<_, String>(n)
        }))
        .stage(
            Stage::map("work", move |n: u32, _cx| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, String>(n)
            })
            .workers(workers)
            .queue(256),
        )
        .stage(Stage::map("store", |n: u32, _cx| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, String>(n)
        }))
        .on_warning(move |c| s.lock().unwrap().changes.push(c.clone()))
        .monitor(Sampler(seen.clone()), Duration::from_secs(1))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    assert!(h.warning_thresholds().is_some(), "warnings are on");
    drop(running.outputs);
    let started = tokio::time::Instant::now();
    drive(running.input, h.clone()).await;
    h.drain();
    h.wait().await;
    h.warnings_settled().await;
    let totals = h.snapshot().totals;
    let mut seen = std::mem::take(&mut *seen.lock().unwrap());
    seen.completed = totals.completed;
    seen.failed = totals.failed;
    seen.secs = started.elapsed().as_secs();
    println!(
        "healthy pipeline {name:?}: {} warnings over {} s of pipeline time, {seen:?}",
        seen.changes.len(),
        seen.secs
    );
    seen
}

/// The claim every test makes: all `items` went through, and no warning was raised.
fn healthy(seen: &Seen, items: u64) {
    assert_eq!((seen.completed, seen.failed), (items, 0), "{seen:?}");
    assert!(
        seen.changes.is_empty(),
        "warnings raised: {:?}",
        seen.changes
    );
}

/// Sends `per_second` items a second for `secs` seconds.
async fn steady(input: &Feeder<u32>, per_second: u32, secs: u32) {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    for n in 0..per_second * secs {
        tick.tick().await;
        input.send(n).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn bursty_input() {
    // 500 items at once every 20 s, for 5 minutes, into 4 workers of 20 ms: each burst
    // queues up (and holds back parse) for a few seconds, then drains.
    let seen = run("bursty", 20, 4, |input, _| async move {
        for _ in 0..15 {
            input.send_all(0..500).await;
            tokio::time::sleep(Duration::from_secs(20)).await;
        }
    })
    .await;
    healthy(&seen, 7_500);
    assert!(
        seen.peak_queued >= 200,
        "the bursts never queued up: {seen:?}"
    );
    assert!(seen.secs >= 300, "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_stage() {
    // One worker, 5 s an item, 40 items queued from the start: over 3 minutes of a full
    // queue that only shrinks, nothing is stuck, stalled or growing.
    let seen = run("slow", 5_000, 1, |input, _| async move {
        input.send_all(0..40).await;
    })
    .await;
    healthy(&seen, 40);
    assert!(seen.peak_queued >= 35, "the queue was never full: {seen:?}");
    assert!(
        seen.secs >= 195,
        "40 items of 5 s take over 3 minutes: {seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stage_saturated_at_its_capacity() {
    // 20 items/s into a stage that serves 20/s: busy all the time, the queue steady.
    let seen = run("saturated", 200, 4, |input, _| async move {
        steady(&input, 20, 300).await;
    })
    .await;
    healthy(&seen, 6_000);
    // Saturated as the bottleneck rule means it: busy at least 80% of the time.
    assert!(
        seen.peak_busy >= 0.8,
        "the stage was never saturated: {seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn paused_and_resumed_by_the_user() {
    // Paused for 20 s three times (under the 30 s a starved stage is given) with items
    // arriving.
    let seen = run("paused", 10, 2, |input, h| async move {
        let feed = tokio::spawn(async move { steady(&input, 10, 180).await });
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            h.pause("work").unwrap();
            tokio::time::sleep(Duration::from_secs(20)).await;
            h.resume("work").unwrap();
        }
        feed.await.unwrap();
    })
    .await;
    healthy(&seen, 1_800);
    // Three pauses of 20 s, sampled every second, with items queued behind them.
    assert!(seen.paused_samples >= 50, "{seen:?}");
    assert!(
        seen.peak_queued >= 150,
        "nothing waited out a pause: {seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn scaled_up_and_down() {
    // 30 items/s into 100 ms tasks: 4 workers keep up, 8 idle half the time, and 2 fall
    // behind for 20 s (the queue grows, then 8 workers catch up).
    let seen = run("scaled", 100, 4, |input, h| async move {
        let feed = tokio::spawn(async move { steady(&input, 30, 240).await });
        for workers in [8, 2, 8, 4, 1, 6, 4] {
            tokio::time::sleep(Duration::from_secs(30)).await;
            h.set_workers("work", workers).unwrap();
            if workers < 3 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                h.set_workers("work", 8).unwrap();
            }
        }
        feed.await.unwrap();
    })
    .await;
    healthy(&seen, 7_200);
    // Every scale was seen, the two scale-downs included, and they made the queue grow.
    for n in [8, 2, 4, 1, 6] {
        assert!(
            seen.workers.contains(&n),
            "never ran with {n} workers: {seen:?}"
        );
    }
    assert!(
        seen.peak_queued >= 100,
        "falling behind never queued: {seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_idle_period_then_a_burst() {
    let seen = run("idle-then-burst", 50, 4, |input, _| async move {
        input.send_all(0..10).await;
        tokio::time::sleep(Duration::from_secs(600)).await;
        input.send_all(0..2_000).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    healthy(&seen, 2_010);
    assert!(seen.secs >= 660, "{seen:?}");
    assert!(seen.peak_queued >= 200, "the burst never queued: {seen:?}");
}

/// The harness sees warnings when there are some: the same pipeline with its middle stage
/// paused for a minute while items wait raises a starved-stage warning, and clears it.
#[tokio::test(start_paused = true)]
async fn the_harness_sees_a_real_warning() {
    let seen = run("starved", 10, 2, |input, h| async move {
        input.send_all(0..200).await;
        h.pause("work").unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        h.resume("work").unwrap();
        tokio::time::sleep(Duration::from_secs(40)).await;
    })
    .await;
    assert_eq!(seen.completed, 200, "{seen:?}");
    let fired: Vec<_> = seen
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Fired(w) => Some((w.rule.name(), w.stage.clone())),
            Change::Cleared(_) => None,
        })
        .collect();
    assert_eq!(
        fired,
        [("starved_stage", Some("work".to_owned()))],
        "{seen:?}"
    );
    assert!(
        seen.changes.iter().any(|c| matches!(c, Change::Cleared(_))),
        "{seen:?}"
    );
}
