//! What a distributed stage costs and how it scales (run on demand:
//! `cargo bench -p flowdeck-cluster --bench cluster`). A real `nats-server -js` on
//! loopback, worker processes that are this binary started again (BENCH_ROLE=worker), on
//! this machine's cores with the driver and the server.
//!
//! 1. Items/s through one distributed stage of W workers per process, with 1, 2 and 4
//!    worker processes, for trivial work and 10 ms of work, against the same stage in one
//!    process with the same number of workers in all. The ideal for 10 ms is workers ×
//!    100/s. 10 ms twice: a wait on tokio's timer (like a network call; the timer counts in
//!    whole milliseconds, so it takes 10 to 11), and a sleep of exactly 10 ms on a blocking
//!    thread (like a synchronous call), which shows the cluster's own cost alone.
//! 2. The JetStream path's overhead per item: one item at a time (`in_flight` 1) through a
//!    trivial distributed stage, whose time per item is the round trip: dispatch, pull,
//!    reply, ack, read the reply.
//!
//! Settings by environment: CLUSTER_WORKERS (W, 8), CLUSTER_SECONDS (about how long each
//! 10 ms case runs, 5).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use flowdeck_cluster::{Cluster, QueueOptions, Settings};
use flowdeck_runtime::{Line, Pipeline, Stage};

const PIPELINE: &str = "bench";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn settings(in_flight: usize) -> Settings {
    Settings {
        queue: QueueOptions {
            ack_wait: Duration::from_secs(10),
            ..QueueOptions::default()
        },
        in_flight,
        ..Settings::default()
    }
}

/// What each item costs the stage.
#[derive(Clone, Copy, Debug)]
enum Work {
    Trivial,
    /// `tokio::time::sleep`: a wait on the runtime's timer, which counts in whole
    /// milliseconds, so 10 ms takes 10 to 11 (like waiting on a network call).
    Timer(Duration),
    /// `std::thread::sleep` on a blocking thread: as long as asked, to tens of µs (like a
    /// synchronous call taken off the async threads).
    Exact(Duration),
}

impl Work {
    fn to_env(self) -> String {
        match self {
            Work::Trivial => "trivial".into(),
            Work::Timer(d) => format!("timer:{}", d.as_millis()),
            Work::Exact(d) => format!("exact:{}", d.as_millis()),
        }
    }

    fn from_env() -> Self {
        let v = std::env::var("BENCH_WORK").unwrap_or_default();
        let ms = |x: &str| Duration::from_millis(x.parse().unwrap());
        match v.split_once(':') {
            Some(("timer", x)) => Work::Timer(ms(x)),
            Some(("exact", x)) => Work::Exact(ms(x)),
            _ => Work::Trivial,
        }
    }

    fn label(self) -> String {
        match self {
            Work::Trivial => "trivial".into(),
            Work::Timer(d) => format!("{} ms timer", d.as_millis()),
            Work::Exact(d) => format!("{} ms exact", d.as_millis()),
        }
    }

    /// Items/s of `workers` doing nothing else.
    fn ideal(self, workers: usize) -> Option<f64> {
        match self {
            Work::Trivial => None,
            Work::Timer(d) | Work::Exact(d) => Some(workers as f64 / d.as_secs_f64()),
        }
    }

    async fn run(self) {
        match self {
            Work::Trivial => {}
            Work::Timer(d) => tokio::time::sleep(d).await,
            Work::Exact(d) => {
                let _ = tokio::task::spawn_blocking(move || std::thread::sleep(d)).await;
            }
        }
    }
}

fn stage(work: Work, workers: usize) -> Stage<u64, u64, impl flowdeck_runtime::TaskFn<u64, u64>> {
    Stage::map("work", move |n: u64, _cx| async move {
        work.run().await;
        Ok::<_, String>(n.wrapping_add(1))
    })
    .workers(workers)
}

/// source → work → sink, `work` distributed when a cluster is given.
fn pipeline(cluster: Option<&Cluster>, work: Work, workers: usize) -> Pipeline<u64, u64> {
    let line = Line::<u64>::new(PIPELINE).stage(Stage::map("source", |n: u64, _cx| async move {
        Ok::<_, String>(n)
    }));
    let line = match cluster {
        Some(c) => line.stage(c.distribute(stage(work, workers))),
        None => line.stage(stage(work, workers)),
    };
    line.stage(Stage::map("sink", |n: u64, _cx| async move {
        Ok::<_, String>(n)
    }))
    .build()
    .unwrap()
}

