//! A pipeline whose middle stage runs in worker processes, on NATS JetStream: one binary,
//! two roles.
//!
//! ```sh
//! scripts/setup.sh --test    # installs nats-server 2.15 in target/tools/nats
//! target/tools/nats/bin/nats-server -js -sd /tmp/nats &
//! cargo run -p flowdeck --features cluster --example cluster -- worker &   # a worker process
//! cargo run -p flowdeck --features cluster --example cluster -- worker &   # and another
//! cargo run -p flowdeck --features cluster --example cluster               # the driver
//! ```
//!
//! The driver opens the dashboard on http://127.0.0.1:3000: the workers page lists each
//! worker process with its workers. Start or stop worker processes while it runs; kill
//! one (`kill -9`) and its items go to the others after `ack_wait` (5 s here).

use std::time::Duration;

use clap::{Parser, Subcommand};
use flowdeck::{
    cluster::{Cluster, QueueOptions, Settings},
    prelude::*,
    BuildError,
};

#[derive(Parser)]
struct Args {
    /// The NATS server (a comma-separated list for a NATS cluster).
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    nats: String,
    /// Documents to run (the driver).
    #[arg(long, default_value_t = 20_000)]
    items: u64,
    #[command(subcommand)]
    role: Option<Role>,
}

#[derive(Subcommand)]
enum Role {
    /// Serve the distributed stage until Ctrl-C.
    Worker,
}

/// The same pipeline in both roles: the worker needs the stage's function, the driver
/// everything else.
fn pipeline(cluster: &Cluster) -> Result<Pipeline<u64, String>, BuildError> {
    Line::<u64>::new("documents")
        .stage(Stage::map("fetch", |id: u64, _cx| async move {
            Ok::<_, String>(format!("document {id}"))
        }))
        .stage(
            cluster.distribute(
                Stage::map("embed", |doc: String, _cx| async move {
                    // A model call: slow, and now and then it fails.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if doc.ends_with("13") {
                        return Err(format!("the model refused {doc}"));
                    }
                    Ok::<_, String>(doc.len() as u64)
                })
                .workers(8)
                .retry(RetryPolicy::attempts(3)),
            ),
        )
        .stage(Stage::map("store", |n: u64, cx| async move {
            Ok::<_, String>(format!("#{}: {n}", cx.item()))
        }))
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_target(false).init();
    let args = Args::parse();
    let settings = Settings {
        queue: QueueOptions {
            ack_wait: Duration::from_secs(5),
            ..QueueOptions::default()
        },
        ..Settings::default()
    };
    let cluster = Cluster::connect(&args.nats, "documents", settings).await?;
    let pipeline = pipeline(&cluster)?;
    if let Some(Role::Worker) = args.role {
        println!("serving stage embed; Ctrl-C to stop");
        cluster.serve().await?.run().await;
        return Ok(());
    }
    let running = pipeline.start();
    cluster.watch(&running.handle);
    let dashboard = Dashboard::new(Config::from_env()?)
        .start_or_any_port(running.handle.clone())
        .await?;
    println!("dashboard on {}", dashboard.url());
    let report = running.run(0..args.items).await;
    let s = &report.summary.stats;
    println!(
        "{} done, {} failed in {:?}; {:?}",
        s.completed,
        s.failed,
        report.summary.elapsed,
        cluster.stats()
    );
    println!("Ctrl-C to close the dashboard");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
