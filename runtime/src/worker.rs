//! A worker: takes items from its stage's queue one at a time, runs the task with the
//! stage's timeout, retry and rate limit, catches panics, and passes outputs on.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
        Arc, OnceLock,
    },
    task::{Context, Poll},
    time::Duration,
};

use crate::abort::Abort;
use flowdeck_protocol::{EventKind, ItemId, ItemStatus, StageIndex, Value, WorkerState};
use futures::{task::AtomicWaker, FutureExt};
use parking_lot::Mutex;

use crate::{
    ask::{Answer, Parked, Question, StageAsking, Unanswered},
    clock::Clock,
    error::{error_info, runtime_error},
    events::{EventBuf, Note, Subject},
    group::{End, Groups, Why},
    guard,
    histogram::AtomicHistogram,
    node::StageNode,
    port::{Envelope, Origin, Sent, Target},
    stage::TaskFn,
};

const NO_ITEM: u64 = u64::MAX;

/// One worker's live numbers. Only its own worker writes them, so the atomics never
/// contend; snapshots read them at any time.
pub(crate) struct WorkerSlot {
    pub index: u16,
    stage: StageIndex,
    pub stage_name: Arc<str>,
    /// For events a task records itself ([`Ctx::retried`]).
    tracker: Option<crate::events::WeakBatchSender>,
    /// Attempts the task reported as made elsewhere during the attempt under way
    /// ([`Ctx::retried`]): the attempt's own number moves past them.
    extra_attempts: std::sync::atomic::AtomicU32,
    state: AtomicU8,
    current: AtomicU64,
    pub processed: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub cancelled: AtomicU64,
    /// Items that left the pipeline from this worker.
    pub exited: AtomicU64,
    /// Time spent running attempts, finished ones only; with `attempt_since` it gives
    /// the busy time up to now.
    pub busy_us: AtomicU64,
    /// When the attempt under way started (pipeline µs + 1), or 0.
    attempt_since: AtomicU64,
    /// Time spent waiting for room in a full downstream queue (or an unread output):
    /// the worker holds a finished item it cannot hand on. Not busy time: a stage that
    /// waits on its successor is not the bottleneck.
    pub blocked_us: AtomicU64,
    /// When the wait under way started (pipeline µs + 1), or 0.
    blocked_since: AtomicU64,
    clock: Clock,
    pub latency: AtomicHistogram,
    /// Set while a worker task runs on this slot; see [`StageNode::set_workers`].
    pub running: AtomicBool,
    cancel_current: AtomicBool,
    cancel_waker: AtomicWaker,
    /// Who asked to restart the worker, while the request waits for the attempt under way
    /// to notice it ([`WorkerSlot::restart`]); woken through `cancel_waker`.
    restart_by: Mutex<Option<Arc<str>>>,
    restart_flag: AtomicBool,
    notes: Mutex<Vec<Note>>,
    has_notes: AtomicBool,
    /// What the stage's tasks ask people with.
    asking: Arc<StageAsking>,
    /// Set (with `park_request`) when the attempt running here asked a person: the worker
    /// parks with it and hands the slot on.
    park_flag: AtomicBool,
    park_request: Mutex<Option<Arc<Parked>>>,
    park_waker: AtomicWaker,
}

impl WorkerSlot {
    pub(crate) fn new(index: u16, asking: Arc<StageAsking>, env: &crate::node::Env) -> Self {
        let clock = env.clock;
        WorkerSlot {
            index,
            stage: asking.stage,
            stage_name: asking.stage_name.clone(),
            tracker: env.weak_tracker(),
            extra_attempts: std::sync::atomic::AtomicU32::new(0),
            state: AtomicU8::new(WorkerState::Idle as u8),
            current: AtomicU64::new(NO_ITEM),
            processed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            exited: AtomicU64::new(0),
            busy_us: AtomicU64::new(0),
            attempt_since: AtomicU64::new(0),
            blocked_us: AtomicU64::new(0),
            blocked_since: AtomicU64::new(0),
            clock,
            latency: AtomicHistogram::new(),
            running: AtomicBool::new(false),
            cancel_current: AtomicBool::new(false),
            cancel_waker: AtomicWaker::new(),
            restart_by: Mutex::new(None),
            restart_flag: AtomicBool::new(false),
            notes: Mutex::new(Vec::new()),
            has_notes: AtomicBool::new(false),
            asking,
            park_flag: AtomicBool::new(false),
            park_request: Mutex::new(None),
            park_waker: AtomicWaker::new(),
        }
    }

    pub(crate) fn state(&self) -> WorkerState {
        match self.state.load(Ordering::Relaxed) {
            x if x == WorkerState::Busy as u8 => WorkerState::Busy,
            x if x == WorkerState::Blocked as u8 => WorkerState::Blocked,
            x if x == WorkerState::Paused as u8 => WorkerState::Paused,
            x if x == WorkerState::Stopped as u8 => WorkerState::Stopped,
            _ => WorkerState::Idle,
        }
    }

