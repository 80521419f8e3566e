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
//! - it does not read the change feed, which would cost the pipeline a copy of every event:
//!   once a period ([`Options::every`], 250 ms) it asks the tracker which items changed
//!   since the last time (`Tracker::changed_since`, a scan of the retained records) and
//!   sends each one's current detail, once however often it changed, with the pipeline's
//!   latest snapshot. So its cost is per item and period, on its own task;
//! - it sends at most [`Options::max_items`] items a batch: failures first, then items
//!   still in progress, then the newest finished ones. The rest wait for the next batch
//!   while the tracker retains them; finished items that leave the tracker unsent are
//!   counted as dropped (their counts are in the snapshot, their rows are not sent);
//! - while the dashboard is down nothing piles up beyond the tracker's own retention, and
//!   after a failure it waits twice as long each time, up to 5 s;
//! - the dashboard answers each batch with the controls pressed on its pages (pause,
//!   resume, scale, cancel, retry, drain, stop), which the reporter applies here.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use flowdeck_protocol::{
    question::QuestionChange,
    report::{Command, IngestReply},
    Edge, ItemDetail, ItemId, ItemStatus, PipelineState, Snapshot,
};
use flowdeck_runtime::{PipelineHandle, Tracker};

/// How a reporter sends.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often a batch goes out.
    pub every: Duration,
    /// Items a batch carries at most (each with its whole detail, about 1 KB of JSON for
    /// three stages), up to the dashboard's 5,000 (`report::MAX_ITEMS`). The default, 2,000 a quarter second, sends every item of a pipeline
    /// of up to 8,000 items a second, and bounds what a faster one costs.
    pub max_items: usize,
    /// The longest wait between tries while the dashboard does not answer.
    pub max_backoff: Duration,
    /// How long one send may take before it counts as failed (a dashboard whose host
    /// accepts connections and never answers).
    pub timeout: Duration,
    /// How long the reporter keeps trying to send the run's end once the pipeline has
    /// finished, before it gives up (a dashboard gone for good must not hold the process).
    pub end_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            every: Duration::from_millis(250),
            max_items: 2_000,
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            end_grace: Duration::from_secs(30),
        }
    }
}

/// What a reporter has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportStats {
    /// Item details the dashboard took (an item that changed in several periods counts
    /// in each).
    pub sent: u64,
    /// The status changes those details carried (their histories' events).
    pub events: u64,
    /// Batches it took.
    pub batches: u64,
    /// Finished items whose end was never sent: more finished than it may send, or the
    /// dashboard down, for longer than the tracker retained them.
    pub dropped: u64,
    /// Sends that failed (the dashboard down, slow, or refusing).
    pub failures: u64,
    /// Control commands received and applied.
    pub commands: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    events: AtomicU64,
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
            events: c.events.load(Ordering::Relaxed),
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
    /// token, from now until the pipeline ends: the items its tracker retains, then every
    /// change. Call within a tokio runtime.
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
        let task = tokio::spawn(run(
            self.clone(),
            format!("{}/api/v1/ingest", url.trim_end_matches('/')),
            token.to_owned(),
            options,
            counters.clone(),
        ));
        Reporter { counters, task }
    }
}

/// The items that changed and are not sent yet, with their status when last seen.
#[derive(Default)]
struct Unsent(HashMap<ItemId, ItemStatus>);

impl Unsent {
    /// Adds what changed since the tracker's `cursor`-th event; forgets items the tracker
    /// no longer retains (their detail is gone).
    fn refresh(&mut self, tracker: &Tracker, cursor: u64) {
        self.0.extend(tracker.changed_since(cursor));
        if let Some((oldest, _)) = tracker.retained_ids() {
            self.0.retain(|id, _| *id >= oldest);
        }
    }

