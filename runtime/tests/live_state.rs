//! What a dashboard reads while a pipeline runs, under backlog, scale-down and
//! backpressure: an item's status while a worker holds it, totals that never go
//! backwards, worker states, and which stage is the bottleneck.

use std::time::Duration;

use flowdeck_runtime::{
    protocol::{ItemStatus, Snapshot, WorkerState},
    Line, PipelineHandle, Running, Stage, TaskFn,
};

/// Keeps feeding `running` (and discarding its outputs) in the background.
fn feed_forever(running: Running<u32, u32>) -> PipelineHandle {
    let Running {
        handle,
        input,
        outputs,
    } = running;
    tokio::spawn(async move { input.send_all(0..u32::MAX).await });
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    handle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_item_a_worker_holds_shows_as_running_under_backlog() {
    // One worker, 200 ms an item, 20 queued: the repro of the lagging status.
    let running = Line::<u32>::new("backlog")
        .stage(Stage::map("slow", |n: u32, _cx| async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, String>(n)
        }))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    let Running { input, outputs, .. } = running;
    tokio::spawn(async move { input.send_all(0..20).await });
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });

    let current = |h: &PipelineHandle| h.snapshot().stages[0].workers[0].current_item;
    let (mut checked, mut wrong) = (0, Vec::new());
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(37)).await;
        let Some(item) = current(&h) else { continue };
        // The worker's events may wait up to 50 ms before they are sent.
        tokio::time::sleep(Duration::from_millis(70)).await;
        let status = h.tracker().status(item);
        // Still in hand after the status was read: it was in hand all along.
        if current(&h) == Some(item) {
            checked += 1;
            if status != Some(ItemStatus::Running) {
                wrong.push((item, status));
            }
        }
    }
    assert!(checked >= 5, "only {checked} samples");
    assert!(
        wrong.is_empty(),
        "{} of {checked} samples saw the worker's item as not running: {wrong:?}",
        wrong.len()
    );
    h.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_never_shrink_when_a_stage_is_scaled_down() {
    let running = Line::<u32>::new("scale")
        .stage(
            Stage::map("work", |n: u32, _cx| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok::<_, String>(n)
            })
            .workers(8),
        )
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    let Running { input, outputs, .. } = running;
    tokio::spawn(async move { input.send_all(0..3000).await });
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });

    let mut seen = Vec::new();
    let mut scaled = false;
    loop {
        let s = h.snapshot();
        let stage = &s.stages[0];
        seen.push((stage.completed, s.totals.completed));
        if !scaled && stage.completed >= 1000 {
            h.set_workers("work", 1).unwrap();
            scaled = true;
        }
        if stage.completed >= 3000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(scaled);
    for pair in seen.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(b.0 >= a.0 && b.1 >= a.1, "went backwards: {a:?} then {b:?}");
    }
    let s = h.snapshot();
    assert_eq!(
        s.stages[0].workers.len(),
        1,
        "only the live worker is listed"
    );
    assert_eq!(s.stages[0].completed, 3000);
}

fn pass(name: &str) -> Stage<u32, u32, impl TaskFn<u32, u32>> {
    Stage::map(name, |n: u32, _cx| async move { Ok::<_, String>(n) })
        .workers(2)
        .queue(16)
}

fn slow(name: &str) -> Stage<u32, u32, impl TaskFn<u32, u32>> {
    Stage::map(name, |n: u32, _cx| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok::<_, String>(n)
    })
    .workers(2)
    .queue(16)
}

/// A snapshot whose rates cover the last 600 ms of a run well under way.
async fn settled(h: &PipelineHandle) -> Snapshot {
    tokio::time::sleep(Duration::from_millis(800)).await;
    h.snapshot();
    tokio::time::sleep(Duration::from_millis(600)).await;
    h.snapshot()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slow_stage_is_the_bottleneck_wherever_it_sits() {
    for at in 0..3 {
        let names = ["a", "b", "c"];
        let mut line = Line::<u32>::new("where");
        for (i, name) in names.iter().enumerate() {
            line = if i == at {
                line.stage(slow(name))
            } else {
                line.stage(pass(name))
            };
        }
        let h = feed_forever(line.build().unwrap().start());
        let s = settled(&h).await;
        let show: Vec<_> = s
            .stages
            .iter()
            .map(|st| (st.name.as_str(), st.queued, st.busy_ratio, st.blocked_ratio))
            .collect();
        assert_eq!(
            s.bottleneck(),
            Some(at),
            "slow stage at {at}: (name, queued, busy, blocked) = {show:?}"
        );
        // Every stage before the slow one spends its time waiting on downstream.
        for st in &s.stages[..at] {
            assert!(st.blocked_ratio > 0.5, "{} not blocked: {show:?}", st.name);
            assert!(
                st.workers.iter().any(|w| w.state == WorkerState::Blocked),
                "{}'s workers are not shown waiting on downstream: {:?}",
                st.name,
                st.workers
            );
        }
        assert!(s.stages[at].busy_ratio > 0.8, "{show:?}");
        h.abort();
        h.wait().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_stage_with_work_waiting_is_the_bottleneck() {
    let h = feed_forever(
        Line::<u32>::new("paused")
            .stage(pass("a"))
            .stage(pass("b"))
            .build()
            .unwrap()
            .start(),
    );
    h.pause("b").unwrap();
    let s = settled(&h).await;
    assert_eq!(s.bottleneck(), Some(1));
    assert!(s.stages[0]
        .workers
        .iter()
        .all(|w| w.state == WorkerState::Blocked));
    h.abort();
}
