//! `kill -9` in the middle of a run, then a restart on the same run store, on the real
//! binary: every item that finished more than a commit window before the kill is there,
//! with its error and provenance, and the killed run shows as interrupted, not running.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The running binary, killed when dropped, so a failed assertion leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary on a store file; returns it and its URL.
fn start(db: &std::path::Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowdeck"))
        .args([
            "--port",
            "0",
            "--demo-rate",
            "300",
            "--demo-latency",
            "0.2",
            "--db",
        ])
        .arg(db)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.find("http://") {
                let _ = tx.send(line[i..].split_whitespace().next().unwrap().to_owned());
            }
        }
    });
    let child = Running(child);
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("no URL printed");
    (child, url)
}

async fn get(url: String) -> (u16, Value) {
    let res = reqwest::get(&url).await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_keeps_what_finished_and_shows_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flowdeck.db");
    let (child, url) = start(&db);
    let (_, store) = get(format!("{url}/api/v1/store")).await;
    let run = store["run"].as_i64().unwrap();

    // Failures to look for after the kill: items with an error, many made by fan-out.
    let t = Instant::now();
    let failed = loop {
        let (_, page) = get(format!("{url}/api/v1/tasks?status=failed&limit=50")).await;
        let items = page["items"].as_array().unwrap().clone();
        if items.len() >= 5 {
            break items;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no failures in a minute"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (_, done) = get(format!("{url}/api/v1/tasks?status=completed&limit=50")).await;
    // More than a commit window (100 ms) before the kill.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(child); // SIGKILL: no shutdown, no flush

    let (_child, url) = start(&db);
    let (_, store) = get(format!("{url}/api/v1/store")).await;
    let new_id = store["run"].as_i64().unwrap();
    assert_ne!(new_id, run);
    // The new run's record is written within a commit window.
    let t = Instant::now();
    let runs = loop {
        let (_, runs) = get(format!("{url}/api/v1/runs")).await;
        if runs.as_array().unwrap().iter().any(|r| r["id"] == new_id) {
            break runs;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{runs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let old = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == run)
        .unwrap_or_else(|| panic!("run {run} is gone: {runs}"));
    assert_eq!(old["state"], "interrupted", "{old}");
    assert!(old["ended_ms"].as_u64().unwrap() >= old["started_ms"].as_u64().unwrap());
    let new_run = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == new_id)
        .unwrap();
    assert_eq!(new_run["state"], "running");

    let mut with_parents = 0;
    for item in &failed {
        let id = item["id"].as_u64().unwrap();
        let (code, task) = get(format!("{url}/api/v1/runs/{run}/tasks/{id}")).await;
        assert_eq!(code, 200, "failed item {id} was lost: {task}");
        assert_eq!(task["detail"]["status"], "failed");
        assert_eq!(task["detail"]["error"], item["error"], "item {id}");
        let parents = task["detail"]["parents"].as_array().unwrap();
        if let Some(parent) = parents.first() {
            with_parents += 1;
            let chain = task["provenance"].as_array().unwrap();
            assert!(
                chain.iter().any(|a| a["id"] == *parent),
                "item {id}: {chain:?}"
            );
        }
    }
    assert!(with_parents > 0, "no failed item came from fan-out");
    for item in done["items"].as_array().unwrap() {
        let id = item["id"].as_u64().unwrap();
        let (code, _) = get(format!("{url}/api/v1/runs/{run}/tasks/{id}")).await;
        assert_eq!(code, 200, "completed item {id} was lost");
    }
    let (_, page) = get(format!(
        "{url}/api/v1/runs/{run}/tasks?status=failed&limit=1"
    ))
    .await;
    assert!(
        page["total"].as_u64().unwrap() >= failed.len() as u64,
        "{page}"
    );

    // The killed run's totals agree with its own task list (its last snapshot, up to 5 s
    // older than its last items, would not), and say that they were recounted; so do the
    // pipelines' counts and replay's end.
    let kept = |status: &'static str| {
        let url = url.clone();
        async move {
            let (_, page) = get(format!(
                "{url}/api/v1/runs/{run}/tasks?status={status}&limit=1"
            ))
            .await;
            page["total"].as_u64().unwrap()
        }
    };
    let (completed, failed) = (kept("completed").await, kept("failed").await);
    assert!(completed > 0, "{old}");
    assert_eq!(old["totals"]["completed"], completed, "{old}");
    assert_eq!(old["totals"]["failed"], failed, "{old}");
    assert_eq!(old["recounted"], true, "{old}");
    assert_eq!(new_run["recounted"], false, "{new_run}");
    let (_, timeline) = get(format!("{url}/api/v1/runs/{run}/timeline")).await;
    let end = timeline["points"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(end["totals"]["completed"], completed, "{timeline}");
    assert_eq!(end["totals"]["failed"], failed, "{timeline}");
}
