//! Each health rule on a real pipeline: it fires, naming the stage, worker and items, and
//! clears once the cause is fixed. Time is paused (tokio's test clock advances whenever
//! every task waits), so minutes of pipeline time take no wall time and the default
//! thresholds are the ones tested; only the blocked-runtime rule needs real time, since
//! it measures real lateness.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use flowdeck_runtime::{
    warnings::{Change, Rule, Thresholds, Warning},
    Feeder, Line, PipelineHandle, RetryPolicy, Stage,
};

/// Waits (in pipeline time) until `pred` holds for the warnings firing now, up to `secs`.
async fn until(
    h: &PipelineHandle,
    secs: u64,
    what: &str,
    pred: impl Fn(&[Warning]) -> bool,
) -> Vec<Warning> {
    for _ in 0..secs {
        let now = h.warnings().0;
        if pred(&now) {
            return now;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("{what}: not within {secs} s; firing: {:?}", h.warnings().0);
}

fn firing(rule: Rule) -> impl Fn(&[Warning]) -> bool {
    move |w| w.iter().any(|w| w.rule == rule)
}

/// Feeds `n` items a second, numbered from `from`, until the feeder closes.
fn feed(input: Feeder<u32>, per_second: u32, from: u32) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
        for n in from.. {
            tick.tick().await;
            if input.send(n).await.is_err() {
                break;
            }
        }
    });
}

#[tokio::test(start_paused = true)]
async fn a_hung_item_is_stuck_then_its_worker_stalled_and_both_clear_once_it_is_cancelled() {
    let running = Line::<u32>::new("hung")
        .stage(Stage::map("call", |n: u32, _cx| async move {
            let ms = if n == 3 { 3_600_000 } else { 100 };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, String>(n)
        }))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    drop(running.outputs);
    running.input.send_all(0..20).await;
    let stuck = until(&h, 60, "stuck item", firing(Rule::StuckItem)).await;
    let w = &stuck[0];
    assert_eq!((w.stage.as_deref(), w.worker), (Some("call"), Some(0)));
    assert_eq!(w.items, [3]);
    assert!(
        w.message.contains("#3") && w.message.contains("call-0"),
        "{}",
        w.message
    );
    let stalled = until(&h, 120, "stalled worker", firing(Rule::StalledWorker)).await;
    let w = stalled
        .iter()
        .find(|w| w.rule == Rule::StalledWorker)
        .unwrap();
    assert_eq!((w.worker, &w.items[..]), (Some(0), &[3][..]));
    assert!(w.message.contains("16 items wait"), "{}", w.message);
    // The fix: cancel the hung item. The worker moves on; both clear after 30 s.
    h.cancel(3).unwrap();
    until(&h, 60, "clearing", |w| w.is_empty()).await;
    let recent = h.warnings().1;
    assert_eq!(recent.len(), 2, "{recent:?}");
    drop(running.input);
    h.wait().await;
}

#[tokio::test(start_paused = true)]
async fn a_paused_stage_and_a_stage_scaled_to_zero_are_starved_and_clear_when_fixed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let running = Line::<u32>::new("starved")
        .stage(Stage::map(
            "a",
            |n: u32, _cx| async move { Ok::<_, String>(n) },
        ))
        .stage(Stage::map("b", |n: u32, _cx| async move { Ok::<_, String>(n) }).queue(1000))
        .on_warning(move |c| s.lock().unwrap().push(c.clone()))
        .on_warning(|_| panic!("a pager that breaks"))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    drop(running.outputs);
    h.pause("b").unwrap();
    running.input.send_all(0..50).await;
    // A user's pause of 20 s is not a fault...
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(h.warnings().0.is_empty());
    // ...one past 30 s is.
    let w = until(&h, 30, "starved (paused)", firing(Rule::StarvedStage)).await;
    assert_eq!(w[0].stage.as_deref(), Some("b"));
    assert!(w[0].message.contains("50 items queued") && w[0].message.contains("paused"));
    h.resume("b").unwrap();
    until(&h, 60, "clearing", |w| w.is_empty()).await;

    h.set_workers("b", 0).unwrap();
    running.input.send_all(0..10).await;
    let w = until(&h, 60, "starved (no workers)", firing(Rule::StarvedStage)).await;
    assert!(w[0].message.contains("no workers"), "{}", w[0].message);
    h.set_workers("b", 2).unwrap();
    until(&h, 60, "clearing", |w| w.is_empty()).await;
    drop(running.input);
    h.wait().await;
    let seen = seen.lock().unwrap();
    let kinds: Vec<bool> = seen.iter().map(|c| matches!(c, Change::Fired(_))).collect();
    assert_eq!(kinds, [true, false, true, false], "{seen:?}");
}

