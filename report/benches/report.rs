//! What reporting costs (run on demand: `cargo bench -p flowdeck-report --bench report`).
//!
//! 1. The runtime bench's pipeline (3 stages × 4 workers of trivial tasks) over N items:
//!    alone; reporting to a dashboard that is down; reporting to a sink that takes each
//!    batch and answers at once (the reporter's own cost: scanning, encoding, sending);
//!    and reporting to a standalone dashboard in another process (this binary started
//!    again as one; on a 2-core machine it takes its share of the cores). Items/s, best
//!    of 3.
//! 2. Ingest: 4 processes (this binary again), each running that pipeline over 100,000
//!    items and reporting with batches of 5,000 items (the most), to one standalone dashboard in a
//!    fifth; the status changes the dashboard took per second, from the reporters' own
//!    counts, over the time from their start to the last one's end.
//!
//! Settings by environment: REPORT_ITEMS (1000000).

// A bench that cannot set up has nothing to measure: it stops with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use flowdeck_report::{Options, ReportTo};
use flowdeck_runtime::{Line, Pipeline, Stage};
use flowdeck_server::{dashboard::Dashboard, Config};

const TOKEN: &str = "bench-ingest-token-0123";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pipeline(name: &str) -> Pipeline<u64, u64> {
    let stage = |name: &'static str| {
        Stage::map(name, |n: u64, _cx| async move {
            Ok::<_, std::convert::Infallible>(n.wrapping_add(1))
        })
        .workers(4)
        .queue(1024)
    };
    Line::<u64>::new(name)
        .stage(stage("a"))
        .stage(stage("b"))
        .stage(stage("c"))
        .build()
        .unwrap()
}

/// Runs `n` items through a fresh pipeline, reporting to `to` when given: items/s, and
/// the reporter's counts.
async fn run(
    name: &str,
    n: u64,
    to: Option<&str>,
    options: Options,
) -> (f64, Option<flowdeck_report::ReportStats>) {
    let running = pipeline(name).start();
    let handle = running.handle.clone();
    let reporter = to.map(|url| handle.report_to_with(url, TOKEN, options));
    let outputs = running.outputs;
    let drain = tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    let t = Instant::now();
    running.input.send_all(0..n).await;
    drop(running.input);
    drain.await.unwrap();
    handle.wait().await;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let stats = match reporter {
        Some(r) => Some(r.finished().await),
        None => None,
    };
    (rate, stats)
}

