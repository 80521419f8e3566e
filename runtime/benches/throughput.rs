//! Throughput of a 3-stage × 4-worker pipeline of trivial tasks, next to a plain tokio
//! channel pipeline of the same shape run in the same process, plus the memory each
//! retained item costs the tracker. Health warnings are on (the default) except in the
//! variant that turns them off to measure them.
//!
//! Run: `cargo bench -p flowdeck-runtime --bench throughput` (add `-- 500000` for another
//! item count). Prints one line per variant and the bytes per retained item.

use std::time::{Duration, Instant};

use flowdeck_runtime::{Capture, Line, Pipeline, Stage};
use tokio::sync::mpsc;

const STAGES: usize = 3;
const WORKERS: usize = 4;
const ROUNDS: usize = 3;

fn trivial_pipeline(
    tracking: bool,
    retention: usize,
    capture: Option<Capture>,
    warnings: bool,
) -> Pipeline<u64, u64> {
    let stage = |name: &'static str| {
        let s = Stage::map(name, |n: u64, _cx| async move {
            Ok::<_, std::convert::Infallible>(n.wrapping_add(1))
        })
        .workers(WORKERS)
        .queue(1024);
        match &capture {
            Some(c) => s.capture(c.clone()),
            None => s,
        }
    };
    let line = Line::<u64>::new("bench")
        .stage(stage("a"))
        .stage(stage("b"))
        .stage(stage("c"))
        .tracking(tracking)
        .retention(retention)
        .warnings(warnings.then(Default::default));
    match line.build() {
        Ok(p) => p,
        Err(e) => panic!("bench pipeline: {e}"),
    }
}

/// The reference: 3 stages of 4 workers, each worker with its own bounded tokio channel,
/// fed round-robin by the stage before.
async fn tokio_reference(n: u64) -> Duration {
    let start = Instant::now();
    let (out_tx, mut out_rx) = mpsc::channel::<u64>(1024);
    let mut next: Vec<mpsc::Sender<u64>> = Vec::new();
    let mut handles = Vec::new();
    let mut downstream = vec![out_tx];
    for _ in 0..STAGES {
        let mut senders = Vec::new();
        for w in 0..WORKERS {
            let (tx, mut rx) = mpsc::channel::<u64>(1024 / WORKERS);
            senders.push(tx);
            let outs = downstream.clone();
            handles.push(tokio::spawn(async move {
                let mut i = w;
                while let Some(v) = rx.recv().await {
                    i = (i + 1) % outs.len();
                    if outs[i].send(v.wrapping_add(1)).await.is_err() {
                        break;
                    }
                }
            }));
        }
        downstream = senders.clone();
        next = senders;
    }
    drop(downstream);
    let feeder = tokio::spawn(async move {
        for v in 0..n {
            if next[(v as usize) % WORKERS].send(v).await.is_err() {
                break;
            }
        }
    });
    let mut got = 0;
    while out_rx.recv().await.is_some() {
        got += 1;
    }
    let _ = feeder.await;
    for h in handles {
        let _ = h.await;
    }
    assert_eq!(got, n);
    start.elapsed()
}

async fn flowdeck_run(
    n: u64,
    tracking: bool,
    subscribe: bool,
    capture: Option<Capture>,
    warnings: bool,
) -> Duration {
    let pipeline = trivial_pipeline(tracking, 100_000, capture, warnings);
    let start = Instant::now();
    let running = pipeline.start();
    let drain = subscribe.then(|| {
        let mut feed = running.handle.subscribe();
        tokio::spawn(async move {
            let mut events = 0u64;
            while let Ok(batch) = feed.recv().await {
                events += batch.len() as u64;
            }
            events
        })
    });
    let input = running.input;
    let feed = tokio::spawn(async move {
        input.send_all(0..n).await;
    });
    let mut got = 0;
    while running.outputs.recv().await.is_ok() {
        got += 1;
    }
    let _ = feed.await;
    running.handle.wait().await;
    let took = start.elapsed();
    assert_eq!(got, n);
    if let Some(d) = drain {
        let events = d.await.unwrap_or(0);
        assert!(events > 0, "the subscriber saw events");
    }
    took
}

