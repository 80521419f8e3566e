//! The driver's side of a distributed stage: the process that runs the pipeline puts
//! [`Remote`] in the stage's place. Each of its workers takes an item from the stage's
//! queue as usual, dispatches it to the stage's JetStream stream, and waits for the reply
//! a worker process publishes; the outputs then go on through the pipeline like any
//! stage's. So the queue, backpressure, routing, fan-out, the tracker and every page work
//! as in one process. The number of these workers is how many items are out in the
//! cluster at once; the stage's rate limit applies to dispatches, so it holds for the
//! whole cluster.
//!
//! Replies are read by one task per stage and matched to the waiting dispatch by its
//! number. A reply with no dispatch waiting is a duplicate (a redelivered item answered
//! twice outside JetStream's duplicate window) or a stale one (of an earlier run), and is
//! only counted: every item reaches the next stage once.

use std::{
    collections::HashMap,
    fmt,
    marker::PhantomData,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Weak,
    },
    time::Duration,
};

use async_nats::jetstream::{consumer::PullConsumer, AckKind};
use flowdeck_runtime::{Ctx, TaskFn};
use futures::StreamExt;
use parking_lot::Mutex;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::{mpsc, oneshot, OnceCell};

use crate::{
    cluster::Inner,
    msg_id, publish, purge,
    queue::Fetcher,
    replies_queue, stage_queue,
    wire::{Answer, AnswerCommand, Envelope, QuestionNotice, Reply, RetryNotice},
    StageQueue,
};

/// Why a distributed item failed, as the driver's error summary shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteError {
    /// The kind the worker's stage gave it (its `classify`), or `Timeout`, `Panic`,
    /// `Decode`, `Lost`, `Cluster`.
    pub kind: String,
    pub message: String,
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The driver's counts of its dispatches and replies.
#[derive(Default)]
pub(crate) struct DriverCounters {
    pub dispatched: AtomicU64,
    pub answered: AtomicU64,
    pub redelivered: AtomicU64,
    pub unmatched: AtomicU64,
    pub malformed: AtomicU64,
}

/// A dispatch waiting for its reply, and told of its retries and questions meanwhile.
struct Waiting {
    reply: oneshot::Sender<Reply>,
    retries: mpsc::UnboundedSender<RetryNotice>,
    questions: mpsc::UnboundedSender<QuestionNotice>,
}

/// One distributed stage, in the driver.
pub(crate) struct DriverStage {
    pub name: String,
    pub queue: StageQueue,
    pub inner: Arc<Inner>,
    pending: Mutex<HashMap<u64, Waiting>>,
    next: AtomicU64,
    ready: OnceCell<()>,
}

impl DriverStage {
    pub(crate) fn new(name: String, queue: StageQueue, inner: Arc<Inner>) -> Arc<Self> {
        Arc::new(DriverStage {
            name,
            queue,
            inner,
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            ready: OnceCell::new(),
        })
    }

