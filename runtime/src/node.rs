//! A stage at run time: its queue, its workers, and the controls over them. Typed inside;
//! the pipeline sees each stage through the object-safe [`StageRuntime`].

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use flowdeck_protocol::{EventKind, ItemId, ItemStatus, StageIndex};
use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::{
    ask::{Parked, Questions, StageAsking},
    clock::Clock,
    error::ControlError,
    events::{BatchSender, EventBuf, Subject, WeakBatchSender},
    port::{Envelope, Port},
    retry::RetryPolicy,
    stage::{Stage, TaskFn},
    worker::{self, WorkerSlot},
};

/// What all stages of one pipeline share.
pub(crate) struct Env {
    pub clock: Clock,
    next_id: AtomicU64,
    tracker: Option<WeakBatchSender>,
    pub tasks: tokio_util::task::TaskTracker,
    pub abort: crate::abort::Abort,
    /// The questions its stages ask people.
    pub questions: Arc<Questions>,
}

impl Env {
    pub(crate) fn new(tracker: Option<WeakBatchSender>, pipeline: &str) -> Self {
        let clock = Clock::new();
        Env {
            clock,
            next_id: AtomicU64::new(0),
            tracker,
            tasks: tokio_util::task::TaskTracker::new(),
            abort: crate::abort::Abort::default(),
            questions: Arc::new(Questions::new(pipeline.to_owned(), clock)),
        }
    }

    pub(crate) fn next_id(&self) -> ItemId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn ids_issued(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }

    /// The tracker's input, not holding it open.
    pub(crate) fn weak_tracker(&self) -> Option<WeakBatchSender> {
        self.tracker.clone()
    }

    /// A sender to the tracker, while it runs and tracking is on.
    pub(crate) fn tracker(&self) -> Option<BatchSender> {
        self.tracker.as_ref()?.upgrade()
    }
}

/// Pause, resize and cancel state of one stage.
pub(crate) struct StageCtl {
    paused: AtomicBool,
    target: AtomicUsize,
    /// Wakes idle and paused workers when any of the above changes.
    pub changed: Notify,
    cancelled: Mutex<HashSet<ItemId>>,
    cancelled_len: AtomicUsize,
}

impl StageCtl {
    fn new(workers: usize) -> Self {
        StageCtl {
            paused: AtomicBool::new(false),
            target: AtomicUsize::new(workers),
            changed: Notify::new(),
            cancelled: Mutex::new(HashSet::new()),
            cancelled_len: AtomicUsize::new(0),
        }
    }