    fn set_state(&self, s: WorkerState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    pub(crate) fn current(&self) -> Option<ItemId> {
        match self.current.load(Ordering::Relaxed) {
            NO_ITEM => None,
            id => Some(id),
        }
    }

    /// Cancels the attempt in progress if it is for `item`.
    pub(crate) fn cancel_if_running(&self, item: ItemId) -> bool {
        if self.current.load(Ordering::Acquire) != item {
            return false;
        }
        self.cancel_current.store(true, Ordering::Release);
        self.cancel_waker.wake();
        true
    }

    /// Aborts the attempt under way, which then fails with "restarted by `by`" and goes
    /// to the stage's retry policy like any failed attempt; the worker goes on. Returns
    /// the item, or `None` when the worker runs no attempt (idle, blocked, backing off).
    /// An attempt that blocks its thread (no `.await`) cannot be interrupted: only
    /// futures can be dropped.
    pub(crate) fn restart(&self, by: &str) -> Option<ItemId> {
        if self.attempt_since.load(Ordering::Acquire) == 0 {
            return None;
        }
        let item = self.current()?;
        *self.restart_by.lock() = Some(Arc::from(by));
        self.restart_flag.store(true, Ordering::Release);
        self.cancel_waker.wake();
        Some(item)
    }

    /// Busy and blocked time up to `now_us`, counting the attempt or wait under way, so a
    /// worker ten seconds into one item reads as busy during those ten seconds and not
    /// only when the item is done.
    pub(crate) fn busy_and_blocked_us(&self, now_us: u64) -> (u64, u64) {
        let ongoing = |since: &AtomicU64| match since.load(Ordering::Acquire) {
            0 => 0,
            t => now_us.saturating_sub(t - 1),
        };
        (
            self.busy_us.load(Ordering::Acquire) + ongoing(&self.attempt_since),
            self.blocked_us.load(Ordering::Acquire) + ongoing(&self.blocked_since),
        )
    }

    /// Marks the worker as waiting for room downstream.
    pub(crate) fn begin_blocked(&self) {
        self.blocked_since
            .store(self.clock.now_us() + 1, Ordering::Release);
        self.set_state(WorkerState::Blocked);
    }

    pub(crate) fn end_blocked(&self) {
        let since = self.blocked_since.swap(0, Ordering::AcqRel);
        if since > 0 {
            let waited = self.clock.now_us().saturating_sub(since - 1);
            Self::add(&self.blocked_us, waited);
        }
        self.set_state(WorkerState::Busy);
    }

    fn add(counter: &AtomicU64, n: u64) {
        // Single writer: a load and a store are enough, and cheaper than an RMW.
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    fn take_notes(&self, buf: &mut EventBuf) {
        // A load first: a swap is a read-modify-write, and most attempts annotate nothing.
        if self.has_notes.load(Ordering::Relaxed) && self.has_notes.swap(false, Ordering::Acquire) {
            for note in self.notes.lock().drain(..) {
                buf.note(note);
            }
        }
    }
}

/// What a task sees of the runtime: its item, its attempt, and a way to annotate the item.
pub struct Ctx {
    item: ItemId,
    attempt: u32,
    slot: Arc<WorkerSlot>,
    /// Set when the attempt first asks a person: it is then parked, off its worker.
    parked: OnceLock<Arc<Parked>>,
}

impl Ctx {
    /// The item's id: the handle for its status, history and provenance.
    pub fn item(&self) -> ItemId {
        self.item
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    pub fn stage(&self) -> &str {
        &self.slot.stage_name
    }

    pub fn worker(&self) -> u16 {
        self.slot.index
    }

    /// Records that attempt [`attempt`](Self::attempt)` + n` of this item failed somewhere
    /// else and is being retried there: for a task that hands its item to another system
    /// which retries by itself (flowdeck-cluster's distributed stages, whose worker
    /// processes retry with JetStream). The item shows as retrying with `kind` and
    /// `message` in its history, at once, and the stage counts the retry; the attempt's
    /// end is then numbered after these. The runtime's own retries need no call.
    pub async fn retried(&self, kind: &str, message: &str) {
        let slot = &self.slot;
        let n = self.attempt + slot.extra_attempts.fetch_add(1, Ordering::AcqRel);
        slot.retried.fetch_add(1, Ordering::Relaxed);
        let tracker = slot.tracker.as_ref().and_then(|t| t.upgrade());
        let mut buf = EventBuf::new(tracker);
        if !buf.on() {
            return;
        }
        let here = Subject {
            item: self.item,
            stage: slot.stage,
            worker: Some(slot.index),
        };
        let now = slot.clock.now_us();
        buf.push(
            here.event(EventKind::Retrying, Some(ItemStatus::Running), now)
                .attempt(n, 0)
                .with_error(runtime_error(kind, message)),
        )
        .await;
        buf.push(here.started(ItemStatus::Retrying, now, n + 1))
            .await;
        buf.flush().await;
    }

    /// Asks a person `question` about this item and waits for the answer: a choice among
    /// its options, with its form's fields (`Question::form`). The item shows as
    /// **waiting** everywhere a status shows, and its worker goes on with other items
    /// meanwhile: the attempt is parked until the answer comes, then goes on as it would
    /// have. A stage lets at most `Stage::max_waiting` items wait at once (1,000 by
    /// default); past that an asker waits for a place, holding its worker.
    ///
    /// The answer is the first valid one given on the dashboard, in `flowdeck top`, over
    /// the API or with `PipelineHandle::answer`; at the question's deadline its default
    /// is taken, or, without a default, this returns [`Unanswered::TimedOut`] and the item
    /// fails with a `TimedOut` error (not retried). Cancelling the item, or draining or
    /// stopping the pipeline, returns [`Unanswered::Cancelled`] and the item is cancelled.
    /// Time spent waiting does not count against the stage's timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowdeck_runtime::{Line, Question, Stage};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let running = Line::<u32>::new("review")
    ///     .stage(Stage::map("approve", |n: u32, cx| async move {
    ///         let q = Question::new(format!("Keep {n}?"))
    ///             .options(["keep", "drop"])
    ///             .default_after(Duration::from_secs(600), "drop");
    ///         let answer = cx.ask(q).await?;
    ///         Ok::<_, String>((n, answer.choice))
    ///     }))
    ///     .build()
    ///     .unwrap()
    ///     .start();
    /// let handle = running.handle.clone();
    /// running.input.send(7).await.unwrap();
    /// // Someone answers (here the program; usually a person on the dashboard).
    /// let q = loop {
    ///     if let Some(q) = handle.questions().pending().pop() { break q; }
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    /// };
    /// let reply = flowdeck_runtime::ask::Reply { choice: "keep".into(), data: Default::default() };
    /// handle.questions().answer(q.id, &reply, Some("alice")).unwrap();
    /// assert_eq!(running.outputs.recv().await.unwrap(), (7, "keep".to_owned()));
    /// # });
    /// ```
    pub fn ask<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        question: Question<T>,
    ) -> impl Future<Output = Result<Answer<T>, Unanswered>> + Send + '_ {
        // Boxed, the question too: a waiting item's task keeps a pointer, not the
        // asking's state, and nested futures do not each keep room for the question
        // (docs/questions.md has the bytes).
        let asking: futures::future::BoxFuture<'_, _> = match question.problem() {
            Some(problem) => Box::pin(std::future::ready(Err(Unanswered::Invalid(problem)))),
            None => Box::pin(crate::ask::ask(self, Box::new(question))),
        };
        asking
    }

