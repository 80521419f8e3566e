//! The live stream's cost per client (run on demand: `cargo bench -p flowdeck-server --bench
//! stream`), over real HTTP against the demo pipeline at the default refresh (250 ms):
//!
//! 1. bytes a second one `/api/events` client receives, plain, gzip and brotli side by
//!    side, gzip without task rows (`?rows=none`, every page but the task list) and gzip
//!    with the task list's window at the top of its list (`?rows=window&…`), at
//!    the demo's defaults (60 documents/s, latency 1.0) and at
//!    `--demo-rate 2000 --demo-latency 0.05`;
//! 2. many compressed clients (brotli, or gzip with `CODING=gzip`) on one core: the dashboard (the demo, the hub, the HTTP server)
//!    on a single-threaded runtime of its own, the clients on another thread; each
//!    client's frames a second, how far behind the newest frame the slowest is, and the
//!    dashboard thread's CPU.
//!
//! Settings by environment: SECONDS (20, each measurement), CLIENTS (1000), CODING (br),
//! BYTES_ONLY (set: part 1 only).

// A bench that cannot set up has nothing to measure: it stops with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use flowdeck_server::{router, state, Config};
use futures::StreamExt;

mod common;

use common::{env, pct};

/// Serves the demo at `rate` and `latency` on a free port of this runtime.
async fn serve_demo(rate: u32, latency: f64) -> String {
    let handle = flowdeck_server::demo::start(rate, latency);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        addr: listener.local_addr().unwrap(),
        ..Config::default()
    };
    let app = router(state(&config, handle))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{}", config.addr)
}

/// A stream client counting the bytes as sent (compressed) and the frames in them; the
/// newest frame id it saw. It decodes what it asked for, as a browser does.
#[derive(Default)]
struct Counts {
    bytes: AtomicU64,
    frames: AtomicU64,
    last_id: AtomicU64,
}

async fn client(
    base: String,
    accept: Option<&'static str>,
    query: &'static str,
    counts: Arc<Counts>,
) {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder};
    use eventsource_stream::Eventsource;
    use tokio_util::io::{ReaderStream, StreamReader};
    let http = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .build()
        .unwrap();
    let mut req = http.get(format!("{base}/api/events{query}"));
    if let Some(a) = accept {
        req = req.header("accept-encoding", a);
    }
    let res = req.send().await.unwrap();
    let sent = counts.clone();
    let bytes = res
        .bytes_stream()
        .map(move |b| {
            let b = b.map_err(std::io::Error::other)?;
            sent.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
            Ok::<_, std::io::Error>(b)
        })
        .boxed();
    let body = match accept {
        Some("br") => ReaderStream::new(BrotliDecoder::new(StreamReader::new(bytes))).boxed(),
        Some("gzip") => ReaderStream::new(GzipDecoder::new(StreamReader::new(bytes))).boxed(),
        _ => bytes,
    };
    let mut events = body.eventsource();
    while let Some(Ok(e)) = events.next().await {
        // Frames only: a window goes beside the frame it belongs with.
        if e.event == "full" || e.event == "delta" {
            counts.frames.fetch_add(1, Ordering::Relaxed);
            counts
                .last_id
                .store(e.id.parse().unwrap_or(0), Ordering::Relaxed);
        }
    }
}

/// Part 1: one client of each encoding against the demo at `rate` and `latency`.
async fn bytes_per_client(rate: u32, latency: f64, seconds: u64) {
    let base = serve_demo(rate, latency).await;
    // Let the demo fill its window first: a dashboard is mostly watched mid-run.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let kinds = [
        ("plain", None, ""),
        ("gzip", Some("gzip"), ""),
        ("brotli", Some("br"), ""),
        ("gzip, no rows", Some("gzip"), "?rows=none"),
        // What the task list asks for at the top of an unfiltered list.
        (
            "gzip, window",
            Some("gzip"),
            "?rows=window&tab=all&from=0&count=154",
        ),
    ];
    let counts: Vec<Arc<Counts>> = kinds.iter().map(|_| Arc::default()).collect();
    for ((_, accept, query), c) in kinds.iter().zip(&counts) {
        tokio::spawn(client(base.clone(), *accept, query, c.clone()));
    }
    // The first full frame is a one-off: count from after it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start: Vec<(u64, u64)> = counts
        .iter()
        .map(|c| {
            (
                c.bytes.load(Ordering::Relaxed),
                c.frames.load(Ordering::Relaxed),
            )
        })
        .collect();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let secs = t.elapsed().as_secs_f64();
    println!("demo-rate {rate}, demo-latency {latency}, refresh 250 ms, {seconds} s:");
    for (((name, _, _), c), (b0, f0)) in kinds.iter().zip(&counts).zip(start) {
        let bytes = c.bytes.load(Ordering::Relaxed) - b0;
        let frames = c.frames.load(Ordering::Relaxed) - f0;
        println!(
            "  {name:>13}: {:>9.0} B/s, {:.1} frames/s, {:.0} B a frame",
            bytes as f64 / secs,
            frames as f64 / secs,
            bytes as f64 / frames.max(1) as f64
        );
    }
}

