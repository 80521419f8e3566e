//! The store against real files: what goes in comes back (filtered, sorted, counted
//! exactly), survives a reopen, and a run left running is found interrupted; a newer,
//! corrupt or unusable file is refused with a message naming it and is left untouched;
//! retention deletes what is too old or too much; a writer that is behind sheds completed
//! items and counts them; a full disk degrades the store without blocking its callers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flowdeck_protocol::{
    ErrorInfo, ItemDetail, ItemStatus, PipelineState, Preview, Snapshot, StageVisit, Totals,
};
use flowdeck_store::{
    ItemQuery, ItemSort, MetricPoint, Retention, RunQuery, RunStart, RunState, Store, StoreConfig,
    StoreError,
};

fn start(pipeline: &str) -> RunStart {
    RunStart {
        pipeline: pipeline.into(),
        started_ms: 1_700_000_000_000,
        stages: vec!["parse".into(), "store".into()],
        edges: vec![],
    }
}

/// Item `id`: every 10th failed at stage 1 with a Timeout, the rest completed; item `id`
/// has item `id - 1` as its parent when odd.
fn item(id: u64) -> ItemDetail {
    let failed = id.is_multiple_of(10);
    ItemDetail {
        id,
        status: if failed {
            ItemStatus::Failed
        } else {
            ItemStatus::Completed
        },
        stage: if failed { 1 } else { 0 },
        created_us: id * 10,
        updated_us: id * 10 + 5,
        visits: vec![StageVisit {
            stage: 0,
            worker: Some(0),
            attempts: if failed { 3 } else { 1 },
            queued_us: id * 10,
            started_us: Some(id * 10 + 1),
            finished_us: Some(id * 10 + 5),
            outcome: Some(if failed {
                ItemStatus::Failed
            } else {
                ItemStatus::Completed
            }),
            // A failure's captured input is kept with it (`Stage::capture`).
            input: failed.then(|| Preview {
                text: format!("{{\n  \"doc\": {id},\n  \"token\": \"••••••\"\n}}"),
                bytes: 40,
            }),
            output: None,
        }],
        parents: if id % 2 == 1 { vec![id - 1] } else { vec![] },
        error: failed.then(|| ErrorInfo {
            kind: if id.is_multiple_of(20) {
                "Timeout".into()
            } else {
                "Quota".into()
            },
            message: format!("item {id} gave up"),
        }),
        annotations: vec![("bytes".into(), (id as i64).into())],
        history: vec![],
    }
}

fn snapshot(completed: u64, failed: u64) -> Snapshot {
    Snapshot {
        pipeline: "docs".into(),
        state: PipelineState::Finished,
        totals: Totals {
            submitted: completed + failed,
            completed,
            failed,
            ..Totals::default()
        },
        ..Snapshot::default()
    }
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(StoreConfig::new(dir.path().join("runs.db"))).unwrap()
}

