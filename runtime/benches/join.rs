//! What a join costs: 100,000 documents, each fanned out into 10 parts, the parts worked
//! on and joined back into one item per document (1,000,000 parts, 100,000 groups),
//! against the same pipeline without the join (the parts leave as outputs). The figure is
//! parts per second, tracked; the memory is the process's resident set sampled as the
//! groups fire, which stays flat when fired groups are let go.
//!
//! Run: `cargo bench -p flowdeck-runtime --bench join` (add `-- 20000` for another
//! document count). Prints the median of 5 alternating rounds of each.

use std::time::{Duration, Instant};

use flowdeck_runtime::{protocol::PipelineState, Graph, Joined, Pipeline, Stage, StageRef};

const WAYS: u64 = 10;
const WORKERS: usize = 4;
const ROUNDS: usize = 5;

type Split = StageRef<u64, u64>;

/// split → work, the common part of both pipelines.
fn front(name: &str) -> (Graph<u64, u64>, Split, StageRef<u64, u64>) {
    let mut g = Graph::<u64, u64>::new(name);
    let split = g.add(
        Stage::flat_map("split", |n: u64, _cx| async move {
            Ok::<_, std::convert::Infallible>((0..WAYS).map(move |i| n * WAYS + i))
        })
        .workers(WORKERS),
    );
    let work = g.add(
        Stage::map("work", |n: u64, _cx| async move {
            Ok::<_, std::convert::Infallible>(n.wrapping_mul(3))
        })
        .workers(WORKERS),
    );
    g.input(split).connect(split, work);
    (g, split, work)
}

fn joined() -> Pipeline<u64, u64> {
    let (mut g, split, work) = front("joined");
    let join = g.add_join(
        Stage::join("join", |_doc: u64, parts: Joined<u64>, _cx| async move {
            Ok::<_, std::convert::Infallible>(parts.parts.iter().sum::<u64>())
        })
        .workers(WORKERS)
        .of(split),
    );
    g.connect(work, join).output(join);
    g.build().unwrap_or_else(|e| panic!("{e}"))
}

fn plain() -> Pipeline<u64, u64> {
    let (mut g, _, work) = front("plain");
    g.output(work);
    g.build().unwrap_or_else(|e| panic!("{e}"))
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    flowdeck_runtime::resources::resident_bytes(None).unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

/// Parts per second, and the resident memory at each quarter of the run.
async fn rate(p: Pipeline<u64, u64>, docs: u64, expect: u64) -> (f64, Vec<f64>) {
    let start = Instant::now();
    let running = p.start();
    let h = running.handle.clone();
    let sampler = tokio::spawn(async move {
        let mut marks = Vec::new();
        loop {
            let done = h.snapshot().totals.completed;
            // Quarters of all the items the run completes (parts, documents, joined).
            while marks.len() < 4 && done * 4 >= expect * (marks.len() as u64 + 1) {
                marks.push(rss_mib());
            }
            let over = matches!(h.state(), PipelineState::Finished | PipelineState::Aborted);
            if marks.len() == 4 || over {
                return marks;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let report = running.run(0..docs).await;
    let secs = start.elapsed().as_secs_f64();
    let marks = sampler.await.unwrap_or_default();
    assert!(!report.outputs.is_empty());
    ((docs * WAYS) as f64 / secs, marks)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let docs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let (mut j, mut p) = (Vec::new(), Vec::new());
    let mut rss = Vec::new();
    for _ in 0..ROUNDS {
        // Completed items: documents, parts, and (joined) one joined item per document.
        let (r, marks) = rt.block_on(rate(joined(), docs, docs * (WAYS + 2)));
        j.push(r);
        rss = marks;
        p.push(rt.block_on(rate(plain(), docs, docs * (WAYS + 1))).0);
    }
    let (j, p) = (median(j), median(p));
    println!(
        "{docs} documents x {WAYS} parts = {} parts, medians of {ROUNDS}:",
        docs * WAYS
    );
    println!("  fan-out, work, join          {j:>12.0} parts/s");
    println!("  fan-out, work (no join)      {p:>12.0} parts/s");
    println!("  join / no join               {:>12.1}%", 100.0 * j / p);
    let rss: Vec<String> = rss.iter().map(|m| format!("{m:.0}")).collect();
    println!(
        "  resident MiB at 1/4, 1/2, 3/4, all completed (last joined round): {}",
        rss.join(", ")
    );
}
