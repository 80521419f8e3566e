//! `/prometheus` over real HTTP, checked by the Prometheus project's own linter (`promtool
//! check metrics`), and the numbers are the pipeline's: counts, workers by state, and real
//! histograms (cumulative `le` buckets, `_sum`, `_count`) for stage latency and user series.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    pipeline,
    promtool::{promtool, samples},
};

#[test]
fn promtool_rejects_what_the_format_forbids() {
    promtool("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 3\n").unwrap();
    for bad in [
        "# HELP a A.\n# TYPE a gauge\na{x=\"1} 1\n",
        "# HELP a A.\n# TYPE a gauge\na one\n",
        "# HELP a A.\n# TYPE a gauge\na{quantile=\"0.5\"} 1\n",
    ] {
        assert!(promtool(bad).is_err(), "promtool took {bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exposition_is_well_formed_and_counts_the_pipeline() {
    let running = pipeline(10_000);
    let handle = running.handle.clone();
    // User series too, one with a label value the format must escape.
    let store = flowdeck_runtime::metrics::MetricsStore::new();
    store
        .counter("orders", &[("shop", "east \"1\"")])
        .increment(3);
    store.gauge("queue.depth", &[]).set(4.0);
    let h = store.histogram("order_value", &[]);
    h.record(2.0);
    h.record(4.0);
    store.tick_at(1);
    let config = flowdeck_server::Config {
        refresh: Duration::from_millis(50),
        metrics: store,
        ..flowdeck_server::Config::default()
    };
    let base = common::serve_config(handle.clone(), config).await;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..400u64).await;
    drop(running.input);
    tokio::time::timeout(Duration::from_secs(60), handle.wait())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;

    let res = reqwest::get(format!("{base}/prometheus")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = res.text().await.unwrap();
    promtool(&text).unwrap_or_else(|e| panic!("promtool: {e}\n{text}"));
    let samples = samples(&text);
    let value = |name: &str, want: &[(&str, &str)]| {
        samples
            .iter()
            .find(|(n, ls, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.2)
            .unwrap_or_else(|| panic!("no {name} {want:?} in\n{text}"))
    };
    let totals = handle.snapshot().totals;
    assert_eq!(
        value("flowdeck_items_total", &[("outcome", "submitted")]),
        400.0
    );
    assert_eq!(
        value("flowdeck_items_total", &[("outcome", "completed")]) as u64,
        totals.completed
    );
    assert_eq!(
        value("flowdeck_items_total", &[("outcome", "failed")]) as u64,
        totals.failed
    );
    assert!(totals.failed > 0);
    let stage_failed: f64 = ["a", "b", "c"]
        .iter()
        .map(|s| value("flowdeck_stage_failed_total", &[("stage", s)]))
        .sum();
    assert_eq!(stage_failed as u64, totals.failed);
    let workers: f64 = ["idle", "busy", "blocked", "paused", "stopped"]
        .iter()
        .map(|st| value("flowdeck_stage_workers", &[("stage", "b"), ("state", st)]))
        .sum();
    assert_eq!(workers, 3.0);
    assert_eq!(
        value("flowdeck_pipeline_info", &[("state", "finished")]),
        1.0
    );
    assert!(value("process_resident_memory_bytes", &[]) > 1e6);
    // The process and its tokio runtime, read through sysinfo and tokio's metrics.
    assert!(value("flowdeck_process_resident_memory_bytes", &[]) > 1e6);
    assert!(value("flowdeck_process_threads", &[]) >= 2.0);
    assert!(value("flowdeck_process_open_files", &[]) >= 3.0);
    assert!(value("flowdeck_runtime_workers", &[]) >= 1.0);
    assert!(value("flowdeck_runtime_tasks", &[]) >= 1.0);
    assert_eq!(value("orders_total", &[("shop", "east \"1\"")]), 3.0);
    assert_eq!(value("queue_depth", &[]), 4.0);
    // Histograms: cumulative buckets ending in +Inf, with their count and sum.
    assert_eq!(value("order_value_bucket", &[("le", "2")]), 1.0);
    assert_eq!(value("order_value_bucket", &[("le", "4")]), 2.0);
    assert_eq!(value("order_value_bucket", &[("le", "+Inf")]), 2.0);
    assert_eq!(value("order_value_sum", &[]), 6.0);
    let attempts = value("flowdeck_stage_latency_seconds_count", &[("stage", "a")]);
    assert!(attempts >= 400.0, "{attempts}");
    assert_eq!(
        value(
            "flowdeck_stage_latency_seconds_bucket",
            &[("stage", "a"), ("le", "+Inf")]
        ),
        attempts
    );
    // Every attempt took under 67 s: the largest bound holds them all.
    assert_eq!(
        value(
            "flowdeck_stage_latency_seconds_bucket",
            &[("stage", "a"), ("le", "67.108864")]
        ),
        attempts
    );
}
