//! The run store seen through the dashboard: when its writes fail (here a file cap standing
//! in for a full disk), the store says "degraded" in the API and in the page's top bar, and
//! the pipeline finishes its items regardless.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{pipeline, serve_with_store};
use flowdeck_server::Config;
use serde_json::Value;

async fn get_json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn get_text(url: String) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_degrades_the_store_on_the_dashboard_and_the_run_goes_on() {
    let db = tempfile::tempdir().unwrap();
    let mut store = flowdeck_store::StoreConfig::new(db.path().join("runs.db"));
    store.hard_limit_bytes = Some(256 * 1024);
    store.commit_every = Duration::from_millis(20);
    let config = Config {
        refresh: Duration::from_millis(50),
        store: Some(store),
        ..Config::default()
    };
    let running = pipeline(1_000);
    let handle = running.handle.clone();
    let base = serve_with_store(handle.clone(), config).await;

    // Before the disk fills: healthy, and no badge.
    let status = get_json(format!("{base}/api/v1/store")).await;
    assert_eq!(status["degraded"], false, "{status}");
    let page = get_text(format!("{base}/")).await;
    assert!(
        !page.contains("store-degraded"),
        "a badge on a healthy store"
    );

    let outputs = running.outputs;
    let drained = tokio::spawn(async move {
        let mut n = 0u64;
        while outputs.recv().await.is_ok() {
            n += 1;
        }
        n
    });
    let items = 20_000u64;
    running.input.send_all(0..items).await;
    drop(running.input);

    // The cap is reached mid-run: the store degrades while the pipeline still works.
    let mut status = Value::Null;
    for _ in 0..200 {
        status = get_json(format!("{base}/api/v1/store")).await;
        if status["degraded"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["degraded"], true, "{status}");
    let problem = status["problem"].as_str().unwrap_or_default().to_owned();
    assert!(problem.contains("full"), "{problem}");
    let page = get_text(format!("{base}/")).await;
    assert!(
        page.contains(r#"data-testid="store-degraded""#),
        "no badge on the page"
    );
    let runs = get_text(format!("{base}/runs")).await;
    assert!(runs.contains("degraded"), "the Runs page does not say so");

    // Every item still goes through: none is lost to the store's trouble.
    let out = tokio::time::timeout(Duration::from_secs(60), drained)
        .await
        .expect("the pipeline stalled behind a full store")
        .unwrap();
    // The outputs close as the last item leaves; the counts are final once the run has
    // ended (a loaded CI run read them two events early).
    handle.wait().await;
    let totals = handle.snapshot().totals;
    assert_eq!(out, totals.completed);
    assert_eq!(
        totals.completed + totals.failed,
        items,
        "items went missing"
    );
}

/// A pipeline that ran before its dashboard (and its store) started: what had finished by
/// then is kept too, not only what finishes after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_that_finished_before_the_dashboard_started_are_kept() {
    let db = tempfile::tempdir().unwrap();
    let running = pipeline(1_000);
    let handle = running.handle.clone();
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..300).await;
    drop(running.input);
    handle.wait().await;
    let totals = handle.snapshot().totals;
    let finished = totals.completed + totals.failed + totals.cancelled;
    assert_eq!(finished, 300);

    let config = Config {
        store: Some(flowdeck_store::StoreConfig::new(db.path().join("runs.db"))),
        ..Config::default()
    };
    let base = serve_with_store(handle.clone(), config).await;
    let page = get_json(format!("{base}/api/v1/runs/1/tasks?limit=1")).await;
    assert_eq!(page["total"], finished, "{page}");
    let failed = get_json(format!("{base}/api/v1/runs/1/tasks?status=failed&limit=1")).await;
    assert_eq!(failed["total"], totals.failed, "{failed}");
}

