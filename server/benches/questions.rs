//! Questions for people at scale (run on demand: `cargo bench -p flowdeck-server --bench
//! questions`): what waiting items cost a stage's throughput, what a pending question
//! costs in memory, and how fast the Questions page and `/api/v1/questions` answer with
//! 10,000 pending.
//!
//! 1. Throughput: a 4-worker stage whose items take 2 ms, 4,000 items through it alone and
//!    beside 1,000 items waiting for an answer, alternated RUNS times; the medians.
//! 2. Memory: the process's resident memory before and after QUESTIONS items of a stage
//!    ask (each a parked attempt, its task's state and its question: title, a Markdown
//!    body of a few lines, three options), per question.
//! 3. Latency: that pipeline's dashboard over real HTTP: the Questions page (rendered
//!    with its first 50 pending questions) and `GET /api/v1/questions?state=pending`
//!    (a page of 100), p50 and p95 over REQUESTS requests each.
//!
//! Settings by environment: QUESTIONS (10000), RUNS (5), REQUESTS (200).

// A bench that cannot set up has nothing to measure: it stops with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use flowdeck_runtime::{Line, Question, Stage};
use flowdeck_server::{dashboard::Dashboard, Config};

mod common;

use common::{env, pct};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Resident memory, in bytes.
fn rss() -> u64 {
    flowdeck_runtime::resources::resident_bytes(None).unwrap_or(0)
}

/// A stage whose items above a million ask a person, the others take 2 ms.
fn stage(max_waiting: usize) -> flowdeck_runtime::Running<u64, u64> {
    Line::<u64>::new("review")
        .stage(
            Stage::map("approve", |n: u64, cx| async move {
                if n >= 1_000_000 {
                    let q = Question::new(format!("Publish summary {n}?"))
                        .body(format!(
                            "**Summary {n}**\n\nThe model wrote three paragraphs about this \
                             document; the reviewer decides whether they go out as they are."
                        ))
                        .options(["publish", "rewrite", "drop"])
                        .default_after(Duration::from_secs(3600), "drop");
                    cx.ask(q).await?;
                } else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Ok::<_, String>(n)
            })
            .workers(4)
            .queue(20_000)
            .max_waiting(max_waiting),
        )
        .build()
        .unwrap()
        .start()
}

/// Waits until `n` questions are pending.
async fn pending(h: &flowdeck_runtime::PipelineHandle, n: usize) {
    while h.questions().pending_count() < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Items a second through the stage, `waiting` others waiting for an answer meanwhile.
async fn throughput(waiting: u64) -> f64 {
    let running = stage(2_000);
    let h = running.handle.clone();
    running
        .input
        .send_all((0..waiting).map(|i| 1_000_000 + i))
        .await;
    pending(&h, waiting as usize).await;
    let n = 4_000u64;
    let start = Instant::now();
    let feed = tokio::spawn(async move {
        running.input.send_all(0..n).await;
        running.input
    });
    for _ in 0..n {
        running.outputs.recv().await.unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(feed.await);
    h.abort();
    h.wait().await;
    rate
}

async fn latencies(http: &reqwest::Client, url: &str, requests: u64) -> (f64, f64) {
    let mut ms = Vec::new();
    for _ in 0..requests {
        let t = Instant::now();
        let res = http.get(url).send().await.unwrap();
        assert!(res.status().is_success(), "{url}: {}", res.status());
        let _ = res.bytes().await.unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    (pct(&ms, 0.5), pct(&ms, 0.95))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let questions = env("QUESTIONS", 10_000);
    let runs = env("RUNS", 5);
    let requests = env("REQUESTS", 200);

    // 1. Throughput, alternated so that the machine's drift hits both alike.
    let (mut alone, mut beside) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        alone.push(throughput(0).await);
        beside.push(throughput(1_000).await);
    }
    let (alone, beside) = (median(alone), median(beside));
    println!(
        "throughput: {alone:.0} items/s alone, {beside:.0} beside 1,000 waiting ({:.1}% kept; medians of {runs})",
        beside / alone * 100.0
    );

    // 2. Memory per pending question.
    let running = stage(questions as usize + 1);
    let h = running.handle.clone();
    // Settle the runtime's own allocations first.
    running.input.send_all(0..100).await;
    for _ in 0..100 {
        running.outputs.recv().await.unwrap();
    }
    let before = rss();
    running
        .input
        .send_all((0..questions).map(|i| 1_000_000 + i))
        .await;
    pending(&h, questions as usize).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss();
    println!(
        "memory: {} pending questions, {:.0} bytes each ({} MB resident before, {} after)",
        questions,
        after.saturating_sub(before) as f64 / questions as f64,
        before >> 20,
        after >> 20
    );

    // 3. The dashboard of that pipeline, over real HTTP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        addr: listener.local_addr().unwrap(),
        store: None,
        ..Config::default()
    };
    let state = Dashboard::new(config).state(h.clone()).unwrap();
    let app = flowdeck_server::router(state)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let (p50, p95) = latencies(&http, &format!("{base}/questions"), requests / 4).await;
    println!("Questions page (first 50 of {questions} pending): p50 {p50:.1} ms, p95 {p95:.1} ms");
    let (p50, p95) = latencies(
        &http,
        &format!("{base}/api/v1/questions?state=pending"),
        requests,
    )
    .await;
    println!(
        "GET /api/v1/questions (100 of {questions} pending): p50 {p50:.1} ms, p95 {p95:.1} ms"
    );
    drop(running.input);
}
