//! A distributed stage end to end, its workers in this process on their own NATS
//! connection (as a worker process would have): outputs, retries with `Nak`, failures and
//! panics, a message that is no item, and a pause that reaches the workers. The chaos
//! tests (`chaos.rs`) do the same with worker processes that are killed and stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::nats_server;
use flowdeck_cluster::{Cluster, QueueOptions, Settings};
use flowdeck_protocol::{ItemStatus, Value};
use flowdeck_runtime::{Line, Pipeline, RetryPolicy, Stage};

fn settings() -> Settings {
    Settings {
        queue: QueueOptions {
            ack_wait: Duration::from_secs(2),
            ..QueueOptions::default()
        },
        ..Settings::default()
    }
}

/// number → square (distributed) → (item, value). Of the distributed stage's items, those
/// ending in 07 always fail, in 13 panic, in 03 fail on their first delivery only; `work`
/// is how long each takes.
fn pipeline(cluster: &Cluster, work: Duration) -> Pipeline<u64, (u64, u64)> {
    let flaky = Arc::new(Mutex::new(HashSet::new()));
    Line::<u64>::new("squares")
        .stage(Stage::map("number", |n: u64, _cx| async move { Ok::<_, String>(n) }).workers(2))
        .stage(
            cluster.distribute(
                Stage::map("square", move |n: u64, _cx| {
                    let flaky = flaky.clone();
                    async move {
                        tokio::time::sleep(work).await;
                        match n % 100 {
                            7 => Err(format!("{n} never works")),
                            13 => panic!("{n} is cursed"),
                            3 if flaky.lock().unwrap().insert(n) => Err(format!("{n}: flaky")),
                            _ => Ok(n * n),
                        }
                    }
                })
                .workers(4)
                .retry(
                    RetryPolicy::attempts(3)
                        .backoff(Duration::from_millis(10), Duration::from_millis(20)),
                ),
            ),
        )
        .stage(Stage::map("sink", |v: u64, cx| async move {
            Ok::<_, String>((cx.item(), v))
        }))
        .build()
        .unwrap()
}