    /// Shows a question asked about this item somewhere else (by a worker process of a
    /// distributed stage) as this item's: it is listed and answered here, and an answer
    /// (checked here against its options and form) goes to `relay` with the question's
    /// id there. The item waits, as with [`ask`](Self::ask), holding no worker; tell its
    /// closing there with [`relayed_closed`](Self::relayed_closed). Returns its id here.
    pub async fn relay_question(
        &self,
        mut question: crate::ask::QuestionInfo,
        relay: crate::ask::Relay,
    ) -> Result<crate::ask::QuestionId, Unanswered> {
        let there = question.id;
        let parked = self.park().await?;
        let asking = &self.slot.asking;
        question.id = 0;
        question.item = self.item;
        question.stage = asking.stage;
        question.stage_name = asking.stage_name.to_string();
        let relay = move |_here: crate::ask::QuestionId,
                          reply: &crate::ask::Reply,
                          by: Option<&str>| { relay(there, reply, by) };
        Ok(crate::ask::relay(
            asking,
            &parked,
            self.slot.clock,
            self.slot.tracker.clone(),
            self.attempt,
            question,
            Arc::new(relay),
        )
        .await)
    }

    /// Closes the question relayed here as `id` as it closed where it was asked
    /// (answered, defaulted, timed out, cancelled): the item goes on.
    pub async fn relayed_closed(
        &self,
        id: crate::ask::QuestionId,
        closing: crate::ask::QuestionInfo,
    ) {
        if let Some(parked) = self.parked.get() {
            crate::ask::relayed_closed(
                &self.slot.asking,
                parked,
                self.slot.clock,
                self.slot.tracker.clone(),
                self.attempt,
                id,
                closing,
            )
            .await;
        }
    }

    /// Question `id` of this item's pipeline as it stands (pending or closed).
    pub fn questions_here(&self, id: crate::ask::QuestionId) -> Option<crate::ask::QuestionInfo> {
        self.slot.asking.questions.get(id)
    }

    /// What the stage needs to ask, the run's clock, and where the item's events go.
    pub(crate) fn asking(&self) -> (&StageAsking, Clock, Option<crate::events::WeakBatchSender>) {
        (
            &self.slot.asking,
            self.slot.clock,
            self.slot.tracker.clone(),
        )
    }

    /// The attempt parked off its worker, parking it (after waiting for a place among the
    /// stage's waiting items, on the worker) the first time.
    pub(crate) async fn park(&self) -> Result<Arc<Parked>, Unanswered> {
        if let Some(p) = self.parked.get() {
            return Ok(p.clone());
        }
        let place = self
            .slot
            .asking
            .places
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Unanswered::Cancelled)?;
        let p = Arc::new(Parked::new(self.item, place));
        let _ = self.parked.set(p.clone());
        *self.slot.park_request.lock() = Some(p.clone());
        self.slot.park_flag.store(true, Ordering::Release);
        self.slot.park_waker.wake();
        Ok(p)
    }

    /// Attaches a key/value to the item (tokens used, model, bytes); it shows in the item's
    /// details. A later value for the same key replaces the earlier one.
    pub fn annotate(&self, key: impl Into<String>, value: impl Into<Value>) {
        self.slot.notes.lock().push(Note {
            item: self.item,
            key: key.into(),
            value: value.into(),
        });
        self.slot.has_notes.store(true, Ordering::Release);
    }
}

/// How one attempt ended.
pub(crate) enum Outcome<T, E> {
    Done(T),
    Error(E),
    Timeout,
    Panic(String),
    Cancelled,
    /// Someone restarted the worker during the attempt: it fails with who did, and the
    /// retry policy decides what follows.
    Restarted(Arc<str>),
    /// The task asked a person and nobody answered by the deadline: the item fails with
    /// `TimedOut`, and is not retried.
    Unanswered(Unanswered),
}

/// An attempt that was parked while it waited for a person, ended: what the worker that
/// takes it back needs to settle it (route its outputs, retry it or fail it).
pub(crate) struct Resumed<I, T, E> {
    envelope: Envelope<I>,
    outcome: Outcome<T, E>,
    /// The status the item leaves: running, or still waiting when the attempt was
    /// cancelled while its question waited.
    from: ItemStatus,
    attempt: u32,
    /// How long the attempt ran, time spent waiting for answers left out.
    took: u64,
}

/// Resolves to `true` once the slot's current attempt is cancelled.
struct CancelSignal<'a>(&'a WorkerSlot);

impl Future for CancelSignal<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.cancel_current.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.0.cancel_waker.register(cx.waker());
        if self.0.cancel_current.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Resolves, with who asked, once someone restarts the slot's worker.
struct RestartSignal<'a>(&'a WorkerSlot);

impl Future for RestartSignal<'_> {
    type Output = Arc<str>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Arc<str>> {
        // A load first: this is polled with every attempt, and a swap is a read-modify-write.
        let take = || {
            (self.0.restart_flag.load(Ordering::Acquire)
                && self.0.restart_flag.swap(false, Ordering::AcqRel))
            .then(|| self.0.restart_by.lock().take())
            .map(|by| by.unwrap_or_else(|| Arc::from("someone")))
        };
        if let Some(by) = take() {
            return Poll::Ready(by);
        }
        self.0.cancel_waker.register(cx.waker());
        take().map_or(Poll::Pending, Poll::Ready)
    }
}

/// Resolves once the attempt running on the slot has asked a person ([`Ctx::ask`]), with
/// what it asked as.
struct ParkSignal<'a>(&'a WorkerSlot);

impl Future for ParkSignal<'_> {
    type Output = Arc<Parked>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Arc<Parked>> {
        let take = |slot: &WorkerSlot| {
            if slot.park_flag.swap(false, Ordering::AcqRel) {
                slot.park_request.lock().take()
            } else {
                None
            }
        };
        if let Some(p) = take(self.0) {
            return Poll::Ready(p);
        }
        self.0.park_waker.register(cx.waker());
        match take(self.0) {
            Some(p) => Poll::Ready(p),
            None => Poll::Pending,
        }
    }
}

/// Resolves when an attempt has run `limit` on its worker; never without a limit. (Once
/// it asks a person, [`WaitParked`] times it, leaving the time waiting out.)
async fn attempt_timer(limit: Option<Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}

