//! A dashboard of many pipelines over a big run store (run on demand:
//! `cargo bench -p flowdeck-server --bench pipelines`): how fast its list answers, the page
//! (`/pipelines`, where `/` leads, rendered by the server with its rows) and the API, p50
//! and p95 over repeated requests, for the live run and for a week of runs.
//!
//! The store holds earlier runs of every pipeline (a run an hour) with their items, as a
//! dashboard that has been up for a while would; the pipelines are live, idle after a few
//! items each.
//!
//! Settings by environment: PIPELINES (100), STORE_ITEMS (1000000), RUNS (10 earlier runs
//! a pipeline), REQUESTS (200).

// A bench that cannot set up has nothing to measure: it stops with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use flowdeck_protocol::{ItemDetail, ItemStatus, PipelineState, Snapshot, Totals};
use flowdeck_runtime::{Line, Running, Stage};
use flowdeck_server::{dashboard::Dashboard, Config};
use flowdeck_store::{RunStart, RunState, Store, StoreConfig};

mod common;

use common::{env, pct};

fn name(i: u64) -> String {
    format!("pipeline {i:03}")
}

fn item(id: u64) -> ItemDetail {
    let failed = id.is_multiple_of(50);
    ItemDetail {
        id,
        status: if failed {
            ItemStatus::Failed
        } else {
            ItemStatus::Completed
        },
        stage: 0,
        created_us: id,
        updated_us: id + 100,
        visits: vec![],
        parents: vec![],
        error: failed.then(|| flowdeck_protocol::ErrorInfo {
            kind: "Timeout".into(),
            message: format!("item {id} gave up"),
        }),
        annotations: vec![],
        history: vec![],
    }
}

/// Earlier runs of every pipeline, a run an hour back from now, `items` in all.
fn fill(path: &std::path::Path, pipelines: u64, runs: u64, items: u64) {
    let mut config = StoreConfig::new(path);
    config.queue = 1_000_000;
    config.retention.max_bytes = u64::MAX;
    let store = Store::open(config).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let per_run = items / (pipelines * runs);
    let t = Instant::now();
    for r in 0..runs {
        for p in 0..pipelines {
            let started_ms = now - (r + 1) * 3_600_000;
            let id = store.begin_run(RunStart {
                pipeline: name(p),
                started_ms,
                stages: vec!["work".into()],
                edges: vec![],
            });
            for i in 0..per_run {
                while !store.wants(ItemStatus::Failed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                store.keep_item(id, item(i));
            }
            let failed = per_run / 50;
            let snapshot = Snapshot {
                pipeline: name(p),
                state: PipelineState::Finished,
                totals: Totals {
                    submitted: per_run,
                    completed: per_run - failed,
                    failed,
                    ..Totals::default()
                },
                ..Snapshot::default()
            };
            store.end_run(id, RunState::Finished, snapshot, started_ms + 600_000);
        }
    }
    store.flush();
    println!(
        "   stored {} runs and {} items in {:.1} s",
        pipelines * runs,
        per_run * pipelines * runs,
        t.elapsed().as_secs_f64()
    );
}

fn live(i: u64) -> Running<u64, u64> {
    Line::<u64>::new(name(i))
        .stage(Stage::map("work", |n: u64, _cx| async move { Ok::<_, String>(n) }).workers(2))
        .build()
        .unwrap()
        .start()
}

#[tokio::main]
async fn main() {
    let pipelines = env("PIPELINES", 100);
    let items = env("STORE_ITEMS", 1_000_000);
    let runs = env("RUNS", 10);
    let requests = env("REQUESTS", 200) as usize;
    println!("{pipelines} pipelines, {items} stored items in {runs} earlier runs of each");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    fill(&path, pipelines, runs, items);

    let running: Vec<Running<u64, u64>> = (0..pipelines).map(live).collect();
    for r in &running {
        r.input.send_all(0..100).await;
    }
    let mut dash = Dashboard::new(Config {
        store: Some(StoreConfig::new(&path)),
        ..Config::default()
    });
    for r in &running[1..] {
        dash = dash.pipeline(r.handle.clone());
    }
    let state = dash.state(running[0].handle.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = flowdeck_server::router(state)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    for (what, path) in [
        ("/ (the list page)", "/"),
        ("API, live run", "/api/v1/pipelines"),
        (
            "API, a week, by failures",
            "/api/v1/pipelines?window=week&sort=failed",
        ),
    ] {
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let t = Instant::now();
            let res = client.get(format!("{base}{path}")).send().await.unwrap();
            assert!(res.status().is_success(), "{path}: {}", res.status());
            let body = res.text().await.unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(
                body.contains("pipeline 099") || pipelines < 100,
                "{path}: every row"
            );
        }
        times.sort_by(f64::total_cmp);
        println!(
            "   {what:<26} p50 {:>6.1} ms, p95 {:>6.1} ms ({requests} requests)",
            pct(&times, 0.5),
            pct(&times, 0.95)
        );
    }
}
