//! A chart under load, for `end2end/bench/chart.mjs`: 120 gauge series with 15 minutes of
//! per-second history each (108,000 points), all on one Chart widget at `/pages/load`,
//! refreshed every second. Prints the dashboard's URL like the binary.
//!
//! ```sh
//! scripts/build.sh && cargo run --release --example chart_load -- 3000
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowdeck_runtime::{metrics::MetricsStore, Ctx, Line, Stage};
use flowdeck_server::{dashboard::*, Config};

const SERIES: usize = 120;
const HISTORY: u64 = 900;

fn wave(i: usize, t: u64) -> f64 {
    let phase = i as f64 * 0.37;
    50.0 + 40.0 * ((t as f64 / 30.0) + phase).sin() + (t % 7) as f64
}

#[tokio::main]
async fn main() -> Result<(), DashboardError> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let store = MetricsStore::new();
    let series: Vec<_> = (0..SERIES)
        .map(|i| store.gauge("load_series", &[("i", &format!("{i:03}"))]))
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for t in now - HISTORY..now {
        for (i, s) in series.iter().enumerate() {
            s.set(wave(i, t));
        }
        store.tick_at(t);
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        for t in now.. {
            every.tick().await;
            for (i, s) in series.iter().enumerate() {
                s.set(wave(i, t / 4));
            }
        }
    });
    let pipeline = Line::<u64>::new("idle")
        .stage(Stage::map("noop", |n: u64, _cx: Ctx| async move {
            Ok::<_, String>(n)
        }))
        .build();
    let running = match pipeline {
        Ok(p) => p.start(),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let config = Config {
        addr: ([127, 0, 0, 1], port).into(),
        metrics: store,
        ..Config::default()
    };
    let dash = Dashboard::new(config);
    let load = dash.gauge("load_series");
    dash.page(
        Page::new("load", "Chart load").widget(
            Chart::new("120 series × 900 points")
                .series(&load)
                .range(15 * MINUTE)
                .span(4, 2),
            (0, 0),
        ),
    )
    .serve(running.handle)
    .await
}
