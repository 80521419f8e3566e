//! A worker process's side of a distributed stage.
//!
//! The stage runs in a pipeline of its own here, of one stage, so that the runtime does
//! what it does everywhere else: N workers, `set_workers`, pause, panics caught, a
//! tracker and snapshots (which the heartbeats are made of). A puller fetches messages
//! only for free workers (and as many more: see `Gate::free`), so no message waits in this
//! process while its `ack_wait` runs out; each message becomes one item of that local pipeline, whose task is `answer`:
//! - decode the item (a message that does not decode is answered as failed, `Decode`,
//!   and terminated: never a worker crash);
//! - run the user's task with the stage's timeout, catching panics, and send `Progress`
//!   every third of `ack_wait` so a long item keeps its claim;
//! - on success, publish the reply under its deterministic id, and only then ack;
//! - on failure, `Nak` with the retry policy's backoff while it allows another attempt;
//!   after the last, publish the failure as the reply and terminate.
//!
//! A delivery lost to a crashed or stalled worker counts as an attempt: the retry policy
//! sees JetStream's delivery count. An item delivered [`POISON_SLACK`] times more than it
//! has attempts (it kills every worker that takes it) fails without running again.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind, Message};
use flowdeck_protocol::ProcessStage;
use flowdeck_runtime::{guard, Ctx, Feeder, Line, RetryPolicy, Stage, TaskFn};
use futures::{FutureExt, StreamExt};
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::Notify;

use crate::{
    publish,
    queue::Fetcher,
    reply_id,
    wire::{Answer, Envelope, Reply, RetryNotice},
    QueueOptions, StageQueue,
};

/// Deliveries beyond an item's attempts after which it fails without running again.
pub const POISON_SLACK: u32 = 10;

/// The most messages one fetch asks for.
const FETCH_MAX: usize = 64;

/// The user's stage as a worker process runs it.
pub(crate) struct WorkerStage<I, O, T: TaskFn<I, O>> {
    pub queue: StageQueue,
    pub task: T,
    pub retry: RetryPolicy<T::Error>,
    pub timeout: Option<Duration>,
    pub classify: flowdeck_runtime::Classify<T::Error>,
    pub js: jetstream::Context,
    pub options: QueueOptions,
    pub process: String,
    pub counters: Arc<Counters>,
    /// The dispatch each local item is running, for its questions' notices.
    pub dispatches: Dispatches,
    pub _types: std::marker::PhantomData<fn(I) -> O>,
}

/// The local items in hand, each with the dispatch it runs: (run, dispatch, the driver's
/// item).
pub(crate) type Dispatches =
    Arc<parking_lot::Mutex<std::collections::HashMap<u64, (String, u64, u64)>>>;

/// What a process's workers did with a stage's items, for its heartbeats.
#[derive(Default)]
pub(crate) struct Counters {
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub redelivered: AtomicU64,
    pub duplicate_replies: AtomicU64,
}