    /// Takes at most `n`: failures first (why an item failed is what a dashboard is for),
    /// then items in progress (the live view), then the newest finished ones.
    fn take(&mut self, n: usize) -> Vec<ItemId> {
        let rank = |s: ItemStatus| match s {
            ItemStatus::Failed => 0,
            s if !s.is_terminal() => 1,
            _ => 2,
        };
        let mut all: Vec<(u8, std::cmp::Reverse<ItemId>)> = self
            .0
            .iter()
            .map(|(id, s)| (rank(*s), std::cmp::Reverse(*id)))
            .collect();
        if all.len() > n {
            all.select_nth_unstable(n);
            all.truncate(n);
        }
        let ids: Vec<ItemId> = all.into_iter().map(|(_, id)| id.0).collect();
        for id in &ids {
            self.0.remove(id);
        }
        ids
    }

    /// How many of them are finished (not dropped yet: they may still be sent).
    fn finished(&self) -> u64 {
        self.0.values().filter(|s| s.is_terminal()).count() as u64
    }

    /// Puts back what could not be sent.
    fn put_back(&mut self, items: &[ItemDetail]) {
        self.0.extend(items.iter().map(|d| (d.id, d.status)));
    }
}

/// The details of `ids` still retained, a chunk at a time so the tracker is never held
/// for long.
fn details(tracker: &Tracker, ids: &[ItemId]) -> Vec<ItemDetail> {
    ids.chunks(500).flat_map(|c| tracker.details(c)).collect()
}

/// Items that finished, by the snapshot's totals.
fn finished(s: &Snapshot) -> u64 {
    s.totals.completed + s.totals.failed + s.totals.cancelled
}

