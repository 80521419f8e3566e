//! Reports a running pipeline to a flowdeck dashboard in another process (PlanAI's and
//! Prefect's "runs report to one server"): one call, and the dashboard started with
//! `flowdeck serve --no-demo --ingest-token <token>` lists it, shows its pages live, keeps
//! its runs, and sends its control actions back.
//!
//! ```no_run
//! use flowdeck_report::ReportTo;
//! # async fn run(running: flowdeck_runtime::Running<u64, u64>) {
//! let reporter = running.handle.report_to("http://127.0.0.1:3000", "the-ingest-token");
//! // ... feed the pipeline, wait for it ...
//! reporter.finished().await; // its last batch, with the run's end, is sent
//! # }
//! ```
//!
//! How it keeps out of the pipeline's way:
//! - it reads the pipeline's change feed, a broadcast: a reporter that falls behind skips
//!   batches of the feed (counted as lost) instead of slowing any worker;
//! - what it has not sent yet waits in a buffer of at most [`Options::max_buffer`] events;
//!   past that, new events are counted as dropped and not kept, so a dashboard that is
//!   down costs bounded memory;
//! - it sends every [`Options::every`] (250 ms), in batches of at most
//!   [`Options::max_batch`] events with the pipeline's latest snapshot, and after a failure
//!   it waits twice as long each time, up to 5 s;
//! - the dashboard answers each batch with the controls pressed on its pages (pause,
//!   resume, scale, cancel, retry, drain, stop), which the reporter applies here.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use flowdeck_protocol::{
    report::{Command, IngestReply, ReportBatch},
    Event, PipelineState,
};
use flowdeck_runtime::{FeedError, PipelineHandle};

/// How a reporter sends.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often a batch goes out.
    pub every: Duration,
    /// Events a batch carries at most (the dashboard takes up to 50,000).
    pub max_batch: usize,
    /// Events kept while they cannot be sent; past this they are dropped and counted.
    pub max_buffer: usize,
    /// The longest wait between tries while the dashboard does not answer.
    pub max_backoff: Duration,
    /// How long the reporter keeps trying to send the run's end once the pipeline has
    /// finished, before it gives up (a dashboard gone for good must not hold the process).
    pub end_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            every: Duration::from_millis(250),
            max_batch: 20_000,
            max_buffer: 200_000,
            max_backoff: Duration::from_secs(5),
            end_grace: Duration::from_secs(30),
        }
    }
}

/// What a reporter has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportStats {
    /// Events the dashboard took.
    pub sent: u64,
    /// Batches it took.
    pub batches: u64,
    /// Events not sent: the buffer was full, or the reporter fell behind the feed (then a
    /// whole feed batch counts as one).
    pub dropped: u64,
    /// Sends that failed (the dashboard down, slow, or refusing).
    pub failures: u64,
    /// Control commands received and applied.
    pub commands: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    batches: AtomicU64,
    dropped: AtomicU64,
    failures: AtomicU64,
    commands: AtomicU64,
}

/// A pipeline being reported. Dropping it leaves the reporting going.
pub struct Reporter {
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Counters {
    fn stats(&self) -> ReportStats {
        let c = self;
        ReportStats {
            sent: c.sent.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            commands: c.commands.load(Ordering::Relaxed),
        }
    }
}

impl Reporter {
    pub fn stats(&self) -> ReportStats {
        self.counters.stats()
    }

    /// Waits until the pipeline has finished and its end has reached the dashboard (or
    /// [`Options::end_grace`] has passed trying); answers what was done.
    pub async fn finished(self) -> ReportStats {
        let _ = self.task.await;
        self.counters.stats()
    }
}

/// `report_to` on a running pipeline's handle.
pub trait ReportTo {
    /// Reports to the dashboard at `url` (such as `http://127.0.0.1:3000`) with its ingest
    /// token, from now until the pipeline ends. Call it before feeding the pipeline: the
    /// dashboard learns of items from their events, so an item that moved before the call
    /// shows with only its later ones. Call within a tokio runtime.
    fn report_to(&self, url: &str, token: &str) -> Reporter;

    /// The same with other [`Options`].
    fn report_to_with(&self, url: &str, token: &str, options: Options) -> Reporter;
}

impl ReportTo for PipelineHandle {
    fn report_to(&self, url: &str, token: &str) -> Reporter {
        self.report_to_with(url, token, Options::default())
    }