impl Counters {
    pub(crate) fn beat(&self, beat: &mut ProcessStage) {
        beat.done = self.done.load(Ordering::Relaxed);
        beat.failed = self.failed.load(Ordering::Relaxed);
        beat.retried = self.retried.load(Ordering::Relaxed);
        beat.redelivered = self.redelivered.load(Ordering::Relaxed);
        beat.duplicate_replies = self.duplicate_replies.load(Ordering::Relaxed);
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A pulled message on its way through the local pipeline; it holds one of the puller's
/// free slots until the last copy is dropped.
#[derive(Clone)]
pub(crate) struct Delivery {
    msg: Arc<Message>,
    _slot: Arc<Slot>,
}

/// How many messages this process may hold for a stage, and whether it should pull.
#[derive(Default)]
pub(crate) struct Gate {
    pub target: AtomicUsize,
    held: AtomicUsize,
    pub paused: AtomicBool,
    pub stopping: AtomicBool,
    pub changed: Notify,
}

impl Gate {
    pub(crate) fn new(workers: usize) -> Arc<Self> {
        let g = Gate::default();
        g.target.store(workers, Ordering::Release);
        Arc::new(g)
    }

    /// Messages the puller may fetch now: a process holds at most twice its workers'
    /// count, those running and as many waiting or having their reply published. So a
    /// worker that finishes finds its next item in hand (a fetch is a round trip), and no
    /// message waits longer than about one item's time, far inside `ack_wait`.
    fn free(&self) -> usize {
        (2 * self.target.load(Ordering::Acquire)).saturating_sub(self.held.load(Ordering::Acquire))
    }

    pub(crate) fn poke(&self) {
        self.changed.notify_waiters();
    }

    /// Waits for a change, or a short while (a notification between the check and the
    /// wait would otherwise be missed).
    async fn wait(&self) {
        let _ = tokio::time::timeout(Duration::from_millis(100), self.changed.notified()).await;
    }
}

struct Slot(Arc<Gate>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
        self.0.poke();
    }
}

/// Why an attempt failed.
struct Failure<E> {
    kind: String,
    message: String,
    /// The task's own error, which the retry policy's filter looks at.
    error: Option<E>,
}

impl<E> Failure<E> {
    fn runtime(kind: &str, message: impl Into<String>) -> Self {
        Failure {
            kind: kind.to_owned(),
            message: message.into(),
            error: None,
        }
    }
}

impl<I, O, T> WorkerStage<I, O, T>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    T: TaskFn<I, O>,
{
    /// Starts the stage's local pipeline and its puller; `workers` run at once.
    pub(crate) fn start(
        self: Arc<Self>,
        consumer: PullConsumer,
        name: String,
        workers: usize,
    ) -> Result<(flowdeck_runtime::PipelineHandle, Arc<Gate>), String> {
        let stage = self.clone();
        let local = Line::<Delivery>::new(name.clone())
            .retention(1_000)
            .stage(
                Stage::map(name, move |d: Delivery, cx: Ctx| {
                    let stage = stage.clone();
                    async move { stage.answer(d, cx).await }
                })
                .workers(workers)
                .queue(2 * workers.max(1))
                // A kept input would hold its slot: retries by hand go through the driver.
                .keep_failed(0),
            )
            .build()
            .map_err(|e| e.to_string())?;
        let running = local.start();
        let gate = Gate::new(workers);
        tokio::spawn(pull(consumer, running.input, gate.clone()));
        Ok((running.handle, gate))
    }

    /// What one worker does with one delivery; `Err` marks the local item as failed.
    async fn answer(self: &Arc<Self>, d: Delivery, cx: Ctx) -> Result<(), String> {
        let msg = &*d.msg;
        let delivered = msg.info().map_or(1, |i| i.delivered);
        if delivered > 1 {
            bump(&self.counters.redelivered);
        }
        let envelope: Envelope<I> = match serde_json::from_slice(&msg.payload) {
            Ok(e) => e,
            Err(e) => return self.malformed(msg, delivered, e).await,
        };
        let Envelope {
            run,
            dispatch,
            item,
            value,
        } = envelope;
        let reply = |outcome| Reply {
            run: Some(run.clone()),
            dispatch: Some(dispatch),
            item: Some(item),
            deliveries: delivered,
            process: self.process.clone(),
            outcome,
        };
        let id = reply_id(&run, self.queue.stage(), dispatch);
        let attempt = u32::try_from(delivered).unwrap_or(u32::MAX);
        let local = cx.item();
        self.dispatches
            .lock()
            .insert(local, (run.clone(), dispatch, item));
        let result = if attempt > self.retry.max_attempts().saturating_add(POISON_SLACK) {
            Err(Failure::runtime(
                "Lost",
                format!(
                    "delivered {delivered} times without an answer: each worker that took it \
                     died or stalled"
                ),
            ))
        } else {
            with_progress(msg, self.options.ack_wait, self.attempt(value, cx)).await
        };
        self.dispatches.lock().remove(&local);
        let failure = match result.map(|outs| {
            outs.into_iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()
        }) {
            Ok(Ok(values)) => {
                let reply = reply(Answer::Done(values));
                let (stage, d) = (self.clone(), d.clone());
                // Two round trips to the server that need no worker: the worker goes on to
                // its next item meanwhile (the delivery keeps its place in the gate).
                tokio::spawn(async move {
                    if stage.reply(&d.msg, &id, &reply).await.is_ok() {
                        // Confirmed by the server: an ack lost on the way would leave the
                        // item to be delivered again, which the reply's id makes harmless,
                        // but counted.
                        let _ = d.msg.double_ack().await;
                        bump(&stage.counters.done);
                    }
                });
                return Ok(());
            }
            Ok(Err(e)) => Failure::runtime("Encode", format!("an output does not encode: {e}")),
            Err(f) => f,
        };
        let retry = match self.retry.should_retry(attempt, failure.error.as_ref()) {
            Ok(retry) => retry,
            Err(m) => return self.fail(msg, &id, reply, "Panic", m).await,
        };
        if retry {
            let _ = msg
                .ack_with(AckKind::Nak(Some(self.retry.delay(attempt))))
                .await;
            bump(&self.counters.retried);
            let notice = RetryNotice {
                run: run.clone(),
                dispatch,
                delivery: delivered,
                kind: failure.kind,
                message: failure.message.clone(),
            };
            if let Ok(body) = serde_json::to_vec(&notice) {
                let _ = self
                    .js
                    .client()
                    .publish(self.queue.retries_subject(), body.into())
                    .await;
            }
            return Err(failure.message);
        }
        self.fail(msg, &id, reply, &failure.kind, failure.message)
            .await
    }

