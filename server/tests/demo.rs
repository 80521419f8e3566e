//! The demo pipeline as a new user sees it (`scripts/start.sh`): enrich, the simulated
//! model call, is the stage that holds everything back, and the overview says so, even
//! though ingest and parse have the longer queues and are the ones waiting.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flowdeck_protocol::WorkerState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_names_enrich_as_its_bottleneck() {
    let handle = flowdeck_server::demo::start(60, 1.0);
    // Long enough for the queues before enrich to fill.
    tokio::time::sleep(Duration::from_secs(8)).await;
    handle.snapshot();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = handle.snapshot();
    let show: Vec<_> = s
        .stages
        .iter()
        .map(|st| (st.name.as_str(), st.queued, st.busy_ratio, st.blocked_ratio))
        .collect();
    let bottleneck = s.bottleneck().map(|i| s.stages[i].name.as_str());
    assert_eq!(
        bottleneck,
        Some("enrich"),
        "(stage, queued, busy, blocked): {show:?}"
    );
    let enrich = &s.stages[2];
    assert!(enrich.busy_ratio > 0.8, "{show:?}");
    // What waits for enrich shows as waiting, not as busy.
    let parse = &s.stages[1];
    assert!(
        parse
            .workers
            .iter()
            .any(|w| w.state == WorkerState::Blocked),
        "{:?}",
        parse.workers
    );
    handle.abort();
}
