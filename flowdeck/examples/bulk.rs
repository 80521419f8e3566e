//! Bulk actions: retry every failure a filter finds, from the Tasks page.
//!
//! ```sh
//! cargo run -p flowdeck --example bulk
//! ```
//!
//! 200 orders go through `fetch` then `enrich`, and stop there. `fetch` times out on
//! orders 5, 15, 25, ... for good; `enrich` times out on every fourth order the first time
//! it sees it (an outage that is over by the time anyone retries), and refuses orders one
//! past a multiple of four as bad input. On the Tasks page, the Failed tab with stage
//! `enrich` and the filter `kind:timeout` lists the 50 outage victims: "Retry all failed
//! that match…" puts exactly those back, and they complete. `-kind:timeout` lists the
//! others.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use flowdeck::prelude::*;

/// The error's kind: the text before the first colon.
fn kind(e: &str) -> String {
    e.split(':').next().unwrap_or_default().to_owned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let running = Line::<u64>::new("orders")
        .stage(
            Stage::map("fetch", |n: u64, _cx| async move {
                if n % 10 == 5 {
                    return Err(format!("timeout: the shop did not answer for order {n}"));
                }
                Ok(n)
            })
            .workers(2)
            .classify(|e: &String| kind(e)),
        )
        .stage(
            Stage::map("enrich", move |n: u64, _cx| {
                let first_time = seen.lock().map(|mut s| s.insert(n)).unwrap_or(false);
                async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    if n.is_multiple_of(4) && first_time {
                        return Err(format!("timeout: the model took too long on order {n}"));
                    }
                    if n % 4 == 1 {
                        return Err(format!("bad_input: order {n} has no address"));
                    }
                    Ok(n)
                }
            })
            .workers(2)
            .classify(|e: &String| kind(e)),
        )
        .build()?
        .start();

    let dashboard = Dashboard::new(Config::from_env()?)
        .start_or_any_port(running.handle.clone())
        .await?;
    println!("dashboard on {}", dashboard.url());
    running.input.send_all(0..200u64).await;
    drop(running.outputs);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
