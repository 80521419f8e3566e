//! Health warnings through the public API: a stage paused with work queued fires a
//! "starved stage" warning (logged, called back, read from the handle), which clears once
//! the stage resumes; a healthy run raises none.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use flowdeck_runtime::{
    warnings::{Change, Rule, Thresholds},
    Line, Stage,
};

fn quick() -> Thresholds {
    Thresholds {
        starved_ms: 0,
        grace_ms: 0,
        clear_ms: 0,
        ..Thresholds::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_stage_with_work_queued_warns_and_clears_when_resumed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let running = Line::<u32>::new("starved")
        .stage(Stage::map(
            "a",
            |n: u32, _cx| async move { Ok::<_, String>(n) },
        ))
        .stage(Stage::map("b", |n: u32, _cx| async move { Ok::<_, String>(n) }).queue(1000))
        .warnings(Some(quick()))
        .on_warning(move |c| s.lock().unwrap().push(c.clone()))
        .on_warning(|_| panic!("a pager that breaks"))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    h.pause("b").unwrap();
    running.input.send_all(0..50).await;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    let mut current = Vec::new();
    for _ in 0..50 {
        current = h.warnings().0;
        if !current.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(current.len(), 1, "{current:?}");
    assert_eq!(current[0].rule, Rule::StarvedStage);
    assert_eq!(current[0].stage.as_deref(), Some("b"));
    assert!(
        current[0].message.contains("paused"),
        "{}",
        current[0].message
    );
    h.resume("b").unwrap();
    drop(running.input);
    h.wait().await;
    let (now, recent) = h.warnings();
    assert!(now.is_empty(), "{now:?}");
    assert_eq!(recent.len(), 1);
    assert!(recent[0].cleared_ms.is_some());
    let seen = seen.lock().unwrap();
    assert!(
        matches!(&seen[..], [Change::Fired(_), Change::Cleared(_)]),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_run_raises_no_warning() {
    let running = Line::<u32>::new("healthy")
        .stage(
            Stage::map("slow", |n: u32, _cx| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, String>(n)
            })
            .workers(4),
        )
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..300).await;
    drop(running.input);
    h.wait().await;
    let (now, recent) = h.warnings();
    println!(
        "warnings raised by a healthy run: {}",
        now.len() + recent.len()
    );
    assert!(now.is_empty() && recent.is_empty(), "{now:?} {recent:?}");
}