fn worker_main() {
    let url = std::env::var("BENCH_NATS").unwrap();
    let work = Work::from_env();
    let workers = env("CLUSTER_WORKERS", 8) as usize;
    runtime().block_on(async move {
        let cluster = Cluster::connect(&url, PIPELINE, settings(1)).await.unwrap();
        let _p = pipeline(Some(&cluster), work, workers);
        cluster.serve().await.unwrap().run().await;
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_workers(n: usize, url: &str, work: Work) -> Procs {
    Procs(
        (0..n)
            .map(|_| {
                Command::new(std::env::current_exe().unwrap())
                    .env("BENCH_ROLE", "worker")
                    .env("BENCH_NATS", url)
                    .env("BENCH_WORK", work.to_env())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    )
}

/// Items/s of `n` items through the pipeline, after a warm-up of a few hundred; through
/// the cluster at `url` with `in_flight` when given (a driver of its own each time: the
/// worker processes serve the first distributed stage of the pipeline, d0).
async fn measure(url: Option<(&str, usize)>, work: Work, workers: usize, n: u64) -> f64 {
    let cluster = match url {
        Some((url, in_flight)) => Some(
            Cluster::connect(url, PIPELINE, settings(in_flight))
                .await
                .unwrap(),
        ),
        None => None,
    };
    let running = pipeline(cluster.as_ref(), work, workers).start();
    let input = running.input.clone();
    let outputs = running.outputs.clone();
    let handle = running.handle.clone();
    drop(running);
    let warm = 500.min(n / 10);
    input.send_all(0..warm).await;
    for _ in 0..warm {
        outputs.recv().await.unwrap();
    }
    let t = Instant::now();
    let feed = tokio::spawn(async move {
        input.send_all(warm..warm + n).await;
    });
    for _ in 0..n {
        outputs.recv().await.unwrap();
    }
    let took = t.elapsed();
    feed.await.unwrap();
    handle.drain();
    n as f64 / took.as_secs_f64()
}

fn main() {
    if std::env::var("BENCH_ROLE").as_deref() == Ok("worker") {
        return worker_main();
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let workers = env("CLUSTER_WORKERS", 8) as usize;
    let seconds = env("CLUSTER_SECONDS", 5);
    runtime().block_on(async move {
        let server = common::nats_server().await;
        println!(
            "one distributed stage, {workers} workers per process; nats-server 2.15 on \
             loopback; this machine's {} cores shared by all",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "{:<14} {:>9} {:>8} {:>12} {:>14} {:>9}",
            "work", "processes", "workers", "items/s", "in one process", "of ideal"
        );
        let ten = Duration::from_millis(10);
        for work in [Work::Trivial, Work::Timer(ten), Work::Exact(ten)] {
            for procs in [1usize, 2, 4] {
                let total = workers * procs;
                let ideal = work.ideal(total);
                let n = ideal.map_or(30_000, |i| i as u64 * seconds);
                let _workers = start_workers(procs, &server.url, work);
                let at = Some((server.url.as_str(), total * 4));
                // Let every process connect and pull before the clock starts.
                let _ = measure(at, work, workers, 300).await;
                let distributed = measure(at, work, workers, n).await;
                let local = measure(None, work, total, n).await;
                let of_ideal = ideal.map_or("-".to_owned(), |i| {
                    format!("{:.0}%", 100.0 * distributed / i)
                });
                println!(
                    "{:<14} {procs:>9} {total:>8} {distributed:>12.0} {local:>14.0} {of_ideal:>9}",
                    work.label()
                );
            }
        }
        // The round trip, one item at a time.
        let _workers = start_workers(1, &server.url, Work::Trivial);
        let at = Some((server.url.as_str(), 1));
        let _ = measure(at, Work::Trivial, 1, 200).await;
        let per_s = measure(at, Work::Trivial, 1, 3_000).await;
        let local = measure(None, Work::Trivial, 1, 3_000).await;
        println!(
            "one item at a time through a trivial stage: distributed {:.0} µs per item, in \
             one process {:.1} µs: the JetStream path adds {:.0} µs",
            1e6 / per_s,
            1e6 / local,
            1e6 / per_s - 1e6 / local
        );
    });
}
