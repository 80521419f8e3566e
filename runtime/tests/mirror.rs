//! A mirror of a pipeline fed with its items' details and its snapshot shows what the
//! pipeline's own handle shows (counts, each item's history, the errors), whatever order
//! the items come in and however often; and its controls become commands for the
//! reporting process instead of acting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flowdeck_protocol::{report::Command, ItemStatus, PipelineState};
use flowdeck_runtime::{mirror, Line, RetryPolicy, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_fed_items_and_snapshot_shows_what_the_pipeline_shows() {
    let running = Line::<u64>::new("source")
        .stage(Stage::map("a", |n: u64, _cx| async move { Ok::<_, String>(n) }).workers(2))
        .stage(
            Stage::map("b", |n: u64, cx: flowdeck_runtime::Ctx| async move {
                cx.annotate("n", n);
                if n.is_multiple_of(7) && cx.attempt() == 1 {
                    return Err(format!("flaky {n}"));
                }
                if n % 10 == 3 {
                    return Err(format!("broken {n}"));
                }
                Ok(n)
            })
            .workers(3)
            .retry(
                RetryPolicy::attempts(2)
                    .backoff(Duration::from_millis(1), Duration::from_millis(2)),
            ),
        )
        .build()
        .unwrap()
        .start();
    let real = running.handle.clone();
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..300).await;
    drop(running.input);
    real.wait().await;

    let snap = real.snapshot();
    let (handle, feed) = mirror(
        "source".into(),
        real.stage_names().to_vec(),
        snap.edges.clone(),
        10_000,
    );
    assert_eq!(
        handle.state(),
        PipelineState::Running,
        "until it says otherwise"
    );
    let changed = real.tracker().changed_since(0);
    assert_eq!(changed.len(), 300, "every item changed since the start");
    assert!(real
        .tracker()
        .changed_since(real.tracker().seq())
        .is_empty());
    let ids: Vec<u64> = changed.iter().map(|(id, _)| *id).collect();
    let details = real.tracker().details(&ids);
    // Newest first, in two reports, the first sent twice (a lost answer, resent).
    let (older, newer) = details.split_at(150);
    feed.items(newer.to_vec());
    feed.items(older.to_vec());
    feed.items(older.to_vec());
    feed.snapshot(snap.clone());

    let (mine, theirs) = (handle.tracker().stats(), real.tracker().stats());
    for status in ItemStatus::ALL {
        assert_eq!(mine.count(status), theirs.count(status), "{status:?}");
    }
    assert_eq!(mine.submitted, theirs.submitted);
    assert!(mine.failed > 0 && mine.completed > 0, "{mine:?}");
    assert_eq!(handle.snapshot().totals, snap.totals);
    assert_eq!(handle.state(), PipelineState::Finished);
    tokio::time::timeout(Duration::from_secs(1), handle.wait())
        .await
        .expect("a finished report ends the mirror's run");
    let (mine_errors, their_errors) = (handle.tracker().errors(), real.tracker().errors());
    assert_eq!(mine_errors.total, their_errors.total);
    assert_eq!(mine_errors.by_kind, their_errors.by_kind);
    for id in [0, 3, 7, 299] {
        let (mine, theirs) = (
            handle.tracker().item(id).unwrap(),
            real.tracker().item(id).unwrap(),
        );
        assert_eq!(mine, theirs, "item {id}: its whole detail");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_follows_an_item_through_its_changes() {
    // An item reported while queued, then running, then failed: counted in one status at a
    // time, and once in the errors.
    let running = Line::<u64>::new("live")
        .stage(
            Stage::map("slow", |n: u64, _cx| async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Err::<u64, _>(format!("no {n}"))
            })
            .workers(1),
        )
        .build()
        .unwrap()
        .start();
    let real = running.handle.clone();
    let (handle, feed) = mirror("live".into(), real.stage_names().to_vec(), vec![], 100);
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..2).await;
    drop(running.input);
    let mut seen = std::collections::HashSet::new();
    let mut cursor = 0;
    for round in 0.. {
        assert!(round < 500, "the mirror never caught up");
        let seq = real.tracker().seq();
        let ids: Vec<u64> = real
            .tracker()
            .changed_since(cursor)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        cursor = seq;
        feed.items(real.tracker().details(&ids));
        let (mine, theirs) = (handle.tracker().stats(), real.tracker().stats());
        // The mirror is at most one scan behind; never more items than submitted.
        let total: u64 = ItemStatus::ALL.iter().map(|s| mine.count(*s)).sum();
        assert_eq!(total, mine.submitted, "{mine:?}");
        if let Some(s) = handle.tracker().status(0) {
            seen.insert(s);
        }
        if real.state() == PipelineState::Finished && mine.failed == theirs.failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.contains(&ItemStatus::Running), "{seen:?}");
    assert!(seen.contains(&ItemStatus::Failed), "{seen:?}");
    let mine = handle.tracker().stats();
    assert_eq!((mine.failed, mine.submitted), (2, 2), "{mine:?}");
    assert_eq!(handle.tracker().errors().total, 2);
}

#[tokio::test]
async fn a_mirrors_controls_queue_commands_for_the_reporter() {
    let (handle, feed) = mirror("far".into(), vec!["a".into(), "b".into()], vec![], 100);
    handle.pause("b").unwrap();
    handle.resume("b").unwrap();
    handle.set_workers("a", 5).unwrap();
    assert!(
        handle.pause("nope").is_err(),
        "an unknown stage is refused here"
    );
    handle.cancel(42).unwrap();
    handle.drain();
    assert_eq!(
        feed.take_commands(),
        [
            Command::Pause { stage: "b".into() },
            Command::Resume { stage: "b".into() },
            Command::Scale {
                stage: "a".into(),
                workers: 5
            },
            Command::Cancel { item: 42 },
            Command::Drain,
        ]
    );
    assert!(
        feed.take_commands().is_empty(),
        "each command is taken once"
    );
    let pressed = {
        let feed = feed.clone();
        tokio::spawn(async move { feed.command_pressed().await })
    };
    tokio::task::yield_now().await;
    handle.abort();
    tokio::time::timeout(Duration::from_secs(1), pressed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(feed.take_commands(), [Command::Stop]);
}