    /// Ends an item as failed: the failure is its reply, then the message is terminated.
    async fn fail(
        &self,
        msg: &Message,
        id: &str,
        reply: impl Fn(Answer) -> Reply,
        kind: &str,
        message: String,
    ) -> Result<(), String> {
        let answer = Answer::Failed {
            kind: kind.to_owned(),
            message: message.clone(),
            payload: None,
        };
        self.reply(msg, id, &reply(answer)).await?;
        let _ = msg.ack_with(AckKind::Term).await;
        bump(&self.counters.failed);
        Err(message)
    }

    /// A message that is not an item of this stage: answered as failed with what could be
    /// read of it, and terminated.
    async fn malformed(
        &self,
        msg: &Message,
        delivered: i64,
        e: serde_json::Error,
    ) -> Result<(), String> {
        let head = serde_json::from_slice::<serde_json::Value>(&msg.payload).ok();
        let field = |k: &str| head.as_ref().and_then(|v| v.get(k)).cloned();
        let run = field("run").and_then(|v| v.as_str().map(str::to_owned));
        let dispatch = field("dispatch").and_then(|v| v.as_u64());
        let body = String::from_utf8_lossy(&msg.payload);
        let payload: String = body.chars().take(256).collect();
        let message = format!("not an item of stage {}: {e}", self.queue.stage());
        let id = match (&run, dispatch) {
            (Some(run), Some(d)) => reply_id(run, self.queue.stage(), d),
            _ => format!(
                "malformed.d{}.{}",
                self.queue.stage(),
                msg.info().map_or(0, |i| i.stream_sequence)
            ),
        };
        let reply = Reply {
            run,
            dispatch,
            item: field("item").and_then(|v| v.as_u64()),
            deliveries: delivered,
            process: self.process.clone(),
            outcome: Answer::Failed {
                kind: "Decode".to_owned(),
                message: message.clone(),
                payload: Some(payload),
            },
        };
        self.reply(msg, &id, &reply).await?;
        let _ = msg.ack_with(AckKind::Term).await;
        bump(&self.counters.failed);
        Err(message)
    }

    /// Publishes a reply; when NATS does not take it, the item comes back a second later
    /// (`Nak`) to be answered again.
    async fn reply(&self, msg: &Message, id: &str, reply: &Reply) -> Result<(), String> {
        let sent = match serde_json::to_vec(reply) {
            Ok(body) => publish(&self.js, self.queue.replies_subject(), id, body.into())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(duplicate) => {
                if duplicate {
                    bump(&self.counters.duplicate_replies);
                }
                Ok(())
            }
            Err(e) => {
                let _ = msg
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
                Err(format!("the reply was not published: {e}"))
            }
        }
    }

