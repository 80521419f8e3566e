//! The log of health warnings: each firing is logged once at WARN and each clearing once
//! at INFO, not once per check. A test binary of its own, since it installs the process's
//! tracing subscriber (a per-thread one misses events whose callsites other tests' threads
//! registered first).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flowdeck_runtime::{
    logs::{LogBuffer, LogQuery},
    Line, Stage,
};
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(start_paused = true)]
async fn a_warning_is_logged_once_when_it_fires_and_once_when_it_clears() {
    let logs = LogBuffer::new(1_000);
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(logs.layer()))
        .unwrap();
    let running = Line::<u32>::new("logged")
        .stage(Stage::map(
            "a",
            |n: u32, _cx| async move { Ok::<_, String>(n) },
        ))
        .stage(Stage::map("b", |n: u32, _cx| async move { Ok::<_, String>(n) }).queue(1000))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    drop(running.outputs);
    h.pause("b").unwrap();
    running.input.send_all(0..50).await;
    // Two minutes paused: about 90 checks with the warning firing.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(h.warnings().0.len(), 1);
    h.resume("b").unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(h.warnings().0.is_empty());
    drop(running.input);
    h.wait().await;
    let logged = |level: &str, text: &str| {
        let q = LogQuery::parse(Some(level), None, Some(text), None, None).unwrap();
        logs.query(&q)
            .into_iter()
            .filter(|r| r.level == level)
            .count()
    };
    assert_eq!(logged("warn", "nothing taking them"), 1);
    assert_eq!(logged("info", "cleared: stage b"), 1);
}
