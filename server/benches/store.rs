//! The run store under load (run on demand: `cargo bench -p flowdeck-server --bench store`).
//!
//! 1. A 3-stage × 4-worker pipeline of trivial tasks fed at 100,000 items/s, with the store
//!    off and on: what the store costs the pipeline, and how many items it kept or shed.
//! 2. The same unthrottled: above what SQLite takes on 2 cores, the store sheds completed
//!    items (counted) and the pipeline does not slow down.
//! 3. A run of 1,000,000 stored items: the task list's latency (p50/p95 over filters,
//!    searches, sorts and pages) and the database's bytes per stored item.
//!
//! Settings by environment: STORE_ITEMS (1000000), STORE_RATE (100000).

// A bench that cannot set up has nothing to measure: it stops with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use flowdeck_protocol::{ItemDetail, ItemStatus, StageVisit};
use flowdeck_runtime::{FinishedSink, Line, Pipeline, Stage};
use flowdeck_store::{ItemQuery, ItemSort, RunStart, RunState, Store, StoreConfig};

mod common;

use common::{env, pct};

/// What the server's recorder does: ask, keep, count what is shed.
struct Sink(Store, i64);

impl FinishedSink for Sink {
    fn wants(&self, status: ItemStatus) -> bool {
        self.0.wants(status)
    }
    fn finished(&self, items: Vec<ItemDetail>) {
        for item in items {
            self.0.keep_item(self.1, item);
        }
    }
    fn skipped(&self, n: u64) {
        self.0.shed(self.1, n);
    }
    fn amended(&self, items: Vec<ItemDetail>) {
        for item in items {
            self.0.amend_item(self.1, item);
        }
    }
}

fn pipeline() -> Pipeline<u64, u64> {
    let stage = |name: &'static str| {
        Stage::map(name, |n: u64, _cx| async move {
            if n % 100 == 7 {
                Err(format!("item {n} is odd"))
            } else {
                Ok(n.wrapping_add(1))
            }
        })
        .workers(4)
    };
    Line::<u64>::new("bench")
        .stage(stage("a"))
        .stage(stage("b"))
        .stage(stage("c"))
        .build()
        .unwrap()
}

/// Runs `n` items at `rate` a second (0: as fast as it goes); returns items/s, kept, shed.
async fn run(n: u64, rate: u64, store: Option<&Store>) -> (f64, u64, u64) {
    let running = pipeline().start();
    let run = store.map(|s| {
        let id = s.begin_run(RunStart {
            pipeline: "bench".into(),
            started_ms: 0,
            stages: vec!["a".into(), "b".into(), "c".into()],
            edges: vec![],
        });
        running
            .handle
            .tracker()
            .set_sink(Arc::new(Sink(s.clone(), id)));
        id
    });
    let input = running.input;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    let t = Instant::now();
    tokio::spawn(async move {
        if rate == 0 {
            input.send_all(0..n).await;
        } else {
            // In slices of a millisecond's worth, on time.
            let per_ms = (rate / 1000).max(1);
            let mut next = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while next < n {
                tick.tick().await;
                let end = (next + per_ms).min(n);
                input.send_all(next..end).await;
                next = end;
            }
        }
    });
    running.handle.wait().await;
    let took = t.elapsed().as_secs_f64();
    let (kept, shed) = match (store, run) {
        (Some(s), Some(id)) => {
            s.end_run(id, RunState::Finished, running.handle.snapshot(), 0);
            s.flush();
            let info = s.run(id).unwrap().unwrap().info;
            (info.stored, info.not_stored)
        }
        _ => (0, 0),
    };
    (n as f64 / took, kept, shed)
}