async fn run(
    handle: PipelineHandle,
    url: String,
    token: String,
    options: Options,
    counters: Arc<Counters>,
) {
    let first = handle.snapshot();
    let (stages, edges) = (handle.stage_names().to_vec(), first.edges.clone());
    let started_unix_ms = first.started_unix_ms;
    let http = match reqwest::Client::builder().timeout(options.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("flowdeck report: no HTTP client ({e}); not reporting");
            return;
        }
    };
    let tracker = handle.tracker();
    let (mut unsent, mut cursor, mut finished_sent) = (Unsent::default(), 0u64, 0u64);
    let mut max_items = options
        .max_items
        .clamp(1, flowdeck_protocol::report::MAX_ITEMS);
    let mut wait = options.every;
    let mut ended: Option<tokio::time::Instant> = None;
    // Questions asked and closed here, for the dashboard; all pending ones at first, and
    // again whenever the dashboard says it does not know them (it restarted).
    let mut asked = handle.questions().subscribe();
    let mut questions: Vec<QuestionChange> = pending_now(&handle);
    // This process's CPU and memory go with each snapshot, for the dashboard to show.
    let mut resources = flowdeck_runtime::resources::Sampler::new();
    loop {
        // Until the next send, or the run's end, whichever comes first.
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = handle.wait(), if ended.is_none() => {}
        }
        let done = matches!(
            handle.state(),
            PipelineState::Finished | PipelineState::Aborted
        );
        if ended.is_none() && done {
            ended = Some(tokio::time::Instant::now());
        }
        // The snapshot, then the position, then the scan: every item the snapshot counts as
        // finished has finished by the scan (so the dropped count below is never too
        // high), and a change during the scan is seen again next time rather than missed.
        let usage = resources.sample();
        let latest = handle.snapshot();
        collect_questions(&handle, &mut asked, &mut questions);
        let seq = tracker.seq();
        unsent.refresh(tracker, cursor);
        cursor = seq;
        let mut items = details(tracker, &unsent.take(max_items));
        let (encoded, n) = encode_items(&items, ITEMS_BYTES);
        // What did not fit goes next time.
        unsent.put_back(&items.split_off(n));
        let left = unsent.0.len();
        // The run's end goes with the last of its items: a dashboard closes a run when
        // told it finished.
        let last = done && left == 0;
        let head = Head {
            pipeline: handle.name(),
            stages: &stages,
            edges: &edges,
            started_unix_ms,
            snapshot: (!done || last).then_some(&latest),
            dropped: counters.dropped.load(Ordering::Relaxed),
            questions: &questions,
            resources: Some(&usage),
        };
        let body = body(&head, encoded);
        let mut end_sent = false;
        match send(&http, &url, &token, body).await {
            Ok(reply) => {
                let n = items.len() as u64;
                finished_sent += items.iter().filter(|d| d.status.is_terminal()).count() as u64;
                counters.sent.fetch_add(n, Ordering::Relaxed);
                let events: usize = items.iter().map(|d| d.history.len()).sum();
                counters.events.fetch_add(events as u64, Ordering::Relaxed);
                counters.batches.fetch_add(1, Ordering::Relaxed);
                counters
                    .commands
                    .fetch_add(reply.commands.len() as u64, Ordering::Relaxed);
                questions.clear();
                if reply.resend_questions {
                    questions = pending_now(&handle);
                }
                for c in reply.commands {
                    apply(&handle, c).await;
                }
                // Once finished, what is left goes at once: nothing runs any more.
                wait = if done && left > 0 {
                    Duration::ZERO
                } else {
                    options.every
                };
                end_sent = last;
            }
            Err(failure) => {
                unsent.put_back(&items);
                match failure {
                    // A smaller batch next time, at once.
                    Failure::TooBig => {
                        max_items = (max_items / 2).max(1);
                        wait = Duration::ZERO;
                    }
                    Failure::Other(why) => {
                        let failures = counters.failures.fetch_add(1, Ordering::Relaxed);
                        if failures == 0 {
                            tracing::warn!("flowdeck report: {why}; retrying with backoff");
                        }
                        wait = (wait * 2).clamp(options.every, options.max_backoff);
                    }
                }
            }
        }
        counters.dropped.store(
            finished(&latest).saturating_sub(finished_sent + unsent.finished()),
            Ordering::Relaxed,
        );
        if end_sent {
            return;
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

/// The most bytes of item details a batch carries: half the dashboard's 8 MiB limit,
/// leaving room for the snapshot. A batch is cut there whatever `max_items` allows, so
/// large items (big captured data, many stages) never make batches the dashboard refuses.
const ITEMS_BYTES: usize = 4 << 20;

/// A batch's fields but its items, which [`body`] writes already encoded.
#[derive(serde::Serialize)]
struct Head<'a> {
    pipeline: &'a str,
    stages: &'a [String],
    edges: &'a [Edge],
    started_unix_ms: u64,
    snapshot: Option<&'a Snapshot>,
    dropped: u64,
    #[serde(skip_serializing_if = "<[QuestionChange]>::is_empty")]
    questions: &'a [QuestionChange],
    resources: Option<&'a flowdeck_protocol::Resources>,
}

/// Every pending question of the pipeline, as asked.
fn pending_now(handle: &PipelineHandle) -> Vec<QuestionChange> {
    handle
        .questions()
        .pending()
        .into_iter()
        .map(QuestionChange::Asked)
        .collect()
}