    pub(crate) fn keeps(&self, index: u16) -> bool {
        usize::from(index) < self.target.load(Ordering::Acquire)
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Whether `id` was cancelled while queued; forgets it if so. Free when nothing is.
    pub(crate) fn take_cancelled(&self, id: ItemId) -> bool {
        if self.cancelled_len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut set = self.cancelled.lock();
        let hit = set.remove(&id);
        self.cancelled_len.store(set.len(), Ordering::Release);
        hit
    }

    fn mark_cancelled(&self, id: ItemId) {
        let mut set = self.cancelled.lock();
        set.insert(id);
        self.cancelled_len.store(set.len(), Ordering::Release);
    }
}

/// The inputs of failed items, kept so they can be retried, oldest let go first.
struct FailedInputs<I> {
    max: usize,
    order: VecDeque<ItemId>,
    values: HashMap<ItemId, I>,
}

pub(crate) struct StageNode<I, O, T: TaskFn<I, O>> {
    pub index: StageIndex,
    pub name: Arc<str>,
    pub task: T,
    pub retry: RetryPolicy<T::Error>,
    pub timeout: Option<Duration>,
    pub limiter: Option<DefaultDirectRateLimiter>,
    pub classify: crate::stage::Classify<T::Error>,
    pub env: Arc<Env>,
    pub ctl: StageCtl,
    pub input: crate::queue::Receiver<Envelope<I>>,
    /// For re-queueing a retried item without holding the queue open.
    input_tx: crate::queue::WeakSender<Envelope<I>>,
    port: Mutex<Option<Arc<Port<O>>>>,
    slots: RwLock<Vec<Arc<WorkerSlot>>>,
    failed: Mutex<FailedInputs<I>>,
    /// The joins this stage is the origin of: each makes a group for every item that
    /// completes here.
    pub origins: Vec<Arc<dyn crate::join::Begin<I>>>,
    /// What a join stage answers of its groups.
    pub join: Option<crate::join::JoinHooks>,
    /// Previews of inputs for the item's page, when the stage asked for them.
    pub capture: Option<crate::capture::Capturer<I>>,
    /// Previews of a sample of the outputs, when the stage asked for them.
    pub capture_output: Option<crate::capture::Capturer<O>>,
    pub capacity: usize,
    pub last_dequeued_enqueue_us: AtomicU64,
    /// What the stage's tasks ask people with (shared with its worker slots).
    asking: Arc<StageAsking>,
    /// Attempts parked while they wait for a person, by item, to cancel them.
    parked: Mutex<HashMap<ItemId, Arc<Parked>>>,
    /// Parked attempts not yet taken back by a worker: the workers stay while any are
    /// out, even after the input closed, to settle them.
    waiting: AtomicUsize,
    /// Parked attempts that ended, for the next free worker to settle.
    resumed_tx: async_channel::Sender<worker::Resumed<I, T::Outputs, T::Error>>,
    pub resumed_rx: async_channel::Receiver<worker::Resumed<I, T::Outputs, T::Error>>,
}

impl<I, O, T> StageNode<I, O, T>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: StageIndex,
        stage: Stage<I, O, T>,
        env: Arc<Env>,
        input: crate::queue::Receiver<Envelope<I>>,
        input_tx: crate::queue::WeakSender<Envelope<I>>,
        port: Port<O>,
        origins: Vec<Arc<dyn crate::join::Begin<I>>>,
        join: Option<crate::join::JoinHooks>,
    ) -> Arc<Self> {
        let name: Arc<str> = stage.name.into();
        let (resumed_tx, resumed_rx) = async_channel::unbounded();
        let asking = Arc::new(StageAsking {
            stage: index,
            stage_name: name.clone(),
            places: Arc::new(tokio::sync::Semaphore::new(stage.max_waiting.max(1))),
            max_waiting: stage.max_waiting.max(1),
            questions: env.questions.clone(),
        });
        Arc::new(StageNode {
            index,
            name,
            task: stage.task,
            retry: stage.retry,
            timeout: stage.timeout,
            limiter: stage
                .rate
                .map(|r| RateLimiter::direct(Quota::per_second(r))),
            classify: stage.classify,
            env,
            ctl: StageCtl::new(stage.workers),
            input,
            input_tx,
            port: Mutex::new(Some(Arc::new(port))),
            slots: RwLock::new(Vec::new()),
            failed: Mutex::new(FailedInputs {
                max: stage.keep_failed,
                order: VecDeque::new(),
                values: HashMap::new(),
            }),
            origins,
            join,
            capture: stage.capture,
            capture_output: stage.capture_output,
            capacity: stage.capacity,
            last_dequeued_enqueue_us: AtomicU64::new(0),
            asking,
            parked: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            resumed_tx,
            resumed_rx,
        })
    }

    /// Parked attempts not yet taken back by a worker.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Notes the attempt on `id` as parked (waiting for a person) as `p`.
    pub(crate) fn park(&self, id: ItemId, p: Arc<Parked>) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.parked.lock().insert(id, p);
    }

    /// The parked attempt on `id` has ended: it can no longer be cancelled as parked.
    pub(crate) fn unpark(&self, id: ItemId) {
        self.parked.lock().remove(&id);
    }

    /// Gives a parked attempt's outcome to the stage's workers.
    pub(crate) fn hand_back(&self, r: worker::Resumed<I, T::Outputs, T::Error>) {
        // Unbounded, and never closed while the stage lives: at most one per parked attempt.
        let _ = self.resumed_tx.try_send(r);
    }

    /// A worker took a parked attempt back (or it ended with the pipeline's abort). The
    /// last one wakes the workers that stay only for such attempts.
    pub(crate) fn taken_back(&self) {
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.ctl.changed.notify_waiters();
        }
    }

    /// Cancels every parked attempt (the pipeline drains or stops).
    pub(crate) fn cancel_parked(&self) {
        let parked: Vec<Arc<Parked>> = self.parked.lock().values().cloned().collect();
        for p in parked {
            p.cancel();
        }
    }

    pub(crate) fn port(&self) -> Option<Arc<Port<O>>> {
        self.port.lock().clone()
    }

    pub(crate) fn release_port(&self) {
        self.port.lock().take();
    }

    pub(crate) fn keep_failed_input(&self, id: ItemId, value: I) {
        let mut f = self.failed.lock();
        if f.max == 0 {
            return;
        }
        while f.order.len() >= f.max {
            if let Some(old) = f.order.pop_front() {
                f.values.remove(&old);
            }
        }
        f.order.push_back(id);
        f.values.insert(id, value);
    }
}

