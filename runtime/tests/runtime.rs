//! Behaviour of the engine, end to end through its public API.

use std::{
    sync::{
        atomic::{AtomicU32, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use flowdeck_runtime::{
    protocol::{EventKind, ItemStatus, PipelineState},
    BuildError, ControlError, Graph, Line, RetryPolicy, Stage, TaskFn,
};

fn fast_retry<E>(n: u32) -> RetryPolicy<E> {
    RetryPolicy::attempts(n).backoff(Duration::from_millis(1), Duration::from_millis(2))
}

#[tokio::test]
async fn retries_until_success_and_records_each_attempt() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let pipeline = Line::<u32>::new("retry")
        .stage(
            Stage::map("flaky", move |n: u32, cx: flowdeck_runtime::Ctx| {
                let c = c.clone();
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    if cx.attempt() < 3 {
                        Err(format!("attempt {} failed", cx.attempt()))
                    } else {
                        Ok(n)
                    }
                }
            })
            .retry(fast_retry(5)),
        )
        .build()
        .unwrap();
    let report = pipeline.run([7]).await;
    assert_eq!(report.outputs, [7]);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let s = &report.summary;
    assert_eq!(s.stats.completed, 1);
    assert_eq!(s.snapshot.stages[0].retried, 2);
    assert_eq!(s.errors.total, 0);
}

#[derive(Debug)]
enum FetchError {
    Permanent,
}
impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gone for good")
    }
}

#[tokio::test]
async fn errors_the_filter_rejects_fail_at_once_and_keep_type_and_message() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let pipeline = Line::<u32>::new("perm")
        .stage(
            Stage::map("fetch", move |_n: u32, _cx| {
                c.fetch_add(1, Ordering::SeqCst);
                async move { Err::<u32, _>(FetchError::Permanent) }
            })
            .retry(fast_retry(5).retry_if(|e| !matches!(e, FetchError::Permanent))),
        )
        .build()
        .unwrap();
    let report = pipeline.run([1]).await;
    assert!(report.outputs.is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let errors = &report.summary.errors;
    assert_eq!(errors.total, 1);
    assert_eq!(errors.by_kind, vec![("FetchError".to_string(), 1)]);
    assert_eq!(errors.by_stage, vec![1]);
    assert_eq!(errors.recent[0].error.message, "gone for good");
}

#[tokio::test]
async fn a_slow_attempt_times_out_and_is_retried() {
    let pipeline = Line::<u64>::new("timeout")
        .stage(
            Stage::map("slow", |n: u64, cx: flowdeck_runtime::Ctx| async move {
                if cx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                Ok::<_, String>(n)
            })
            .timeout(Duration::from_millis(20))
            .retry(fast_retry(2)),
        )
        .build()
        .unwrap();
    let report = pipeline.run([5]).await;
    assert_eq!(report.outputs, [5]);
    assert_eq!(report.summary.snapshot.stages[0].retried, 1);
}

#[tokio::test]
async fn a_panicking_task_fails_its_item_and_the_worker_goes_on() {
    let pipeline = Line::<u32>::new("panic")
        .stage(
            Stage::map("boom", |n: u32, _cx| async move {
                if n == 2 {
                    panic!("bad input {n}");
                }
                Ok::<_, String>(n)
            })
            .workers(1),
        )
        .build()
        .unwrap();
    let report = pipeline.run(1..=4).await;
    let mut out = report.outputs;
    out.sort();
    assert_eq!(out, [1, 3, 4]);
    let errors = &report.summary.errors;
    assert_eq!(errors.by_kind, vec![("Panic".to_string(), 1)]);
    assert!(errors.recent[0].error.message.contains("bad input 2"));
    assert_eq!(report.summary.snapshot.stages[0].workers[0].processed, 3);
}

