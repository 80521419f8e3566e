//! SIGTERM on the real binary: the pipeline drains (no queued item is cancelled; items
//! waiting for a person are, and questions asked during the drain too), the open live
//! stream ends instead of holding the server up, and the process exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_pipeline_ends_streams_and_exits() {
    // -vv: the info lines say what the shutdown did. No reviews: nothing is cancelled.
    let (child, lines, url) = spawn(&[
        "--port",
        "0",
        "--demo-rate",
        "400",
        "--demo-latency",
        "0.3",
        "--demo-review-every",
        "0",
        "--drain-timeout-secs",
        "60",
        "-vv",
    ]);
    // A browser's stream, open across the shutdown.
    let res = reqwest::get(format!("{url}/api/events")).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    assert!(body.next().await.is_some(), "the first frame");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The stream keeps going while the pipeline drains, then ends.
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the live stream did not end");
    let (stopped, log) = exit(child, lines).await;
    assert!(stopped.contains("state=Finished"), "{stopped}");
    assert!(stopped.contains("cancelled=0"), "{stopped}");
    assert!(log.iter().any(|l| l.contains("draining the pipeline")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_do_not_hold_a_drain() {
    // One record in ten asks a reviewer, who never answers (the default comes after an
    // hour): the drain cancels those waiting and those asked while it runs, and finishes.
    let (child, lines, url) = spawn(&[
        "--port",
        "0",
        "--demo-rate",
        "400",
        "--demo-review-every",
        "10",
        "--demo-review-after-secs",
        "3600",
        "--drain-timeout-secs",
        "600",
        "-vv",
    ]);
    let pending = || async {
        let v: serde_json::Value = reqwest::get(format!("{url}/api/v1/summary"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["questions"].as_u64().unwrap()
    };
    let asked = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let n = pending().await;
            if n >= 3 {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("no questions asked");
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let (stopped, _) = exit(child, lines).await;
    // Drained, not aborted at the drain's deadline.
    assert!(stopped.contains("state=Finished"), "{stopped}");
    let cancelled: u64 = stopped
        .split("cancelled=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stopped}"));
    assert!(
        cancelled >= asked,
        "{asked} waited, {cancelled} cancelled: {stopped}"
    );
}

/// Waits for the binary to exit, which must be a success; returns its "pipeline stopped"
/// line and everything it printed.
async fn exit(
    mut child: std::process::Child,
    lines: mpsc::Receiver<String>,
) -> (String, Vec<String>) {
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    let log: Vec<String> = lines.try_iter().collect();
    let stopped = log
        .iter()
        .find(|l| l.contains("pipeline stopped"))
        .unwrap_or_else(|| panic!("no 'pipeline stopped' line in:\n{}", log.join("\n")))
        .clone();
    (stopped, log)
}

/// The binary with its stdout read line by line, and the dashboard's URL.
fn spawn(args: &[&str]) -> (std::process::Child, mpsc::Receiver<String>, String) {
    // No run store: these tests are about the terminal and the signals.
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowdeck"))
        .args(args)
        .args(["--db", "none"])
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let url = loop {
        let line = lines.recv_timeout(Duration::from_secs(30)).unwrap();
        if let Some(i) = line.find("http://") {
            break line[i..].split_whitespace().next().unwrap().to_owned();
        }
    };
    (child, lines, url)
}

/// Waits for a line containing `text`; returns it.
fn expect_line(lines: &mpsc::Receiver<String>, text: &str, within: Duration) -> String {
    let until = std::time::Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no line with {text:?} in:\n{}", seen.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_says_what_it_drains_and_a_second_one_stops_at_once() {
    // A demo slower than its input: a backlog that takes a while to drain.
    let (child, lines, _url) = spawn(&[
        "--port",
        "0",
        "--demo-rate",
        "400",
        "--drain-timeout-secs",
        "120",
    ]);
    // The terminal shows a short banner, then quiet: no log lines by default.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let early: Vec<String> = lines.try_iter().collect();
    assert!(
        early
            .iter()
            .all(|l| !l.contains("WARN") && !l.contains("ERROR")),
        "log lines on a quiet terminal: {early:?}"
    );
    let pid = child.id().to_string();
    let interrupt = || {
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success())
    };
    interrupt();
    let first = expect_line(&lines, "stopping: finishing", Duration::from_secs(5));
    assert!(first.contains("Ctrl-C again"), "{first}");
    let countdown = expect_line(&lines, "draining:", Duration::from_secs(5));
    assert!(
        countdown.contains("items left") && countdown.contains("s to go"),
        "{countdown}"
    );
    let t = std::time::Instant::now();
    interrupt();
    expect_line(&lines, "stopping now: cancelling", Duration::from_secs(5));
    let status = tokio::task::spawn_blocking(move || {
        let mut child = child;
        child.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the second Ctrl-C took {:?}",
        t.elapsed()
    );
}
