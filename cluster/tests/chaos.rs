//! Chaos on a real cluster: worker processes (this test binary started again in worker
//! mode, `worker_process` below) on a real `nats-server -js`, killed with SIGKILL at
//! random moments, stalled with SIGSTOP, and the server itself restarted mid-run. Each
//! run must end with every item at the sink exactly once (the sink is idempotent by item
//! id, and counts what it saw twice) and the driver's counts equal to the sink's.
//!
//! `cargo test chaos` runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{nats_server, NatsServer};
use flowdeck_cluster::{Cluster, ClusterStats, QueueOptions, Settings};
use flowdeck_runtime::{Graph, Joined, Line, Pipeline, Stage};
use rand::Rng;

const PIPELINE: &str = "chaos";

fn settings(ack_wait: Duration) -> Settings {
    Settings {
        queue: QueueOptions {
            ack_wait,
            ..QueueOptions::default()
        },
        in_flight: 512,
        ..Settings::default()
    }
}

/// number → square (distributed, `work` per item) → (item, value).
fn pipeline(cluster: &Cluster, work: Duration) -> Pipeline<u64, (u64, u64)> {
    Line::<u64>::new(PIPELINE)
        .stage(Stage::map("number", |n: u64, _cx| async move { Ok::<_, String>(n) }).workers(2))
        .stage(
            cluster.distribute(
                Stage::map("square", move |n: u64, _cx| async move {
                    if !work.is_zero() {
                        tokio::time::sleep(work).await;
                    }
                    Ok::<_, String>(n * n)
                })
                .workers(16),
            ),
        )
        .stage(Stage::map("sink", |v: u64, cx| async move {
            Ok::<_, String>((cx.item(), v))
        }))
        .build()
        .unwrap()
}

const JOINED: &str = "chaos-join";
const PARTS: u64 = 5;

/// document n → parts 5n..5n+5 → square (distributed, `work` per part) → joined back:
/// (n, the squares in order, whether every part arrived).
fn joined(cluster: &Cluster, work: Duration) -> Pipeline<u64, (u64, Vec<u64>, bool)> {
    let mut g = Graph::<u64, (u64, Vec<u64>, bool)>::new(JOINED);
    let split = g.add(
        Stage::flat_map("split", |n: u64, _cx| async move {
            Ok::<_, String>((0..PARTS).map(move |i| n * PARTS + i))
        })
        .workers(2),
    );
    let square = g.add(
        cluster.distribute(
            Stage::map("square", move |n: u64, _cx| async move {
                tokio::time::sleep(work).await;
                Ok::<_, String>(n * n)
            })
            .workers(16),
        ),
    );
    let join = g.add_join(
        Stage::join("join", |n: u64, j: Joined<u64>, _cx| async move {
            Ok::<_, String>((n, j.parts, j.complete))
        })
        .of(split),
    );
    g.input(split)
        .connect(split, square)
        .connect(square, join)
        .output(join);
    g.build().unwrap()
}

/// A worker process: serves the distributed stage until killed. The chaos tests start
/// it; on its own it does nothing.
#[test]
#[ignore = "a worker process that the chaos tests start"]
fn worker_process() {
    let Ok(url) = std::env::var("CHAOS_NATS") else {
        return;
    };
    let ms = |k: &str| Duration::from_millis(std::env::var(k).unwrap().parse().unwrap());
    let (work, ack_wait) = (ms("CHAOS_WORK_MS"), ms("CHAOS_ACK_WAIT_MS"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            if std::env::var("CHAOS_JOIN").is_ok() {
                let cluster = Cluster::connect(&url, JOINED, settings(ack_wait))
                    .await
                    .unwrap();
                let _pipeline = joined(&cluster, work);
                cluster.serve().await.unwrap().run().await;
                return;
            }
            let cluster = Cluster::connect(&url, PIPELINE, settings(ack_wait))
                .await
                .unwrap();
            let _pipeline = pipeline(&cluster, work);
            cluster.serve().await.unwrap().run().await;
        });
}

