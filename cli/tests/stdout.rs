//! The real binary with a standard output nobody reads (`flowdeck | sleep 120`, a paused
//! terminal, a stuck log collector): the 64 KiB pipe fills, and the server must keep
//! answering and the pipeline keep moving. Before, a worker's log line blocked in
//! `write(1, ...)` on a runtime thread and froze both.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_stdout_never_freezes_the_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // -vvv: a debug line per document on stdout, thousands a second.
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowdeck"))
        .args([
            "--port",
            &port.to_string(),
            "--demo-rate",
            "3000",
            "--demo-latency",
            "0",
            "-vvv",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Held, never read: the pipe fills.
    let _stdout = child.stdout.take();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let get = |path: &'static str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let res = http.get(url).send().await.ok()?;
            res.json::<Value>().await.ok()
        }
    };
    let started = Instant::now();
    while get("/healthz").await.is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The server notices the lines it had to drop: proof the pipe is full.
    let dropped = async {
        loop {
            if let Some(page) = get("/api/v1/logs?q=not%20read%20fast%20enough&limit=1").await {
                if !page["records"].as_array().unwrap().is_empty() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let waited = tokio::time::timeout(Duration::from_secs(30), dropped).await;
    // Past the full pipe, it still answers fast and still processes.
    let completed = |s: &Value| s["tasks"]["completed"].as_u64().unwrap();
    let mut samples = Vec::new();
    for _ in 0..4 {
        let t = Instant::now();
        let summary = get("/api/v1/summary")
            .await
            .expect("the server stopped answering");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "slow answer: {:?}",
            t.elapsed()
        );
        samples.push(completed(&summary));
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        waited.is_ok(),
        "no dropped-lines warning: the pipe never filled?"
    );
    assert!(
        samples.windows(2).all(|w| w[1] > w[0]),
        "the pipeline stalled: completed went {samples:?}"
    );
}
