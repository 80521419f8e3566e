//! Serving a dashboard on a socket: in the foreground until Ctrl-C or SIGTERM (draining the
//! pipeline first, with a countdown on the console), or in the background with a handle
//! that says where it is and stops it.
//!
//! The dashboard runs on a runtime of its own, on its own two threads. On the pipeline's
//! runtime, sixteen clients reading the API had their requests queued among the
//! pipeline's tasks, and every stage hop waited behind them: the pipeline lost 12% of its
//! throughput. On separate threads the operating system shares the cores, and a worker
//! waking from a wait runs at once.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use flowdeck_runtime::PipelineHandle;
use tokio::sync::{oneshot, watch};

use crate::{console, pages::Pages, router, state::AppState, Config};

/// Why the dashboard did not start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A page is wrong; the message names it and the widget.
    #[error("{0}")]
    Page(String),
    /// An alert is wrong; the message names it and the field.
    #[error("{0}")]
    Alert(String),
    #[error("cannot serve on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The run store cannot be used; the message names the file and the fix.
    #[error("{0}")]
    Store(#[from] flowdeck_store::StoreError),
}

/// Binds `config.addr` and serves until ctrl-c or SIGTERM, then shuts down gracefully:
/// the pipeline takes no more input and finishes what it holds (aborting what is left
/// after `config.drain_timeout`, or at a second signal) while the dashboard keeps showing
/// it; then the live streams end and the server stops.
pub async fn serve(config: Config, pipeline: PipelineHandle) -> std::io::Result<()> {
    run(config, Pages::default(), pipeline)
        .await
        .map_err(|e| match e {
            DashboardError::Bind { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        })
}

pub(crate) async fn run(
    config: Config,
    pages: Pages,
    pipeline: PipelineHandle,
) -> Result<(), DashboardError> {
    let addr = config.addr;
    start(config, pages, pipeline, true)
        .await?
        .finished()
        .await
        .map_err(|source| DashboardError::Bind { addr, source })
}

/// Threads of the dashboard's own runtime.
const THREADS: usize = 2;

/// A dashboard served in the background ([`crate::dashboard::Dashboard::start`]).
/// Dropping it leaves the server running; [`Serving::stop`] stops it.
pub struct Serving {
    url: String,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    running: Arc<AtomicBool>,
    done: oneshot::Receiver<std::io::Result<()>>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Serving {
    /// Where the dashboard is, such as `http://127.0.0.1:3000`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it still serves.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Stops serving: live streams end and open requests finish, then it returns. The
    /// pipeline is left as it is (drain or abort it through its handle).
    pub async fn stop(self) -> std::io::Result<()> {
        self.stop.send_replace(true);
        self.finished().await
    }

    /// Waits until the server has stopped.
    async fn finished(self) -> std::io::Result<()> {
        self.done.await.unwrap_or(Ok(()))
    }
}

/// Starts the dashboard on its own runtime and waits until it listens. With `signals`,
/// the first Ctrl-C or SIGTERM drains the pipeline and stops; without, only
/// [`Serving::stop`] does (a library must not take Ctrl-C away from the program that
/// embeds it).
pub(crate) async fn start(
    config: Config,
    pages: Pages,
    pipeline: PipelineHandle,
    signals: bool,
) -> Result<Serving, DashboardError> {
    let addr = config.addr;
    let bind = |source| DashboardError::Bind { addr, source };
    let store = open_store(&config)?;
    let (listening_tx, listening) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    let (stop, stop_rx) = watch::channel(false);
    let running = Arc::new(AtomicBool::new(true));
    let still = running.clone();
    std::thread::Builder::new()
        .name("flowdeck-dashboard".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(THREADS)
                .thread_name("flowdeck-dashboard")
                .enable_all()
                .build();
            let served = match rt {
                Ok(rt) => rt.block_on(serve_here(
                    config,
                    pages,
                    pipeline,
                    store,
                    signals,
                    stop_rx,
                    listening_tx,
                )),
                Err(e) => {
                    let _ = listening_tx.send(Err(std::io::Error::other(e.to_string())));
                    Ok(())
                }
            };
            still.store(false, Ordering::Release);
            let _ = done_tx.send(served);
        })
        .map_err(bind)?;
    let addr = listening
        .await
        .map_err(|_| {
            bind(std::io::Error::other(
                "the dashboard's thread ended before it listened",
            ))
        })?
        .map_err(bind)?;
    Ok(Serving {
        url: format!("http://{addr}"),
        addr,
        stop,
        running,
        done,
    })
}

/// Binds, says where, and serves until stopped (by the handle, or by a signal when
/// `signals`): on the dashboard's own runtime.
#[allow(clippy::too_many_arguments)]
async fn serve_here(
    config: Config,
    pages: Pages,
    pipeline: PipelineHandle,
    store: Option<flowdeck_store::Store>,
    signals: bool,
    mut stop_rx: watch::Receiver<bool>,
    listening: oneshot::Sender<std::io::Result<SocketAddr>>,
) -> std::io::Result<()> {
    let bound = tokio::net::TcpListener::bind(config.addr)
        .await
        .and_then(|l| Ok((l.local_addr()?, l)));
    let (addr, listener) = match bound {
        Ok(b) => b,
        Err(e) => {
            let _ = listening.send(Err(e));
            return Ok(());
        }
    };
    let (console, guard) = match config.console.clone() {
        Some(c) => (c, None),
        None => {
            let (c, guard) = console::Console::stdout();
            (c, Some(guard))
        }
    };
    install_defaults(&config, &console);
    let state = AppState::build(&config, pages, pipeline.clone(), store);
    // Each pipeline's end is waited for (below), the first's and the others'.
    let recorded: Vec<_> = std::iter::once(&state)
        .chain(state.scopes.iter().skip(1).map(|(_, s)| s))
        .filter_map(|s| Some((s.recorded.clone()?, s.hub.pipeline().clone())))
        .collect();
    let others = config.pipelines.clone();
    // A standalone dashboard has no pipeline of its own to drain: reporters run elsewhere.
    let standalone = config.standalone;
    let app = router(state.clone());
    let url = format!("http://{addr}");
    console.line(&console::banner(&url, &pipeline.snapshot(), signals));
    tracing::info!(%addr, "listening");
    let _ = listening.send(Ok(addr));
    let status = tokio::spawn(print_status(console.clone(), pipeline.clone()));
    let drain_timeout = config.drain_timeout;
    let stop = async move {
        if signals {
            let mut signals = Signals::new();
            tokio::select! {
                _ = signals.next() => if !standalone {
                    // The other pipelines drain beside the first, within the same time.
                    let others: Vec<_> = others.into_iter().map(|p| tokio::spawn(async move {
                        p.drain();
                        if tokio::time::timeout(drain_timeout, p.wait()).await.is_err() {
                            p.abort();
                            p.wait().await;
                        }
                    })).collect();
                    drain(&pipeline, drain_timeout, &console, &mut signals).await;
                    for p in others {
                        let _ = p.await;
                    }
                },
                _ = stopped(&mut stop_rx) => {}
            }
        } else {
            stopped(&mut stop_rx).await;
        }
        status.abort();
        state.shutdown.send_replace(true);
    };
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await;
    // A pipeline that finished (drained by a signal, or ended) has its end written before
    // the process goes, so the next start lists the run as finished, not interrupted.
    for (mut recorded, pipeline) in recorded {
        if matches!(
            pipeline.snapshot().state,
            flowdeck_protocol::PipelineState::Finished | flowdeck_protocol::PipelineState::Aborted
        ) {
            let _ = tokio::time::timeout(RECORD_WAIT, recorded.wait_for(|done| *done)).await;
        }
    }
    // Flushes what the console still holds.
    drop(guard);
    served
}

/// The longest a stopping server waits for its run's end to reach the store.
const RECORD_WAIT: Duration = Duration::from_secs(5);

/// Opens the run store the config names, if it names one.
pub(crate) fn open_store(config: &Config) -> Result<Option<flowdeck_store::Store>, DashboardError> {
    config
        .store
        .clone()
        .map(flowdeck_store::Store::open)
        .transpose()
        .map_err(DashboardError::Store)
}

/// Resolves once [`Serving::stop`] is called. A dropped handle never resolves it: the
/// server then runs until the process ends.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|&s| s).await.is_err() {
        // The handle is gone: nobody can stop it any more but the process.
        std::future::pending::<()>().await;
    }
}