pub(crate) async fn run<I, O, T>(node: Arc<StageNode<I, O, T>>, slot: Arc<WorkerSlot>, abort: Abort)
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    let Some(port) = node.port() else {
        slot.running.store(false, Ordering::Release);
        return;
    };
    let mut buf = EventBuf::new(node.env.tracker());
    let ctl = &node.ctl;
    let mut input_closed = false;
    let mut yielded = false;
    loop {
        if !ctl.keeps(slot.index) {
            slot.running.store(false, Ordering::Release);
            // A resize may have brought this slot back between the check and the store.
            if ctl.keeps(slot.index) && !slot.running.swap(true, Ordering::AcqRel) {
                continue;
            }
            break;
        }
        if ctl.is_paused() {
            buf.flush().await;
            slot.set_state(WorkerState::Paused);
            let changed = ctl.changed.notified();
            if ctl.is_paused() && ctl.keeps(slot.index) {
                tokio::select! {
                    _ = changed => {}
                    _ = abort.cancelled() => break,
                }
            }
            slot.set_state(WorkerState::Idle);
            continue;
        }
        // An attempt that waited for a person comes back before new items. Looked for only
        // while some are out: looking at an empty queue costs a fence per item.
        if node.waiting() > 0 {
            if let Ok(r) = node.resumed_rx.try_recv() {
                resume(&node, &slot, &port, &mut buf, r, &abort).await;
                continue;
            }
        }
        let envelope = match node.input.try_recv() {
            Ok(e) => e,
            Err(async_channel::TryRecvError::Closed) if node.waiting() == 0 => {
                input_closed = true;
                break;
            }
            Err(e) => {
                // Empty, or closed with attempts still waiting for a person: this worker
                // stays to settle them when they come back.
                let closed = e == async_channel::TryRecvError::Closed;
                if !closed && !yielded {
                    // Let the stages before this one run first: an item they make is most
                    // often ready by then, and taking it spares registering as a waiter
                    // (a lock the stage's workers and senders share), the sender's wake-up
                    // of this task, and a flush of a small batch of events.
                    yielded = true;
                    tokio::task::yield_now().await;
                    continue;
                }
                yielded = false;
                buf.flush().await;
                slot.take_notes(&mut buf);
                buf.flush().await;
                slot.set_state(WorkerState::Idle);
                let changed = ctl.changed.notified();
                tokio::select! {
                    biased;
                    _ = abort.cancelled() => break,
                    _ = changed => continue,
                    r = node.resumed_rx.recv() => {
                        if let Ok(r) = r {
                            resume(&node, &slot, &port, &mut buf, r, &abort).await;
                        }
                        continue;
                    }
                    r = node.input.recv(), if !closed => match r {
                        Ok(e) => e,
                        Err(_) => continue,
                    },
                }
            }
        };
        yielded = false;
        process(&node, &slot, &port, &mut buf, envelope, &abort).await;
    }
    slot.current.store(NO_ITEM, Ordering::Relaxed);
    slot.set_state(WorkerState::Stopped);
    slot.take_notes(&mut buf);
    buf.flush().await;
    drop(port);
    if input_closed {
        // No item will ever come again: let go of the stage's own hold on the next queues,
        // so they close once every worker here is done.
        node.release_port();
    }
}

/// What a worker does next with an item: run an attempt, or settle one that ended (run
/// here, or parked while it waited for a person and handed back).
enum Step<T, E> {
    Attempt {
        attempt: u32,
        from: ItemStatus,
    },
    Settle {
        outcome: Outcome<T, E>,
        from: ItemStatus,
        attempt: u32,
        finished: u64,
        took: u64,
    },
}

async fn process<I, O, T>(
    node: &Arc<StageNode<I, O, T>>,
    slot: &Arc<WorkerSlot>,
    port: &crate::port::Port<O>,
    buf: &mut EventBuf,
    envelope: Envelope<I>,
    abort: &Abort,
) where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    let env = &node.env;
    let id = envelope.id;
    let here = Subject {
        item: id,
        stage: node.index,
        worker: Some(slot.index),
    };
    node.last_dequeued_enqueue_us
        .store(envelope.enqueued_us, Ordering::Relaxed);

    if node.ctl.take_cancelled(id) {
        WorkerSlot::add(&slot.cancelled, 1);
        let now = env.clock.now_us();
        buf.push(here.event(EventKind::Cancelled, Some(ItemStatus::Queued), now))
            .await;
        let groups = &envelope.groups;
        groups.end(id, End::cancelled, now, buf, Some(slot)).await;
        return;
    }
    let first = Step::Attempt {
        attempt: 1,
        from: ItemStatus::Queued,
    };
    handle(node, slot, port, buf, envelope, abort, first).await;
}

/// Settles an attempt that was parked while it waited for a person and has ended.
async fn resume<I, O, T>(
    node: &Arc<StageNode<I, O, T>>,
    slot: &Arc<WorkerSlot>,
    port: &crate::port::Port<O>,
    buf: &mut EventBuf,
    r: Resumed<I, T::Outputs, T::Error>,
    abort: &Abort,
) where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    node.taken_back();
    slot.latency.record(r.took);
    let step = Step::Settle {
        outcome: r.outcome,
        from: r.from,
        attempt: r.attempt,
        finished: node.env.clock.now_us(),
        took: r.took,
    };
    handle(node, slot, port, buf, r.envelope, abort, step).await;
}