#[test]
fn items_come_back_filtered_sorted_and_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let run = store.begin_run(start("docs"));
    for id in 1..=1000 {
        store.keep_item(run, item(id));
    }
    store.end_run(
        run,
        RunState::Finished,
        snapshot(900, 100),
        1_700_000_060_000,
    );
    store.flush();

    let runs = store.runs(&RunQuery::default()).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, RunState::Finished);
    assert_eq!(runs[0].stored, 1000);
    assert_eq!(runs[0].totals.failed, 100);
    assert!(!runs[0].recounted, "a finished run keeps its own totals");

    let failed = store
        .items(
            run,
            &ItemQuery {
                status: Some(ItemStatus::Failed),
                limit: 10,
                ..ItemQuery::default()
            },
        )
        .unwrap();
    assert_eq!(failed.total, 100, "exact, not capped by the page");
    assert_eq!(failed.items.len(), 10);
    assert_eq!(failed.items[0].id, 1000, "newest first");
    assert!(failed.items.iter().all(|i| i.status == ItemStatus::Failed));

    let oldest = store
        .items(
            run,
            &ItemQuery {
                sort: ItemSort::Oldest,
                limit: 3,
                offset: 2,
                ..ItemQuery::default()
            },
        )
        .unwrap();
    assert_eq!(
        oldest.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        [3, 4, 5]
    );

    let timeouts = store
        .items(
            run,
            &ItemQuery {
                text: Some("timeout".into()),
                limit: 100,
                ..ItemQuery::default()
            },
        )
        .unwrap();
    assert_eq!(
        timeouts.total, 50,
        "LIKE is case-insensitive over the error's kind"
    );
    let underscore = store
        .items(
            run,
            &ItemQuery {
                text: Some("_".into()),
                limit: 1,
                ..ItemQuery::default()
            },
        )
        .unwrap();
    assert_eq!(underscore.total, 0, "a _ is a character, not a wildcard");

    let at_stage = store
        .items(
            run,
            &ItemQuery {
                stage: Some(1),
                limit: 1,
                ..ItemQuery::default()
            },
        )
        .unwrap();
    assert_eq!(at_stage.total, 100);

    // The item of that number, and items whose error mentions it ("item 1000 gave up"),
    // counted once each.
    let q = |text: &str| ItemQuery {
        text: Some(text.into()),
        limit: 100,
        ..ItemQuery::default()
    };
    let (by_id, counts) = store.items_counted(run, &q("#31")).unwrap();
    assert_eq!(by_id.items.iter().map(|i| i.id).collect::<Vec<_>>(), [31]);
    assert_eq!((counts.all, counts.completed, counts.failed), (1, 1, 0));
    let (thousand, counts) = store.items_counted(run, &q("1000")).unwrap();
    assert_eq!(
        thousand.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        [1000],
        "its own number and its own error: once"
    );
    assert_eq!((counts.all, counts.failed), (1, 1));
    let (forty, counts) = store.items_counted(run, &q("40")).unwrap();
    assert_eq!(
        forty.items.len(),
        11,
        "40 itself, and 140, 240, ... 940 by their errors"
    );
    assert_eq!((counts.all, counts.failed), (11, 11));
    assert_eq!(store.items(run, &q("gave up 9999")).unwrap().total, 0);

    // Sorted by attempts, then newest: the failures (3 attempts) first.
    let most = store
        .items(
            run,
            &ItemQuery {
                sort: ItemSort::Attempts,
                limit: 2,
                ..ItemQuery::default()
            },
        )
        .unwrap();
    assert_eq!(
        most.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        [1000, 990]
    );

    // An item kept again with another status moves between the counts.
    let mut retried = item(990);
    retried.status = ItemStatus::Completed;
    retried.stage = 0;
    retried.error = None;
    store.keep_item(run, retried);
    store.flush();
    let counts = store.status_counts(run, None, None).unwrap();
    assert_eq!(
        (counts.all, counts.completed, counts.failed),
        (1000, 901, 99)
    );
    assert_eq!(store.status_counts(run, Some(1), None).unwrap().all, 99);
    assert_eq!(store.runs(&RunQuery::default()).unwrap()[0].stored, 1000);
    store.keep_item(run, item(990));
    store.flush();

    let detail = store.item(run, 31).unwrap().unwrap();
    assert_eq!(detail, item(31));
    let failure = store.item(run, 40).unwrap().unwrap();
    assert_eq!(failure, item(40), "with the input it failed on");
    assert!(failure.visits[0].input.is_some());
    let chain = store.provenance(run, 31).unwrap();
    assert_eq!(chain.iter().map(|a| a.id).collect::<Vec<_>>(), [31, 30]);

    let errors = store.errors(run, 2).unwrap();
    assert_eq!(errors.total, 100);
    assert_eq!(
        errors.by_kind,
        [("Quota".to_string(), 50), ("Timeout".to_string(), 50)]
    );
    assert_eq!(errors.by_stage, [0, 100]);
    assert_eq!(errors.recent[0].id, 1000);

    // A kept item amended (a late batch closed a visit, added a note) reads as amended,
    // in the counts it was in; an item never kept is not added by an amendment.
    let mut late = item(31);
    late.annotations.push(("source".into(), "late".into()));
    store.amend_item(run, late.clone());
    store.amend_item(run, item(5_000));
    store.flush();
    assert_eq!(store.item(run, 31).unwrap().unwrap(), late);
    assert_eq!(store.item(run, 5_000).unwrap(), None);
    let counts = store.status_counts(run, None, None).unwrap();
    assert_eq!(
        (counts.all, counts.completed, counts.failed),
        (1000, 900, 100)
    );
    assert_eq!(store.runs(&RunQuery::default()).unwrap()[0].stored, 1000);
}