fn item(id: u64) -> ItemDetail {
    let failed = id.is_multiple_of(50);
    let status = if failed {
        ItemStatus::Failed
    } else {
        ItemStatus::Completed
    };
    ItemDetail {
        id,
        status,
        stage: (id % 3) as u16,
        created_us: id,
        updated_us: id + 100,
        visits: vec![StageVisit {
            stage: 0,
            worker: Some((id % 4) as u16),
            attempts: 1 + (id % 3) as u32,
            queued_us: id,
            started_us: Some(id + 10),
            finished_us: Some(id + 100),
            outcome: Some(status),
            input: None,
            output: None,
        }],
        parents: if id % 2 == 1 { vec![id - 1] } else { vec![] },
        error: failed.then(|| flowdeck_protocol::ErrorInfo {
            kind: ["Timeout", "Quota", "Parse"][(id % 3) as usize].into(),
            message: format!("item {id} gave up after 3 attempts"),
        }),
        annotations: vec![(
            "bytes".into(),
            flowdeck_protocol::Value::Int(((id * 37) % 10_000) as i64),
        )],
        history: vec![],
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let rate = env("STORE_RATE", 100_000);
    let n = rate * 10;

    println!("1. {n} items at {rate} items/s, 3 stages x 4 workers, 2% failing");
    let (off, _, _) = run(n, rate, None).await;
    let store = Store::open(StoreConfig::new(dir.path().join("paced.db"))).unwrap();
    let (on, kept, shed) = run(n, rate, Some(&store)).await;
    println!(
        "   store off: {off:.0} items/s; store on: {on:.0} items/s ({:.0}% of off); kept {kept}, shed {shed}",
        on / off * 100.0
    );
    drop(store);

    let n = env("STORE_ITEMS", 1_000_000);
    println!("2. {n} items as fast as they go");
    let (off, _, _) = run(n, 0, None).await;
    let store = Store::open(StoreConfig::new(dir.path().join("flat.db"))).unwrap();
    let (on, kept, shed) = run(n, 0, Some(&store)).await;
    println!(
        "   store off: {off:.0} items/s; store on: {on:.0} items/s ({:.0}% of off); kept {kept}, shed {shed} (counted per run)",
        on / off * 100.0
    );
    drop(store);

    println!("3. a run of {n} stored items");
    let path = dir.path().join("big.db");
    let mut config = StoreConfig::new(&path);
    config.queue = 1_000_000;
    config.retention.max_bytes = u64::MAX;
    let store = Store::open(config).unwrap();
    let id = store.begin_run(RunStart {
        pipeline: "big".into(),
        started_ms: 0,
        stages: vec!["a".into(), "b".into(), "c".into()],
        edges: vec![],
    });
    let t = Instant::now();
    for i in 1..=n {
        while !store.wants(ItemStatus::Failed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        store.keep_item(id, item(i));
    }
    store.flush();
    let took = t.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path).unwrap().len()
        + std::fs::metadata(dir.path().join("big.db-wal")).map_or(0, |m| m.len());
    println!(
        "   written in {took:.1} s ({:.0} items/s); {} MB, {:.0} bytes per item",
        n as f64 / took,
        bytes >> 20,
        bytes as f64 / n as f64
    );
    let queries: Vec<(&str, ItemQuery)> = vec![
        (
            "newest page",
            ItemQuery {
                limit: 100,
                ..ItemQuery::default()
            },
        ),
        (
            "failed",
            ItemQuery {
                status: Some(ItemStatus::Failed),
                limit: 100,
                ..ItemQuery::default()
            },
        ),
        (
            "stage b, oldest",
            ItemQuery {
                stage: Some(1),
                sort: ItemSort::Oldest,
                limit: 100,
                ..ItemQuery::default()
            },
        ),
        (
            "search \"Timeout\"",
            ItemQuery {
                text: Some("Timeout".into()),
                limit: 100,
                ..ItemQuery::default()
            },
        ),
        (
            "most attempts",
            ItemQuery {
                sort: ItemSort::Attempts,
                limit: 100,
                ..ItemQuery::default()
            },
        ),
        (
            "page 5,000",
            ItemQuery {
                offset: 500_000,
                limit: 100,
                ..ItemQuery::default()
            },
        ),
    ];
    let mut all = Vec::new();
    for (name, q) in &queries {
        let mut times = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            let page = store.items(id, q).unwrap();
            let counts = store.status_counts(id, q.stage, q.text.as_deref()).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(page.total <= counts.all);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "   {name:<20} p50 {:>6.1} ms, p95 {:>6.1} ms (page and tab counts)",
            pct(&times, 0.5),
            pct(&times, 0.95)
        );
        all.extend(times);
    }
    all.sort_by(f64::total_cmp);
    println!(
        "   all task-list reads: p50 {:.1} ms, p95 {:.1} ms",
        pct(&all, 0.5),
        pct(&all, 0.95)
    );
    // Replay's task list: the moment follows no index, so its counts read the run's rows.
    for (name, status) in [
        ("at mid-run", None),
        ("in progress then", Some(ItemStatus::Running)),
    ] {
        let q = ItemQuery {
            status,
            limit: 100,
            at_us: Some(n / 2),
            ..ItemQuery::default()
        };
        let mut times = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            let (page, counts) = store.items_counted(id, &q).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(counts.all, n / 2);
            assert!(page.total <= counts.all && !page.items.is_empty());
        }
        times.sort_by(f64::total_cmp);
        println!(
            "   {name:<20} p50 {:>6.1} ms, p95 {:>6.1} ms (replay: page and tab counts)",
            pct(&times, 0.5),
            pct(&times, 0.95)
        );
    }
}