/// Runs the item's attempts from `step` until it completes, fails for good, is cancelled,
/// or its attempt is parked (the item then leaves this worker).
async fn handle<I, O, T>(
    node: &Arc<StageNode<I, O, T>>,
    slot: &Arc<WorkerSlot>,
    port: &crate::port::Port<O>,
    buf: &mut EventBuf,
    envelope: Envelope<I>,
    abort: &Abort,
    mut step: Step<T::Outputs, T::Error>,
) where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    let env = &node.env;
    let id = envelope.id;
    let here = Subject {
        item: id,
        stage: node.index,
        worker: Some(slot.index),
    };
    slot.current.store(id, Ordering::Release);
    slot.cancel_current.store(false, Ordering::Release);
    slot.set_state(WorkerState::Busy);
    loop {
        let (outcome, left, attempt, finished, took, began) = match step {
            Step::Settle {
                outcome,
                from,
                attempt,
                finished,
                took,
            } => (outcome, from, attempt, finished, took, None),
            Step::Attempt { attempt, from } => {
                match run_attempt(node, slot, buf, &envelope, abort, attempt, from).await {
                    Some(a) => (
                        a.outcome,
                        ItemStatus::Running,
                        a.attempt,
                        a.finished,
                        a.took,
                        a.began,
                    ),
                    // Parked: the item is no longer this worker's.
                    None => return,
                }
            }
        };
        // The attempt's `Started` event, unless it is done: `finish` folds it into the
        // completion, or pushes it alone.
        if let (Some(from), false) = (began, matches!(outcome, Outcome::Done(_))) {
            buf.push(here.started(from, finished - took, attempt)).await;
        }
        let (error, user_err) = match outcome {
            Outcome::Done(outs) => {
                let input = if buf.on() {
                    node.capture
                        .as_ref()
                        .filter(|c| c.config.sampled(id))
                        .and_then(|c| c.preview(&envelope.value))
                } else {
                    None
                };
                let at = Done {
                    finished,
                    attempt,
                    took,
                    input,
                    began,
                };
                match finish(node, slot, port, buf, &envelope, outs, at).await {
                    Ok(()) => break,
                    // A routing filter panicked: the item fails here, like any task error.
                    Err(msg) => (runtime_error("Panic", msg), None),
                }
            }
            Outcome::Cancelled => {
                WorkerSlot::add(&slot.cancelled, 1);
                buf.push(
                    here.event(EventKind::Cancelled, Some(left), finished)
                        .attempt(attempt, took),
                )
                .await;
                let groups = &envelope.groups;
                groups
                    .end(id, End::cancelled, finished, buf, Some(slot))
                    .await;
                break;
            }
            Outcome::Error(e) => {
                let info =
                    guard::call(|| error_info(&(node.classify)(&e), &e)).unwrap_or_else(|m| {
                        runtime_error(
                            "Panic",
                            format!("the error's classify or Display panicked: {m}"),
                        )
                    });
                (info, Some(e))
            }
            Outcome::Timeout => {
                let limit = node.timeout.unwrap_or_default();
                (
                    runtime_error("Timeout", format!("attempt took longer than {limit:?}")),
                    None,
                )
            }
            Outcome::Panic(msg) => (runtime_error("Panic", msg), None),
            Outcome::Restarted(by) => (
                runtime_error("Restarted", format!("restarted by {by}")),
                None,
            ),
            Outcome::Unanswered(why) => {
                // Asking again would wait for nobody again: it fails here.
                fail(
                    node,
                    slot,
                    buf,
                    &envelope,
                    here,
                    finished,
                    attempt,
                    took,
                    runtime_error("TimedOut", why.to_string()),
                )
                .await;
                break;
            }
        };
        let (retry, error) = match node.retry.should_retry(attempt, user_err.as_ref()) {
            Ok(retry) => (retry, error),
            Err(msg) => (false, runtime_error("Panic", msg)),
        };
        if retry {
            WorkerSlot::add(&slot.retried, 1);
            buf.push(
                here.event(EventKind::Retrying, Some(ItemStatus::Running), finished)
                    .attempt(attempt, took)
                    .with_error(error),
            )
            .await;
            // The backoff is a wait: let the tracker see the retry before it.
            buf.flush().await;
            let delay = node.retry.delay(attempt);
            let cancelled = tokio::select! {
                biased;
                _ = CancelSignal(slot) => true,
                _ = abort.cancelled() => true,
                _ = tokio::time::sleep(delay) => false,
            };
            if cancelled {
                WorkerSlot::add(&slot.cancelled, 1);
                let now = env.clock.now_us();
                buf.push(
                    here.event(EventKind::Cancelled, Some(ItemStatus::Retrying), now)
                        .attempt(attempt, 0),
                )
                .await;
                let groups = &envelope.groups;
                groups.end(id, End::cancelled, now, buf, Some(slot)).await;
                break;
            }
            step = Step::Attempt {
                attempt: attempt + 1,
                from: ItemStatus::Retrying,
            };
            continue;
        }
        fail(
            node, slot, buf, &envelope, here, finished, attempt, took, error,
        )
        .await;
        break;
    }
    slot.current.store(NO_ITEM, Ordering::Release);
}

/// Records the item as failed for good with `error`, keeping its input for a retry.
#[allow(clippy::too_many_arguments)]
async fn fail<I, O, T>(
    node: &StageNode<I, O, T>,
    slot: &WorkerSlot,
    buf: &mut EventBuf,
    envelope: &Envelope<I>,
    here: Subject,
    finished: u64,
    attempt: u32,
    took: u64,
    error: flowdeck_protocol::ErrorInfo,
) where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    WorkerSlot::add(&slot.failed, 1);
    let input = match &node.capture {
        Some(c) if buf.on() => c.preview(&envelope.value),
        _ => None,
    };
    node.keep_failed_input(envelope.id, envelope.value.clone());
    let groups = &envelope.groups;
    let why = (!groups.is_empty()).then(|| error.clone());
    buf.push(
        here.event(EventKind::Failed, Some(ItemStatus::Running), finished)
            .attempt(attempt, took)
            .with_error(error)
            .with_input(input),
    )
    .await;
    if let Some(error) = why {
        let end = || End::Missing(Why::Failed { error });
        groups
            .end(envelope.id, end, finished, buf, Some(slot))
            .await;
    }
}