#[test]
fn what_was_committed_survives_and_a_run_left_running_is_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let run = {
        let store = open(&dir);
        let run = store.begin_run(start("crashy"));
        for id in 1..=500 {
            store.keep_item(run, item(id));
        }
        // The last snapshot is older than the items: 200 of them finished after it.
        store.progress(run, snapshot(270, 30), 1_700_000_030_000);
        store.flush();
        // No end_run: the process ends here with its run unfinished (`kill -9` on the
        // real binary is in cli/tests/crash.rs).
        drop(store);
        run
    };
    let store = open(&dir);
    let info = &store.runs(&RunQuery::default()).unwrap()[0];
    assert_eq!(info.id, run);
    assert_eq!(info.state, RunState::Interrupted);
    assert!(info.ended_ms.is_some(), "ended when it was last heard of");
    assert_eq!(info.stored, 500);
    // Its totals are recounted from the kept items (450 completed, 50 failed), not left
    // at the last snapshot's 270 and 30, and say so; the runs list, the pipelines' counts
    // and replay's end all read them.
    assert!(info.recounted);
    assert_eq!(
        (
            info.totals.completed,
            info.totals.failed,
            info.totals.submitted
        ),
        (450, 50, 500)
    );
    assert_eq!((info.totals.queued, info.totals.running), (0, 0));
    let end = store.timeline(run).unwrap().pop().unwrap();
    assert_eq!((end.totals.completed, end.totals.failed), (450, 50));
    let counted = store.pipeline_runs(0, &[]).unwrap();
    assert_eq!(
        (counted["crashy"].completed, counted["crashy"].failed),
        (450, 50)
    );
    assert_eq!(
        store
            .run(run)
            .unwrap()
            .unwrap()
            .snapshot
            .unwrap()
            .totals
            .completed,
        450
    );
    assert_eq!(
        store.item(run, 40).unwrap().unwrap().error.unwrap().kind,
        "Timeout"
    );
    // New runs get new ids.
    assert!(store.begin_run(start("next")) > run);
}

#[test]
fn a_newer_corrupt_or_unusable_file_is_refused_with_its_name_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    drop(open(&dir));
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = Store::open(StoreConfig::new(&path)).err().unwrap();
    assert!(matches!(err, StoreError::Newer { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("runs.db") && err.to_string().contains("newer flowdeck"));

    let garbage = dir.path().join("garbage.db");
    let bytes = b"this is not a database at all, but a text someone put here".repeat(100);
    std::fs::write(&garbage, &bytes).unwrap();
    let err = Store::open(StoreConfig::new(&garbage)).err().unwrap();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("garbage.db") && err.to_string().contains("Move it aside"));
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        bytes,
        "the file was changed"
    );

    let err = Store::open(StoreConfig::new(dir.path())).err().unwrap();
    assert!(err.to_string().contains("--db none"), "{err}");

    // One process writes a store at a time.
    let first = Store::open(StoreConfig::new(dir.path().join("shared.db"))).unwrap();
    let err = Store::open(StoreConfig::new(dir.path().join("shared.db")))
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
    drop(first);
    assert!(Store::open(StoreConfig::new(dir.path().join("shared.db"))).is_ok());
}

