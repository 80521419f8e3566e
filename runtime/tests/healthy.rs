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

use flowdeck_runtime::{warnings::Change, Feeder, Line, PipelineHandle, Stage};

/// Runs a three-stage pipeline (`ms` per item at the middle stage, with `workers`) through
/// `drive`, then drains it, and returns every warning change seen.
async fn run<F, Fut>(name: &str, ms: u64, workers: usize, drive: F) -> usize
where
    F: FnOnce(Feeder<u32>, PipelineHandle) -> Fut,
    Fut: Future<Output = ()>,
{
    let seen = Arc::new(Mutex::new(Vec::<Change>::new()));
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
        .on_warning(move |c| s.lock().unwrap().push(c.clone()))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    drop(running.outputs);
    let started = tokio::time::Instant::now();
    drive(running.input, h.clone()).await;
    h.drain();
    h.wait().await;
    let seen = seen.lock().unwrap();
    println!(
        "healthy pipeline {name:?}: {} warnings over {} s of pipeline time",
        seen.len(),
        started.elapsed().as_secs()
    );
    assert!(seen.is_empty(), "{name}: {seen:?}");
    seen.len()
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
    run("bursty", 20, 4, |input, _| async move {
        for _ in 0..15 {
            input.send_all(0..500).await;
            tokio::time::sleep(Duration::from_secs(20)).await;
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_stage() {
    // One worker, 5 s an item, 40 items queued from the start: over 3 minutes of a full
    // queue that only shrinks, nothing is stuck, stalled or growing.
    run("slow", 5_000, 1, |input, _| async move {
        input.send_all(0..40).await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stage_saturated_at_its_capacity() {
    // 20 items/s into a stage that serves 20/s: busy all the time, the queue steady.
    run("saturated", 200, 4, |input, _| async move {
        steady(&input, 20, 300).await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn paused_and_resumed_by_the_user() {
    // Paused for 20 s three times (under the 30 s a starved stage is given) with items
    // arriving.
    run("paused", 10, 2, |input, h| async move {
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
}

#[tokio::test(start_paused = true)]
async fn scaled_up_and_down() {
    // 30 items/s into 100 ms tasks: 4 workers keep up, 8 idle half the time, and 2 fall
    // behind for 20 s (the queue grows, then 8 workers catch up).
    run("scaled", 100, 4, |input, h| async move {
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
}

#[tokio::test(start_paused = true)]
async fn a_long_idle_period_then_a_burst() {
    run("idle-then-burst", 50, 4, |input, _| async move {
        input.send_all(0..10).await;
        tokio::time::sleep(Duration::from_secs(600)).await;
        input.send_all(0..2_000).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
}