/// Runs attempt `attempt` of the item and returns how it ended, its number (moved past
/// any the task reported as made elsewhere), when it ended and how long it ran. `None`
/// when the task asked a person: the attempt was parked on a task of its own
/// ([`wait_parked`]), which hands its outcome back to the stage, and this worker goes on.
async fn run_attempt<I, O, T>(
    node: &Arc<StageNode<I, O, T>>,
    slot: &Arc<WorkerSlot>,
    buf: &mut EventBuf,
    envelope: &Envelope<I>,
    abort: &Abort,
    mut attempt: u32,
    from: ItemStatus,
) -> Option<Attempted<T::Outputs, T::Error>>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    let env = &node.env;
    let id = envelope.id;
    let here = Subject {
        item: id,
        stage: node.index,
        worker: Some(slot.index),
    };
    if let Some(limiter) = &node.limiter {
        if limiter.check().is_err() {
            // Waiting for the rate limit: show what happened so far meanwhile.
            buf.flush().await;
            limiter.until_ready().await;
        }
    }
    let started = env.clock.now_us();
    // The `Started` event waits until the attempt turns out not to end on its first poll;
    // one that does folds it into its outcome's event ([`RawEvent::began`]). Either way
    // it is in the worker's buffer before the outcome, as it always was: a buffer is not
    // sent while the task's first poll runs.
    let mut began = buf.on().then_some(from);
    // A restart asked for an attempt that ended meanwhile is not this one's.
    slot.restart_flag.store(false, Ordering::Release);
    slot.attempt_since.store(started + 1, Ordering::Release);
    let cx = Ctx {
        item: id,
        attempt,
        slot: slot.clone(),
        parked: OnceLock::new(),
    };
    // The task is user code twice over: the closure's synchronous part runs here, its
    // future below. A panic in either fails the attempt, never the worker.
    let outcome = match guard::call(|| node.task.call(envelope.value.clone(), cx)) {
        Err(msg) => Outcome::Panic(msg),
        Ok(fut) => {
            // Boxed so that an attempt that asks a person can move to a task of its own
            // and leave this worker free: one allocation per attempt, within the noise of
            // the throughput bench (docs/questions.md).
            let mut fut: Attempt<I, O, T> = Box::pin(AssertUnwindSafe(fut).catch_unwind());
            let clock = &env.clock;
            let timer = attempt_timer(node.timeout);
            let mut timer = std::pin::pin!(timer);
            // The fast path: most attempts of a fast stage end on their first poll. With no
            // signal raised (plain loads), one poll before the `select!` spares registering
            // with the pipeline's cancellation token (a mutex every worker shares) and with
            // the slot's wakers; `biased` order is kept, since a raised signal goes on to
            // the `select!` below, which polls the signals first.
            let raised = slot.cancel_current.load(Ordering::Acquire)
                || slot.restart_flag.load(Ordering::Acquire)
                || abort.is_cancelled();
            let first = if raised {
                Poll::Pending
            } else {
                futures::poll!(&mut fut)
            };
            if let Poll::Ready(r) = first {
                ended(r)
            } else {
                if let Some(from) = began.take() {
                    buf.push(here.started(from, started, attempt)).await;
                }
                // When the attempt started, for a parked attempt's time limit: read once it
                // turned out to wait, as the timer below is armed then too.
                let since = tokio::time::Instant::now();
                tokio::select! {
                    biased;
                    _ = CancelSignal(slot) => Outcome::Cancelled,
                    _ = abort.cancelled() => Outcome::Cancelled,
                    by = RestartSignal(slot) => Outcome::Restarted(by),
                    r = &mut fut => ended(r),
                    p = ParkSignal(slot) => {
                        park(node, slot, buf, id, started, &p).await;
                        let waiter = Waiter {
                            node: node.clone(),
                            envelope: envelope.clone(),
                            parked: p,
                            since,
                            started,
                            attempt,
                            worker: slot.index,
                        };
                        env.tasks.spawn(WaitParked::new(waiter, fut));
                        return None;
                    }
                    _ = &mut timer => Outcome::Timeout,
                    // Polled only once the attempt turned out to take a while.
                    never = buf.flush_when_due(clock) => match never {},
                }
            }
        }
    };
    // Asked, but the attempt ended before this worker parked it: the request is stale,
    // and its place goes back.
    // (The request is set before the flag, by the attempt itself: no flag, no request,
    // and no lock to take for the attempts that never ask.)
    let asked = if slot.park_flag.swap(false, Ordering::AcqRel) {
        slot.park_request.lock().take()
    } else {
        None
    };
    let outcome = unanswered(outcome, asked.as_deref());
    if let Some(p) = asked {
        p.release();
    }
    let finished = env.clock.now_us();
    // Attempts the task said were made elsewhere meanwhile come before this one's end
    // (and after its start, which keeps its own number).
    let elsewhere = match slot.extra_attempts.load(Ordering::Acquire) {
        0 => 0,
        _ => slot.extra_attempts.swap(0, Ordering::AcqRel),
    };
    if elsewhere > 0 {
        if let Some(from) = began.take() {
            buf.push(here.started(from, started, attempt)).await;
        }
    }
    attempt += elsewhere;
    let took = finished - started;
    WorkerSlot::add(&slot.busy_us, took);
    slot.attempt_since.store(0, Ordering::Release);
    slot.latency.record(took);
    slot.take_notes(buf);
    Some(Attempted {
        outcome,
        attempt,
        finished,
        took,
        began,
    })
}

/// How an attempt ended ([`run_attempt`]).
struct Attempted<T, E> {
    outcome: Outcome<T, E>,
    /// Its number, moved past any the task reported as made elsewhere.
    attempt: u32,
    finished: u64,
    took: u64,
    /// Its `Started` event, not pushed yet: the status it left (see [`RawEvent::began`]).
    began: Option<ItemStatus>,
}

/// A task's attempt future, boxed: see [`run_attempt`].
type Attempt<I, O, T> = Pin<
    Box<
        dyn Future<
                Output = std::thread::Result<
                    Result<<T as TaskFn<I, O>>::Outputs, <T as TaskFn<I, O>>::Error>,
                >,
            > + Send,
    >,
>;

/// How an attempt's future ended.
fn ended<T, E>(r: std::thread::Result<Result<T, E>>) -> Outcome<T, E> {
    match r {
        Err(payload) => Outcome::Panic(guard::message(payload.as_ref())),
        Ok(Err(e)) => Outcome::Error(e),
        Ok(Ok(outs)) => Outcome::Done(outs),
    }
}

/// The outcome of an attempt that asked a person as `asked`: an error after a question
/// that timed out is that time-out, and any end after a cancelled one is a cancellation.
fn unanswered<T, E>(outcome: Outcome<T, E>, asked: Option<&Parked>) -> Outcome<T, E> {
    let why = asked.and_then(|p| p.unanswered.lock().as_deref().cloned());
    match (outcome, why) {
        (Outcome::Error(_), Some(why @ Unanswered::TimedOut { .. })) => Outcome::Unanswered(why),
        (_, Some(Unanswered::Cancelled)) => Outcome::Cancelled,
        (outcome, _) => outcome,
    }
}

/// The task of an attempt that asked a person: drives it, off its worker, until it ends,
/// then hands its outcome back to the stage, whose next free worker settles it. Written
/// out rather than `async`, to stay small: a waiting item costs this task, its attempt's
/// future and its question, not a worker (docs/questions.md has the bytes).
struct WaitParked<I, O, T: TaskFn<I, O>> {
    /// Taken when the attempt ends.
    waiter: Option<Waiter<I, O, T>>,
    fut: Option<Attempt<I, O, T>>,
    /// The stage's timeout, set while no question waits; none without a timeout.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// A parked attempt: its stage, item and number, and when it started, on the run's clock
/// and on tokio's (for its timeout).
struct Waiter<I, O, T: TaskFn<I, O>> {
    node: Arc<StageNode<I, O, T>>,
    envelope: Envelope<I>,
    parked: Arc<Parked>,
    since: tokio::time::Instant,
    started: u64,
    attempt: u32,
    worker: u16,
}

// Nothing in it is ever pinned in place: the attempt's future and the timer are boxed.
impl<I, O, T: TaskFn<I, O>> Unpin for WaitParked<I, O, T> {}

impl<I, O, T> WaitParked<I, O, T>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    fn new(w: Waiter<I, O, T>, fut: Attempt<I, O, T>) -> Self {
        if w.node.env.abort.is_cancelled() {
            // Stopped after the stage cancelled its parked attempts, before this one was.
            w.parked.cancel();
        }
        let timer = w
            .node
            .timeout
            .map(|_| Box::pin(tokio::time::sleep_until(w.since)));
        WaitParked {
            waiter: Some(w),
            fut: Some(fut),
            timer,
        }
    }

