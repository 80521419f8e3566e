//! Bulk actions over real HTTP: the task filter (exclusions, the grammar the OpenAPI
//! document states), retrying every failure a filter finds, cancelling every queued item
//! it finds, and a filter that finds 50,000 items while the pipeline keeps running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::serve_config;
use flowdeck_runtime::{protocol::filter::TaskFilter, Line, PipelineHandle, Running, Stage};
use flowdeck_server::Config;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Two stages: `enrich` fails items divisible by 3 with a `timeout` until healed, and
/// items one past a multiple of 3 with `bad_input` for good.
fn pipeline(healed: Arc<AtomicBool>, retention: usize) -> Running<u64, u64> {
    Line::<u64>::new("bulk-test")
        .stage(Stage::map("parse", |n: u64, _| async move { Ok::<_, String>(n) }).workers(2))
        .stage(
            Stage::map("enrich", move |n: u64, _| {
                let healed = healed.clone();
                async move {
                    if n.is_multiple_of(3) && !healed.load(Ordering::SeqCst) {
                        Err(format!("timeout: {n} took too long"))
                    } else if n % 3 == 1 {
                        Err(format!("bad_input: {n} is odd"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .workers(2)
            .queue(100_000)
            .classify(|e: &String| e.split(':').next().unwrap_or_default().to_owned()),
        )
        .retention(retention)
        .build()
        .unwrap()
        .start()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let res = http.post(url).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let res = http.get(url).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

fn drain(running: &Running<u64, u64>) {
    let outputs = running.outputs.clone();
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
}

async fn started(retention: usize) -> (Running<u64, u64>, PipelineHandle, Arc<AtomicBool>, String) {
    let healed = Arc::new(AtomicBool::new(false));
    let running = pipeline(healed.clone(), retention);
    let handle = running.handle.clone();
    drain(&running);
    let base = serve_config(handle.clone(), Config::default()).await;
    (running, handle, healed, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_all_timeouts_of_a_stage_then_they_complete() {
    let (running, handle, healed, base) = started(10_000).await;
    let http = reqwest::Client::new();
    running.input.send_all(0..300u64).await;
    until("300 items finished", || {
        let s = handle.tracker().stats();
        s.completed + s.failed == 300
    })
    .await;

    // The list takes the same filter, exclusions included.
    let (code, page) = get(
        &http,
        format!("{base}/api/v1/tasks?status=failed&q=stage:enrich%20-kind:timeout&limit=1000"),
    )
    .await;
    assert_eq!(code, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 100);
    assert!(items.iter().all(|i| i["error"]["kind"] == "bad_input"));
    let (_, page) = get(
        &http,
        format!("{base}/api/v1/tasks?q=kind:!timeout%20stage:!parse&limit=1000"),
    )
    .await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        200,
        "bad inputs and completions"
    );

    // A dry run counts; nothing moves.
    let only_timeouts = json!({"stage": "enrich", "q": "kind:timeout", "dry_run": true});
    let (code, dry) = post(&http, format!("{base}/api/v1/tasks/retry"), only_timeouts).await;
    assert_eq!(code, 200, "{dry}");
    assert_eq!(
        (dry["matched"].as_u64(), dry["acted"].as_u64()),
        (Some(100), Some(0))
    );
    assert_eq!(handle.tracker().stats().failed, 200);

    // A filter that finds nothing acts on nothing.
    let (code, none) = post(
        &http,
        format!("{base}/api/v1/tasks/retry"),
        json!({"q": "kind:nothing"}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        (none["matched"].as_u64(), none["acted"].as_u64()),
        (Some(0), Some(0))
    );

    // A body that is not an object is refused (serde alone would read an array).
    let (code, bad) = post(
        &http,
        format!("{base}/api/v1/tasks/retry"),
        json!([null, null]),
    )
    .await;
    assert_eq!(code, 400, "{bad}");
    let (code, _) = post(&http, format!("{base}/api/v1/tasks/retry"), json!({"q": 5})).await;
    assert_eq!(code, 400);

    // A filter with an unknown key is refused, naming it, rather than finding nothing.
    let (code, bad) = post(
        &http,
        format!("{base}/api/v1/tasks/retry"),
        json!({"q": "knd:timeout"}),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("unknown key \"knd\""),
        "{bad}"
    );
    let (code, bad) = get(&http, format!("{base}/api/v1/tasks?q=stage:nope")).await;
    assert_eq!(code, 400);
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("the stages are parse, enrich"),
        "{bad}"
    );

    // Healed, the timeouts are retried, all of them, and complete; the bad inputs stay.
    healed.store(true, Ordering::SeqCst);
    let (code, done) = post(
        &http,
        format!("{base}/api/v1/tasks/retry"),
        json!({"stage": "enrich", "q": "kind:timeout"}),
    )
    .await;
    assert_eq!(code, 200, "{done}");
    assert_eq!(
        (
            done["matched"].as_u64(),
            done["acted"].as_u64(),
            done["skipped_count"].as_u64()
        ),
        (Some(100), Some(100), Some(0)),
        "{done}"
    );
    until("the retried items completed", || {
        let s = handle.tracker().stats();
        s.completed == 200 && s.failed == 100
    })
    .await;

    // One decision, one audit entry: the filter and the counts.
    let (_, audit) = get(&http, format!("{base}/api/v1/audit")).await;
    let entries: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "retry all")
        .collect();
    // The dry run is not one: it did nothing. The refused bodies and filter are.
    assert_eq!(entries.len(), 5, "{audit}");
    let last = entries
        .iter()
        .find(|e| e["outcome"] == "ok: 100 matched, 100 acted, 0 skipped");
    let last = last.unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(last["target"], "stage=enrich q=\"kind:timeout\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_all_queued_that_match() {
    let (running, handle, _healed, base) = started(10_000).await;
    let http = reqwest::Client::new();
    handle.pause("enrich").unwrap();
    running.input.send_all(0..500u64).await;
    until("500 queued at enrich", || {
        handle.tracker().stats().queued == 500
    })
    .await;

    // Those not ending in 7: 450 of them.
    let (code, out) = post(
        &http,
        format!("{base}/api/v1/tasks/cancel"),
        json!({"q": "status:queued stage:enrich -7"}),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    // `-7` excludes ids holding a 7 anywhere: count them the same way.
    let spared = (0..500u64).filter(|n| n.to_string().contains('7')).count() as u64;
    assert_eq!(out["matched"].as_u64(), Some(500 - spared), "{out}");
    assert_eq!(out["acted"].as_u64(), Some(500 - spared));
    handle.resume("enrich").unwrap();
    until("the cancelled ones cancelled, the others done", || {
        let s = handle.tracker().stats();
        s.cancelled == 500 - spared && s.completed + s.failed == spared
    })
    .await;

    // What has finished cannot be cancelled: nothing matches now.
    let (_, again) = post(&http, format!("{base}/api/v1/tasks/cancel"), json!({})).await;
    assert_eq!(again["matched"].as_u64(), Some(0), "{again}");
}

/// 50,000 failures, of which the stage keeps the newest 10,000 inputs: a retry of all of
/// them answers with the 40,000 it could not retry counted and the first 1,000 named, and
/// the pipeline keeps running meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_that_finds_50_000_items() {
    let (running, handle, healed, base) = started(60_000).await;
    let http = reqwest::Client::new();
    // Timeouts only: multiples of 3.
    running.input.send_all((0..50_000u64).map(|n| n * 3)).await;
    until("50,000 failed", || {
        handle.tracker().stats().failed == 50_000
    })
    .await;
    healed.store(true, Ordering::SeqCst);
    let start = Instant::now();
    let (code, out) = post(
        &http,
        format!("{base}/api/v1/tasks/retry"),
        json!({"q": "kind:timeout"}),
    )
    .await;
    let took = start.elapsed();
    assert_eq!(code, 200, "{out}");
    eprintln!("retrying 50,000 matches answered in {took:?}");
    assert_eq!(out["matched"].as_u64(), Some(50_000));
    assert_eq!(out["acted"].as_u64(), Some(10_000));
    assert_eq!(out["skipped_count"].as_u64(), Some(40_000));
    let skipped = out["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1_000);
    assert!(
        skipped[0]["why"]
            .as_str()
            .unwrap()
            .contains("no longer kept"),
        "{}",
        skipped[0]
    );
    // The kept ones are the newest: those skipped are older.
    assert!(skipped.iter().all(|s| s["id"].as_u64().unwrap() <= 40_000));
    // The pipeline went on: the retried ones complete, and new items too.
    running.input.send_all(150_000..150_010u64).await;
    let new_ok = (150_000..150_010u64).filter(|n| n % 3 != 1).count() as u64;
    until("the retried and the new items completed", || {
        handle.tracker().stats().completed == 10_000 + new_ok
    })
    .await;
}

/// The filter's grammar and the pattern the OpenAPI document gives for it agree, both
/// ways, on strings made of the grammar's own pieces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_pattern_is_the_grammar() {
    let (_running, _handle, _healed, base) = started(100).await;
    let http = reqwest::Client::new();
    let (_, doc) = get(&http, format!("{base}/api/v1/openapi.json")).await;
    let params = doc["paths"]["/api/v1/tasks"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let q = params.iter().find(|p| p["name"] == "q").unwrap();
    let pattern = q["schema"]["pattern"].as_str().unwrap().to_owned();
    assert_eq!(
        doc["components"]["schemas"]["BulkBody"]["properties"]["q"]["pattern"],
        pattern.as_str()
    );
    let re = regex::Regex::new(&pattern).unwrap();
    let stages = vec!["parse".to_owned(), "enrich".to_owned()];
    let piece = prop::sample::select(vec![
        " ", "  ", "-", "!", ":", "status", "stage", "kind", "failed", "queued", "parse", "enrich",
        "timeout", "x", "7", "é", "\t", "Status",
    ]);
    let strings = prop::collection::vec(piece, 0..8).prop_map(|p| p.concat());
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    });
    runner
        .run(&strings, |s| {
            let parsed = TaskFilter::parse(&s, &stages);
            prop_assert_eq!(re.is_match(&s), parsed.is_ok(), "{:?}: {:?}", s, parsed);
            Ok(())
        })
        .unwrap();
    for (raw, ok) in [
        ("status:failed stage:!enrich -kind:timeout word", true),
        ("stage:enrich2", false),
        ("kind:", false),
        ("a:b", false),
    ] {
        assert_eq!(re.is_match(raw), ok, "{raw}");
        assert_eq!(TaskFilter::parse(raw, &stages).is_ok(), ok, "{raw}");
    }
}
