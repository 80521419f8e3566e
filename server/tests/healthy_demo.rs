//! No false positives on the demo: the demo pipeline (model calls with timeouts, rate
//! limits and retries, empty documents, rejected writes) raises no health warning with
//! the default thresholds, idle, busy and saturated. Time is paused, so five minutes of
//! each take about a second. The count is printed (`-- --nocapture`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn the_demo_at_several_rates_raises_no_warning() {
    // 5 documents/s leaves enrich mostly idle, 25/s keeps it about 80% busy, 200/s
    // saturates it (the queues before it fill and the producer is held back).
    for rate in [5, 25, 200] {
        let h = flowdeck_server::demo::start(rate, 1.0);
        tokio::time::sleep(Duration::from_secs(300)).await;
        let s = h.snapshot();
        let (now, recent) = h.warnings();
        println!(
            "the demo at {rate} documents/s: {} warnings over 300 s ({} items done, bottleneck {:?})",
            now.len() + recent.len(),
            s.totals.completed + s.totals.failed,
            s.bottleneck().map(|i| s.stages[i].name.clone())
        );
        assert!(now.is_empty() && recent.is_empty(), "{now:?} {recent:?}");
        assert!(s.totals.completed > u64::from(rate) * 100, "{:?}", s.totals);
        h.abort();
        h.wait().await;
    }
}
