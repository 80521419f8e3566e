//! A pipeline in a process of its own, reporting to a standalone dashboard: the demo
//! pipeline under a name of your choosing.
//!
//! ```sh
//! flowdeck serve --no-demo --ingest-token "$TOKEN"            # the dashboard
//! cargo run -p flowdeck-report --example report -- http://127.0.0.1:3000 "$TOKEN" orders
//! cargo run -p flowdeck-report --example report -- http://127.0.0.1:3000 "$TOKEN" billing
//! ```
//!
//! Arguments: the dashboard's URL, its ingest token, the pipeline's name, and optionally
//! documents per second (default 60). It runs until Ctrl-C or SIGTERM, then drains for at
//! most 10 s (a stage paused from the dashboard would hold a drain forever) and stops.

use flowdeck_report::ReportTo;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, token, name, rest @ ..] = args.as_slice() else {
        eprintln!(
            "usage: report <dashboard URL> <ingest token> <pipeline name> [documents per second]"
        );
        return std::process::ExitCode::from(2);
    };
    let rate = match rest.first().map(|r| r.parse::<u32>()) {
        None => 60,
        Some(Ok(r)) if (1..=100_000).contains(&r) => r,
        Some(_) => {
            eprintln!("report: documents per second must be a number from 1 to 100000");
            return std::process::ExitCode::from(2);
        }
    };
    let pipeline = flowdeck_server::demo::start_named(name, rate, 1.0);
    let reporter = pipeline.report_to(url, token);
    println!("reporting {name:?} to {url}");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("report: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = pipeline.wait() => {}
    }
    pipeline.drain();
    if tokio::time::timeout(std::time::Duration::from_secs(10), pipeline.wait())
        .await
        .is_err()
    {
        eprintln!("report: the pipeline did not drain in 10 s (a stage paused?): stopping it");
        pipeline.abort();
        pipeline.wait().await;
    }
    let stats = reporter.finished().await;
    println!(
        "done: {} items ({} events) sent in {} batches, {} dropped, {} controls applied",
        stats.sent, stats.events, stats.batches, stats.dropped, stats.commands
    );
    std::process::ExitCode::SUCCESS
}