    fn report_to_with(&self, url: &str, token: &str, options: Options) -> Reporter {
        let counters = Arc::new(Counters::default());
        // Subscribed here, not in the task: items that flow before the task first runs
        // would otherwise be missing their first events.
        let feed = self.subscribe();
        let task = tokio::spawn(run(
            self.clone(),
            feed,
            format!("{}/api/v1/ingest", url.trim_end_matches('/')),
            token.to_owned(),
            options,
            counters.clone(),
        ));
        Reporter { counters, task }
    }
}

/// What the sending loop keeps between batches.
struct Pending {
    events: VecDeque<Event>,
    max: usize,
}

impl Pending {
    fn push(&mut self, batch: &[Event], counters: &Counters) {
        let room = self.max.saturating_sub(self.events.len());
        let kept = batch.len().min(room);
        self.events.extend(batch[..kept].iter().cloned());
        let dropped = (batch.len() - kept) as u64;
        if dropped > 0 {
            counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }
}

async fn run(
    handle: PipelineHandle,
    mut feed: flowdeck_runtime::Feed,
    url: String,
    token: String,
    options: Options,
    counters: Arc<Counters>,
) {
    let first = handle.snapshot();
    let (stages, edges) = (handle.stage_names().to_vec(), first.edges.clone());
    let started_unix_ms = first.started_unix_ms;
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("flowdeck report: no HTTP client ({e}); not reporting");
            return;
        }
    };
    // The feed is read by a task of its own, so that it keeps up while a batch is on the
    // wire: a reader that waited on the network would fall behind the broadcast.
    let pending = Arc::new(parking_lot::Mutex::new(Pending {
        events: VecDeque::new(),
        max: options.max_buffer,
    }));
    let (ended_tx, ended_rx) = tokio::sync::watch::channel(false);
    tokio::spawn({
        let (pending, counters, handle) = (pending.clone(), counters.clone(), handle.clone());
        async move {
            loop {
                match feed.recv().await {
                    Ok(batch) => pending.lock().push(&batch, &counters),
                    Err(FeedError::Lagged(n)) => {
                        counters.dropped.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(FeedError::Closed) => break,
                }
            }
            // The run's end: the last snapshot must say so.
            handle.wait().await;
            ended_tx.send_replace(true);
        }
    });
    let mut max_batch = options.max_batch.max(1);
    let mut wait = options.every;
    let mut ended: Option<tokio::time::Instant> = None;
    loop {
        // Until the next send, or the run's end, whichever comes first.
        let mut end = ended_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = end.wait_for(|e| *e), if ended.is_none() => {}
        }
        if ended.is_none() && *ended_rx.borrow() {
            ended = Some(tokio::time::Instant::now());
        }
        let (n, events) = {
            let p = pending.lock();
            let n = p.events.len().min(max_batch);
            (n, p.events.iter().take(n).cloned().collect::<Vec<_>>())
        };
        let batch = ReportBatch {
            pipeline: handle.name().to_owned(),
            stages: stages.clone(),
            edges: edges.clone(),
            started_unix_ms,
            snapshot: Some(handle.snapshot()),
            events,
            dropped: counters.dropped.load(Ordering::Relaxed),
        };
        match send(&http, &url, &token, &batch).await {
            Ok(reply) => {
                let left = {
                    let mut p = pending.lock();
                    p.events.drain(..n);
                    p.events.len()
                };
                counters.sent.fetch_add(n as u64, Ordering::Relaxed);
                counters.batches.fetch_add(1, Ordering::Relaxed);
                counters
                    .commands
                    .fetch_add(reply.commands.len() as u64, Ordering::Relaxed);
                for c in reply.commands {
                    apply(&handle, c).await;
                }
                wait = if left >= max_batch {
                    Duration::ZERO
                } else {
                    options.every
                };
                let done = matches!(
                    batch.snapshot.as_ref().map(|s| s.state),
                    Some(PipelineState::Finished | PipelineState::Aborted)
                );
                if ended.is_some() && done && left == 0 {
                    return;
                }
            }
            Err(Failure::TooBig) => {
                // A smaller batch next time, at once.
                max_batch = (max_batch / 2).max(100);
                wait = Duration::ZERO;
            }
            Err(Failure::Other(why)) => {
                let failures = counters.failures.fetch_add(1, Ordering::Relaxed);
                if failures == 0 {
                    tracing::warn!("flowdeck report: {why}; retrying with backoff");
                }
                wait = (wait * 2).clamp(options.every, options.max_backoff);
            }
        }
        if ended.is_some_and(|at| at.elapsed() > options.end_grace) {
            tracing::warn!("flowdeck report: the dashboard did not take the run's end; giving up");
            return;
        }
    }
}

enum Failure {
    TooBig,
    Other(String),
}

async fn send(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    batch: &ReportBatch,
) -> Result<IngestReply, Failure> {
    let res = http
        .post(url)
        .bearer_auth(token)
        .json(batch)
        .send()
        .await
        .map_err(|e| Failure::Other(format!("cannot reach {url}: {e}")))?;
    let status = res.status();
    if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
        return Err(Failure::TooBig);
    }
    if !status.is_success() {
        let body = res.text().await.unwrap_or_default();
        return Err(Failure::Other(format!("{url} answered {status}: {body}")));
    }
    res.json()
        .await
        .map_err(|e| Failure::Other(format!("{url} answered something else than a reply: {e}")))
}

/// Applies a control pressed on the dashboard.
async fn apply(handle: &PipelineHandle, c: Command) {
    let done = match &c {
        Command::Pause { stage } => handle.pause(stage).map_err(|e| e.to_string()),
        Command::Resume { stage } => handle.resume(stage).map_err(|e| e.to_string()),
        Command::Scale { stage, workers } => handle
            .set_workers(stage, *workers)
            .map_err(|e| e.to_string()),
        Command::Cancel { item } => handle.cancel(*item).map_err(|e| e.to_string()),
        Command::Retry { item } => handle.retry(*item).await.map_err(|e| e.to_string()),
        Command::Drain => {
            handle.drain();
            Ok(())
        }
        Command::Stop => {
            handle.abort();
            Ok(())
        }
    };
    match done {
        Ok(()) => tracing::info!(?c, "flowdeck report: applied a control from the dashboard"),
        Err(e) => tracing::warn!(
            ?c,
            "flowdeck report: a control from the dashboard failed: {e}"
        ),
    }
}
