//! Metrics and logs over real HTTP: the built-in per-stage series fill in while a pipeline
//! runs, user series recorded into the store show up, ranges read back as JSON and CSV;
//! logs filter by level, source glob, text and sequence; bad parameters get a 400 naming
//! them. User metrics also reach /prometheus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{pipeline, serve_config};
use flowdeck_runtime::{logs::LogBuffer, metrics::MetricsStore};
use flowdeck_server::Config;
use serde_json::Value;
use tracing::Level;

async fn get(url: &str) -> (u16, Value) {
    let res = reqwest::get(url).await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_fill_in_and_read_back_as_json_and_csv() {
    let store = MetricsStore::new();
    let running = pipeline(1000);
    let handle = running.handle.clone();
    let base = serve_config(
        handle.clone(),
        Config {
            metrics: store.clone(),
            ..Config::default()
        },
    )
    .await;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    let input = running.input;
    tokio::spawn(async move {
        for n in 0.. {
            if input.send(n).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    // What user code records (through the `metrics` crate, once installed).
    let orders = store.counter("orders", &[("shop", "east")]);
    let value = store.histogram("order_value", &[]);
    for _ in 0..4 {
        orders.increment(5);
        value.record(10.0);
        value.record(30.0);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }

    let (code, list) = get(&format!("{base}/api/v1/metrics")).await;
    assert_eq!(code, 200);
    let names: Vec<&str> = list["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for want in [
        "flowdeck_stage_queued",
        "flowdeck_stage_throughput",
        "flowdeck_items_total",
        "process_resident_memory_bytes",
        "orders",
        "order_value",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }

    let (code, body) = get(&format!(
        "{base}/api/v1/metrics?names=flowdeck_stage_throughput,orders&range=1m&step=10s"
    ))
    .await;
    assert_eq!(code, 200, "{body}");
    let series = body["series"].as_array().unwrap();
    assert_eq!(series.len(), 4, "three stages and one counter");
    let stages: Vec<&str> = series[..3]
        .iter()
        .map(|s| s["labels"][1][1].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["a", "b", "c"]);
    let o = &series[3];
    assert_eq!(
        (o["kind"].as_str(), o["agg"].as_str(), o["step"].as_u64()),
        (Some("counter"), Some("rate"), Some(10))
    );
    // A minute in 10 s windows: six, or seven when the minute does not start on one.
    let n = o["points"].as_array().unwrap().len();
    assert!((6..=7).contains(&n), "{n}");
    let increase: f64 = {
        let (_, sum) = get(&format!(
            "{base}/api/v1/metrics?names=orders&range=1m&step=1m&agg=sum"
        ))
        .await;
        sum["series"][0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p[1].as_f64())
            .sum()
    };
    assert!((15.0..=20.0).contains(&increase), "{increase}");
    let (_, p) = get(&format!(
        "{base}/api/v1/metrics?names=order_value&range=1m&step=1m&agg=max"
    ))
    .await;
    let max = p["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p[1].as_f64())
        .fold(0.0, f64::max);
    assert_eq!(max, 30.0);

    let csv = reqwest::get(format!(
        "{base}/api/v1/metrics?names=orders&range=30s&step=10s&format=csv"
    ))
    .await
    .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "unix_seconds,series,agg,value");
    assert!((4..=5).contains(&lines.len()), "{text}");
    assert!(lines[1].contains(r#","orders{shop=east}",rate,"#), "{text}");

    for (query, names) in [
        ("names=nope", "nope"),
        ("names=orders&range=25h", "range"),
        ("names=orders&range=soon", "range"),
        ("names=orders&step=25h", "step"),
        ("names=orders&range=090", "range"),
        ("names=orders{shop=east,}", "names"),
        ("names=orders&agg=median", "median"),
        ("names=orders&format=xml", "format"),
        ("names=orders&colour=red", "colour"),
    ] {
        let (code, body) = get(&format!("{base}/api/v1/metrics?{query}")).await;
        assert!(code == 400 || code == 404, "{query}: {code}");
        assert!(
            body["message"].as_str().unwrap().contains(names),
            "{query}: {body}"
        );
    }

    // A step longer than the range is one point for the whole range.
    let (code, body) = get(&format!(
        "{base}/api/v1/metrics?names=orders&range=60s&step=2m"
    ))
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["series"][0]["step"], 60, "{body}");

    // The user's series reach the scraper too.
    let prom = reqwest::get(format!("{base}/prometheus"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(prom.contains("# TYPE orders_total counter\n"), "{prom}");
    assert!(prom.contains("orders_total{shop=\"east\"} 20\n"), "{prom}");
    assert!(prom.contains("# TYPE order_value histogram\n"), "{prom}");
    assert!(prom.contains("order_value_bucket{le=\"+Inf\"}"), "{prom}");
}

/// A dashboard whose log buffer the test fills by hand.
async fn serve_logs() -> (LogBuffer, String) {
    let logs = LogBuffer::new(100);
    let running = pipeline(100);
    let base = serve_config(
        running.handle.clone(),
        Config {
            logs: logs.clone(),
            ..Config::default()
        },
    )
    .await;
    (logs, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_filter_by_level_source_text_and_since() {
    let (logs, base) = serve_logs().await;
    let field = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
    logs.push(
        Level::INFO,
        "worker-1".into(),
        "batch stored".into(),
        field("items", "3"),
    );
    logs.push(Level::WARN, "worker-2".into(), "slow model".into(), vec![]);
    logs.push(Level::ERROR, "db".into(), "connection lost".into(), vec![]);
    logs.push(Level::DEBUG, "worker-1".into(), "tick".into(), vec![]);

    let (code, all) = get(&format!("{base}/api/v1/logs")).await;
    assert_eq!(code, 200);
    assert_eq!(all["records"].as_array().unwrap().len(), 4);
    assert_eq!(all["latest"], 4);
    let messages = |v: &Value| -> Vec<String> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["message"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        messages(&get(&format!("{base}/api/v1/logs?level=warn")).await.1),
        ["slow model", "connection lost"]
    );
    assert_eq!(
        messages(
            &get(&format!("{base}/api/v1/logs?source=worker-*&level=info"))
                .await
                .1
        ),
        ["batch stored", "slow model"]
    );
    assert_eq!(
        messages(&get(&format!("{base}/api/v1/logs?q=3")).await.1),
        ["batch stored"]
    );
    assert_eq!(
        messages(&get(&format!("{base}/api/v1/logs?limit=1")).await.1),
        ["tick"]
    );
    let (_, after) = get(&format!("{base}/api/v1/logs?since=4")).await;
    assert_eq!(after["records"].as_array().unwrap().len(), 0);
    for (query, names) in [
        ("level=loud", "level"),
        ("source=[x", "glob"),
        ("limit=0", "limit"),
        ("since=-1", "since"),
    ] {
        let (code, body) = get(&format!("{base}/api/v1/logs?{query}")).await;
        assert_eq!(code, 400, "{query}");
        assert!(
            body["message"].as_str().unwrap().contains(names),
            "{query}: {body}"
        );
    }
    let (_, pages) = get(&format!("{base}/api/v1/pages")).await;
    assert_eq!(pages[0]["path"], "/");
    // The built-in pages (this dashboard has no custom ones).
    assert_eq!(pages.as_array().unwrap().len(), 10);
    for path in ["/runs", "/questions", "/alerts"] {
        assert!(
            pages.as_array().unwrap().iter().any(|p| p["path"] == path),
            "{path}: {pages}"
        );
    }
    assert!(pages
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["custom"] == false));
}

/// The messages of the next `logs` event.
async fn next(
    events: &mut (impl futures::Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>>
              + Unpin),
) -> Vec<String> {
    use futures::StreamExt;
    let e = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(e.event, "logs");
    let page: Value = serde_json::from_str(&e.data).unwrap();
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stream_sends_the_newest_then_what_comes_as_it_comes() {
    use eventsource_stream::Eventsource;

    let (logs, base) = serve_logs().await;
    logs.push(Level::WARN, "worker-1".into(), "old".into(), vec![]);
    logs.push(Level::INFO, "worker-1".into(), "quiet".into(), vec![]);
    let res = reqwest::get(format!(
        "{base}/api/v1/logs/stream?level=warn&source=worker-*"
    ))
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut events = res.bytes_stream().eventsource();
    assert_eq!(next(&mut events).await, ["old"]);
    // Records the filter refuses send nothing; a burst goes out as one event.
    logs.push(Level::INFO, "worker-2".into(), "ignored".into(), vec![]);
    logs.push(Level::ERROR, "db".into(), "other source".into(), vec![]);
    logs.push(Level::WARN, "worker-2".into(), "new 1".into(), vec![]);
    logs.push(Level::ERROR, "worker-3".into(), "new 2".into(), vec![]);
    assert_eq!(next(&mut events).await, ["new 1", "new 2"]);

    let (code, body) = get(&format!("{base}/api/v1/logs/stream?level=loud")).await;
    assert_eq!(code, 400);
    assert!(body["message"].as_str().unwrap().contains("level"));
}