/// For a program that set up neither logging nor metrics (the `flowdeck` command does
/// both itself): logs go to the Logs page, errors also to the console; `metrics::counter!`
/// and friends go to the charts. A program with its own tracing subscriber adds
/// `config.logs.layer()` to it to fill the Logs page; one with its own metrics recorder
/// keeps it.
fn install_defaults(config: &Config, console: &console::Console) {
    use tracing_subscriber::{filter::LevelFilter, prelude::*};
    if !tracing::dispatcher::has_been_set() {
        let terminal = console.writer().map(|w| {
            tracing_subscriber::fmt::layer()
                .with_writer(w)
                .with_ansi(console.is_terminal())
                .with_filter(LevelFilter::ERROR)
        });
        let _ = tracing_subscriber::registry()
            .with(terminal)
            .with(config.logs.layer().with_filter(LevelFilter::INFO))
            .try_init();
    }
    // Refused when another recorder is installed: that one is the program's choice.
    let _ = config.metrics.install();
}

/// Prints the status line every few seconds, and says (in the logs, each second at most)
/// when lines had to be dropped because nobody read them fast enough.
async fn print_status(console: console::Console, pipeline: PipelineHandle) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let period = console.status_every().as_secs().max(1);
    let mut dropped = 0;
    for second in 1u64.. {
        every.tick().await;
        if second % period == 0 {
            console.line(&console::status(&pipeline.snapshot()));
        }
        let now = console.dropped_lines();
        if now > dropped {
            tracing::warn!(
                dropped = now - dropped,
                "standard output is not read fast enough: lines were dropped (the Logs page has them all)"
            );
            dropped = now;
        }
    }
}