/// This thread's CPU time so far (user + system), from /proc.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // The fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap_or(0)).collect();
    Duration::from_millis((f[11] + f[12]) * 10) // 100 ticks a second
}

/// Part 2: `n` clients asking for `coding` of a dashboard that has one thread.
fn many_clients(n: usize, seconds: u64, coding: &'static str) {
    let (tx, rx) = std::sync::mpsc::channel();
    let (cpu_tx, cpu_rx) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<Duration>>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            tx.send(serve_demo(60, 1.0).await).unwrap();
            // Answers CPU questions from this thread, where the dashboard runs.
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                while let Ok(reply) = cpu_rx.try_recv() {
                    let _ = reply.send(thread_cpu());
                }
            }
        });
    });
    let base = rx.recv().unwrap();
    let cpu = move || {
        let (reply, answer) = tokio::sync::oneshot::channel();
        cpu_tx.send(reply).unwrap();
        answer
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let counts: Vec<Arc<Counts>> = (0..n).map(|_| Arc::default()).collect();
        for c in &counts {
            tokio::spawn(client(base.clone(), Some(coding), "", c.clone()));
        }
        // Every client connected and past its first frame.
        while counts.iter().any(|c| c.frames.load(Ordering::Relaxed) == 0) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let frames0: Vec<u64> = counts.iter().map(|c| c.frames.load(Ordering::Relaxed)).collect();
        let bytes0: u64 = counts.iter().map(|c| c.bytes.load(Ordering::Relaxed)).sum();
        let cpu0 = cpu().await.unwrap();
        let t = Instant::now();
        let mut behind = 0u64;
        while t.elapsed() < Duration::from_secs(seconds) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let ids: Vec<u64> = counts.iter().map(|c| c.last_id.load(Ordering::Relaxed)).collect();
            let newest = ids.iter().max().copied().unwrap_or(0);
            let slowest = ids.iter().min().copied().unwrap_or(0);
            behind = behind.max(newest - slowest);
        }
        let secs = t.elapsed().as_secs_f64();
        let cpu1 = cpu().await.unwrap();
        let mut rates: Vec<f64> = counts
            .iter()
            .zip(&frames0)
            .map(|(c, f0)| (c.frames.load(Ordering::Relaxed) - f0) as f64 / secs)
            .collect();
        rates.sort_by(f64::total_cmp);
        let bytes: u64 = counts.iter().map(|c| c.bytes.load(Ordering::Relaxed)).sum::<u64>() - bytes0;
        println!("{n} {coding} clients of one dashboard thread (the demo at its defaults), {seconds} s:");
        println!(
            "  frames/s per client: min {:.2}, median {:.2}; the slowest at most {} frame ids behind the newest",
            rates[0],
            pct(&rates, 0.5),
            behind
        );
        println!(
            "  dashboard thread CPU {:.0}% of a core; {:.0} B/s sent to each client",
            (cpu1 - cpu0).as_secs_f64() / secs * 100.0,
            bytes as f64 / secs / n as f64
        );
    });
}

fn main() {
    let seconds = env("SECONDS", 20);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(bytes_per_client(60, 1.0, seconds));
    rt.block_on(bytes_per_client(2000, 0.05, seconds));
    drop(rt);
    if std::env::var_os("BYTES_ONLY").is_some() {
        return;
    }
    let coding = match std::env::var("CODING").as_deref() {
        Ok("gzip") => "gzip",
        _ => "br",
    };
    many_clients(env("CLIENTS", 1000) as usize, seconds, coding);
}