#[tokio::test]
async fn backpressure_bounds_the_queue_behind_a_slow_stage() {
    let max_seen = Arc::new(AtomicUsize::new(0));
    let running = Line::<u32>::new("bp")
        .stage(
            Stage::map("fast", |n: u32, _cx| async move { Ok::<_, String>(n) })
                .workers(2)
                .queue(8),
        )
        .stage(
            Stage::map("slow", |n: u32, _cx| async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok::<_, String>(n)
            })
            .queue(4),
        )
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    let seen = max_seen.clone();
    let watcher = tokio::spawn(async move {
        for _ in 0..50 {
            let snap = h.snapshot();
            let q: u64 = snap.stages.iter().map(|s| s.queued).sum();
            seen.fetch_max(q as usize, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let feeder = running.input.clone();
    let feed = tokio::spawn(async move { feeder.send_all(0..200).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The slow stage holds back everything: the input cannot run ahead of the queues.
    let snap = running.handle.snapshot();
    assert!(
        snap.totals.submitted < 60,
        "input ran ahead: {}",
        snap.totals.submitted
    );
    watcher.await.unwrap();
    assert!(
        max_seen.load(Ordering::SeqCst) <= 8 + 4,
        "{}",
        max_seen.load(Ordering::SeqCst)
    );
    running.handle.abort();
    drop(running.input);
    let _ = feed.await;
    running.handle.wait().await;
}

#[tokio::test]
async fn cancel_a_queued_and_a_running_item() {
    let running = Line::<u32>::new("cancel")
        .stage(
            Stage::map("hold", |n: u32, _cx| async move {
                tokio::time::sleep(Duration::from_millis(if n == 0 { 10_000 } else { 1 })).await;
                Ok::<_, String>(n)
            })
            .workers(1),
        )
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    let first = running.input.send(0).await.unwrap();
    let second = running.input.send(1).await.unwrap();
    // Wait for the first to be running.
    for _ in 0..100 {
        if h.tracker().status(first) == Some(ItemStatus::Running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(h.tracker().status(second), Some(ItemStatus::Queued));
    h.cancel(second).unwrap();
    h.cancel(first).unwrap();
    drop(running.input);
    h.wait().await;
    assert_eq!(h.tracker().status(first), Some(ItemStatus::Cancelled));
    assert_eq!(h.tracker().status(second), Some(ItemStatus::Cancelled));
    assert_eq!(h.cancel(first), Err(ControlError::AlreadyDone(first)));
    assert_eq!(h.tracker().stats().cancelled, 2);
    assert!(running.outputs.try_recv().is_err());
}

/// Waits (on a loaded machine, as long as it takes) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..6000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("waited 30 s for {what}");
}

#[tokio::test]
async fn restarting_a_hung_worker_retries_its_item_and_frees_it() {
    // The first attempt of item 0 never ends; every other attempt is quick.
    let running = Line::<u32>::new("restart")
        .stage(
            Stage::map("hang", |n: u32, cx: flowdeck_runtime::Ctx| async move {
                if n == 0 && cx.attempt() == 1 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, String>(n)
            })
            .workers(1)
            .retry(fast_retry(3)),
        )
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    assert!(matches!(
        h.restart_worker("hang", 0, "alice"),
        Err(ControlError::WorkerIdle { .. })
    ));
    assert!(matches!(
        h.restart_worker("hang", 3, "alice"),
        Err(ControlError::UnknownWorker { workers: 1, .. })
    ));
    assert!(matches!(
        h.restart_worker("nope", 0, "alice"),
        Err(ControlError::UnknownStage(_))
    ));
    let hung = running.input.send(0).await.unwrap();
    let next = running.input.send(1).await.unwrap();
    until("the hung item to run", || {
        h.tracker().status(hung) == Some(ItemStatus::Running)
    })
    .await;
    // Held: the next item waits behind it.
    assert_eq!(h.tracker().status(next), Some(ItemStatus::Queued));
    assert_eq!(h.restart_worker("hang", 0, "alice"), Ok(hung));
    drop(running.input);
    h.wait().await;
    assert_eq!(h.tracker().status(hung), Some(ItemStatus::Completed));
    assert_eq!(h.tracker().status(next), Some(ItemStatus::Completed));
    let history = h.tracker().history(hung).unwrap();
    let retry = history
        .iter()
        .find(|e| e.kind == EventKind::Retrying)
        .expect("the restarted attempt is retried");
    let error = retry.error.as_ref().unwrap();
    assert_eq!(
        (error.kind.as_str(), error.message.as_str(), retry.attempt),
        ("Restarted", "restarted by alice", 1)
    );
    let done = history
        .iter()
        .find(|e| e.kind == EventKind::Completed)
        .unwrap();
    assert_eq!(done.attempt, 2);
    assert_eq!(h.snapshot().stages[0].retried, 1);
}

#[tokio::test]
async fn pause_holds_items_and_resume_lets_them_through() {
    let running = Line::<u32>::new("pause")
        .stage(Stage::map("work", |n: u32, _cx| async move { Ok::<_, String>(n) }).workers(2))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    h.pause("work").unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    running.input.send_all(0..10).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let snap = h.snapshot();
    assert_eq!(snap.stages[0].queued, 10);
    assert_eq!(snap.stages[0].completed, 0);
    assert!(snap.stages[0].paused);
    assert!(snap.stages[0]
        .workers
        .iter()
        .all(|w| w.state == flowdeck_runtime::protocol::WorkerState::Paused));
    h.resume("work").unwrap();
    drop(running.input);
    h.wait().await;
    assert_eq!(h.snapshot().stages[0].completed, 10);
}

#[tokio::test]
async fn resizing_changes_the_number_of_workers() {
    let running = Line::<u32>::new("resize")
        .stage(
            Stage::map("work", |n: u32, _cx| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok::<_, String>(n)
            })
            .workers(1),
        )
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    assert_eq!(h.snapshot().stages[0].workers.len(), 1);
    h.set_workers("work", 4).unwrap();
    running.input.send_all(0..40).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let snap = h.snapshot();
    assert_eq!(snap.stages[0].workers.len(), 4);
    assert!(
        snap.stages[0].in_flight > 1,
        "in flight: {}",
        snap.stages[0].in_flight
    );
    h.set_workers("work", 2).unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let snap = h.snapshot();
    assert_eq!(snap.stages[0].workers.len(), 2);
    assert_eq!(
        h.set_workers("missing", 2),
        Err(ControlError::UnknownStage("missing".into()))
    );
    drop(running.input);
    h.wait().await;
    assert_eq!(h.tracker().stats().completed, 40);
}

#[tokio::test]
async fn a_failed_item_can_be_retried_from_the_handle() {
    let fail = Arc::new(AtomicU32::new(1));
    let f = fail.clone();
    let running = Line::<u32>::new("manual-retry")
        .stage(Stage::map("work", move |n: u32, _cx| {
            let f = f.clone();
            async move {
                if f.load(Ordering::SeqCst) == 1 {
                    Err("down".to_string())
                } else {
                    Ok(n)
                }
            }
        }))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    let id = running.input.send(9).await.unwrap();
    for _ in 0..100 {
        if h.tracker().status(id) == Some(ItemStatus::Failed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(h.tracker().status(id), Some(ItemStatus::Failed));
    fail.store(0, Ordering::SeqCst);
    h.retry(id).await.unwrap();
    assert_eq!(running.outputs.recv().await.unwrap(), 9);
    assert_eq!(h.retry(id).await, Err(ControlError::NotFailed(id)));
    drop(running.input);
    h.wait().await;
    let stats = h.tracker().stats();
    assert_eq!((stats.completed, stats.failed), (1, 0));
}

/// Waits (at most 30 s, polling) until `item` is in `status`.
async fn until_status(h: &flowdeck_runtime::PipelineHandle, item: u64, status: ItemStatus) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while h.tracker().status(item) != Some(status) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "item {item} never {status:?}: {:?}",
            h.tracker().status(item)
        )
    });
}

#[tokio::test]
async fn a_retry_whose_caller_stops_waiting_for_queue_room_still_goes_through() {
    // Item 0 fails; items 1 and 2 hold the only worker and fill the queue of one, so the
    // retry waits for room. Its caller gives up (a request's deadline): the retry goes on.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (g, once) = (gate.clone(), Arc::new(AtomicU32::new(1)));
    let running = Line::<u32>::new("retry-gives-up")
        .stage(
            Stage::map("work", move |n: u32, _cx| {
                let (g, once) = (g.clone(), once.clone());
                async move {
                    if n == 0 && once.swap(0, Ordering::SeqCst) == 1 {
                        return Err("down".to_string());
                    }
                    let _pass = g.acquire().await.unwrap();
                    Ok(n)
                }
            })
            .queue(1),
        )
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    let failed = running.input.send(0).await.unwrap();
    until_status(&h, failed, ItemStatus::Failed).await;
    let held = running.input.send(1).await.unwrap();
    until_status(&h, held, ItemStatus::Running).await;
    let waiting = running.input.send(2).await.unwrap();
    until_status(&h, waiting, ItemStatus::Queued).await;
    let gave_up = tokio::time::timeout(Duration::from_millis(100), h.retry(failed)).await;
    assert!(gave_up.is_err(), "the queue had room: {gave_up:?}");
    gate.add_permits(3);
    let mut out = Vec::new();
    for _ in 0..3 {
        let next = tokio::time::timeout(Duration::from_secs(30), running.outputs.recv());
        out.push(next.await.expect("an item never came out").unwrap());
    }
    out.sort_unstable();
    assert_eq!(out, [0, 1, 2], "the retried item came out");
    drop(running.input);
    h.wait().await;
    let stats = h.tracker().stats();
    assert_eq!((stats.completed, stats.failed, stats.queued), (3, 0, 0));
}

#[tokio::test]
async fn a_retry_after_the_run_ended_says_so_each_time() {
    let running = Line::<u32>::new("retry-too-late")
        .stage(Stage::map("work", |_n: u32, _cx| async move {
            Err::<u32, _>("down".to_string())
        }))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    let id = running.input.send(1).await.unwrap();
    until_status(&h, id, ItemStatus::Failed).await;
    drop(running.input);
    h.wait().await;
    // Asked twice: the input is not let go by the first answer.
    assert_eq!(h.retry(id).await, Err(ControlError::Finished));
    assert_eq!(h.retry(id).await, Err(ControlError::Finished));
}

#[tokio::test]
async fn a_failure_older_than_the_retention_can_still_be_retried() {
    // Retention 10: the first failure's detail is long gone when it is retried, but its
    // stage kept its input.
    let fail = Arc::new(AtomicU32::new(1));
    let f = fail.clone();
    let running = Line::<u32>::new("old-retry")
        .stage(Stage::map("work", move |n: u32, _cx| {
            let f = f.clone();
            async move {
                if n == 0 && f.load(Ordering::SeqCst) == 1 {
                    Err("down".to_string())
                } else {
                    Ok(n)
                }
            }
        }))
        .retention(10)
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    let first = running.input.send(0).await.unwrap();
    running.input.send_all(1..100).await;
    for _ in 0..99 {
        running.outputs.recv().await.unwrap();
    }
    assert_eq!(
        h.tracker().status(first),
        None,
        "evicted from the retained detail"
    );
    fail.store(0, Ordering::SeqCst);
    h.retry(first).await.unwrap();
    assert_eq!(running.outputs.recv().await.unwrap(), 0);
    // Retried once, its input is no longer kept: a second retry is refused, not lost.
    assert_eq!(h.retry(first).await, Err(ControlError::UnknownItem(first)));
    drop(running.input);
    h.wait().await;
    let stats = h.tracker().stats();
    assert_eq!((stats.completed, stats.failed), (100, 0));
}

#[tokio::test]
async fn dag_routes_fans_out_and_fans_in_with_provenance() {
    // split -> (evens | odds) -> join
    let mut g = Graph::<Vec<u32>, String>::new("dag");
    let split = g.add(
        Stage::flat_map(
            "split",
            |v: Vec<u32>, _cx| async move { Ok::<_, String>(v) },
        )
        .workers(2),
    );
    let evens = g.add(Stage::map(
        "evens",
        |n: u32, cx: flowdeck_runtime::Ctx| async move {
            cx.annotate("kind", "even");
            Ok::<_, String>(format!("e{n}"))
        },
    ));
    let odds = g.add(Stage::map("odds", |n: u32, _cx| async move {
        Ok::<_, String>(format!("o{n}"))
    }));
    let join = g.add(Stage::map("join", |s: String, _cx| async move {
        Ok::<_, String>(s.to_uppercase())
    }));
    g.input(split);
    g.connect_if(split, evens, |n| n % 2 == 0);
    g.connect(split, odds);
    g.connect(evens, join);
    g.connect(odds, join);
    g.output(join);
    let running = g.build().unwrap().start();
    let h = running.handle.clone();
    let parent = running.input.send(vec![1, 2, 3, 4]).await.unwrap();
    drop(running.input);
    let mut out = Vec::new();
    while let Ok(s) = running.outputs.recv().await {
        out.push(s);
    }
    h.wait().await;
    out.sort();
    assert_eq!(out, ["E2", "E4", "O1", "O3"]);

    let stats = h.tracker().stats();
    assert_eq!(stats.submitted, 5, "one input and four children");
    assert_eq!(stats.completed, 5);
    let snap = h.snapshot();
    let done: Vec<u64> = snap.stages.iter().map(|s| s.completed).collect();
    assert_eq!(done, [1, 2, 2, 4]);

    // Each child names the input as its parent and went through the right branch.
    let children: Vec<_> = h
        .tracker()
        .items(None, None, 10)
        .into_iter()
        .filter(|i| i.id != parent)
        .collect();
    assert_eq!(children.len(), 4);
    let even_child = children
        .iter()
        .map(|c| h.tracker().item(c.id).unwrap())
        .find(|d| d.visits.iter().any(|v| v.stage == evens.index()))
        .unwrap();
    assert_eq!(even_child.parents, [parent]);
    let stages: Vec<u16> = even_child.visits.iter().map(|v| v.stage).collect();
    assert_eq!(stages, [evens.index(), join.index()]);
    assert_eq!(
        even_child.annotations,
        vec![("kind".to_string(), "even".into())]
    );
    let chain = h.tracker().provenance(even_child.id);
    assert_eq!(
        chain.iter().map(|a| (a.id, a.depth)).collect::<Vec<_>>(),
        [(even_child.id, 0), (parent, 1)]
    );
    assert_eq!(chain[1].stages, [split.index()]);
    // History: queued, started, completed at each stage, in time order.
    let kinds: Vec<EventKind> = even_child.history.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == EventKind::Completed).count(),
        2
    );
}

#[tokio::test]
async fn callbacks_fire_for_each_kind_of_change() {
    let started = Arc::new(AtomicU32::new(0));
    let failed = Arc::new(AtomicU32::new(0));
    let all = Arc::new(AtomicU32::new(0));
    let (s, f, a) = (started.clone(), failed.clone(), all.clone());
    let pipeline = Line::<u32>::new("callbacks")
        .stage(Stage::map("work", |n: u32, _cx| async move {
            if n == 0 {
                Err("zero".to_string())
            } else {
                Ok(n)
            }
        }))
        .on(EventKind::Started, move |_| {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .on(EventKind::Failed, move |e| {
            assert_eq!(e.error.as_ref().map(|e| e.message.as_str()), Some("zero"));
            f.fetch_add(1, Ordering::SeqCst);
        })
        .on_status_change(move |_| {
            a.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    pipeline.run(0..3).await;
    assert_eq!(started.load(Ordering::SeqCst), 3);
    assert_eq!(failed.load(Ordering::SeqCst), 1);
    // queued + started + (completed | failed) for each of 3 items
    assert_eq!(all.load(Ordering::SeqCst), 9);
}

#[tokio::test]
async fn the_change_feed_is_numbered_without_gaps() {
    let running = Line::<u32>::new("feed")
        .stage(Stage::map("a", |n: u32, _cx| async move { Ok::<_, String>(n) }).workers(2))
        .stage(Stage::map("b", |n: u32, _cx| async move { Ok::<_, String>(n) }).workers(2))
        .build()
        .unwrap()
        .start();
    let mut feed = running.handle.subscribe();
    let h = running.handle.clone();
    running.input.send_all(0..500).await;
    drop(running.input);
    drop(running.outputs);
    let collect = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while let Ok(batch) = feed.recv().await {
            seqs.extend(batch.iter().map(|e| e.seq));
        }
        seqs
    });
    h.wait().await;
    let seqs = collect.await.unwrap();
    // queued, started and completed at each of two stages: 6 per item.
    assert_eq!(seqs.len(), 500 * 6);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(h.snapshot().seq, *seqs.last().unwrap());
}

#[tokio::test]
async fn abort_cancels_what_is_left() {
    let running = Line::<u32>::new("abort")
        .stage(
            Stage::map("slow", |n: u32, _cx| async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, String>(n)
            })
            .workers(2)
            .queue(100),
        )
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    running.input.send_all(0..20).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    h.abort();
    h.wait().await;
    assert_eq!(h.state(), PipelineState::Aborted);
    let stats = h.tracker().stats();
    assert_eq!(stats.cancelled, 20);
    assert_eq!(stats.submitted, 20);
    assert!(running.input.send(1).await.is_err());
}

/// A stage that passes its item on unchanged, for tests about the graph's shape.
fn pass(name: &str) -> Stage<u32, u32, impl TaskFn<u32, u32>> {
    Stage::map(name, |n: u32, _cx| async move { Ok::<_, String>(n) })
}

#[test]
fn graphs_that_cannot_run_are_refused_with_a_reason() {
    let mut g = Graph::<u32, u32>::new("bad");
    let a = g.add(pass("a"));
    let b = g.add(pass("b"));
    g.connect(a, b);
    assert_eq!(g.build().err(), Some(BuildError::NoInput));

    let mut g = Graph::<u32, u32>::new("cycle");
    let a = g.add(pass("a"));
    let b = g.add(pass("b"));
    g.input(a).connect(a, b).connect(b, a);
    assert_eq!(g.build().err(), Some(BuildError::Cycle("a".into())));

    let mut g = Graph::<u32, u32>::new("orphan");
    let a = g.add(pass("a"));
    g.add(pass("lonely"));
    g.input(a);
    assert_eq!(
        g.build().err(),
        Some(BuildError::Unreachable("lonely".into()))
    );

    let mut g = Graph::<u32, u32>::new("dupe");
    let a = g.add(pass("a").workers(0));
    g.input(a);
    assert_eq!(g.build().err(), Some(BuildError::NoWorkers("a".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_a_task_reports_made_elsewhere_show_as_retries_in_order() {
    use EventKind::{Completed, Queued, Retrying, Started};
    // A task that hands its item to a system retrying by itself (as a distributed stage's
    // does) and hears of two failed attempts before the third succeeds.
    let report = Line::<u32>::new("elsewhere")
        .stage(Stage::map(
            "remote",
            |n: u32, cx: flowdeck_runtime::Ctx| async move {
                cx.retried("Timeout", "attempt 1 timed out").await;
                cx.retried("Io", "attempt 2 lost its connection").await;
                Ok::<_, String>(n)
            },
        ))
        .build()
        .unwrap()
        .start();
    let handle = report.handle.clone();
    let report = report.run([7]).await;
    assert_eq!(report.outputs, vec![7]);
    let history: Vec<_> = handle
        .tracker()
        .history(0)
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.attempt, e.error.map(|x| x.kind)))
        .collect();
    assert_eq!(
        history,
        vec![
            (Queued, 0, None),
            (Started, 1, None),
            (Retrying, 1, Some("Timeout".to_owned())),
            (Started, 2, None),
            (Retrying, 2, Some("Io".to_owned())),
            (Started, 3, None),
            (Completed, 3, None),
        ]
    );
    let s = report.summary;
    assert_eq!(s.snapshot.stages[0].retried, 2);
    assert_eq!(
        (s.stats.completed, s.stats.retrying, s.stats.running),
        (1, 0, 0)
    );
}