/// Lets the pipeline finish its queued items, saying on the console how many are left,
/// until it is done, `timeout` passes or a second signal comes; then aborts what is left.
async fn drain(
    pipeline: &PipelineHandle,
    timeout: Duration,
    console: &console::Console,
    signals: &mut Signals,
) {
    let left = |p: &PipelineHandle| {
        let t = p.snapshot().totals;
        t.queued + t.running
    };
    let queued = left(pipeline);
    tracing::info!(queued, "shutting down: draining the pipeline");
    console.line(&format!(
        "stopping: finishing {queued} queued and running items (at most {} s); press Ctrl-C again to stop at once",
        timeout.as_secs()
    ));
    pipeline.drain();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let finished = loop {
        tokio::select! {
            _ = pipeline.wait() => break true,
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(?timeout, "the pipeline did not drain in time: aborting the rest");
                console.line("the pipeline did not drain in time: cancelling the rest");
                break false;
            }
            _ = signals.next() => {
                tracing::warn!("second signal: aborting the rest");
                console.line(&format!("stopping now: cancelling {} items", left(pipeline)));
                break false;
            }
            _ = tick.tick() => {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                console.line(&format!(
                    "draining: {} items left, {} s to go",
                    left(pipeline),
                    remaining.as_secs()
                ));
            }
        }
    };
    if !finished {
        pipeline.abort();
        pipeline.wait().await;
    }
    let t = pipeline.snapshot().totals;
    tracing::info!(
        state = ?pipeline.state(),
        completed = t.completed,
        failed = t.failed,
        cancelled = t.cancelled,
        "pipeline stopped"
    );
    console.line(&format!(
        "stopped: {} completed, {} failed, {} cancelled",
        t.completed, t.failed, t.cancelled
    ));
}

/// Ctrl-C and SIGTERM, as a stream: the first asks to drain, the second to stop at once.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async {
            match &mut self.term {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = terminate => {},
        }
    }
}
