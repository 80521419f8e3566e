//! Load test on loopback (run on demand: `cargo bench -p flowdeck-cli --bench load`).
//!
//! Starts the real `flowdeck` binary with its demo pipeline. First measures the pipeline's
//! own throughput alone, then with 16 callers looping on the heaviest reads
//! (`/api/v1/tasks` over 100,000 items, `/api/v1/logs`): queries must not slow the
//! pipeline. Then opens 1,000 SSE clients, and while they stream, runs API requests from 16
//! concurrent callers. Prints the server's CPU and memory before and under load, the
//! stream's delivery (frames per second, how far the slowest client is behind), and the
//! API's throughput and latency percentiles.
//!
//! Settings by environment: LOAD_CLIENTS (1000), LOAD_SECONDS (20), LOAD_CALLERS (16),
//! LOAD_DEMO_RATE (2000 documents/s).

// A bench run that cannot start the server has nothing to measure: it stops with the reason.
#![allow(clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) and resident bytes of a process.
fn usage(pid: u32) -> (f64, u64) {
    use flowdeck_runtime::resources::{cpu_seconds, resident_bytes};
    (
        cpu_seconds(pid).unwrap_or(0.0),
        resident_bytes(Some(pid)).unwrap_or(0),
    )
}

/// Items the pipeline finished per second over `secs`, from its own counts.
async fn throughput(url: &str, secs: u64) -> f64 {
    let done = || async {
        let s: serde_json::Value = reqwest::get(format!("{url}/api/v1/summary"))
            .await
            .expect("summary")
            .json()
            .await
            .expect("summary json");
        let t = &s["tasks"];
        t["completed"].as_u64().unwrap_or(0) + t["failed"].as_u64().unwrap_or(0)
    };
    let (n0, t0) = (done().await, Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    (done().await - n0) as f64 / t0.elapsed().as_secs_f64()
}

/// CPU share of one core over `secs`, and the RSS at the end.
async fn measure(pid: u32, secs: u64) -> (f64, u64) {
    let (c0, _) = usage(pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (c1, rss) = usage(pid);
    ((c1 - c0) / t0.elapsed().as_secs_f64() * 100.0, rss)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let clients = env("LOAD_CLIENTS", 1000);
    let seconds = env("LOAD_SECONDS", 20);
    let callers = env("LOAD_CALLERS", 16);
    let rate = env("LOAD_DEMO_RATE", 2000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowdeck"))
        .args([
            "--port",
            "0",
            "--demo-rate",
            &rate.to_string(),
            "--demo-latency",
            "0.2",
        ])
        .env("RUST_LOG", "info")
        // The run store as users get it, in a directory of its own.
        .env(
            "XDG_DATA_HOME",
            std::env::temp_dir().join(format!("flowdeck-load-{}", std::process::id())),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start flowdeck");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("http://") => {
                break l[l.find("http://").unwrap_or(0)..].trim().to_owned()
            }
            Some(_) => continue,
            None => panic!("flowdeck exited before printing its URL"),
        }
    };
    // Keep reading what it prints, so a full pipe never holds it up.
    std::thread::spawn(move || lines.for_each(drop));
    println!("flowdeck at {url} (pid {pid}); demo at {rate} documents/s");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The pipeline's throughput alone, then with callers looping on the heavy reads, then
    // alone again (the demo's random latencies make two quiet windows differ too).
    let window = env("LOAD_WINDOW_SECONDS", 20);
    let alone = throughput(&url, window).await;
    let stop_readers = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..callers)
        .map(|c| {
            let (url, stop) = (url.clone(), stop_readers.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let paths = ["/api/v1/tasks?limit=100", "/api/v1/logs?limit=500"];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let path = paths[(c as usize + n as usize) % paths.len()];
                    if let Ok(r) = http.get(format!("{url}{path}")).send().await {
                        let _ = r.bytes().await;
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let queried = throughput(&url, window).await;
    stop_readers.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap_or(0);
    }
    let again = throughput(&url, window).await;
    let quiet = (alone + again) / 2.0;
    println!(
        "pipeline alone: {alone:.0} then {again:.0} items/s; with {callers} callers reading tasks and logs ({:.0} reads/s): {queried:.0} items/s ({:+.1}% against the mean alone)",
        reads as f64 / window as f64,
        (queried / quiet - 1.0) * 100.0
    );
    let (idle_cpu, idle_rss) = measure(pid, 5).await;
    println!(
        "no clients: server CPU {idle_cpu:.0}% of a core, RSS {} MB",
        idle_rss >> 20
    );

    // The SSE clients: each counts frames and remembers the last id it saw.
    let frames = Arc::new(AtomicU64::new(0));
    let last_ids: Arc<Vec<AtomicU64>> = Arc::new((0..clients).map(|_| AtomicU64::new(0)).collect());
    let connected = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients as usize {
        let (url, frames, last_ids, connected) = (
            url.clone(),
            frames.clone(),
            last_ids.clone(),
            connected.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let Ok(res) = http.get(format!("{url}/api/events")).send().await else {
                return;
            };
            connected.fetch_add(1, Ordering::Relaxed);
            let mut body = res.bytes_stream();
            let mut pending = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find("\n\n") {
                    let event: String = pending.drain(..end + 2).collect();
                    if let Some(id) = event.lines().find_map(|l| l.strip_prefix("id:")) {
                        if let Ok(id) = id.trim().parse() {
                            last_ids[i].store(id, Ordering::Relaxed);
                            frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    while connected.load(Ordering::Relaxed) < clients && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{} of {clients} SSE clients connected in {:.1} s",
        connected.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );

    // The API callers.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers_tasks = Vec::new();
    for c in 0..callers {
        let (url, stop) = (url.clone(), stop.clone());
        callers_tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let paths = [
                "/api/v1/summary",
                "/api/v1/stages",
                "/api/v1/tasks?limit=50",
                "/api/v1/errors",
                "/api/v1/tasks?status=failed&limit=20",
                "/prometheus",
            ];
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            let mut n = c as usize;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = match http
                    .get(format!("{url}{}", paths[n % paths.len()]))
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                failures += u64::from(!ok);
                n += 1;
            }
            (latencies, failures)
        }));
    }
    let frames0 = frames.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let (load_cpu, load_rss) = measure(pid, seconds).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let frames_per_s = (frames.load(Ordering::Relaxed) - frames0) as f64 / elapsed;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut failures = 0;
    for t in callers_tasks {
        if let Ok((l, f)) = t.await {
            latencies.extend(l);
            failures += f;
        }
    }
    latencies.sort_by(f64::total_cmp);
    // How far behind the slowest client is, in frames, against the newest any client has.
    let ids: Vec<u64> = last_ids
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .filter(|&i| i > 0)
        .collect();
    let newest = ids.iter().copied().max().unwrap_or(0);
    let slowest = ids.iter().copied().min().unwrap_or(0);
    println!();
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| SSE clients streaming | {} |", ids.len());
    println!("| frames delivered per second (all clients) | {frames_per_s:.0} |");
    println!(
        "| slowest client behind the newest, at the end | {} frames |",
        newest - slowest
    );
    println!(
        "| API requests per second ({callers} callers) | {:.0} |",
        latencies.len() as f64 / elapsed
    );
    println!(
        "| API latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        pct(&latencies, 1.0)
    );
    println!("| API failures | {failures} |");
    println!("| server CPU, no clients → under load | {idle_cpu:.0}% → {load_cpu:.0}% of a core |");
    println!(
        "| server RSS, no clients → under load | {} → {} MB |",
        idle_rss >> 20,
        load_rss >> 20
    );
    let _ = child.kill();
    let _ = child.wait();
    for t in tasks {
        t.abort();
    }
}
