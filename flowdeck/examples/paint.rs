//! The pipeline of the event-to-paint bench (`end2end/bench/paint.mjs`), which measures
//! how late a change reaches the screen from outside the page.
//!
//! ```sh
//! cargo run --release -p flowdeck --features dashboard --example paint -- [items/s] [probe every]
//! ```
//!
//! Items go `parse` → `enrich` → `store` at the given rate (11,000 a second by default:
//! about 100,000 runtime events a second). One item in `probe every` (500) goes from
//! `parse` to `probe` instead, which stamps the wall clock into the item's error as the
//! last thing it does: its kind reads `t` and the Unix time in milliseconds, and a failure
//! leaves the attempt a few microseconds later (`probe every` 0: none). The Tasks page, filtered to failed items
//! of `probe`, then shows each stamp in the row it paints; the bench reads it there.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowdeck::prelude::*;

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args.next().map_or(Ok(11_000), |a| a.parse())?;
    let every: u64 = args.next().map_or(Ok(500), |a| a.parse())?;
    if rate == 0 {
        return Err("the rate must be above 0".into());
    }

    let mut g = Graph::<u64, u64>::new("paint");
    let trivial = |name: &'static str| {
        Stage::map(name, |n: u64, _cx| async move { Ok::<_, String>(n) }).workers(4)
    };
    let parse = g.add(trivial("parse"));
    let probe = g.add(
        Stage::map("probe", |_n: u64, _cx| async move {
            Err::<u64, String>(format!("t{}", now_ms()))
        })
        .classify(|stamp: &String| stamp.clone()),
    );
    let enrich = g.add(trivial("enrich"));
    let store = g.add(trivial("store"));
    g.input(parse)
        // `every` 0: no probes.
        .connect_if(parse, probe, move |n: &u64| {
            every > 0 && n.is_multiple_of(every)
        })
        .connect(parse, enrich)
        .connect(enrich, store);
    g.output(store);
    let running = g.build()?.start();

    let dashboard = Dashboard::new(Config::from_env()?)
        .start_or_any_port(running.handle.clone())
        .await?;
    println!("dashboard on {}", dashboard.url());

    // Paced in slices of 10 ms, catching up when a slice runs late.
    let input = running.input.clone();
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut sent = 0u64;
        loop {
            let due = rate * start.elapsed().as_millis() as u64 / 1000;
            if due > sent {
                if input.send_all(sent..due).await < due - sent {
                    break;
                }
                sent = due;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    drop(running.outputs);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