fn rss_bytes() -> u64 {
    flowdeck_runtime::resources::resident_bytes(None).unwrap_or(0)
}

/// Memory per retained item: RSS with `n` items retained minus RSS before, over `n`.
async fn bytes_per_item(n: u64) -> f64 {
    let before = rss_bytes();
    let running = trivial_pipeline(true, n as usize, None, true).start();
    let input = running.input;
    let feed = tokio::spawn(async move {
        input.send_all(0..n).await;
    });
    while running.outputs.recv().await.is_ok() {}
    let _ = feed.await;
    running.handle.wait().await;
    let retained = running.handle.tracker().items(None, None, usize::MAX).len() as u64;
    assert_eq!(retained, n, "every item retained");
    let after = rss_bytes();
    (after.saturating_sub(before)) as f64 / n as f64
}

fn best(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[0]
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    };
    rt.block_on(async {
        println!("{STAGES} stages x {WORKERS} workers, trivial tasks, {n} items, best of {ROUNDS}, {} cores",
            std::thread::available_parallelism().map_or(0, |p| p.get()));
        // Memory first, while the heap is fresh: freed pages of earlier runs would hide it.
        let retained = n.min(1_000_000);
        println!("bytes per retained item: {:.0} ({retained} items of {STAGES} stages retained, RSS delta)",
            bytes_per_item(retained).await);
        let mut rows = Vec::new();
        let mut times = |name: &'static str, d: Vec<Duration>| {
            let d = best(d);
            let rate = n as f64 / d.as_secs_f64();
            rows.push((name, rate));
            println!("{name:<40} {:>12.0} items/s  ({:.3} s)", rate, d.as_secs_f64());
            rate
        };
        let mut v = Vec::new();
        for _ in 0..ROUNDS { v.push(tokio_reference(n).await); }
        let reference = times("tokio channels (reference)", v);
        let mut v = Vec::new();
        for _ in 0..ROUNDS { v.push(flowdeck_run(n, false, false, None, true).await); }
        let off = times("flowdeck, tracking off", v);
        let mut v = Vec::new();
        for _ in 0..ROUNDS { v.push(flowdeck_run(n, true, false, None, true).await); }
        let on = times("flowdeck, tracking on", v);
        let mut v = Vec::new();
        for _ in 0..ROUNDS { v.push(flowdeck_run(n, true, false, None, false).await); }
        let quiet = times("flowdeck, tracking on, warnings off", v);
        let mut v = Vec::new();
        for _ in 0..ROUNDS { v.push(flowdeck_run(n, true, true, None, true).await); }
        times("flowdeck, tracking on + feed", v);
        let mut v = Vec::new();
        for _ in 0..ROUNDS { v.push(flowdeck_run(n, true, false, Some(Capture::failures()), true).await); }
        let failures = times("flowdeck, tracking on, capture failures", v);
        let mut v = Vec::new();
        for _ in 0..ROUNDS { v.push(flowdeck_run(n, true, false, Some(Capture::failures().sample(0.01)), true).await); }
        let sampled = times("flowdeck, tracking on, capture 1%", v);
        println!("tracking cost: {:.1}% (on vs off); flowdeck tracked / reference: {:.0}%",
            (1.0 - on / off) * 100.0, on / reference * 100.0);
        println!("health warnings cost: {:.1}% (on vs off, tracking on)", (1.0 - on / quiet) * 100.0);
        println!("capture cost (vs tracking on): failures only {:.1}%, 1% sample {:.1}%",
            (1.0 - failures / on) * 100.0, (1.0 - sampled / on) * 100.0);
    });
}
