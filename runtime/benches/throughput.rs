//! Throughput of a 3-stage × 4-worker pipeline of trivial tasks, next to a plain tokio
//! channel pipeline of the same shape run in the same process, plus the memory each
//! retained item costs the tracker. Health warnings are on (the default) except in the
//! variant that turns them off to measure them.
//!
//! Run: `cargo bench -p flowdeck-runtime --bench throughput` (add `-- 500000` for another
//! item count, and names to run some variants alone: `-- 1000000 "tracking on"`). Each of
//! 5 rounds runs every variant once, in turn, so the machine's drift falls on all alike;
//! prints the median per variant, the rounds' rates, and the bytes per retained item.

use std::time::{Duration, Instant};

use flowdeck_runtime::{Capture, Line, Pipeline, Stage};
use tokio::sync::mpsc;

const STAGES: usize = 3;
const WORKERS: usize = 4;
const ROUNDS: usize = 5;

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
    // Outputs are read on the runtime, as an application would (not on the thread that
    // blocks on the bench, which every output would have to wake).
    let got = tokio::spawn(async move {
        let mut got = 0;
        while out_rx.recv().await.is_some() {
            got += 1;
        }
        got
    })
    .await
    .unwrap_or(0);
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
    let outputs = running.outputs;
    let got = tokio::spawn(async move {
        let mut got = 0;
        while outputs.recv().await.is_ok() {
            got += 1;
        }
        got
    })
    .await
    .unwrap_or(0);
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A variant of the bench: its name and one run of it.
type Variant = (
    &'static str,
    fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Duration>>>,
);

const VARIANTS: [Variant; 7] = [
    ("tokio channels (reference)", |n| {
        Box::pin(tokio_reference(n))
    }),
    ("flowdeck, tracking off", |n| {
        Box::pin(flowdeck_run(n, false, false, None, true))
    }),
    ("flowdeck, tracking on", |n| {
        Box::pin(flowdeck_run(n, true, false, None, true))
    }),
    ("flowdeck, tracking on, warnings off", |n| {
        Box::pin(flowdeck_run(n, true, false, None, false))
    }),
    ("flowdeck, tracking on + feed", |n| {
        Box::pin(flowdeck_run(n, true, true, None, true))
    }),
    ("flowdeck, tracking on, capture failures", |n| {
        Box::pin(flowdeck_run(
            n,
            true,
            false,
            Some(Capture::failures()),
            true,
        ))
    }),
    ("flowdeck, tracking on, capture 1%", |n| {
        Box::pin(flowdeck_run(
            n,
            true,
            false,
            Some(Capture::failures().sample(0.01)),
            true,
        ))
    }),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    // Words other than cargo's own flags pick variants by a part of their name
    // (`-- 1000000 "tracking on"`), e.g. to profile one of them alone.
    let picks: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-') && a.parse::<u64>().is_err())
        .map(String::as_str)
        .collect();
    let chosen: Vec<Variant> = VARIANTS
        .into_iter()
        .filter(|(name, _)| picks.is_empty() || picks.iter().any(|p| name.ends_with(p)))
        .collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    };
    rt.block_on(async {
        println!("{STAGES} stages x {WORKERS} workers, trivial tasks, {n} items, median of {ROUNDS} rounds (each round runs every variant once, in turn), {} cores",
            std::thread::available_parallelism().map_or(0, |p| p.get()));
        if picks.is_empty() {
            // Memory first, while the heap is fresh: freed pages of earlier runs would hide it.
            let retained = n.min(1_000_000);
            println!("bytes per retained item: {:.0} ({retained} items of {STAGES} stages retained, RSS delta)",
                bytes_per_item(retained).await);
        }
        let mut runs: Vec<Vec<Duration>> = vec![Vec::new(); chosen.len()];
        for _ in 0..ROUNDS {
            for (i, (_, run)) in chosen.iter().enumerate() {
                runs[i].push(run(n).await);
            }
        }
        let mut rate = std::collections::HashMap::new();
        for ((name, _), times) in chosen.iter().zip(runs) {
            let all: Vec<String> = times
                .iter()
                .map(|d| format!("{:.0}", n as f64 / d.as_secs_f64() / 1000.0))
                .collect();
            let d = median(times);
            let r = n as f64 / d.as_secs_f64();
            rate.insert(*name, r);
            println!("{name:<40} {r:>12.0} items/s  (median {:.3} s; rounds, thousands/s: {})",
                d.as_secs_f64(), all.join(" "));
        }
        let get = |k: &str| rate.get(k).copied();
        if let (Some(reference), Some(off), Some(on)) = (
            get("tokio channels (reference)"),
            get("flowdeck, tracking off"),
            get("flowdeck, tracking on"),
        ) {
            println!("tracking cost: {:.1}% (on vs off); flowdeck tracked / reference: {:.0}%",
                (1.0 - on / off) * 100.0, on / reference * 100.0);
        }
        if let (Some(on), Some(quiet)) = (get("flowdeck, tracking on"), get("flowdeck, tracking on, warnings off")) {
            println!("health warnings cost: {:.1}% (on vs off, tracking on)", (1.0 - on / quiet) * 100.0);
        }
        if let (Some(on), Some(failures), Some(sampled)) = (
            get("flowdeck, tracking on"),
            get("flowdeck, tracking on, capture failures"),
            get("flowdeck, tracking on, capture 1%"),
        ) {
            println!("capture cost (vs tracking on): failures only {:.1}%, 1% sample {:.1}%",
                (1.0 - failures / on) * 100.0, (1.0 - sampled / on) * 100.0);
        }
    });
}