/// Replay: the store keeps each snapshot of a run, the timeline lists them, and the run
/// can be read as it was at any moment; bad input is a JSON 400 or 404 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_replays_from_its_kept_snapshots() {
    let db = tempfile::tempdir().unwrap();
    let config = Config {
        store: Some(flowdeck_store::StoreConfig::new(db.path().join("runs.db"))),
        ..Config::default()
    };
    let running = pipeline(1_000);
    let handle = running.handle.clone();
    let base = serve_with_store(handle.clone(), config).await;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..500).await;
    drop(running.input);
    handle.wait().await;

    // The first snapshot is written as the run starts, the last at its end.
    let mut timeline = Value::Null;
    for _ in 0..100 {
        timeline = get_json(format!("{base}/api/v1/runs/1/timeline")).await;
        let points = timeline["points"].as_array().unwrap();
        let last = points.last().map(|p| &p["totals"]);
        if last.is_some_and(|t| {
            t["completed"].as_u64().unwrap() + t["failed"].as_u64().unwrap() == 500
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(timeline["resolution_ms"], 5000, "{timeline}");
    let points = timeline["points"].as_array().unwrap();
    assert!(points.len() >= 2, "{timeline}");
    let times: Vec<u64> = points
        .iter()
        .map(|p| p["at_ms"].as_u64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {times:?}"
    );
    let done = |v: &Value| v["completed"].as_u64().unwrap() + v["failed"].as_u64().unwrap();
    assert!(done(&points[0]["totals"]) < 500, "{timeline}");

    // The start, and the end.
    let start = get_json(format!("{base}/api/v1/runs/1/at?ms=0")).await;
    assert_eq!(start["at_ms"], times[0], "{start}");
    assert_eq!(start["snapshot"]["totals"], points[0]["totals"]);
    let end = get_json(format!("{base}/api/v1/runs/1/at?ms={}", u64::MAX)).await;
    assert_eq!(end["at_ms"], *times.last().unwrap(), "{end}");
    assert_eq!(done(&end["snapshot"]["totals"]), 500);
    assert!(
        end["bottleneck"].is_null(),
        "nothing held a finished run back: {end}"
    );

    // The task list at a moment: the one a quarter of the items had finished by.
    let all = get_json(format!(
        "{base}/api/v1/runs/1/tasks?sort=updated&limit=1000"
    ))
    .await;
    let mut finished: Vec<u64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["updated_us"].as_u64().unwrap())
        .collect();
    assert_eq!(finished.len(), 500);
    finished.sort_unstable();
    let t_ms = finished[125] / 1000;
    let by_then = finished.iter().filter(|&&u| u <= t_ms * 1000).count() as u64;
    let total = |query: &str| {
        let url = format!("{base}/api/v1/runs/1/tasks?at={t_ms}&limit=1000{query}");
        async move { get_json(url).await }
    };
    let done = total("&status=completed").await["total"].as_u64().unwrap()
        + total("&status=failed").await["total"].as_u64().unwrap();
    assert_eq!(done, by_then, "items finished by {t_ms} ms");
    let going = total("&status=running").await;
    let all_then = total("").await;
    assert_eq!(
        all_then["total"].as_u64().unwrap(),
        done + going["total"].as_u64().unwrap(),
        "{all_then}"
    );
    for item in going["items"].as_array().unwrap() {
        let status = item["status"].as_str().unwrap();
        assert!(
            ["queued", "running", "retrying"].contains(&status),
            "{item}"
        );
        assert!(
            item["updated_us"].as_u64().unwrap() <= t_ms * 1000,
            "{item}"
        );
    }

    for (path, status, names) in [
        ("/api/v1/runs/1/tasks?at=soon", 400, "at"),
        ("/api/v1/runs/1/at", 400, "ms"),
        ("/api/v1/runs/1/at?ms=soon", 400, "ms"),
        ("/api/v1/runs/1/at?ms=1&at=2", 400, "at"),
        ("/api/v1/runs/x/at?ms=1", 400, "run id"),
        ("/api/v1/runs/99/at?ms=1", 404, "no run 99"),
        ("/api/v1/runs/99/timeline", 404, "no run 99"),
    ] {
        let res = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains(names),
            "{path}: {body}"
        );
    }
}