/// A server, a driver running the pipeline (watched), and its stage served by a second
/// connection as a worker process would.
async fn start(
    work: Duration,
) -> (
    common::NatsServer,
    Cluster,
    flowdeck_runtime::Running<u64, (u64, u64)>,
    flowdeck_cluster::WorkerProcess,
) {
    let server = nats_server().await;
    let connect = || Cluster::connect(&server.url, "squares", settings());
    let (driver, worker) = (connect().await.unwrap(), connect().await.unwrap());
    let running = pipeline(&driver, work).start();
    driver.watch(&running.handle);
    let _served = pipeline(&worker, work);
    let workers = worker.serve().await.unwrap();
    (server, driver, running, workers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_stage_answers_retries_fails_and_refuses_bad_input_like_a_local_one() {
    let (_server, driver, running, workers) = start(Duration::ZERO).await;
    let handle = running.handle.clone();

    let n = 1_000u64;
    let feed = tokio::spawn(running.run(0..n));
    // While it runs: something on the stage's subject that is no item of it.
    let t = Instant::now();
    while handle.tracker().stats().completed < 100 {
        assert!(t.elapsed() < Duration::from_secs(30), "nothing completed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for junk in [
        &b"garbage"[..],
        br#"{"run":"other","dispatch":1,"item":5,"value":"x"}"#,
    ] {
        driver
            .client()
            .publish("flowdeck.squares.d0.in", junk.to_vec().into())
            .await
            .unwrap();
    }
    let report = tokio::time::timeout(Duration::from_secs(60), feed)
        .await
        .expect("the run ended")
        .unwrap();

    let outputs: BTreeMap<u64, u64> = report.outputs.iter().copied().collect();
    assert_eq!(report.outputs.len(), outputs.len(), "each item once");
    let expected: BTreeMap<u64, u64> = (0..n)
        .filter(|i| !matches!(i % 100, 7 | 13))
        .map(|i| (i, i * i))
        .collect();
    assert_eq!(outputs, expected);

    // The junk shows as failed items once the driver has read their replies.
    let t = Instant::now();
    while handle.tracker().stats().failed < 22 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{:?}",
            handle.tracker().errors()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = handle.tracker().stats();
    assert_eq!((stats.completed, stats.failed), (980, 22));
    let mut kinds = handle.tracker().errors_by_kind();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("Decode".to_owned(), 2),
            ("Panic".to_owned(), 10),
            ("String".to_owned(), 10)
        ]
    );
    // An item's page says which process answered and after how many deliveries.
    let annotation = |id: u64, key: &str| {
        handle
            .tracker()
            .item(id)
            .unwrap()
            .annotations
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    };
    assert_eq!(handle.tracker().status(107), Some(ItemStatus::Failed));
    assert_eq!(annotation(107, "deliveries"), Some(Value::from(3u64)));
    assert_eq!(annotation(203, "deliveries"), Some(Value::from(2u64)));
    assert_eq!(annotation(204, "deliveries"), None, "first time");
    assert!(matches!(annotation(204, "process"), Some(Value::Text(p)) if p.contains(':')));
    // Each attempt a worker sent back to retry shows in the item's history, with its
    // error, and the stage counts it: 10 flaky items once, 20 failing ones twice each.
    let at_square = |id: u64| {
        handle
            .tracker()
            .history(id)
            .unwrap()
            .into_iter()
            .filter(|e| e.stage == 1)
            .map(|e| {
                let error = e.error.map(|x| x.message).unwrap_or_default();
                (e.kind, e.attempt, error)
            })
            .collect::<Vec<_>>()
    };
    use flowdeck_protocol::EventKind::{Completed, Failed, Queued, Retrying, Started};
    assert_eq!(
        at_square(203),
        vec![
            (Queued, 0, String::new()),
            (Started, 1, String::new()),
            (Retrying, 1, "203: flaky".to_owned()),
            (Started, 2, String::new()),
            (Completed, 2, String::new()),
        ]
    );
    let h = at_square(107);
    assert_eq!(
        h.iter().map(|(k, a, _)| (*k, *a)).collect::<Vec<_>>(),
        vec![
            (Queued, 0),
            (Started, 1),
            (Retrying, 1),
            (Started, 2),
            (Retrying, 2),
            (Started, 3),
            (Failed, 3)
        ]
    );
    assert_eq!(handle.snapshot().stages[1].retried, 50);
    let failed = handle.tracker().item(113).unwrap();
    assert!(
        failed
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("113 is cursed"),
        "{failed:?}"
    );
    let s = driver.stats();
    assert_eq!(s.answered, n);
    assert_eq!(s.malformed, 2);
    workers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_a_distributed_stage_stops_every_worker_process_within_a_second() {
    let (_server, driver, running, workers) = start(Duration::from_millis(20)).await;
    let local = workers.handle("square").unwrap().clone();
    let handle = running.handle.clone();
    let feed = tokio::spawn(running.run((0..400).map(|i| i * 100 + 1)));
    let t = Instant::now();
    while handle.tracker().stats().completed < 20 {
        assert!(t.elapsed() < Duration::from_secs(30), "nothing completed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    handle.pause("square").unwrap();
    let paused_at = Instant::now();
    while !local.is_paused("square").unwrap() {
        assert!(
            paused_at.elapsed() < Duration::from_secs(1),
            "the pause did not reach the worker process within a second"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("the pause reached the worker in {:?}", paused_at.elapsed());
    // What was running finishes; nothing new starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let done = local.tracker().stats().completed;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        local.tracker().stats().completed,
        done,
        "worked while paused"
    );
    assert!(handle.tracker().stats().completed < 400);

    handle.resume("square").unwrap();
    let report = tokio::time::timeout(Duration::from_secs(60), feed)
        .await
        .expect("the run ended")
        .unwrap();
    assert_eq!(report.outputs.len(), 400);
    assert!(!local.is_paused("square").unwrap());
    // The driver saw the worker process's heartbeats; one within a second says all.
    let t = Instant::now();
    while driver.processes().first().map(|p| p.stages[0].done) != Some(400) {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{:?}",
            driver.processes()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let processes = driver.processes();
    assert_eq!(processes.len(), 1, "one process (this one): {processes:?}");
    let p = &processes[0];
    assert_eq!(p.process, format!("{}:{}", p.host, std::process::id()));
    assert_eq!(
        (p.stages[0].name.as_str(), p.stages[0].workers.len()),
        ("square", 4)
    );
    assert!(!p.lost && p.silent_ms < 3_000, "{p:?}");
    // So do the pipeline's snapshots: the workers page, the API and `flowdeck top`.
    let shown = handle.snapshot().processes;
    assert_eq!(shown.len(), 1);
    assert_eq!(
        (&shown[0].process, &shown[0].stages),
        (&p.process, &p.stages)
    );
    workers.stop().await;
}

/// A distributed stage's task asks a person: the question is shown on the driver's
/// dashboard as the driver's item's (waiting, holding no driver worker), an answer given
/// there reaches the worker process's task, and the item goes on with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_stages_question_is_answered_on_the_drivers_dashboard() {
    use flowdeck_runtime::{
        ask::{QuestionState, Reply},
        Question,
    };
    let server = nats_server().await;
    let connect = || Cluster::connect(&server.url, "review", settings());
    let (driver, worker) = (connect().await.unwrap(), connect().await.unwrap());
    let pipeline = |cluster: &Cluster| {
        Line::<u64>::new("review")
            .stage(
                cluster.distribute(
                    Stage::map("approve", |n: u64, cx| async move {
                        let a = cx
                            .ask(Question::new(format!("Keep {n}?")).options(["keep", "drop"]))
                            .await?;
                        Ok::<_, String>(format!("{n}:{}:{}", a.choice, a.by.unwrap_or_default()))
                    })
                    .workers(1),
                ),
            )
            .build()
            .unwrap()
    };
    let running = pipeline(&driver).start();
    driver.watch(&running.handle);
    let _served = pipeline(&worker);
    let _workers = worker.serve().await.unwrap();
    let handle = running.handle.clone();
    running.input.send_all([5, 6]).await;

    // Both wait at once: neither holds the driver's one worker nor the process's.
    let t = Instant::now();
    let asked = loop {
        let p = handle.questions().pending();
        if p.len() == 2 {
            break p;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{p:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let q = asked.iter().find(|q| q.title == "Keep 5?").unwrap();
    assert_eq!(q.stage_name, "approve");
    assert_eq!(handle.tracker().status(q.item), Some(ItemStatus::Waiting));
    let reply = Reply {
        choice: "keep".into(),
        data: serde_json::Value::Null,
    };
    assert!(handle
        .questions()
        .answer(
            q.id,
            &Reply {
                choice: "maybe".into(),
                ..reply.clone()
            },
            None
        )
        .is_err());
    handle
        .questions()
        .answer(q.id, &reply, Some("ada"))
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), running.outputs.recv())
        .await
        .expect("the answer reached the worker process")
        .unwrap();
    assert_eq!(out, "5:keep:ada");
    // Its closing there came back: answered, the item running on.
    let t = Instant::now();
    while handle.questions().get(q.id).unwrap().state != QuestionState::Answered
        || handle.questions().pending_count() != 1
    {
        assert!(t.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other = handle.questions().pending().remove(0);
    handle
        .questions()
        .answer(
            other.id,
            &Reply {
                choice: "drop".into(),
                ..reply
            },
            Some("bob"),
        )
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), running.outputs.recv())
        .await
        .expect("the second answer reached the worker process")
        .unwrap();
    assert_eq!(out, "6:drop:bob");
}