/// What the pipeline can do with a stage without knowing its types.
pub(crate) trait StageRuntime: Send + Sync {
    fn name(&self) -> &str;
    fn index(&self) -> StageIndex;
    fn capacity(&self) -> usize;
    fn queued(&self) -> usize;
    fn oldest_queued_us(&self, now_us: u64) -> u64;
    fn is_paused(&self) -> bool;
    /// Every worker slot the stage ever had, live or not: totals sum over all of them, so
    /// they never shrink when the stage is scaled down.
    fn slots(&self) -> Vec<Arc<WorkerSlot>>;
    /// Whether a slot is live: within the worker count, or still finishing an item.
    fn is_live(&self, slot: &WorkerSlot) -> bool;
    fn set_paused(&self, paused: bool);
    /// Sets the worker count, starting workers on free slots; surplus workers stop after
    /// their current item.
    fn set_workers(self: Arc<Self>, n: usize);
    /// Cancels `id` if a worker runs it; otherwise marks it so it is skipped when dequeued.
    fn cancel(&self, id: ItemId, queued_here: bool) -> bool;
    fn retry(
        &self,
        id: ItemId,
        tracker: Option<BatchSender>,
    ) -> BoxFuture<'static, Result<(), ControlError>>;
    /// Retries failed items `ids` of this stage at once: their kept inputs are taken now
    /// and sent back into the queue in the background, in order, so that a bulk retry
    /// never waits for room in the queue. Answers the ids that could not be, and why.
    fn retry_many(
        &self,
        ids: Vec<ItemId>,
        tracker: Option<BatchSender>,
    ) -> Vec<(ItemId, ControlError)>;
    /// Whether the stage still keeps failed item `id`'s input, to retry it.
    fn keeps_input(&self, id: ItemId) -> bool;
    /// Refuses new items: senders waiting on a full queue give up (used by abort).
    fn close_input(&self);
    /// Empties the queue after an abort, recording each item as cancelled.
    fn drain_cancelled<'a>(&'a self, buf: &'a mut EventBuf) -> BoxFuture<'a, u64>;
    /// Items waiting for a person's answer, and how many may wait at once.
    fn waiting(&self) -> usize;
    fn max_waiting(&self) -> usize;
    /// Cancels the attempts waiting for a person (the pipeline drains or stops).
    fn cancel_waiting(&self);
    /// A join stage's groups; `None` for other stages.
    fn join_stats(&self) -> Option<flowdeck_protocol::JoinSnapshot>;
    /// Which of a join stage's waiting groups item `id` is a part of, in words.
    fn group_of(&self, id: ItemId) -> Option<String>;
}