    /// How the attempt ended, if it did.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Outcome<T::Outputs, T::Error>> {
        let (Some(w), Some(fut)) = (&self.waiter, &mut self.fut) else {
            return Poll::Pending;
        };
        // A stop cancels the stage's parked attempts, this one with them.
        if Pin::new(&mut w.parked.cancelled()).poll(cx).is_ready() {
            return Poll::Ready(Outcome::Cancelled);
        }
        if let Poll::Ready(r) = fut.as_mut().poll(cx) {
            return Poll::Ready(ended(r));
        }
        // Time spent waiting for a person does not count: the timer runs only while no
        // question waits, and the answer's arrival polls this again.
        if let (Some(timer), Some(limit)) = (&mut self.timer, w.node.timeout) {
            if !w.parked.is_waiting() {
                let deadline = w.since + limit + w.parked.waited();
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Outcome::Timeout);
                }
            }
        }
        Poll::Pending
    }
}

impl<I, O, T> Future for WaitParked<I, O, T>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Poll::Ready(outcome) = this.poll_end(cx) else {
            return Poll::Pending;
        };
        this.fut = None;
        this.timer = None;
        if let Some(w) = this.waiter.take() {
            settle_parked(w, outcome);
        }
        Poll::Ready(())
    }
}

/// Hands the outcome of the parked attempt of `w` back to the stage; after a stop (no
/// worker will take it), records its end on a task of its own.
fn settle_parked<I, O, T>(w: Waiter<I, O, T>, outcome: Outcome<T::Outputs, T::Error>)
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    let outcome = unanswered(outcome, Some(&w.parked));
    let finished = w.node.env.clock.now_us();
    let waited = u64::try_from(w.parked.waited().as_micros()).unwrap_or(u64::MAX);
    let took = (finished - w.started).saturating_sub(waited);
    // Cancelled while its question waited: the item leaves the waiting status.
    let from = if w.parked.is_waiting() {
        ItemStatus::Waiting
    } else {
        ItemStatus::Running
    };
    w.node.unpark(w.envelope.id);
    w.parked.release();
    if w.node.env.abort.is_cancelled() {
        let here = Subject {
            item: w.envelope.id,
            stage: w.node.index,
            worker: Some(w.worker),
        };
        let event = here
            .event(EventKind::Cancelled, Some(from), finished)
            .attempt(w.attempt, took);
        let node = w.node;
        let env = node.env.clone();
        let groups = w.envelope.groups;
        let id = w.envelope.id;
        env.tasks.spawn(async move {
            let mut buf = EventBuf::new(node.env.tracker());
            buf.push(event).await;
            groups
                .end(id, End::cancelled, finished, &mut buf, None)
                .await;
            buf.flush().await;
            node.taken_back();
        });
        return;
    }
    w.node.hand_back(Resumed {
        envelope: w.envelope,
        outcome,
        from,
        attempt: w.attempt,
        took,
    });
}

/// Parks the attempt running on `slot` as `p` (it asked a person): records the time it
/// ran so far and lets go of the slot, whose worker goes on with other items.
async fn park<I, O, T>(
    node: &Arc<StageNode<I, O, T>>,
    slot: &Arc<WorkerSlot>,
    buf: &mut EventBuf,
    id: ItemId,
    started: u64,
    p: &Arc<Parked>,
) where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    let now = node.env.clock.now_us();
    WorkerSlot::add(&slot.busy_us, now.saturating_sub(started));
    slot.attempt_since.store(0, Ordering::Release);
    slot.take_notes(buf);
    // The item's wait shows before the worker's next item.
    buf.flush().await;
    slot.current.store(NO_ITEM, Ordering::Release);
    node.park(id, p.clone());
}