#[test]
fn retention_deletes_old_runs_and_keeps_the_file_under_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let old = store.begin_run(RunStart {
        started_ms: 1_000,
        ..start("old")
    });
    store.end_run(old, RunState::Finished, snapshot(1, 0), 2_000);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let recent: Vec<i64> = (0..3)
        .map(|i| {
            let run = store.begin_run(RunStart {
                started_ms: now_ms + i,
                ..start("recent")
            });
            for id in 1..=3000 {
                store.keep_item(run, item(id));
            }
            store.end_run(run, RunState::Finished, snapshot(2700, 300), now_ms + i);
            run
        })
        .collect();
    store.flush();
    drop(store);
    // Reopen with a retention that the old run and the size both break.
    let mut config = StoreConfig::new(dir.path().join("runs.db"));
    config.retention = Retention {
        max_age: Duration::from_secs(3600),
        max_bytes: 1,
    };
    let store = Store::open(config).unwrap();
    store.enforce_retention().unwrap();
    let left: Vec<i64> = store
        .runs(&RunQuery::default())
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert!(!left.contains(&old), "a run older than max_age stays");
    assert!(
        left.len() < recent.len(),
        "the size cap deleted nothing: {left:?}"
    );
}

#[test]
fn a_writer_that_is_behind_sheds_completed_items_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("runs.db"));
    config.queue = 64;
    let store = Store::open(config).unwrap();
    let run = store.begin_run(start("flood"));
    let (mut kept, mut shed) = (0u64, 0u64);
    for id in 1..=50_000 {
        let it = item(id);
        if store.wants(it.status) {
            store.keep_item(run, it);
            kept += 1;
        } else {
            store.shed(run, 1);
            shed += 1;
        }
    }
    store.flush();
    assert!(shed > 0, "nothing was shed with a queue of 64");
    let info = &store.runs(&RunQuery::default()).unwrap()[0];
    assert_eq!(
        info.stored + info.not_stored,
        50_000,
        "kept {kept}, shed {shed}: {info:?}"
    );
    // Failures are shed only when the queue is full: far fewer of them go.
    let failed = store
        .items(
            run,
            &ItemQuery {
                status: Some(ItemStatus::Failed),
                limit: 1,
                ..ItemQuery::default()
            },
        )
        .unwrap()
        .total;
    let completed = info.stored - failed;
    assert!(
        failed as f64 / 5_000.0 > completed as f64 / 45_000.0,
        "failed {failed}, completed {completed}"
    );
}

#[test]
fn a_full_disk_degrades_the_store_and_never_blocks_its_callers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("runs.db"));
    config.hard_limit_bytes = Some(200 * 1024);
    let store = Store::open(config).unwrap();
    let run = store.begin_run(start("full"));
    let t = std::time::Instant::now();
    for id in 1..=20_000 {
        if store.wants(ItemStatus::Completed) {
            store.keep_item(run, item(id));
        }
    }
    assert!(t.elapsed() < Duration::from_secs(5), "the callers waited");
    store.flush();
    assert!(
        store
            .stats()
            .failures
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    let problem = store.stats().problem.lock().clone().unwrap();
    assert!(problem.contains("full"), "{problem}");
    // What fit is still readable.
    assert!(!store.runs(&RunQuery::default()).unwrap().is_empty());
}

#[test]
fn metric_minutes_are_kept_a_partial_one_is_replaced_and_series_are_listed_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let point = |series: &str, minute: u64, sum: f64| MetricPoint {
        series: series.to_owned(),
        minute,
        count: 2,
        sum,
        min: 1.0,
        max: sum - 1.0,
        last: sum - 1.0,
    };
    let m = 1_700_000_040;
    store.metrics(vec![
        point("a_total{stage=x}", m, 10.0),
        point("b", m + 60, 4.0),
    ]);
    // The minute under way, written again once it is whole: the later write wins.
    store.metrics(vec![point("a_total{stage=x}", m + 60, 3.0)]);
    store.metrics(vec![point("a_total{stage=x}", m + 60, 30.0)]);
    store.flush();
    let a = store.metric_points("a_total{stage=x}", m, m + 60).unwrap();
    assert_eq!(
        a.iter().map(|p| (p.minute, p.sum)).collect::<Vec<_>>(),
        [(m, 10.0), (m + 60, 30.0)]
    );
    assert_eq!(
        store
            .metric_points("a_total{stage=x}", m + 60, m + 60)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.metric_series(m, m + 60).unwrap(),
        ["a_total{stage=x}", "b"]
    );
    assert_eq!(store.metric_series(m, m).unwrap(), ["a_total{stage=x}"]);
    assert!(store.metric_series(m + 120, m + 600).unwrap().is_empty());
}

