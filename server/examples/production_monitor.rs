//! The "Production Monitor": a chart of tasks completed, a memory gauge with thresholds
//! and a table of workers, live, for a two-stage order pipeline.
//!
//! ```sh
//! scripts/build.sh        # once: builds the site the example serves
//! cargo run --release --example production_monitor
//! # open http://127.0.0.1:3000/pages/monitor
//! ```

use std::time::Duration;

use flowdeck_runtime::{Ctx, Line, Stage};
use flowdeck_server::{dashboard::*, Config};

#[tokio::main]
async fn main() -> Result<(), DashboardError> {
    let pipeline = Line::<u64>::new("orders")
        .stage(Stage::map("validate", |n: u64, _cx: Ctx| async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            Ok::<_, String>(n)
        }))
        .stage(
            Stage::map("charge", |n: u64, _cx: Ctx| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if n.is_multiple_of(97) {
                    return Err(format!("card declined for order {n}"));
                }
                Ok(n)
            })
            .workers(8),
        )
        .build();
    let running = match pipeline {
        Ok(p) => p.start(),
        Err(e) => {
            eprintln!("the pipeline is invalid: {e}");
            std::process::exit(1);
        }
    };
    let input = running.input;
    tokio::spawn(async move {
        for order in 0.. {
            if input.send(order).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    drop(running.outputs);

    // The page: this is all it takes.
    Dashboard::new(Config::default())
        .page(
            Page::new("monitor", "Production Monitor")
                .widget(
                    Chart::new("Tasks completed")
                        .series(&builtin::tasks_completed())
                        .area()
                        .range(30 * MINUTE),
                    (0, 0),
                )
                .widget(
                    Gauge::new("Memory", &builtin::memory())
                        .scale(0.0, 1e9)
                        .thresholds(5e8, 8e8)
                        .format("{value:bytes}"),
                    (2, 0),
                )
                .widget(Table::new("Workers", &Source::workers()).span(4, 1), (0, 1)),
        )
        .serve(running.handle)
        .await
}