/// An endpoint that reads each batch whole and answers "no commands": its URL.
async fn sink() -> String {
    let app = axum::Router::new()
        .route(
            "/api/v1/ingest",
            axum::routing::post(|body: axum::body::Bytes| async move {
                std::hint::black_box(body.len());
                axum::Json(serde_json::json!({ "commands": [] }))
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A standalone dashboard: in a child process (this binary again, `BENCH_ROLE=dashboard`),
/// which prints its URL and serves until killed.
fn dashboard_process() -> (String, Child) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("BENCH_ROLE", "dashboard")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    DASHBOARD_PID.store(child.id(), std::sync::atomic::Ordering::Relaxed);
    (line.trim().to_owned(), child)
}

async fn serve_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        store: Some(flowdeck_store::StoreConfig::new(dir.path().join("runs.db"))),
        ingest_token: Some(TOKEN.into()),
        standalone: true,
        console: Some(flowdeck_server::console::Console::silent()),
        ..Config::default()
    };
    let placeholder = flowdeck_runtime::mirror("standalone".into(), vec![], vec![], 0).0;
    let serving = Dashboard::new(config).start(placeholder).await.unwrap();
    println!("{}", serving.url());
    std::future::pending::<()>().await;
}

/// A reporting process (`BENCH_ROLE=reporter`): one pipeline over `REPORT_ITEMS` items,
/// reporting to `REPORT_URL` in batches of 5,000; prints its counts as
/// `items events dropped`.
async fn reporter_process() {
    let url = std::env::var("REPORT_URL").unwrap();
    let n = env("REPORT_ITEMS", 100_000);
    let name = format!("ingest {}", std::process::id());
    let options = Options {
        max_items: 5_000,
        end_grace: Duration::from_secs(60),
        ..Options::default()
    };
    let (_, stats) = run(&name, n, Some(&url), options).await;
    let s = stats.unwrap();
    println!("{} {} {}", s.sent, s.events, s.dropped);
}

#[tokio::main]
async fn main() {
    match std::env::var("BENCH_ROLE").as_deref() {
        Ok("dashboard") => return serve_dashboard().await,
        Ok("reporter") => return reporter_process().await,
        _ => {}
    }
    let n = env("REPORT_ITEMS", 1_000_000);
    let (url, mut dashboard) = dashboard_process();
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let sink = sink().await;
    if std::env::var("REPORT_PART").as_deref() != Ok("2") {
        cost(n, &url, &down, &sink).await;
    }
    ingest(&url);
    let _ = dashboard.kill();
}

/// CPU seconds a process has used (user and system).
fn cpu_secs(pid: u32) -> f64 {
    flowdeck_runtime::resources::cpu_seconds(pid).unwrap_or(0.0)
}

async fn cost(n: u64, url: &str, down: &str, sink: &str) {
    println!("1. {n} items, 3 stages x 4 workers of trivial tasks (best of 3)");
    let mut best = [0.0f64; 4];
    let mut last = [None, None, None, None];
    // Round by round, so that the machine's drifts touch every variant alike; the
    // dashboard last: after a run it keeps working (its store writes what it took) and
    // would slow whatever ran next.
    let targets = [None, Some(down), Some(sink), Some(url)];
    let options = Options {
        end_grace: Duration::from_secs(2),
        ..Options::default()
    };
    let order = (0..3)
        .flat_map(|round| (0..3).map(move |i| (round, i)))
        .chain((0..3).map(|round| (round, 3)));
    for (round, i) in order {
        let (rate, stats) = run(
            &format!("bench {round} {i}"),
            n,
            targets[i],
            options.clone(),
        )
        .await;
        best[i] = best[i].max(rate);
        last[i] = stats;
    }
    println!("   alone:                        {:>9.0} items/s", best[0]);
    println!(
        "   reporting, dashboard down:    {:>9.0} items/s ({:.0}% of alone); {:?}",
        best[1],
        best[1] / best[0] * 100.0,
        last[1]
    );
    println!(
        "   reporting to a sink:          {:>9.0} items/s ({:.0}% of alone); {:?}",
        best[2],
        best[2] / best[0] * 100.0,
        last[2]
    );
    println!(
        "   reporting to the dashboard:   {:>9.0} items/s ({:.0}% of alone); {:?}",
        best[3],
        best[3] / best[0] * 100.0,
        last[3]
    );
}

fn ingest(url: &str) {
    let each = 100_000;
    println!("2. 4 reporting processes, {each} items each, batches of 5,000 items");
    let t = Instant::now();
    let children: Vec<Child> = (0..4)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .env("BENCH_ROLE", "reporter")
                .env("REPORT_URL", url)
                .env("REPORT_ITEMS", each.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let dashboard_cpu = cpu_secs(DASHBOARD_PID.load(std::sync::atomic::Ordering::Relaxed));
    let (mut items, mut events, mut dropped) = (0u64, 0u64, 0u64);
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let n: Vec<u64> = text
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        items += n[0];
        events += n[1];
        dropped += n[2];
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "   the dashboard took {items} items ({events} status changes) in {secs:.1} s: {:.0} changes/s, {:.0} items/s ({dropped} dropped)",
        events as f64 / secs,
        items as f64 / secs
    );
    let used = cpu_secs(DASHBOARD_PID.load(std::sync::atomic::Ordering::Relaxed)) - dashboard_cpu;
    println!(
        "   the dashboard's process used {used:.1} CPU-seconds: {:.0} changes per CPU-second",
        events as f64 / used
    );
}

static DASHBOARD_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