#[test]
fn a_version_1_file_is_migrated_and_its_items_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let run = {
        let store = open(&dir);
        let run = store.begin_run(start("old"));
        for id in 1..=300 {
            store.keep_item(run, item(id));
        }
        store.flush();
        run
    };
    // Back to what version 1 had: no counts, the old indexes, no warnings, no snapshots,
    // no recount mark, no questions, no alert deliveries.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE item_counts; DROP TABLE warnings; DROP TABLE snapshots; DROP TABLE questions;
         DROP TABLE alert_deliveries;
         DROP INDEX items_error; DROP INDEX items_attempts;
         DROP INDEX items_updated; ALTER TABLE runs DROP COLUMN recounted;
         CREATE INDEX items_error ON items (run, error_kind) WHERE error_kind IS NOT NULL;
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    let store = open(&dir);
    let counts = store.status_counts(run, None, None).unwrap();
    assert_eq!(
        (counts.all, counts.completed, counts.failed),
        (300, 270, 30)
    );
    assert_eq!(store.runs(&RunQuery::default()).unwrap()[0].stored, 300);
    store.keep_item(run, item(301));
    store.flush();
    assert_eq!(
        store.status_counts(run, None, None).unwrap().all,
        301,
        "counted from then on"
    );
}

#[test]
fn every_snapshot_is_kept_for_replay_and_a_moment_reads_the_one_at_or_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let run = store.begin_run(start("replayed"));
    // A slow last stage, saturated from the 10th second: the bottleneck then, not before,
    // and not once the run has ended.
    let at = |uptime_ms: u64, completed: u64, saturated: bool| {
        let mut s = snapshot(completed, 0);
        s.state = PipelineState::Running;
        s.uptime_ms = uptime_ms;
        s.stages = ["parse", "store"]
            .iter()
            .map(|name| flowdeck_protocol::StageSnapshot {
                name: (*name).into(),
                busy_ratio: if saturated && *name == "store" {
                    0.99
                } else {
                    0.1
                },
                ..Default::default()
            })
            .collect();
        s
    };
    store.progress(run, at(5_000, 10, false), 1_700_000_005_000);
    store.progress(run, at(10_000, 30, true), 1_700_000_010_000);
    store.progress(run, at(15_000, 60, true), 1_700_000_015_000);
    let mut end = at(17_500, 75, true);
    end.state = PipelineState::Finished;
    store.end_run(run, RunState::Finished, end, 1_700_000_017_500);
    store.flush();

    let timeline = store.timeline(run).unwrap();
    let points: Vec<(u64, u64)> = timeline
        .iter()
        .map(|p| (p.at_ms, p.totals.completed))
        .collect();
    assert_eq!(
        points,
        [(5_000, 10), (10_000, 30), (15_000, 60), (17_500, 75)]
    );

    let moment = |ms| store.moment(run, ms).unwrap().unwrap();
    // Between two snapshots: the earlier one.
    let m = moment(12_345);
    assert_eq!((m.at_ms, m.snapshot.totals.completed), (10_000, 30));
    assert_eq!(m.bottleneck.as_deref(), Some("store"));
    // Exactly at one, after the end, and before the first.
    assert_eq!(moment(15_000).at_ms, 15_000);
    assert_eq!(moment(99_000).snapshot.totals.completed, 75);
    assert_eq!(moment(99_000).bottleneck, None);
    assert_eq!(moment(0).at_ms, 5_000);
    // A run with no snapshots, and one that does not exist.
    let other = store.begin_run(start("empty"));
    store.flush();
    assert_eq!(store.moment(other, 1_000).unwrap(), None);
    assert!(store.timeline(9_999).unwrap().is_empty());
}