/// Puts failed items taken from `stage`'s kept inputs back into its queue, in order: each is
/// recorded queued again at once, then sent, waiting for room. If the run ends first, what
/// could not go back in is recorded cancelled, not left queued for good, and the answer is
/// [`ControlError::Finished`].
async fn requeue<I>(
    tx: crate::queue::Sender<Envelope<I>>,
    tracker: Option<BatchSender>,
    stage: StageIndex,
    now: u64,
    taken: Vec<(ItemId, I)>,
) -> Result<(), ControlError> {
    let mut buf = EventBuf::new(tracker);
    let at = |item| Subject {
        item,
        stage,
        worker: None,
    };
    for (id, _) in &taken {
        buf.push(at(*id).event(EventKind::Queued, Some(ItemStatus::Failed), now))
            .await;
    }
    buf.flush().await;
    let mut rest = taken.into_iter();
    let mut sent = Ok(());
    for (id, value) in rest.by_ref() {
        // Its groups let it go when it failed: it comes back on its own.
        let envelope = Envelope {
            id,
            value,
            enqueued_us: now,
            groups: Default::default(),
        };
        if tx.send(envelope).await.is_err() {
            buf.push(at(id).event(EventKind::Cancelled, Some(ItemStatus::Queued), now))
                .await;
            sent = Err(ControlError::Finished);
            break;
        }
    }
    for (id, _) in rest {
        buf.push(at(id).event(EventKind::Cancelled, Some(ItemStatus::Queued), now))
            .await;
    }
    buf.flush().await;
    sent
}

impl<I, O, T> StageRuntime for StageNode<I, O, T>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn index(&self) -> StageIndex {
        self.index
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn queued(&self) -> usize {
        self.input.len()
    }

    fn oldest_queued_us(&self, now_us: u64) -> u64 {
        if self.input.is_empty() {
            return 0;
        }
        // The queue is FIFO: its head was enqueued no earlier than the last item taken.
        now_us.saturating_sub(self.last_dequeued_enqueue_us.load(Ordering::Relaxed))
    }

    fn is_paused(&self) -> bool {
        self.ctl.is_paused()
    }

    fn slots(&self) -> Vec<Arc<WorkerSlot>> {
        self.slots.read().clone()
    }

    fn is_live(&self, slot: &WorkerSlot) -> bool {
        usize::from(slot.index) < self.ctl.target.load(Ordering::Acquire)
            || slot.running.load(Ordering::Acquire)
    }

    fn set_paused(&self, paused: bool) {
        self.ctl.paused.store(paused, Ordering::Release);
        self.ctl.changed.notify_waiters();
    }

    fn set_workers(self: Arc<Self>, n: usize) {
        let n = n.min(usize::from(u16::MAX - 1));
        self.ctl.target.store(n, Ordering::Release);
        {
            let mut slots = self.slots.write();
            while slots.len() < n {
                let index = u16::try_from(slots.len()).unwrap_or(u16::MAX - 1);
                slots.push(Arc::new(WorkerSlot::new(
                    index,
                    self.asking.clone(),
                    &self.env,
                )));
            }
        }
        let slots = self.slots.read().clone();
        for slot in slots.into_iter().take(n) {
            // Exactly one of this and a worker deciding to stay wins the slot.
            if !slot.running.swap(true, Ordering::AcqRel) {
                let node = self.clone();
                let abort = self.env.abort.clone();
                self.env.tasks.spawn(worker::run(node, slot, abort));
            }
        }
        self.ctl.changed.notify_waiters();
    }

    fn cancel(&self, id: ItemId, queued_here: bool) -> bool {
        if self.slots.read().iter().any(|s| s.cancel_if_running(id)) {
            return true;
        }
        if let Some(p) = self.parked.lock().get(&id).cloned() {
            p.cancel();
            return true;
        }
        if queued_here {
            self.ctl.mark_cancelled(id);
        }
        queued_here
    }

