//! A mirror of a pipeline fed with its change feed and its snapshot shows what the
//! pipeline's own handle shows (counts, each item's history, the errors), and its
//! controls become commands for the reporting process instead of acting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flowdeck_protocol::{report::Command, Event, ItemStatus, PipelineState};
use flowdeck_runtime::{mirror, FeedError, Line, RetryPolicy, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_fed_the_feed_and_snapshot_shows_what_the_pipeline_shows() {
    let running = Line::<u64>::new("source")
        .stage(Stage::map("a", |n: u64, _cx| async move { Ok::<_, String>(n) }).workers(2))
        .stage(
            Stage::map("b", |n: u64, cx: flowdeck_runtime::Ctx| async move {
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
    let mut feed = real.subscribe();
    let collect = tokio::spawn(async move {
        let mut events: Vec<Event> = Vec::new();
        loop {
            match feed.recv().await {
                Ok(batch) => events.extend(batch.iter().cloned()),
                Err(FeedError::Closed) => return events,
                Err(e) => panic!("{e}"),
            }
        }
    });
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..300).await;
    drop(running.input);
    real.wait().await;
    let events = collect.await.unwrap();

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
    // In two batches, as a reporter sends them.
    let (first, rest) = events.split_at(events.len() / 2);
    feed.events(first);
    feed.events(rest);
    feed.snapshot(snap.clone());

    let (mine, theirs) = (handle.tracker().stats(), real.tracker().stats());
    for status in ItemStatus::ALL {
        assert_eq!(mine.count(status), theirs.count(status), "{status:?}");
    }
    assert_eq!(mine.submitted, theirs.submitted);
    assert!(mine.failed > 0 && mine.completed > 0, "{mine:?}");
    assert_eq!(handle.snapshot().totals, snap.totals);
    assert_eq!(handle.snapshot().seq, events.len() as u64);
    assert_eq!(handle.state(), PipelineState::Finished);
    tokio::time::timeout(Duration::from_secs(1), handle.wait())
        .await
        .expect("a finished report ends the mirror's run");
    assert_eq!(
        handle.tracker().errors().by_kind,
        real.tracker().errors().by_kind
    );
    for id in [0, 3, 7, 299] {
        let (mine, theirs) = (
            handle.tracker().item(id).unwrap(),
            real.tracker().item(id).unwrap(),
        );
        assert_eq!(mine.status, theirs.status, "item {id}");
        assert_eq!(mine.history, theirs.history, "item {id}");
        assert_eq!(mine.error, theirs.error, "item {id}");
    }
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
