//! What the server tests share: a real server on a loopback port, and a pipeline with
//! random latency, failures and retries.
#![allow(dead_code, clippy::unwrap_used)]

pub mod promtool;

use std::time::Duration;

use flowdeck_runtime::{Line, PipelineHandle, RetryPolicy, Running, Stage};
use flowdeck_server::{hub::LogLimits, router, state, AppState, Config};
use rand::Rng;

/// Serves a dashboard of `handle` on a free loopback port; returns its base URL.
pub async fn serve(handle: PipelineHandle, refresh_ms: u64, log: LogLimits) -> String {
    let config = Config {
        refresh: Duration::from_millis(refresh_ms),
        stream_log: log,
        ..Config::default()
    };
    serve_config(handle, config).await
}

/// Like [`serve`], with the whole config (its address is replaced by a free port).
pub async fn serve_config(handle: PipelineHandle, config: Config) -> String {
    serve_state(|config| state(config, handle), config).await
}

/// Serves the state `make` builds from `config` once its address is a free port.
pub async fn serve_state(make: impl FnOnce(&Config) -> AppState, mut config: Config) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    config.addr = listener.local_addr().unwrap();
    let app = router(make(&config)).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{}", config.addr)
}

/// Serves `handle` with the dashboard's full state, the run store `config` names included.
pub async fn serve_with_store(handle: PipelineHandle, config: Config) -> String {
    serve_state(
        move |c| {
            flowdeck_server::dashboard::Dashboard::new(c.clone())
                .state(handle)
                .expect("the store opens")
        },
        config,
    )
    .await
}

/// Three stages with random latency, some failures and retries.
pub fn pipeline(retention: usize) -> Running<u64, u64> {
    pipeline_asking(retention, None)
}

/// [`pipeline`], whose first stage asks a person about item `ask` (`yes` or `no`), when
/// given.
pub fn pipeline_asking(retention: usize, ask: Option<u64>) -> Running<u64, u64> {
    let stage = move |name: &'static str, fail_every: u64| {
        Stage::map(name, move |n: u64, cx: flowdeck_runtime::Ctx| async move {
            let wait = rand::rng().random_range(0..300);
            tokio::time::sleep(Duration::from_micros(wait)).await;
            if Some(n) == ask && name == "a" && cx.attempt() == 1 {
                let q =
                    flowdeck_runtime::Question::new(format!("Keep {n}?")).options(["yes", "no"]);
                cx.ask(q).await.map_err(|e| e.to_string())?;
            }
            if n.is_multiple_of(fail_every) && cx.attempt() == 1 {
                return Err(format!("flaky {n}"));
            }
            if n % (fail_every * 7) == 1 {
                return Err(format!("broken {n}"));
            }
            Ok(n)
        })
        .workers(3)
        .queue(64)
        .retry(RetryPolicy::attempts(2).backoff(Duration::from_millis(1), Duration::from_millis(2)))
        // Failed items carry their input (the API's task detail shows it).
        .capture(flowdeck_runtime::Capture::failures())
    };
    Line::<u64>::new("stream-test")
        .stage(stage("a", 13))
        .stage(stage("b", 17))
        .stage(stage("c", 19))
        .retention(retention)
        .build()
        .unwrap()
        .start()
}