/// Adds the question changes since the last batch to `out`. Past a lag (over a thousand
/// changes between two batches), the pending ones are sent whole, and closings the
/// dashboard missed reach it when its own copies are answered (refused as closed here).
fn collect_questions(
    handle: &PipelineHandle,
    asked: &mut tokio::sync::broadcast::Receiver<QuestionChange>,
    out: &mut Vec<QuestionChange>,
) {
    use tokio::sync::broadcast::error::TryRecvError;
    loop {
        match asked.try_recv() {
            Ok(c) => out.push(c),
            Err(TryRecvError::Lagged(_)) => {
                out.retain(|c| !matches!(c, QuestionChange::Asked(_)));
                out.extend(pending_now(handle));
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

/// The first items as a JSON list's contents, as many as fit in `max_bytes` (at least
/// one); how many that is.
fn encode_items(items: &[ItemDetail], max_bytes: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let mark = out.len();
        if n > 0 {
            out.push(b',');
        }
        let fits = serde_json::to_writer(&mut out, item).is_ok() && out.len() <= max_bytes;
        if !fits && n > 0 {
            out.truncate(mark);
            return (out, n);
        }
    }
    (out, items.len())
}

/// The `ReportBatch` JSON: the head's fields with the encoded items (written by hand so
/// the items are encoded once, as they are measured against the size limit).
fn body(head: &Head, items: Vec<u8>) -> Vec<u8> {
    let head = serde_json::to_vec(head).unwrap_or_else(|_| b"{}".to_vec());
    let mut body = Vec::with_capacity(items.len() + head.len() + 16);
    body.extend_from_slice(b"{\"items\":[");
    body.extend_from_slice(&items);
    body.extend_from_slice(b"]");
    if head.len() > 2 {
        body.push(b',');
    }
    body.extend_from_slice(&head[1..]);
    body
}

async fn send(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: Vec<u8>,
) -> Result<IngestReply, Failure> {
    let res = http
        .post(url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
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
        Command::Answer {
            question,
            reply,
            by,
        } => handle
            .questions()
            .answer(*question, reply, by.as_deref())
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    match done {
        Ok(()) => tracing::info!(?c, "flowdeck report: applied a control from the dashboard"),
        Err(e) => tracing::warn!(
            ?c,
            "flowdeck report: a control from the dashboard failed: {e}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_batch_takes_failures_then_items_in_progress_then_the_newest_finished() {
        let mut unsent = Unsent::default();
        let statuses = [
            (1, ItemStatus::Completed),
            (2, ItemStatus::Failed),
            (3, ItemStatus::Running),
            (4, ItemStatus::Completed),
            (5, ItemStatus::Queued),
            (6, ItemStatus::Failed),
            (7, ItemStatus::Cancelled),
        ];
        unsent.0.extend(statuses);
        let mut first = unsent.take(4);
        first.sort_unstable();
        assert_eq!(first, vec![2, 3, 5, 6]);
        assert_eq!(unsent.take(1), vec![7], "the newest finished next");
        assert_eq!(unsent.finished(), 2);
        let mut rest = unsent.take(10);
        rest.sort_unstable();
        assert_eq!(rest, vec![1, 4]);
        assert!(unsent.take(10).is_empty());
    }

    fn item(id: ItemId) -> ItemDetail {
        ItemDetail {
            id,
            status: ItemStatus::Completed,
            stage: 0,
            created_us: 1,
            updated_us: 2,
            visits: Vec::new(),
            parents: vec![id / 2],
            error: None,
            annotations: vec![("n".into(), flowdeck_protocol::Value::Int(7))],
            history: Vec::new(),
        }
    }

    #[test]
    fn a_batch_is_cut_at_its_byte_budget_and_reads_back_as_a_report() {
        let items: Vec<ItemDetail> = (0..100).map(item).collect();
        let one = serde_json::to_vec(&items[0]).unwrap().len();
        let (encoded, n) = encode_items(&items, one * 10 + 9);
        assert_eq!(n, 10, "ten items and their commas fit");
        let (_, all) = encode_items(&items, usize::MAX);
        assert_eq!(all, 100);
        let (_, at_least_one) = encode_items(&items, 1);
        assert_eq!(at_least_one, 1, "a batch always carries something");
        let resources = flowdeck_protocol::Resources {
            cpu_ratio: Some(0.25),
            ..Default::default()
        };
        for snapshot in [None, Some(Snapshot::default())] {
            let head = Head {
                pipeline: "p",
                stages: &["a".to_owned()],
                edges: &[],
                started_unix_ms: 5,
                snapshot: snapshot.as_ref(),
                dropped: 3,
                questions: &[],
                resources: Some(&resources),
            };
            let back: flowdeck_protocol::report::ReportBatch =
                serde_json::from_slice(&body(&head, encoded.clone())).unwrap();
            assert_eq!(back.items, items[..10].to_vec());
            assert_eq!(back.resources.as_ref(), Some(&resources));
            assert_eq!((back.pipeline.as_str(), back.dropped), ("p", 3));
            assert_eq!(back.snapshot, snapshot);
        }
    }
}
