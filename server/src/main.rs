//! `flowdeck`: with no arguments, runs the demo pipeline and serves its dashboard on
//! http://127.0.0.1:3000.

use std::{net::IpAddr, process::ExitCode, time::Duration};

use clap::Parser;

/// flowdeck: a pipeline runtime with a live browser dashboard.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Address to bind. Keep the default (loopback) unless the dashboard must be reachable
    /// from other machines.
    #[arg(long, env = "FLOWDECK_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind; 0 picks a free one (the URL printed at start tells which).
    #[arg(long, env = "FLOWDECK_PORT", default_value_t = 3000)]
    port: u16,
    /// How often the live view updates, in milliseconds (50 to 10000).
    #[arg(long, env = "FLOWDECK_REFRESH_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(50..=10_000))]
    refresh_ms: u64,
    /// Documents per second the demo pipeline ingests.
    #[arg(long, env = "FLOWDECK_DEMO_RATE", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    demo_rate: u32,
    /// Scales the demo's simulated work: 1 is realistic, 0 makes every task instant (for
    /// load tests: `--demo-rate 5000 --demo-latency 0` makes about 90,000 events a second).
    #[arg(long, env = "FLOWDECK_DEMO_LATENCY", default_value_t = 1.0,
          value_parser = parse_scale)]
    demo_latency: f64,
    /// Show the pipeline but refuse every control action (pause, scale, retry, cancel,
    /// drain, stop) with 403.
    #[arg(long, env = "FLOWDECK_READONLY")]
    readonly: bool,
}

fn parse_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is out of range: use 0 to 100")),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if !flowdeck_server::site_embedded() {
        tracing::warn!("this build carries no site: pages render but will not hydrate (build with scripts/build.sh)");
    }
    let config = flowdeck_server::Config {
        addr: (cli.host, cli.port).into(),
        refresh: Duration::from_millis(cli.refresh_ms),
        readonly: cli.readonly,
        ..flowdeck_server::Config::default()
    };
    let pipeline = flowdeck_server::demo::start(cli.demo_rate, cli.demo_latency);
    match flowdeck_server::serve(config.clone(), pipeline).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowdeck: cannot serve on {}: {e}", config.addr);
            ExitCode::FAILURE
        }
    }
}