    fn keeps_input(&self, id: ItemId) -> bool {
        self.failed.lock().values.contains_key(&id)
    }

    fn retry(
        &self,
        id: ItemId,
        tracker: Option<BatchSender>,
    ) -> BoxFuture<'static, Result<(), ControlError>> {
        let taken = {
            let mut f = self.failed.lock();
            match self.input_tx.upgrade() {
                _ if !f.values.contains_key(&id) => Err(ControlError::InputGone(id)),
                // With the run over the input stays kept: asked again, the answer is
                // still that the run finished, not that the input is gone.
                None => Err(ControlError::Finished),
                Some(tx) => {
                    f.order.retain(|x| *x != id);
                    let value = f.values.remove(&id);
                    value.map(|v| (tx, v)).ok_or(ControlError::InputGone(id))
                }
            }
        };
        let (stage, now) = (self.index, self.env.clock.now_us());
        // Taken out of the kept failures, the input is in this retry's hands alone: the
        // send runs in a task of its own, so a caller that stops waiting (a request's
        // deadline, on a stage whose queue stays full) leaves it to finish, not an item
        // the tracker shows queued that no queue holds.
        let sent = taken.map(|(tx, value)| {
            let requeue = requeue(tx, tracker, stage, now, vec![(id, value)]);
            self.env.tasks.spawn(requeue)
        });
        Box::pin(async move { sent?.await.unwrap_or(Err(ControlError::Finished)) })
    }

    fn retry_many(
        &self,
        ids: Vec<ItemId>,
        tracker: Option<BatchSender>,
    ) -> Vec<(ItemId, ControlError)> {
        let Some(tx) = self.input_tx.upgrade() else {
            return ids
                .into_iter()
                .map(|id| (id, ControlError::Finished))
                .collect();
        };
        let (mut taken, mut refused) = (Vec::with_capacity(ids.len()), Vec::new());
        {
            let mut f = self.failed.lock();
            for id in ids {
                match f.values.remove(&id) {
                    Some(v) => taken.push((id, v)),
                    None => refused.push((id, ControlError::InputGone(id))),
                }
            }
            // One pass over the kept order, not one per item.
            let gone: HashSet<ItemId> = taken.iter().map(|(id, _)| *id).collect();
            f.order.retain(|x| !gone.contains(x));
        }
        let (stage, now) = (self.index, self.env.clock.now_us());
        self.env
            .tasks
            .spawn(requeue(tx, tracker, stage, now, taken));
        refused
    }

    fn close_input(&self) {
        self.input.close();
    }

    fn waiting(&self) -> usize {
        self.parked.lock().len()
    }

    fn max_waiting(&self) -> usize {
        self.asking.max_waiting
    }

    fn cancel_waiting(&self) {
        self.cancel_parked();
    }

    fn join_stats(&self) -> Option<flowdeck_protocol::JoinSnapshot> {
        self.join.as_ref().map(|j| (j.stats)())
    }

    fn group_of(&self, id: ItemId) -> Option<String> {
        self.join.as_ref().and_then(|j| (j.group_of)(id))
    }

    fn drain_cancelled<'a>(&'a self, buf: &'a mut EventBuf) -> BoxFuture<'a, u64> {
        Box::pin(async move {
            let mut n = 0;
            while let Ok(e) = self.input.try_recv() {
                n += 1;
                let here = Subject {
                    item: e.id,
                    stage: self.index,
                    worker: None,
                };
                let at = self.env.clock.now_us();
                buf.push(here.event(EventKind::Cancelled, Some(ItemStatus::Queued), at))
                    .await;
                let end = crate::group::End::cancelled;
                e.groups.end(e.id, end, at, buf, None).await;
            }
            n
        })
    }
}