    /// Creates the stage's streams and consumers, empties them of an earlier run's
    /// leftovers and starts reading replies: once, at the first dispatch.
    async fn ready(self: &Arc<Self>) -> Result<(), RemoteError> {
        self.ready
            .get_or_try_init(|| async {
                let js = &self.inner.js;
                let o = &self.inner.settings.queue;
                let setup = async {
                    stage_queue(js, &self.queue, o).await?;
                    let replies = replies_queue(js, &self.queue, o, &self.inner.run).await?;
                    purge(js, &self.queue).await?;
                    Ok::<_, crate::ClusterError>(replies)
                };
                let replies = setup.await.map_err(|e| RemoteError {
                    kind: "Cluster".into(),
                    message: format!("cannot set up stage {}'s streams: {e}", self.name),
                })?;
                let retries = self
                    .inner
                    .js
                    .client()
                    .subscribe(self.queue.retries_subject())
                    .await
                    .map_err(|e| RemoteError {
                        kind: "Cluster".into(),
                        message: format!("cannot follow stage {}'s retries: {e}", self.name),
                    })?;
                let questions = self
                    .inner
                    .js
                    .client()
                    .subscribe(self.queue.questions_subject())
                    .await
                    .map_err(|e| RemoteError {
                        kind: "Cluster".into(),
                        message: format!("cannot follow stage {}'s questions: {e}", self.name),
                    })?;
                tokio::spawn(read_replies(Arc::downgrade(self), replies));
                tokio::spawn(read_retries(Arc::downgrade(self), retries));
                tokio::spawn(read_questions(Arc::downgrade(self), questions));
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Hands a reply to the dispatch waiting for it.
    fn settle(&self, reply: Reply) {
        let c = &self.inner.counters;
        let waiting = match (&reply.run, reply.dispatch) {
            (Some(run), Some(d)) if *run == self.inner.run => self.pending.lock().remove(&d),
            _ => None,
        };
        if let Some(w) = waiting {
            c.answered.fetch_add(1, Ordering::Relaxed);
            if reply.deliveries > 1 {
                c.redelivered.fetch_add(1, Ordering::Relaxed);
            }
            let _ = w.reply.send(reply);
        } else if matches!(
            reply.outcome,
            Answer::Failed {
                payload: Some(_),
                ..
            }
        ) {
            // Something on the stage's subject that was no dispatch of this run.
            c.malformed.fetch_add(1, Ordering::Relaxed);
            self.inner.record_malformed(&self.name, reply);
        } else {
            c.unmatched.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Passes the workers' retry notices to the dispatches they are about, until the stage is
/// gone.
async fn read_retries(stage: Weak<DriverStage>, mut notices: async_nats::Subscriber) {
    while let Some(m) = notices.next().await {
        let Some(s) = stage.upgrade() else { return };
        let Ok(n) = serde_json::from_slice::<RetryNotice>(&m.payload) else {
            continue;
        };
        if n.run == s.inner.run {
            if let Some(w) = s.pending.lock().get(&n.dispatch) {
                let _ = w.retries.send(n);
            }
        }
    }
}

/// Passes the questions worker processes ask (and their closings) to the dispatches they
/// are about, until the stage is gone.
async fn read_questions(stage: Weak<DriverStage>, mut notices: async_nats::Subscriber) {
    while let Some(m) = notices.next().await {
        let Some(s) = stage.upgrade() else { return };
        let Ok(n) = serde_json::from_slice::<QuestionNotice>(&m.payload) else {
            continue;
        };
        if n.run == s.inner.run {
            if let Some(w) = s.pending.lock().get(&n.dispatch) {
                let _ = w.questions.send(n);
            }
        }
    }
}

/// Reads a stage's replies until the stage is gone.
async fn read_replies(stage: Weak<DriverStage>, consumer: PullConsumer) {
    let mut replies = Fetcher::new(consumer, "read replies");
    loop {
        if stage.strong_count() == 0 {
            return;
        }
        let Some(mut batch) = replies.fetch(512).await else {
            continue;
        };
        while let Some(Ok(msg)) = batch.next().await {
            let Some(s) = stage.upgrade() else { return };
            match serde_json::from_slice::<Reply>(&msg.payload) {
                Ok(reply) => {
                    s.settle(reply);
                    let _ = msg.ack().await;
                }
                Err(e) => {
                    tracing::warn!(
                        "a message on {} is no reply: {e}",
                        s.queue.replies_subject()
                    );
                    let _ = msg.ack_with(AckKind::Term).await;
                }
            }
        }
    }
}

/// Shows a worker process's question about the dispatched item as the item's, with its
/// answers going back to that process; or closes it as it closed there. `relayed` maps
/// each (process, question id there) to this dashboard's id.
async fn relay(
    stage: &Arc<DriverStage>,
    cx: &Ctx,
    n: QuestionNotice,
    relayed: &mut HashMap<(String, u64), u64>,
) {
    use flowdeck_protocol::question::{QuestionChange, QuestionState};
    match n.change {
        QuestionChange::Asked(q) => {
            if relayed.contains_key(&(n.process.clone(), q.id)) {
                return;
            }
            // Asked by another process: the item was delivered again (the one that asked
            // first died or stalled), whose questions nobody can answer any more.
            let stale: Vec<((String, u64), u64)> = relayed
                .iter()
                .filter(|((p, _), _)| *p != n.process)
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            for (key, here) in stale {
                relayed.remove(&key);
                if let Some(mut old) = cx.questions_here(here) {
                    if old.state.is_pending() {
                        old.state = QuestionState::Cancelled;
                        cx.relayed_closed(here, old).await;
                    }
                }
            }
            let there = q.id;
            let (client, subject) = (
                stage.inner.js.client().clone(),
                stage.queue.answers_subject(&n.process),
            );
            let send = move |question: u64,
                             reply: &flowdeck_protocol::question::Reply,
                             by: Option<&str>| {
                let answer = AnswerCommand {
                    question,
                    reply: reply.clone(),
                    by: by.map(str::to_owned),
                };
                if let Ok(body) = serde_json::to_vec(&answer) {
                    let (client, subject) = (client.clone(), subject.clone());
                    tokio::spawn(async move {
                        let _ = client.publish(subject, body.into()).await;
                    });
                }
            };
            if let Ok(here) = cx.relay_question(q, Arc::new(send)).await {
                relayed.insert((n.process, there), here);
            }
        }
        QuestionChange::Closed(q) => {
            if let Some(here) = relayed.get(&(n.process, q.id)) {
                cx.relayed_closed(*here, q).await;
            }
        }
    }
}

/// Forgets a dispatch whose wait was given up (the item was cancelled or the run aborted).
struct Forget<'a> {
    stage: &'a DriverStage,
    dispatch: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.stage.pending.lock().remove(&self.dispatch);
    }
}

/// The stand-in for a distributed stage's task in the driver (see the module's
/// documentation). `T` is the user's task, which the worker processes run.
pub struct Remote<I, O, T> {
    pub(crate) stage: Arc<DriverStage>,
    pub(crate) _types: PhantomData<fn(I, T) -> O>,
}

impl<I, O, T> TaskFn<I, O> for Remote<I, O, T>
where
    I: Serialize + Send + 'static,
    O: DeserializeOwned + Send + 'static,
    T: TaskFn<I, O>,
{
    type Error = RemoteError;
    type Outputs = Vec<O>;
    const FAN_OUT: bool = T::FAN_OUT;

    fn call(
        &self,
        input: I,
        cx: Ctx,
    ) -> impl std::future::Future<Output = Result<Vec<O>, RemoteError>> + Send + 'static {
        let stage = self.stage.clone();
        async move {
            stage.ready().await?;
            let inner = &stage.inner;
            let dispatch = stage.next.fetch_add(1, Ordering::Relaxed);
            let item = cx.item();
            let body = serde_json::to_vec(&Envelope {
                run: inner.run.clone(),
                dispatch,
                item,
                value: &input,
            })
            .map_err(|e| RemoteError {
                kind: "Encode".into(),
                message: format!("the item does not encode: {e}"),
            })?;
            drop(input);
            let (tx, mut rx) = oneshot::channel();
            let (retries, mut retried) = mpsc::unbounded_channel();
            let (questions, mut asked) = mpsc::unbounded_channel();
            stage.pending.lock().insert(
                dispatch,
                Waiting {
                    reply: tx,
                    retries,
                    questions,
                },
            );
            let _forget = Forget {
                stage: &stage,
                dispatch,
            };
            let id = msg_id(&inner.run, stage.queue.stage(), item, dispatch);
            let mut backoff = Duration::from_millis(50);
            // Until NATS has it: the same id each time, so a publish that did arrive but
            // was not confirmed is not stored twice.
            while let Err(e) =
                publish(&inner.js, stage.queue.subject(), &id, body.clone().into()).await
            {
                tracing::debug!("dispatch {dispatch} not confirmed ({e}); again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            inner.counters.dispatched.fetch_add(1, Ordering::Relaxed);
            // Each failed attempt a worker sends back shows on the item's page meanwhile,
            // and each question its task asks is the item's here: listed and answered on
            // this dashboard, the item waiting (this attempt parked, holding no worker).
            let mut relayed: HashMap<(String, u64), u64> = HashMap::new();
            let reply = loop {
                tokio::select! {
                    r = &mut rx => break r,
                    Some(n) = retried.recv() => cx.retried(&n.kind, &n.message).await,
                    Some(n) = asked.recv() => relay(&stage, &cx, n, &mut relayed).await,
                }
            };
            let reply = reply.map_err(|_| RemoteError {
                kind: "Cluster".into(),
                message: "the stage stopped before the item was answered".into(),
            })?;
            cx.annotate("process", reply.process.clone());
            if reply.deliveries > 1 {
                cx.annotate("deliveries", reply.deliveries);
            }
            match reply.outcome {
                Answer::Done(values) => values
                    .into_iter()
                    .map(serde_json::from_value)
                    .collect::<Result<Vec<O>, _>>()
                    .map_err(|e| RemoteError {
                        kind: "Decode".into(),
                        message: format!("an output does not decode in the driver: {e}"),
                    }),
                Answer::Failed { kind, message, .. } => Err(RemoteError { kind, message }),
            }
        }
    }
}