/// Links into the live run outlive the tracker's retention ring: an item that left it is
/// read from the store, in the API and on its page, which say where it came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_item_that_left_the_ring_is_read_from_the_store() {
    let db = tempfile::tempdir().unwrap();
    let config = Config {
        store: Some(flowdeck_store::StoreConfig::new(db.path().join("runs.db"))),
        ..Config::default()
    };
    // The tracker retains 100 items: the first failures leave it long before the end.
    let running = pipeline(100);
    let handle = running.handle.clone();
    let base = serve_with_store(handle.clone(), config).await;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..2_000).await;
    drop(running.input);
    handle.wait().await;

    // The oldest failure the store kept (its commits follow the run within a window).
    let mut failed = Value::Null;
    for _ in 0..100 {
        failed = get_json(format!(
            "{base}/api/v1/runs/1/tasks?status=failed&sort=oldest&limit=1"
        ))
        .await;
        if failed["total"].as_u64().unwrap_or(0) >= handle.snapshot().totals.failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = failed["items"][0]["id"].as_u64().expect("a failure");
    assert!(
        handle.tracker().item(id).is_none(),
        "item {id} is still retained: the test proves nothing"
    );

    let res = reqwest::get(format!("{base}/api/v1/tasks/{id}"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the live run's item {id} answers 404");
    let task: Value = res.json().await.unwrap();
    assert_eq!(task["from_store"], true, "{task}");
    assert_eq!(task["detail"]["status"], "failed", "{task}");
    assert!(task["detail"]["error"]["message"].is_string(), "{task}");
    // A retained one says nothing of the store.
    let newest = handle.snapshot().totals.submitted;
    let task = get_json(format!("{base}/api/v1/tasks/{}", newest - 1)).await;
    assert!(task.get("from_store").is_none(), "{task}");

    let res = reqwest::get(format!("{base}/tasks/{id}")).await.unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains(r#"data-testid="task-from-store""#), "{page}");
    assert!(page.contains(&format!("Task #{id}")));
    // An id nobody kept is still a 404 naming why.
    let res = reqwest::get(format!("{base}/api/v1/tasks/9999999"))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let err: Value = res.json().await.unwrap();
    assert!(
        err["message"].as_str().unwrap().contains("run store"),
        "{err}"
    );
}

/// A join's items in the run store: a joined item keeps every part as a parent, and the
/// stored run's provenance walks them back to the document; the kept snapshots keep the
/// join's groups for replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_items_parts_and_its_join_are_kept_for_the_stored_run() {
    use flowdeck_runtime::{Graph, Joined, Stage};
    let db = tempfile::tempdir().unwrap();
    let config = Config {
        store: Some(flowdeck_store::StoreConfig::new(db.path().join("runs.db"))),
        ..Config::default()
    };
    let mut g = Graph::<u64, u64>::new("joins");
    let split = g.add(Stage::flat_map("split", |n: u64, _cx| async move {
        Ok::<_, String>([n * 10, n * 10 + 1, n * 10 + 2])
    }));
    let work =
        g.add(Stage::map("work", |n: u64, _cx| async move { Ok::<_, String>(n + 1) }).workers(2));
    let join = g.add_join(
        Stage::join("join", |_n: u64, j: Joined<u64>, _cx| async move {
            Ok::<_, String>(j.parts.iter().sum::<u64>())
        })
        .of(split),
    );
    g.input(split)
        .connect(split, work)
        .connect(work, join)
        .output(join);
    let running = g.build().unwrap().start();
    let handle = running.handle.clone();
    let base = serve_with_store(handle.clone(), config).await;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..50).await;
    drop(running.input);
    handle.wait().await;

    // A joined item: completed at the join (where its parts ended too), three parents.
    let mut task = Value::Null;
    'wait: for _ in 0..100 {
        let done = get_json(format!(
            "{base}/api/v1/runs/1/tasks?status=completed&limit=1000"
        ))
        .await;
        let at_join = done["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["stage"] == 2);
        for id in at_join.filter_map(|i| i["id"].as_u64()) {
            let t = get_json(format!("{base}/api/v1/runs/1/tasks/{id}")).await;
            if t["detail"]["parents"]
                .as_array()
                .is_some_and(|p| p.len() == 3)
            {
                task = t;
                break 'wait;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let parents: Vec<u64> = task["detail"]["parents"]
        .as_array()
        .unwrap_or_else(|| panic!("no joined item with 3 parents in the store: {task}"))
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    let chain = task["provenance"].as_array().unwrap();
    let at = |depth: u64| -> Vec<u64> {
        let mut ids: Vec<u64> = chain
            .iter()
            .filter(|a| a["depth"] == depth)
            .map(|a| a["id"].as_u64().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    };
    let mut want = parents.clone();
    want.sort_unstable();
    assert_eq!(at(1), want, "{task}");
    assert_eq!(at(2).len(), 1, "the document they came from: {task}");

    // The last kept snapshot has the join, every group fired.
    let end = get_json(format!("{base}/api/v1/runs/1/at?ms={}", u64::MAX)).await;
    let j = &end["snapshot"]["stages"][2]["join"];
    assert_eq!(
        (j["of"].as_u64(), j["waiting"].as_u64(), j["fired"].as_u64()),
        (Some(0), Some(0), Some(50)),
        "{end}"
    );
}
