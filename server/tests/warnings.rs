//! Health warnings through the server, over real HTTP: the config's thresholds reach the
//! pipeline, a warning shows in `/api/v1/warnings`, the summary and `/prometheus` (checked
//! by promtool) while it fires, clears there once fixed, and the run store keeps it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    promtool::{promtool, samples},
    serve_with_store,
};
use flowdeck_runtime::{
    warnings::{Rule, Thresholds},
    Line, Stage,
};
use flowdeck_server::Config;
use serde_json::Value;

async fn get_json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Waits (real time, 20 s at most) until the warnings answer satisfies `pred`.
async fn until(base: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let w = get_json(format!("{base}/api/v1/warnings")).await;
        if pred(&w) {
            return w;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 20 s");
}

/// The value of `flowdeck_warnings` for a rule and stage, from promtool-checked text.
async fn gauge(base: &str, rule: &str, stage: &str) -> f64 {
    let text = reqwest::get(format!("{base}/prometheus"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    promtool(&text).unwrap_or_else(|e| panic!("promtool: {e}\n{text}"));
    samples(&text)
        .into_iter()
        .find(|(name, labels, _)| {
            name == "flowdeck_warnings"
                && labels.iter().any(|(k, v)| k == "rule" && v == rule)
                && labels.iter().any(|(k, v)| k == "stage" && v == stage)
        })
        .unwrap_or_else(|| panic!("no flowdeck_warnings{{rule={rule},stage={stage}}}\n{text}"))
        .2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_fires_and_clears_in_the_api_and_prometheus_and_the_store_keeps_it() {
    let db = tempfile::tempdir().unwrap();
    // Built with the default thresholds (a stage must starve 30 s); the dashboard's
    // config (the file's [warnings]) makes it 0 s, and turns the growing-queue rule off.
    let running = Line::<u32>::new("warned")
        .stage(Stage::map(
            "a",
            |n: u32, _cx| async move { Ok::<_, String>(n) },
        ))
        .stage(Stage::map("b", |n: u32, _cx| async move { Ok::<_, String>(n) }).queue(100))
        .build()
        .unwrap()
        .start();
    let handle = running.handle.clone();
    drop(running.outputs);
    let config = Config {
        store: Some(flowdeck_store::StoreConfig::new(db.path().join("runs.db"))),
        warnings: Some(Thresholds {
            starved_ms: 0,
            clear_ms: 500,
            disabled: vec![Rule::GrowingQueue],
            ..Thresholds::default()
        }),
        ..Config::default()
    };
    let base = serve_with_store(handle.clone(), config).await;
    let quiet = get_json(format!("{base}/api/v1/warnings")).await;
    assert_eq!(quiet["current"], serde_json::json!([]), "{quiet}");
    assert_eq!(quiet["thresholds"]["starved_ms"], 0);
    assert_eq!(
        quiet["thresholds"]["disabled"],
        serde_json::json!(["growing_queue"])
    );
    assert_eq!(gauge(&base, "starved_stage", "b").await, 0.0);

    handle.pause("b").unwrap();
    running.input.send_all(0..20).await;
    let firing = until(&base, "firing", |w| {
        w["current"].as_array().unwrap().len() == 1
    })
    .await;
    let w = &firing["current"][0];
    assert_eq!(w["rule"], "starved_stage", "{w}");
    assert_eq!(w["stage"], "b");
    assert!(w["cleared_ms"].is_null());
    assert!(
        w["message"].as_str().unwrap().contains("20 items queued"),
        "{w}"
    );
    assert!(firing["started_unix_ms"].as_u64().unwrap() > 1_700_000_000_000);
    // The summary and /prometheus read the stream's snapshot, a refresh (250 ms) behind.
    for _ in 0..50 {
        if get_json(format!("{base}/api/v1/summary")).await["warnings"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = get_json(format!("{base}/api/v1/summary")).await;
    assert_eq!(summary["warnings"], 1, "{summary}");
    assert_eq!(gauge(&base, "starved_stage", "b").await, 1.0);
    assert_eq!(gauge(&base, "starved_stage", "a").await, 0.0);
    assert_eq!(gauge(&base, "blocked_runtime", "").await, 0.0);

    handle.resume("b").unwrap();
    let cleared = until(&base, "clearing", |w| {
        w["current"].as_array().unwrap().is_empty() && !w["recent"].as_array().unwrap().is_empty()
    })
    .await;
    assert!(cleared["recent"][0]["cleared_ms"].as_u64().is_some());
    for _ in 0..50 {
        if get_json(format!("{base}/api/v1/summary")).await["warnings"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gauge(&base, "starved_stage", "b").await, 0.0);
    assert_eq!(
        get_json(format!("{base}/api/v1/summary")).await["warnings"],
        0
    );

    // The finished run's page in the store lists the warning, cleared.
    drop(running.input);
    handle.wait().await;
    let mut stored = Value::Null;
    for _ in 0..100 {
        stored = get_json(format!("{base}/api/v1/runs/1")).await;
        if stored["info"]["state"] == "finished" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = stored["warnings"].as_array().expect("the run has warnings");
    assert_eq!(kept.len(), 1, "{stored}");
    assert_eq!(kept[0]["rule"], "starved_stage");
    assert!(kept[0]["cleared_ms"].as_u64().is_some(), "{stored}");
}

/// The page of an item a warning names says so, from the server's first paint on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_item_s_page_carries_the_warning() {
    let running = Line::<u32>::new("hung")
        .stage(Stage::map("call", |n: u32, _cx| async move {
            if n == 1 {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Ok::<_, String>(n)
        }))
        .warnings(Some(Thresholds {
            stuck_floor_ms: 300,
            grace_ms: 0,
            ..Thresholds::default()
        }))
        .build()
        .unwrap()
        .start();
    let handle = running.handle.clone();
    drop(running.outputs);
    running.input.send_all(0..3).await;
    let base = common::serve(handle.clone(), 100, Default::default()).await;
    until(&base, "stuck", |w| {
        w["current"].as_array().unwrap().len() == 1
    })
    .await;
    let page = |id: u64| {
        let base = base.clone();
        async move {
            reqwest::get(format!("{base}/tasks/{id}"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let mut html = String::new();
    for _ in 0..50 {
        html = page(1).await;
        if html.contains("item-warning") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(html.contains(r#"data-testid="item-warning""#), "{html}");
    assert!(
        html.contains("Stuck item: item #1 has been running at call-0"),
        "{html}"
    );
    assert!(!page(0).await.contains("item-warning"));
    handle.abort();
}