/// Item `id` of [`item`] with its history: queued at `10 id`, started at `10 id + 1`,
/// finished at `10 id + 5`.
fn item_with_history(id: u64) -> ItemDetail {
    use flowdeck_protocol::{Event, EventKind};
    let mut it = item(id);
    let event = |kind, at_us, error: Option<ErrorInfo>| Event {
        seq: 0,
        item: id,
        stage: 0,
        worker: (kind != EventKind::Queued).then_some(0),
        kind,
        attempt: 1,
        at_us,
        duration_us: None,
        last: true,
        error,
        from: None,
    };
    let end = match it.status {
        ItemStatus::Failed => EventKind::Failed,
        _ => EventKind::Completed,
    };
    it.history = vec![
        event(EventKind::Queued, id * 10, None),
        event(EventKind::Started, id * 10 + 1, None),
        event(end, id * 10 + 5, it.error.clone()),
    ];
    it
}

#[test]
fn a_moment_lists_the_items_that_existed_then_each_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let run = store.begin_run(start("replayed"));
    for id in 1..=100 {
        store.keep_item(run, item_with_history(id));
    }
    store.end_run(run, RunState::Finished, snapshot(90, 10), 1_700_000_001_000);
    store.flush();

    // At 503 µs: items 1 to 50 exist; 1 to 49 are done (4 of them failed: 10, 20, 30, 40),
    // and item 50 (which fails later) is running its first attempt.
    let at = |status, text: Option<&str>| ItemQuery {
        status,
        text: text.map(str::to_owned),
        limit: 100,
        at_us: Some(503),
        ..ItemQuery::default()
    };
    let (page, counts) = store.items_counted(run, &at(None, None)).unwrap();
    assert_eq!(
        (
            counts.all,
            counts.completed,
            counts.failed,
            counts.cancelled,
            counts.in_progress
        ),
        (50, 45, 4, 0, 1)
    );
    assert_eq!(page.total, 50);
    let first = &page.items[0];
    assert_eq!(
        (first.id, first.status, first.attempts),
        (50, ItemStatus::Running, 1)
    );
    assert_eq!((first.updated_us, first.error.as_ref()), (501, None));
    assert!(page.items[1..].iter().all(|i| i.status.is_terminal()));

    // "In progress" is any status not final; a final status is "done by then".
    let running = store
        .items(run, &at(Some(ItemStatus::Queued), None))
        .unwrap();
    assert_eq!(running.items.iter().map(|i| i.id).collect::<Vec<_>>(), [50]);
    let failed = store
        .items(run, &at(Some(ItemStatus::Failed), None))
        .unwrap();
    assert_eq!(
        failed.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        [40, 30, 20, 10]
    );
    assert_eq!(failed.total, 4);

    // A search finds the errors that had happened by then, and an item by number only if it
    // existed then.
    let (page, counts) = store
        .items_counted(run, &at(None, Some("gave up")))
        .unwrap();
    assert_eq!((page.total, counts.failed, counts.all), (4, 4, 4));
    let (page, counts) = store.items_counted(run, &at(None, Some("#50"))).unwrap();
    assert_eq!((page.total, counts.in_progress), (1, 1));
    assert_eq!(page.items[0].status, ItemStatus::Running);
    assert_eq!(store.items(run, &at(None, Some("#60"))).unwrap().total, 0);

    // Before anything existed, nothing; after the end, the end.
    let before = ItemQuery {
        at_us: Some(5),
        limit: 10,
        ..ItemQuery::default()
    };
    assert_eq!(store.items(run, &before).unwrap().total, 0);
    let after = ItemQuery {
        at_us: Some(u64::MAX),
        limit: 10,
        ..ItemQuery::default()
    };
    let (page, counts) = store.items_counted(run, &after).unwrap();
    let (_, end) = store
        .items_counted(
            run,
            &ItemQuery {
                limit: 10,
                ..ItemQuery::default()
            },
        )
        .unwrap();
    assert_eq!(counts, end);
    assert_eq!(page.items[0].status, ItemStatus::Failed);
}