    /// One attempt of the user's task: its timeout applied, a panic caught.
    async fn attempt(&self, value: I, cx: Ctx) -> Result<T::Outputs, Failure<T::Error>> {
        let fut =
            guard::call(|| self.task.call(value, cx)).map_err(|m| Failure::runtime("Panic", m))?;
        let fut = AssertUnwindSafe(fut).catch_unwind();
        let result = match self.timeout {
            Some(limit) => tokio::time::timeout(limit, fut).await.map_err(|_| {
                Failure::runtime("Timeout", format!("attempt took longer than {limit:?}"))
            })?,
            None => fut.await,
        };
        match result {
            Err(panic) => Err(Failure::runtime("Panic", guard::message(panic.as_ref()))),
            Ok(Ok(outs)) => Ok(outs),
            Ok(Err(e)) => {
                let kind = guard::call(|| (self.classify)(&e)).unwrap_or_else(|_| "Panic".into());
                let message = guard::call(|| e.to_string())
                    .unwrap_or_else(|m| format!("the error's Display panicked: {m}"));
                Err(Failure {
                    kind,
                    message,
                    error: Some(e),
                })
            }
        }
    }
}

/// Fetches messages for free workers only, and hands them to the local pipeline. Stops
/// fetching while paused; ends when told to stop, dropping the feeder so the local
/// pipeline drains.
async fn pull(consumer: PullConsumer, feeder: Feeder<Delivery>, gate: Arc<Gate>) {
    let mut items = Fetcher::new(consumer, "pull");
    while !gate.stopping.load(Ordering::Acquire) {
        let free = gate.free();
        if gate.paused.load(Ordering::Acquire) || free == 0 {
            gate.wait().await;
            continue;
        }
        let Some(mut batch) = items.fetch(free.min(FETCH_MAX)).await else {
            continue;
        };
        while let Some(m) = batch.next().await {
            let Ok(msg) = m else { break };
            gate.held.fetch_add(1, Ordering::AcqRel);
            let d = Delivery {
                msg: Arc::new(msg),
                _slot: Arc::new(Slot(gate.clone())),
            };
            if feeder.send(d).await.is_err() {
                return;
            }
        }
    }
}

/// Runs `work`, telling the server every third of `ack_wait` that the item is still being
/// worked on.
async fn with_progress<T>(msg: &Message, ack_wait: Duration, work: impl Future<Output = T>) -> T {
    let every = (ack_wait / 3).max(Duration::from_millis(10));
    let mut work = std::pin::pin!(work);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => { let _ = msg.ack_with(AckKind::Progress).await; }
        }
    }
}

/// Tells the driver of the questions this process's tasks ask about the items of `queue`
/// (and their closings), with the dispatch each is about, and takes the answers given on
/// its dashboard. Ends with the local pipeline.
pub(crate) async fn relay_questions(
    client: async_nats::Client,
    queue: StageQueue,
    process: String,
    local: flowdeck_runtime::PipelineHandle,
    dispatches: Dispatches,
) {
    use flowdeck_protocol::question::QuestionChange;
    use tokio::sync::broadcast::error::RecvError;
    let mut changes = local.questions().subscribe();
    let mut answers = match client.subscribe(queue.answers_subject(&process)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(
                "questions of stage {} cannot be answered from the driver: {e}",
                queue.stage()
            );
            return;
        }
    };
    loop {
        tokio::select! {
            change = changes.recv() => {
                let change = match change {
                    Ok(c) => c,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                let mut q = change.question().clone();
                let Some((run, dispatch, item)) = dispatches.lock().get(&q.item).cloned() else {
                    continue;
                };
                q.item = item;
                let change = match change {
                    QuestionChange::Asked(_) => QuestionChange::Asked(q),
                    QuestionChange::Closed(_) => QuestionChange::Closed(q),
                };
                let notice = crate::wire::QuestionNotice { run, dispatch, process: process.clone(), change };
                if let Ok(body) = serde_json::to_vec(&notice) {
                    let _ = client.publish(queue.questions_subject(), body.into()).await;
                }
            }
            Some(m) = answers.next() => {
                let Ok(a) = serde_json::from_slice::<crate::wire::AnswerCommand>(&m.payload) else {
                    continue;
                };
                if let Err(e) = local.questions().answer(a.question, &a.reply, a.by.as_deref()) {
                    tracing::info!("an answer from the driver was not taken: {e}");
                }
            }
        }
    }
}