/// Worker processes of one test, killed when dropped.
struct Workers {
    children: Vec<Child>,
    env: Vec<(&'static str, String)>,
}

impl Workers {
    fn start(n: usize, server: &NatsServer, work: Duration, ack_wait: Duration) -> Self {
        Self::start_with(n, server, work, ack_wait, false)
    }

    fn start_with(
        n: usize,
        server: &NatsServer,
        work: Duration,
        ack_wait: Duration,
        join: bool,
    ) -> Self {
        let mut env = vec![
            ("CHAOS_NATS", server.url.clone()),
            ("CHAOS_WORK_MS", work.as_millis().to_string()),
            ("CHAOS_ACK_WAIT_MS", ack_wait.as_millis().to_string()),
        ];
        if join {
            env.push(("CHAOS_JOIN", "1".to_owned()));
        }
        let mut w = Workers {
            children: Vec::new(),
            env,
        };
        for _ in 0..n {
            let child = w.spawn();
            w.children.push(child);
        }
        w
    }

    fn spawn(&self) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "worker_process", "--ignored", "--test-threads=1"])
            .envs(self.env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// SIGKILLs worker `i` and starts a new one in its place after `down`.
    async fn kill_and_restart(&mut self, i: usize, down: Duration) {
        let old = &mut self.children[i];
        old.kill().unwrap();
        old.wait().unwrap();
        tokio::time::sleep(down).await;
        self.children[i] = self.spawn();
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.children[i].id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a run left at the sink: each item's value, and how many it saw twice.
struct Sink {
    values: HashMap<u64, u64>,
    twice: u64,
}

fn sink(outputs: Vec<(u64, u64)>) -> Sink {
    let mut values = HashMap::new();
    let mut twice = 0;
    for (item, v) in outputs {
        if values.insert(item, v).is_some() {
            twice += 1;
        }
    }
    Sink { values, twice }
}

/// Checks that every one of `n` items reached the sink once, squared, and that the
/// driver's counts say the same; prints what the cluster did.
fn check(what: &str, n: u64, sink: &Sink, summary: &flowdeck_runtime::Summary, s: &ClusterStats) {
    println!(
        "{what}: {n} items; dispatched {}, answered {}, answered after a redelivery {}, \
         replies JetStream dropped as duplicates {} (from live processes' heartbeats), \
         replies answered twice and only counted {}; in {:?}",
        s.dispatched, s.answered, s.redelivered, s.duplicate_replies, s.unmatched, summary.elapsed
    );
    assert_eq!(sink.twice, 0, "the sink saw an item twice");
    assert_eq!(sink.values.len() as u64, n, "items lost");
    assert!(sink.values.iter().all(|(item, v)| *v == item * item));
    assert_eq!(summary.stats.completed, n, "the driver's count");
    assert_eq!(summary.stats.failed, 0);
    assert_eq!(s.answered, n);
}

async fn drive(
    server: &NatsServer,
    work: Duration,
    ack_wait: Duration,
    n: u64,
) -> (
    Cluster,
    flowdeck_runtime::PipelineHandle,
    tokio::task::JoinHandle<flowdeck_runtime::Report<(u64, u64)>>,
) {
    let driver = Cluster::connect(&server.url, PIPELINE, settings(ack_wait))
        .await
        .unwrap();
    let running = pipeline(&driver, work).start();
    driver.watch(&running.handle);
    let handle = running.handle.clone();
    (driver, handle, tokio::spawn(running.run(0..n)))
}

async fn completed_at_least(handle: &flowdeck_runtime::PipelineHandle, n: u64) {
    let t = Instant::now();
    while handle.tracker().stats().completed < n {
        assert!(t.elapsed() < Duration::from_secs(60), "stuck below {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_workers_killed_at_random_lose_nothing_and_duplicate_nothing() {
    let server = nats_server().await;
    let ack_wait = Duration::from_secs(2);
    let mut workers = Workers::start(3, &server, Duration::ZERO, ack_wait);
    let n = 100_000;
    let (driver, handle, run) = drive(&server, Duration::ZERO, ack_wait, n).await;
    let mut kills = 0;
    let t = Instant::now();
    while !run.is_finished() {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "the run did not end"
        );
        let (wait, victim, down) = {
            let mut rng = rand::rng();
            (
                Duration::from_millis(rng.random_range(300..1500)),
                rng.random_range(0..3),
                Duration::from_millis(rng.random_range(50..500)),
            )
        };
        tokio::time::sleep(wait).await;
        if run.is_finished() {
            break;
        }
        workers.kill_and_restart(victim, down).await;
        kills += 1;
    }
    let report = run.await.unwrap();
    println!("{kills} worker processes killed with SIGKILL and restarted");
    assert!(kills >= 3, "the run ended before the chaos began");
    check(
        "SIGKILL chaos",
        n,
        &sink(report.outputs),
        &report.summary,
        &driver.stats(),
    );
    assert!(
        driver.stats().redelivered > 0,
        "a kill took no item in hand"
    );
    assert_eq!(handle.tracker().stats().completed, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_a_nats_restart_stalls_the_run_which_then_completes() {
    let mut server = nats_server().await;
    let ack_wait = Duration::from_secs(2);
    let _workers = Workers::start(2, &server, Duration::from_millis(1), ack_wait);
    let n = 20_000;
    let (driver, handle, run) = drive(&server, Duration::from_millis(1), ack_wait, n).await;
    completed_at_least(&handle, 2_000).await;
    server.restart(Duration::from_secs(2)).await;
    let stalled_at = handle.tracker().stats().completed;
    assert!(stalled_at < n, "the run ended before the outage");
    let report = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the run did not complete after the outage")
        .unwrap();
    check(
        "NATS restarted",
        n,
        &sink(report.outputs),
        &report.summary,
        &driver.stats(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_a_stalled_process_has_its_items_taken_by_others_and_its_late_acks_change_nothing() {
    let server = nats_server().await;
    let ack_wait = Duration::from_secs(1);
    let work = Duration::from_millis(10);
    let workers = Workers::start(2, &server, work, ack_wait);
    // About 6 s with both processes (16 workers each), longer with one stalled.
    let n = 20_000;
    let (driver, handle, run) = drive(&server, work, ack_wait, n).await;
    // The dashboard's alert watcher, with the program's own hook as the receiver.
    let alerts = flowdeck_server::alerts::Alerts::default();
    let heard = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let into = heard.clone();
    alerts.on_alert(move |e| into.lock().push(e.clone()));
    flowdeck_server::alerts::watch(&alerts, handle.clone(), None, |path| path.to_owned());
    let events = |name: &str| -> Vec<flowdeck_server::alerts::AlertEvent> {
        heard
            .lock()
            .iter()
            .filter(|e| e.event == name)
            .cloned()
            .collect()
    };
    completed_at_least(&handle, 500).await;
    // Both processes at work, as their heartbeats say.
    let t = Instant::now();
    while driver
        .processes()
        .iter()
        .filter(|p| p.stages[0].done > 0)
        .count()
        < 2
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{:?}",
            driver.processes()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    workers.signal(0, "-STOP");
    // Past ack_wait: its items go to the other process, and the heartbeats stop.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let lost: Vec<_> = driver.processes().into_iter().filter(|p| p.lost).collect();
    assert_eq!(
        lost.len(),
        1,
        "the stalled process is marked lost: {:?}",
        driver.processes()
    );
    // Alerted once, naming the process, while it stays silent.
    let t = Instant::now();
    while events("process.lost").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no process.lost alert"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let said = events("process.lost");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].message.contains(&lost[0].process), "{said:?}");
    assert_eq!(said[0].link, "/workers");
    let during = handle.tracker().stats().completed;
    workers.signal(0, "-CONT");
    // Heard again before the run ends (the other process may finish the run first; the
    // watch ends with the run).
    let ended = || {
        matches!(
            handle.state(),
            flowdeck_protocol::PipelineState::Finished | flowdeck_protocol::PipelineState::Aborted
        )
    };
    let t = Instant::now();
    while events("process.back").is_empty() && !ended() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no process.back alert"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(back) = events("process.back").first() {
        assert!(back.message.contains(&lost[0].process), "{back:?}");
    }
    let report = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the run did not end")
        .unwrap();
    assert!(during > 500, "the other process went on meanwhile");
    let stats = driver.stats();
    check("SIGSTOP", n, &sink(report.outputs), &report.summary, &stats);
    assert!(
        stats.redelivered > 0,
        "the stalled process's items went to the other"
    );
    drop(workers);
}

/// A distributed stage between a fan-out and its join, one worker process killed with
/// SIGKILL mid-run: the parts it held are redelivered to the other, and every group fires
/// once, complete, with its parts in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_a_worker_killed_between_a_fan_out_and_its_join_loses_no_part() {
    let server = nats_server().await;
    let ack_wait = Duration::from_secs(2);
    // Parts take 5 ms each, so a worker process always holds some when it is killed.
    let work = Duration::from_millis(5);
    let mut workers = Workers::start_with(2, &server, work, ack_wait, true);
    let driver = Cluster::connect(&server.url, JOINED, settings(ack_wait))
        .await
        .unwrap();
    let running = joined(&driver, work).start();
    driver.watch(&running.handle);
    let handle = running.handle.clone();
    // Fed once both processes serve: on a loaded machine one may start so late that the
    // other has nearly finished the run when it is first seen working, and then the kill
    // finds nothing in its hands (its last heartbeat, up to a second old, still said busy).
    let pids: Vec<u32> = workers.children.iter().map(|c| c.id()).collect();
    let t = Instant::now();
    while !pids
        .iter()
        .all(|pid| driver.processes().iter().any(|p| p.pid == *pid))
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the worker processes never served: {:?}",
            driver.processes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let docs = 10_000u64;
    let run = tokio::spawn(running.run(0..docs));
    // Killed once parts are moving (the documents complete at the split first; each
    // makes 5 parts and, joined, one more item), while many groups wait for theirs.
    completed_at_least(&handle, docs * 3).await;
    // Parts still queued (a second's work of both processes at least), so the process
    // is pulling and holding some when it is killed.
    let parts_done = handle.tracker().stats().completed.saturating_sub(docs);
    assert!(
        parts_done < docs * PARTS - 6_400,
        "the run was nearly over before the kill: {parts_done} parts done"
    );
    // Killed once its heartbeat shows it working. That heartbeat may be up to a second
    // old, and on a loaded machine the process can hold nothing at the moment of the kill
    // (CI saw it: redelivered 0), so the kill is repeated, on the process started in its
    // place, until a part it held comes back redelivered (after `ack_wait`), at most
    // three times and while the run goes on.
    let mut kills = 0;
    for _ in 0..3 {
        let pid = workers.children[0].id();
        let t = Instant::now();
        while !driver.processes().iter().any(|p| {
            p.pid == pid
                && p.stages.iter().any(|s| {
                    s.done > 0
                        && s.workers
                            .iter()
                            .any(|w| w.state == flowdeck_protocol::WorkerState::Busy)
                })
        }) && !run.is_finished()
        {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "process {pid} never worked"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if run.is_finished() {
            break;
        }
        workers
            .kill_and_restart(0, Duration::from_millis(200))
            .await;
        kills += 1;
        let t = Instant::now();
        while driver.stats().redelivered == 0
            && !run.is_finished()
            && t.elapsed() < 2 * ack_wait + Duration::from_secs(1)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if driver.stats().redelivered > 0 || run.is_finished() {
            break;
        }
    }
    let report = run.await.unwrap();
    let mut seen = HashMap::new();
    for (n, parts, complete) in report.outputs {
        let want: Vec<u64> = (0..PARTS).map(|i| (n * PARTS + i).pow(2)).collect();
        assert_eq!((&parts, complete), (&want, true), "document {n}");
        assert!(seen.insert(n, ()).is_none(), "document {n} joined twice");
    }
    assert_eq!(seen.len() as u64, docs);
    let j = handle.join_stats("join").unwrap().unwrap();
    assert_eq!((j.waiting, j.fired, j.late), (0, docs, 0));
    let s = driver.stats();
    println!(
        "join chaos: {docs} documents x {PARTS} parts; {kills} kill(s), redelivered {}, in {:?}",
        s.redelivered, report.summary.elapsed
    );
    assert!(s.redelivered > 0, "the kill took no part in hand");
}