/// Passes a finished attempt's outputs on and records where the item went. `Err` means a
/// routing filter panicked on the output: nothing was recorded or sent, and the caller
/// fails the item with the message.
///
/// The item's groups follow it: a fan-out's children and a broadcast's copies join them
/// before anything is sent (so no group can fire early), and an output that leaves the
/// pipeline leaves them. At a join's origin stage, each of its joins makes the item's
/// group here.
async fn finish<I, O, T>(
    node: &StageNode<I, O, T>,
    slot: &WorkerSlot,
    port: &crate::port::Port<O>,
    buf: &mut EventBuf,
    envelope: &Envelope<I>,
    outs: T::Outputs,
    done: Done,
) -> Result<(), String>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    let Done {
        finished,
        attempt,
        took,
        input,
        began,
    } = done;
    let id = envelope.id;
    let stage = node.index;
    let worker = Some(slot.index);
    let here = Subject {
        item: id,
        stage,
        worker,
    };
    let routed_elsewhere = || {
        End::Missing(Why::RoutedElsewhere {
            stage: node.name.to_string(),
        })
    };
    let filtered_out = || {
        End::Missing(Why::FilteredOut {
            stage: node.name.to_string(),
        })
    };
    if T::FAN_OUT {
        let (groups, made) = begin_groups(node, envelope, finished);
        // The input is done; each output is a new item that names it as its parent.
        WorkerSlot::add(&slot.processed, 1);
        buf.push(
            here.event(EventKind::Completed, Some(ItemStatus::Running), finished)
                .attempt(attempt, took)
                .last()
                .began(began)
                .with_input(input),
        )
        .await;
        WorkerSlot::add(&slot.exited, 1);
        let mut children = 0usize;
        for out in outs {
            children += 1;
            let child = node.env.next_id();
            groups.spawned(id, child);
            let child_here = Subject {
                item: child,
                stage,
                worker,
            };
            let target = match port.target(&out) {
                Ok(t) => t,
                Err(msg) => {
                    // Born and failed at once: its routing panicked.
                    WorkerSlot::add(&slot.failed, 1);
                    let error = runtime_error("Panic", msg);
                    let why = (!groups.is_empty()).then(|| error.clone());
                    buf.push(
                        child_here
                            .event(EventKind::Failed, None, finished)
                            .with_parents(vec![id])
                            .with_error(error),
                    )
                    .await;
                    if let Some(error) = why {
                        let end = || End::Missing(Why::Failed { error });
                        groups.end(child, end, finished, buf, Some(slot)).await;
                    }
                    continue;
                }
            };
            let origin = Origin::Child(id);
            let output = output_preview(&node.capture_output, child, &out, buf);
            let copies = copies_of(node, port, &groups, child, &out);
            let sent = port
                .send(
                    child,
                    out,
                    groups.clone(),
                    target,
                    origin,
                    finished,
                    buf,
                    Some(slot),
                )
                .await;
            send_copies(slot, port, buf, child, &groups, copies, finished).await;
            if sent == Sent::Out {
                // Born and done at once: counted as submitted and completed.
                WorkerSlot::add(&slot.exited, 1);
                buf.push(
                    child_here
                        .event(EventKind::Completed, None, finished)
                        .last()
                        .with_parents(vec![id])
                        .with_output(output),
                )
                .await;
                groups
                    .end(child, routed_elsewhere, finished, buf, Some(slot))
                    .await;
            }
        }
        // The input is replaced by its outputs; none at all filters it out of the groups
        // it came with (a group made here is just empty).
        let outer = &envelope.groups;
        if children == 0 && !outer.is_empty() {
            outer.end(id, filtered_out, finished, buf, Some(slot)).await;
            made.end(id, || End::Replaced, finished, buf, Some(slot))
                .await;
        } else {
            groups
                .end(id, || End::Replaced, finished, buf, Some(slot))
                .await;
        }
        return Ok(());
    }
    // The attempt's `Started` event alone, where no completion will carry it (made only
    // then: the common path folds it).
    let started = || began.map(|from| here.started(from, finished - took, attempt));
    let Some(out) = outs.into_iter().next() else {
        if let Some(started) = started() {
            buf.push(started).await;
        }
        WorkerSlot::add(&slot.processed, 1);
        let groups = &envelope.groups;
        groups
            .end(id, filtered_out, finished, buf, Some(slot))
            .await;
        return Ok(());
    };
    let target = match port.target(&out) {
        Ok(t) => t,
        Err(msg) => {
            if let Some(started) = started() {
                buf.push(started).await;
            }
            return Err(msg);
        }
    };
    let (groups, _) = begin_groups(node, envelope, finished);
    WorkerSlot::add(&slot.processed, 1);
    // Record the completion first, so the tracker sees the item leave this stage before it
    // shows up queued at the next one.
    let output = output_preview(&node.capture_output, id, &out, buf);
    let mut completed = here
        .event(EventKind::Completed, Some(ItemStatus::Running), finished)
        .attempt(attempt, took)
        .began(began)
        .with_input(input)
        .with_output(output);
    completed.last = target == Target::Out;
    // Moving on to a stage's queue: its `Queued` event travels folded in this one.
    completed.next = port.queue_at(target);
    let origin = match completed.next {
        Some(_) => Origin::Reported,
        None => Origin::Moved,
    };
    buf.push(completed).await;
    let copies = copies_of(node, port, &groups, id, &out);
    let sent = port
        .send(
            id,
            out,
            groups.clone(),
            target,
            origin,
            finished,
            buf,
            Some(slot),
        )
        .await;
    match sent {
        Sent::Out => {
            WorkerSlot::add(&slot.exited, 1);
            groups
                .end(id, routed_elsewhere, finished, buf, Some(slot))
                .await;
        }
        Sent::Closed => WorkerSlot::add(&slot.cancelled, 1),
        Sent::Stage => {}
    }
    send_copies(slot, port, buf, id, &groups, copies, finished).await;
    Ok(())
}

/// The groups of the outputs of the item in `envelope`: its own, and, at the origin stage
/// of joins, the groups made for it here (also returned alone).
fn begin_groups<I, O, T>(
    node: &StageNode<I, O, T>,
    envelope: &Envelope<I>,
    now: u64,
) -> (Groups, Groups)
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    if node.origins.is_empty() {
        return (envelope.groups.clone(), Groups::default());
    }
    let made: Vec<_> = node
        .origins
        .iter()
        .map(|o| o.begin(envelope.id, &envelope.value, &envelope.groups, now))
        .collect();
    (
        envelope.groups.with(made.clone()),
        Groups::default().with(made),
    )
}

/// The copies of output `out` of item `parent` for the broadcast edges, each with its new
/// id, already members of `groups`.
fn copies_of<I, O, T>(
    node: &StageNode<I, O, T>,
    port: &crate::port::Port<O>,
    groups: &Groups,
    parent: ItemId,
    out: &O,
) -> Vec<(Target, O, ItemId)>
where
    O: Send + 'static,
    T: TaskFn<I, O>,
{
    // Most stages have no broadcast edge: no call into the collect below (not inlined, it
    // was 2.5% of a trivial pipeline's CPU, for an empty vector).
    if !port.has_copies() {
        return Vec::new();
    }
    port.copies_of(out)
        .into_iter()
        .map(|(target, value)| {
            let child = node.env.next_id();
            groups.spawned(parent, child);
            (target, value, child)
        })
        .collect()
}

/// Sends the copies of an output of item `parent` down the stage's broadcast edges, each
/// as a new item naming `parent` as its parent.
async fn send_copies<O: Send + 'static>(
    slot: &WorkerSlot,
    port: &crate::port::Port<O>,
    buf: &mut EventBuf,
    parent: ItemId,
    groups: &Groups,
    copies: Vec<(Target, O, ItemId)>,
    finished: u64,
) {
    for (target, value, child) in copies {
        let origin = Origin::Child(parent);
        let sent = port
            .send(
                child,
                value,
                groups.clone(),
                target,
                origin,
                finished,
                buf,
                Some(slot),
            )
            .await;
        if sent == Sent::Closed {
            WorkerSlot::add(&slot.cancelled, 1);
        }
    }
}

/// The preview of output `out` of item `id`, if the stage captures outputs, samples this
/// item, and someone tracks it.
fn output_preview<O>(
    capture: &Option<crate::capture::Capturer<O>>,
    id: ItemId,
    out: &O,
    buf: &EventBuf,
) -> Option<flowdeck_protocol::Preview> {
    match capture {
        Some(c) if buf.on() && c.config.sampled(id) => c.preview(out),
        _ => None,
    }
}

/// How an attempt that succeeded went, and the item's input if the stage sampled it.
struct Done {
    finished: u64,
    attempt: u32,
    took: u64,
    input: Option<flowdeck_protocol::Preview>,
    /// The attempt's `Started` event, to fold into the completion (or push alone where
    /// no completion is made).
    began: Option<ItemStatus>,
}
