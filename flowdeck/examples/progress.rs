//! A run's progress in the terminal, the three views:
//!
//! ```sh
//! cargo run -p flowdeck --example progress              # compact: one bar
//! cargo run -p flowdeck --example progress -- detailed  # and a line per stage
//! cargo run -p flowdeck --example progress -- full      # and the failures
//! cargo run -p flowdeck --example progress -- full 2>&1 | cat   # not a terminal: plain lines
//! ```
//!
//! 600 documents through fetch → parse → summarize (a slow, flaky model call, retried).
//! The model's warnings are logged while the bars draw, through `LogWriter`, so they
//! print above the bars instead of tearing them.

use std::time::Duration;

use flowdeck::{prelude::*, LogWriter};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(LogWriter)
        .with_target(false)
        .init();
    let progress = match std::env::args().nth(1).as_deref() {
        Some("detailed") => Progress::detailed(),
        Some("full") => Progress::full(),
        _ => Progress::compact(),
    };
    let line = Line::<u32>::new("documents")
        .stage(
            Stage::map("fetch", |n: u32, _cx| async move {
                tokio::time::sleep(Duration::from_millis(4)).await;
                Ok::<_, String>(n)
            })
            .workers(4),
        )
        .stage(
            Stage::map("parse", |n: u32, _cx| async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                if n % 97 == 3 {
                    return Err(format!("document {n} is empty"));
                }
                Ok(n)
            })
            .workers(2)
            .classify(|_| "Empty".to_owned()),
        )
        .stage(
            Stage::map("summarize", |n: u32, cx: Ctx| async move {
                tokio::time::sleep(Duration::from_millis(40)).await;
                if n.is_multiple_of(13) && cx.attempt() == 1 {
                    tracing::warn!(document = n, "the model timed out; retrying");
                    return Err("model timeout".to_owned());
                }
                Ok(n)
            })
            .workers(8)
            .retry(
                RetryPolicy::attempts(3)
                    .backoff(Duration::from_millis(20), Duration::from_millis(80)),
            )
            .classify(|_| "ModelTimeout".to_owned()),
        )
        .progress(progress);
    let report = match line.build() {
        Ok(pipeline) => pipeline.run(0..600).await,
        Err(e) => {
            eprintln!("invalid pipeline: {e}");
            return;
        }
    };
    println!(
        "done: {} summarized, {} failed",
        report.outputs.len(),
        report.summary.snapshot.totals.failed
    );
}
