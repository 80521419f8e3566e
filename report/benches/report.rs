//! What reporting costs (run on demand: `cargo bench -p flowdeck-report --bench report`).
//!
//! 1. The runtime bench's pipeline (3 stages × 4 workers of trivial tasks) over N items:
//!    alone; reporting to a dashboard that is down; reporting to a sink that takes each
//!    batch and answers at once (the reporter's own cost: reading the feed, encoding,
//!    sending); and reporting to a standalone dashboard in this process (on its own
//!    threads, as `flowdeck serve` runs it; on a 2-core machine it takes its share of the
//!    cores). Items/s, best of 3.
//! 2. Ingest: 4 such pipelines reporting to one standalone dashboard at once; events the
//!    dashboard took per second, counted from the reporters' own `sent`.
//!
//! Settings by environment: REPORT_ITEMS (1000000).

// A bench that cannot set up has nothing to measure: it stops with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

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
async fn run(name: &str, n: u64, to: Option<&str>) -> (f64, Option<flowdeck_report::ReportStats>) {
    let running = pipeline(name).start();
    let handle = running.handle.clone();
    let reporter = to.map(|url| {
        handle.report_to_with(
            url,
            TOKEN,
            Options {
                end_grace: Duration::from_secs(2),
                ..Options::default()
            },
        )
    });
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

/// A standalone dashboard on its own threads; its URL.
async fn dashboard(dir: &tempfile::TempDir) -> (String, flowdeck_server::Serving) {
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
    (serving.url().to_owned(), serving)
}

#[tokio::main]
async fn main() {
    let n = env("REPORT_ITEMS", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (url, _serving) = dashboard(&dir).await;
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let sink = sink().await;
    println!("1. {n} items, 3 stages x 4 workers of trivial tasks (best of 3)");
    let mut best = [0.0f64; 4];
    let mut last = [None, None, None, None];
    // Variant by variant, the dashboard last: after a run it keeps working (its store
    // writes what it took) and would slow whatever ran next.
    let targets = [
        None,
        Some(down.as_str()),
        Some(sink.as_str()),
        Some(url.as_str()),
    ];
    for (i, to) in targets.into_iter().enumerate() {
        for round in 0..3 {
            let (rate, stats) = run(&format!("bench {round} {i}"), n, to).await;
            best[i] = best[i].max(rate);
            last[i] = stats;
        }
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

    println!("2. 4 pipelines reporting at once, {} items each", n / 4);
    let t = Instant::now();
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move { run(&format!("ingest {i}"), n / 4, Some(&url)).await })
        })
        .collect();
    let mut sent = 0;
    let mut dropped = 0;
    for r in runs {
        let (_, stats) = r.await.unwrap();
        let stats = stats.unwrap();
        sent += stats.sent;
        dropped += stats.dropped;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "   the dashboard took {sent} events in {secs:.1} s: {:.0} events/s ({dropped} dropped)",
        sent as f64 / secs
    );
}
