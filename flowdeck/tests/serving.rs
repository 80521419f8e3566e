//! The ways a program opens the dashboard, over real HTTP: in the background with a handle
//! (its URL answers while it runs, and `stop` ends it), and for the length of a batch run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flowdeck::{prelude::*, Console};

/// A config on a free port that prints nothing.
fn config() -> Config {
    let mut c = Config::default();
    c.addr.set_port(0);
    c.console = Some(Console::silent());
    c
}

fn slow_line(name: &str) -> Pipeline<u64, u64> {
    Line::<u64>::new(name)
        .stage(Stage::map("wait", |n: u64, _cx| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, String>(n)
        }))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_dashboard_answers_until_stopped() {
    let running = slow_line("background").start();
    let serving = Dashboard::new(config())
        .start(running.handle.clone())
        .await
        .unwrap();
    assert!(serving.is_running());
    let url = serving.url().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let summary: serde_json::Value = reqwest::get(format!("{url}/api/v1/summary"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(summary["name"], "background");
    serving.stop().await.unwrap();
    assert!(
        reqwest::get(format!("{url}/healthz")).await.is_err(),
        "still answering after stop"
    );
    running.handle.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_keeps_the_dashboard_open_for_the_run() {
    // A port known to be free a moment ago, so the test knows where to look.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = config();
    c.addr.set_port(port);
    let run = tokio::spawn(slow_line("batch").run_with(Dashboard::new(c), 0..400));
    let url = format!("http://127.0.0.1:{port}/api/v1/summary");
    let mut seen_running = false;
    for _ in 0..200 {
        if let Ok(res) = reqwest::get(&url).await {
            let s: serde_json::Value = res.json().await.unwrap();
            if s["name"] == "batch" && s["status"] == "running" {
                seen_running = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen_running, "the dashboard was not open during the run");
    let report = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report.outputs.len(), 400);
    assert_eq!(report.summary.stats.completed, 400);
    assert!(reqwest::get(&url).await.is_err(), "open after the run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_falls_back_to_a_free_one() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = config();
    c.addr = taken.local_addr().unwrap();
    let running = slow_line("fallback").start();
    let serving = Dashboard::new(c)
        .start_or_any_port(running.handle.clone())
        .await
        .unwrap();
    assert_ne!(serving.addr(), taken.local_addr().unwrap());
    assert_eq!(
        reqwest::get(format!("{}/healthz", serving.url()))
            .await
            .unwrap()
            .status(),
        200
    );
    serving.stop().await.unwrap();
    running.handle.abort();
}
