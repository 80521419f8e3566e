//! User code that panics fails one item, never a worker, the tracker or the run: the
//! task's synchronous part and its future, `classify`, `retry_if`, routing filters,
//! tracker callbacks and monitors.
#![allow(clippy::expect_used)] // in helpers outside #[test] fns, too

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use flowdeck_runtime::{
    protocol::{EventKind, Snapshot},
    Graph, Line, Monitor, Report, RetryPolicy, Stage,
};

/// Runs to completion or fails the test: before the fix a panic hung the run forever.
async fn finish<O>(run: impl std::future::Future<Output = Report<O>>) -> Report<O> {
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the run never finished")
}

fn failures(report: &Report<impl Sized>) -> Vec<(String, String)> {
    report
        .summary
        .errors
        .recent
        .iter()
        .map(|f| (f.error.kind.clone(), f.error.message.clone()))
        .collect()
}

#[tokio::test]
async fn a_panic_in_the_synchronous_part_of_a_task_fails_only_that_item() {
    let pipeline = Line::<u32>::new("sync-panic")
        .stage(Stage::map("boom", |n: u32, _cx| {
            if n == 3 {
                panic!("cannot take {n}");
            }
            async move { Ok::<_, String>(n) }
        }))
        .build()
        .unwrap();
    let report = finish(pipeline.run(0..10)).await;
    let mut out = report.outputs.clone();
    out.sort();
    assert_eq!(out, [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    assert_eq!(
        failures(&report),
        [("Panic".to_owned(), "cannot take 3".to_owned())]
    );
    let stage = &report.summary.snapshot.stages[0];
    assert_eq!((stage.completed, stage.failed), (9, 1));
}

#[tokio::test]
async fn a_panic_in_the_future_is_retried_like_an_error() {
    let pipeline = Line::<u32>::new("async-panic")
        .stage(
            Stage::map("boom", |n: u32, cx: flowdeck_runtime::Ctx| async move {
                if n == 1 && cx.attempt() == 1 {
                    panic!("first try of {n}");
                }
                Ok::<_, String>(n)
            })
            .retry(
                RetryPolicy::attempts(2)
                    .backoff(Duration::from_millis(1), Duration::from_millis(1)),
            ),
        )
        .build()
        .unwrap();
    let report = finish(pipeline.run(0..4)).await;
    assert_eq!(report.outputs.len(), 4);
    assert_eq!(report.summary.snapshot.stages[0].retried, 1);
}

#[tokio::test]
async fn panics_in_classify_and_retry_if_fail_the_item_with_a_panic_error() {
    let classify = Line::<u32>::new("classify")
        .stage(
            Stage::map("work", |n: u32, _cx| async move {
                if n.is_multiple_of(2) {
                    Err(format!("even {n}"))
                } else {
                    Ok(n)
                }
            })
            .classify(|e: &String| panic!("no kind for {e}")),
        )
        .build()
        .unwrap();
    let report = finish(classify.run(0..6)).await;
    assert_eq!(report.outputs.len(), 3);
    let f = failures(&report);
    assert_eq!(f.len(), 3);
    assert!(
        f.iter()
            .all(|(kind, msg)| kind == "Panic" && msg.contains("no kind for even")),
        "{f:?}"
    );

    let retry_if = Line::<u32>::new("retry-if")
        .stage(
            Stage::map("work", |n: u32, _cx| async move {
                if n == 2 {
                    Err("bad".to_owned())
                } else {
                    Ok(n)
                }
            })
            .retry(RetryPolicy::attempts(3).retry_if(|_: &String| panic!("cannot decide"))),
        )
        .build()
        .unwrap();
    let report = finish(retry_if.run(0..5)).await;
    assert_eq!(report.outputs.len(), 4);
    assert_eq!(
        failures(&report),
        [(
            "Panic".to_owned(),
            "the retry_if filter panicked: cannot decide".to_owned()
        )]
    );
}

#[tokio::test]
async fn a_panicking_routing_filter_fails_the_item_at_its_stage() {
    let mut g = Graph::<u32, u32>::new("routes");
    let a = g.add(Stage::map(
        "a",
        |n: u32, _cx| async move { Ok::<_, String>(n) },
    ));
    let b = g.add(Stage::map(
        "b",
        |n: u32, _cx| async move { Ok::<_, String>(n) },
    ));
    let split = g.add(Stage::flat_map("split", |n: u32, _cx| async move {
        Ok::<_, String>(vec![n, n + 100])
    }));
    let c = g.add(Stage::map(
        "c",
        |n: u32, _cx| async move { Ok::<_, String>(n) },
    ));
    g.input_if(a, |n| {
        if *n == 9 {
            panic!("input filter on {n}");
        }
        true
    });
    g.connect_if(a, b, |n| {
        if *n == 5 {
            panic!("route for {n}");
        }
        true
    });
    g.connect(b, split);
    g.connect_if(split, c, |n| {
        if *n == 101 {
            panic!("child route for {n}");
        }
        true
    });
    g.output(c);
    let report = finish(g.build().unwrap().run(0..10)).await;
    // 0..10 minus 9 (input filter) and 5 (route a→b), each split in two, minus child 101.
    assert_eq!(report.outputs.len(), 8 * 2 - 1);
    let mut f = failures(&report);
    f.sort();
    assert_eq!(
        f,
        [
            (
                "Panic".to_owned(),
                "a routing filter (connect_if) panicked: child route for 101".to_owned()
            ),
            (
                "Panic".to_owned(),
                "a routing filter (connect_if) panicked: input filter on 9".to_owned()
            ),
            (
                "Panic".to_owned(),
                "a routing filter (connect_if) panicked: route for 5".to_owned()
            ),
        ]
    );
    let s = &report.summary;
    assert_eq!(s.stats.failed, 3);
    assert_eq!(
        s.stats.submitted,
        s.stats.completed + s.stats.failed + s.stats.cancelled
    );
    // Item 9 fails at a (its input filter), item 5 at a too (its route onward).
    assert_eq!(s.stats.by_stage[0].failed, 2);
}

#[tokio::test]
async fn a_panicking_callback_leaves_the_tracker_and_the_feed_working() {
    let completed = Arc::new(AtomicU64::new(0));
    let seen = completed.clone();
    let running = Line::<u32>::new("callbacks")
        .stage(Stage::map("work", |n: u32, _cx| async move {
            Ok::<_, String>(n)
        }))
        .on(EventKind::Started, |e| {
            panic!("callback on item {}", e.item)
        })
        .on(EventKind::Completed, move |_| {
            seen.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap()
        .start();
    let mut feed = running.handle.subscribe();
    running.input.send_all(0..50).await;
    drop(running.input);
    while running.outputs.recv().await.is_ok() {}
    tokio::time::timeout(Duration::from_secs(20), running.handle.wait())
        .await
        .expect("the tracker died with the callback");
    let t = running.handle.tracker();
    assert_eq!(t.stats().completed, 50);
    assert_eq!(completed.load(Ordering::Relaxed), 50);
    assert_eq!(t.callback_panics(), 50);
    assert!(feed.recv().await.is_ok(), "the change feed still delivers");
}

struct Flaky(Arc<AtomicU64>);

impl Monitor for Flaky {
    fn on_update(&mut self, _: &Snapshot) {
        panic!("monitor broke");
    }
    fn on_finish(&mut self, s: &Snapshot) {
        self.0.store(s.totals.completed, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn a_panicking_monitor_keeps_being_called_and_the_run_finishes() {
    let last = Arc::new(AtomicU64::new(0));
    let report = finish(
        Line::<u32>::new("monitor")
            .stage(
                Stage::map("work", |n: u32, _cx| async move {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    Ok::<_, String>(n)
                })
                .workers(4),
            )
            .monitor(Flaky(last.clone()), Duration::from_millis(10))
            .build()
            .unwrap()
            .run(0..40),
    )
    .await;
    assert_eq!(report.outputs.len(), 40);
    // on_finish runs after the tracker has recorded everything; give its task a moment.
    for _ in 0..100 {
        if last.load(Ordering::Relaxed) == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(last.load(Ordering::Relaxed), 40);
}
