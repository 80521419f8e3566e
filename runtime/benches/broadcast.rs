//! What a broadcast edge costs: a stage whose every output goes to 3 stages as copies,
//! against the same number of items delivered over plain edges (a `flat_map` making 3
//! outputs, each routed to one of the 3 stages by `connect_if`). Both deliver 3 items
//! downstream per input; the figure is downstream items per second, tracked.
//!
//! Run: `cargo bench -p flowdeck-runtime --bench broadcast` (add `-- 300000` for another
//! input count). Prints the median of 5 alternating rounds of each.

use std::time::Instant;

use flowdeck_runtime::{Graph, Pipeline, Stage};

const WORKERS: usize = 4;
const ROUNDS: usize = 5;

fn leaf(g: &mut Graph<u64, u64>, name: &'static str) -> flowdeck_runtime::StageRef<u64, u64> {
    let s = g.add(
        Stage::map(name, |n: u64, _cx| async move {
            Ok::<_, std::convert::Infallible>(n.wrapping_add(1))
        })
        .workers(WORKERS),
    );
    g.output(s);
    s
}

/// `source` copies every item to `x`, `y` and `z`.
fn broadcast() -> Pipeline<u64, u64> {
    let mut g = Graph::<u64, u64>::new("broadcast");
    let source = g.add(
        Stage::map("source", |n: u64, _cx| async move {
            Ok::<_, std::convert::Infallible>(n)
        })
        .workers(WORKERS),
    );
    g.input(source);
    for name in ["x", "y", "z"] {
        let to = leaf(&mut g, name);
        g.broadcast(source, to);
    }
    g.build().unwrap_or_else(|e| panic!("{e}"))
}

/// `source` makes 3 items of every item, each routed to one of `x`, `y` and `z`.
fn plain() -> Pipeline<u64, u64> {
    let mut g = Graph::<u64, u64>::new("plain");
    let source = g.add(
        Stage::flat_map("source", |n: u64, _cx| async move {
            Ok::<_, std::convert::Infallible>([n * 3, n * 3 + 1, n * 3 + 2])
        })
        .workers(WORKERS),
    );
    g.input(source);
    for (i, name) in ["x", "y", "z"].into_iter().enumerate() {
        let to = leaf(&mut g, name);
        g.connect_if(source, to, move |n: &u64| *n % 3 == i as u64);
    }
    g.build().unwrap_or_else(|e| panic!("{e}"))
}

/// Downstream items per second.
async fn rate(p: Pipeline<u64, u64>, n: u64) -> f64 {
    let start = Instant::now();
    let report = p.run(0..n).await;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(report.outputs.len() as u64, 3 * n);
    (3 * n) as f64 / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let (mut b, mut p) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        b.push(rt.block_on(rate(broadcast(), n)));
        p.push(rt.block_on(rate(plain(), n)));
    }
    let (b, p) = (median(b), median(p));
    println!("{n} inputs, 3 items downstream each, medians of {ROUNDS}:");
    println!("  broadcast to 3 stages        {b:>12.0} items/s");
    println!("  3 plain edges (flat_map)     {p:>12.0} items/s");
    println!("  broadcast / plain            {:>12.1}%", 100.0 * b / p);
}