/// Feeds `pipeline` 2 items a second until a retry storm fires at `stage` with `says` in its
/// message, then mends the stage (`broken` off) and waits for the warning to clear.
async fn storm_fires_then_clears(
    pipeline: flowdeck_runtime::Pipeline<u32, u32>,
    broken: &AtomicBool,
    stage: &str,
    says: &str,
) {
    let running = pipeline.start();
    let h = running.handle.clone();
    drop(running.outputs);
    feed(running.input, 2, 0);
    let w = until(&h, 60, "retry storm", firing(Rule::RetryStorm)).await;
    assert_eq!(w[0].stage.as_deref(), Some(stage));
    assert!(w[0].message.contains(says), "{}", w[0].message);
    broken.store(false, Ordering::Relaxed);
    until(&h, 120, "clearing", |w| w.is_empty()).await;
    h.drain();
    h.wait().await;
}

#[tokio::test(start_paused = true)]
async fn retries_outpacing_successes_are_a_storm_that_clears_once_calls_succeed() {
    let broken = Arc::new(AtomicBool::new(true));
    let b = broken.clone();
    let pipeline = Line::<u32>::new("storm")
        .stage(
            Stage::map("model", move |n: u32, _cx| {
                let broken = b.load(Ordering::Relaxed);
                async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if broken {
                        Err("503 from the model".to_owned())
                    } else {
                        Ok(n)
                    }
                }
            })
            .workers(4)
            .retry(
                RetryPolicy::attempts(5).backoff(Duration::from_secs(1), Duration::from_secs(2)),
            ),
        )
        .build()
        .unwrap();
    storm_fires_then_clears(pipeline, &broken, "model", "retried").await;
}

#[tokio::test(start_paused = true)]
async fn most_items_failing_with_one_error_kind_is_a_storm_that_names_the_kind() {
    let broken = Arc::new(AtomicBool::new(true));
    let b = broken.clone();
    let pipeline = Line::<u32>::new("quota")
        .stage(Stage::map("parse", |n: u32, _cx| async move {
            Ok::<_, String>(n)
        }))
        .stage(
            Stage::map("store", move |n: u32, _cx| {
                let broken = b.load(Ordering::Relaxed);
                async move {
                    if broken && !n.is_multiple_of(10) {
                        Err("quota".to_owned())
                    } else {
                        Ok(n)
                    }
                }
            })
            .classify(|_| "QuotaExceeded".to_owned()),
        )
        .build()
        .unwrap();
    storm_fires_then_clears(pipeline, &broken, "store", "QuotaExceeded").await;
}

#[tokio::test(start_paused = true)]
async fn a_queue_fed_faster_than_served_grows_and_clears_once_scaled_up() {
    let running = Line::<u32>::new("growing")
        .stage(Stage::map("slow", |n: u32, _cx| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, String>(n)
        }))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    drop(running.outputs);
    // 12 a second into a stage that serves 10.
    feed(running.input, 12, 0);
    let w = until(&h, 180, "growing queue", firing(Rule::GrowingQueue)).await;
    assert_eq!(w[0].stage.as_deref(), Some("slow"));
    assert!(w[0].message.contains("full in about"), "{}", w[0].message);
    h.set_workers("slow", 2).unwrap();
    until(&h, 180, "clearing", |w| w.is_empty()).await;
    h.drain();
    h.wait().await;
}

/// Real time: the rule measures how late a ready task really runs. A stage that blocks
/// its thread with a synchronous sleep (300 ms, twice a second) holds up the whole
/// one-thread runtime.
#[tokio::test]
async fn a_stage_that_blocks_the_runtime_is_named_and_the_warning_clears_when_it_stops() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let blocking = Arc::new(AtomicBool::new(true));
    let b = blocking.clone();
    let running = Line::<u32>::new("blocking")
        .stage(Stage::map("fine", |n: u32, _cx| async move {
            Ok::<_, String>(n)
        }))
        .stage(Stage::map("resize", move |n: u32, _cx| {
            if b.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(300));
            }
            async move { Ok::<_, String>(n) }
        }))
        .warnings(Some(Thresholds {
            grace_ms: 1_000,
            clear_ms: 1_000,
            ..Thresholds::default()
        }))
        .on_warning(move |c| s.lock().unwrap().push(c.clone()))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    drop(running.outputs);
    let input = running.input.clone();
    feed(running.input, 2, 0);
    let fired = || {
        seen.lock().unwrap().iter().find_map(|c| match c {
            Change::Fired(w) if w.rule == Rule::BlockedRuntime => Some(w.clone()),
            _ => None,
        })
    };
    for _ in 0..100 {
        if fired().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let w = fired().expect("no blocked-runtime warning within 10 s");
    assert!(w.message.contains("resize"), "{}", w.message);
    assert!(!w.message.contains("fine ("), "{}", w.message);
    // The fix: the stage stops blocking, the run goes on, and the warning clears.
    blocking.store(false, Ordering::Relaxed);
    until(&h, 20, "clearing", |w| w.is_empty()).await;
    assert_eq!(
        h.state(),
        flowdeck_runtime::protocol::PipelineState::Running
    );
    input.close();
    h.wait().await;
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|c| matches!(c, Change::Cleared(w) if w.rule == Rule::BlockedRuntime)));
}
