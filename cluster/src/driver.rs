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
    wire::{Answer, Envelope, Reply, RetryNotice},
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

/// A dispatch waiting for its reply, and told of its retries meanwhile.
struct Waiting {
    reply: oneshot::Sender<Reply>,
    retries: mpsc::UnboundedSender<RetryNotice>,
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
                tokio::spawn(read_replies(Arc::downgrade(self), replies));
                tokio::spawn(read_retries(Arc::downgrade(self), retries));
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
            stage
                .pending
                .lock()
                .insert(dispatch, Waiting { reply: tx, retries });
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
            // Each failed attempt a worker sends back shows on the item's page meanwhile.
            let reply = loop {
                tokio::select! {
                    r = &mut rx => break r,
                    Some(n) = retried.recv() => cx.retried(&n.kind, &n.message).await,
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
