//! How status changes travel from workers to the tracker: each worker (and each feeder)
//! buffers its events and sends them in batches, so the hot path pays a `Vec::push`, not a
//! lock or a channel operation, per event.

use std::{
    future::Future,
    mem,
    pin::Pin,
    task::{Context, Poll},
};

use flowdeck_protocol::{ErrorInfo, EventKind, ItemId, ItemStatus, Preview, StageIndex, Value};
use tokio::sync::mpsc;

use crate::clock::Clock;

/// A status change as a worker records it; the tracker numbers it and turns it into a
/// [`flowdeck_protocol::Event`].
#[derive(Debug)]
pub(crate) struct RawEvent {
    pub item: ItemId,
    pub at_us: u64,
    /// Zero when the event has no duration.
    pub duration_us: u64,
    pub attempt: u32,
    pub stage: StageIndex,
    pub worker: Option<u16>,
    pub kind: EventKind,
    /// The status the item leaves. The tracker counts by (from, to) pairs, which commute,
    /// so per-status counts are right whatever order batches from different workers arrive in.
    pub from: Option<ItemStatus>,
    pub last: bool,
    /// Folded in, for an attempt that ended on its first poll: a `Started` event (from
    /// this status) came first, at `at_us - duration_us`. See [`RawEvent::started_part`].
    pub began: Option<ItemStatus>,
    /// Folded in, for an item moving on: a `Queued` event at this stage follows, at the
    /// same time.
    pub next: Option<StageIndex>,
    pub extra: Option<Box<Extra>>,
}

/// What few events carry, boxed so the common event stays small.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    pub error: Option<ErrorInfo>,
    /// The items this one was made from (fan-out: one parent; fan-in: several).
    pub parents: Vec<ItemId>,
    /// What the item carried into the stage, when the stage captures inputs.
    pub input: Option<Preview>,
    /// What the stage made of it, when the stage captures outputs.
    pub output: Option<Preview>,
}

impl RawEvent {
    pub(crate) fn error(&self) -> Option<&ErrorInfo> {
        self.extra.as_deref().and_then(|x| x.error.as_ref())
    }

    pub(crate) fn parents(&self) -> &[ItemId] {
        self.extra.as_deref().map_or(&[], |x| &x.parents)
    }

    #[inline]
    pub(crate) fn with_error(mut self, error: ErrorInfo) -> Self {
        self.extra.get_or_insert_with(Default::default).error = Some(error);
        self
    }

    pub(crate) fn input(&self) -> Option<&Preview> {
        self.extra.as_deref().and_then(|x| x.input.as_ref())
    }

    /// Attaches a captured input; `None` leaves the event as it was (no allocation).
    #[inline]
    pub(crate) fn with_input(mut self, input: Option<Preview>) -> Self {
        if input.is_some() {
            self.extra.get_or_insert_with(Default::default).input = input;
        }
        self
    }

    pub(crate) fn output(&self) -> Option<&Preview> {
        self.extra.as_deref().and_then(|x| x.output.as_ref())
    }

    /// Attaches a captured output; `None` leaves the event as it was.
    #[inline]
    pub(crate) fn with_output(mut self, output: Option<Preview>) -> Self {
        if output.is_some() {
            self.extra.get_or_insert_with(Default::default).output = output;
        }
        self
    }

    #[inline]
    pub(crate) fn with_parents(mut self, parents: Vec<ItemId>) -> Self {
        self.extra.get_or_insert_with(Default::default).parents = parents;
        self
    }
}

/// What an event is about: an item at a stage, in a worker's hands.
#[derive(Clone, Copy)]
pub(crate) struct Subject {
    pub item: ItemId,
    pub stage: StageIndex,
    pub worker: Option<u16>,
}

impl Subject {
    /// An event of `kind` at `at_us`, moving the item on from `from` (`None`: a new item).
    #[inline]
    pub(crate) fn event(self, kind: EventKind, from: Option<ItemStatus>, at_us: u64) -> RawEvent {
        RawEvent {
            item: self.item,
            at_us,
            duration_us: 0,
            attempt: 0,
            stage: self.stage,
            worker: self.worker,
            kind,
            from,
            last: false,
            began: None,
            next: None,
            extra: None,
        }
    }

    /// Attempt `attempt` starting at `at_us`, the item leaving `from`.
    #[inline]
    pub(crate) fn started(self, from: ItemStatus, at_us: u64, attempt: u32) -> RawEvent {
        self.event(EventKind::Started, Some(from), at_us)
            .attempt(attempt, 0)
    }
}

impl RawEvent {
    #[inline]
    pub(crate) fn attempt(mut self, attempt: u32, duration_us: u64) -> Self {
        self.attempt = attempt;
        self.duration_us = duration_us;
        self
    }

    #[inline]
    pub(crate) fn last(mut self) -> Self {
        self.last = true;
        self
    }

    /// Folds in the attempt's `Started` event (it left `from` when it began).
    #[inline]
    pub(crate) fn began(mut self, from: Option<ItemStatus>) -> Self {
        self.began = from;
        self
    }

    /// The `Started` event folded in this one, if any ([`RawEvent::began`]). A worker's
    /// trivial attempt makes three events per stage (started, completed, queued at the
    /// next stage); folded, it pushes one, and the tracker finds the item's record once.
    /// The tracker numbers, counts, keeps and publishes each part as the event it was.
    #[inline]
    pub(crate) fn started_part(&self) -> Option<RawEvent> {
        let here = Subject {
            item: self.item,
            stage: self.stage,
            worker: self.worker,
        };
        self.began
            .map(|from| here.started(from, self.began_us(), self.attempt))
    }

    /// When the attempt began: the event's time less the attempt's duration.
    #[inline]
    pub(crate) fn began_us(&self) -> u64 {
        self.at_us.saturating_sub(self.duration_us)
    }

    /// When the first of the events this one stands for happened: the folded `Started`
    /// part's time if there is one, the event's own otherwise.
    #[inline]
    pub(crate) fn first_at_us(&self) -> u64 {
        if self.began.is_some() {
            self.began_us()
        } else {
            self.at_us
        }
    }

    /// How many events this one stands for: itself and the parts folded in it.
    #[inline]
    pub(crate) fn parts(&self) -> u64 {
        1 + u64::from(self.began.is_some()) + u64::from(self.next.is_some())
    }

    /// A completion with nothing boxed in it (no error, parents or captured data), the
    /// tracker's fast path ([`crate::tracker`]).
    #[inline]
    pub(crate) fn is_plain_completion(&self) -> bool {
        self.kind == EventKind::Completed && self.extra.is_none()
    }

    /// The `Queued` event at the next stage folded in this one, if any ([`RawEvent::next`]).
    #[inline]
    pub(crate) fn queued_part(&self) -> Option<RawEvent> {
        self.next.map(|stage| {
            let there = Subject {
                item: self.item,
                stage,
                worker: None,
            };
            there.event(EventKind::Queued, Some(ItemStatus::Queued), self.at_us)
        })
    }
}

/// An annotation a worker attached to an item.
#[derive(Debug)]
pub(crate) struct Note {
    pub item: ItemId,
    pub key: String,
    pub value: Value,
}

#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub events: Vec<RawEvent>,
    pub notes: Vec<Note>,
}

pub(crate) type BatchSender = mpsc::Sender<Batch>;
pub(crate) type WeakBatchSender = mpsc::WeakSender<Batch>;

const BATCH: usize = 512;
/// The longest an event waits in a buffer before it is sent, so the tracker (and every
/// dashboard behind it) never lags a worker by more than this. A worker that is about to
/// wait (on a slow task, a full queue, a rate limit or a retry's backoff) sends its events
/// by then at the latest; see [`EventBuf::flush_when_due`].
pub(crate) const MAX_HOLD_US: u64 = 50_000;

/// Event buffers the tracker is done with, for producers to fill again. A reused buffer is
/// warm in the cache, where the first writes into a new one miss: on the throughput bench
/// the stores of `EventBuf::push` into fresh buffers were most of its time.
static SPARE: parking_lot::Mutex<Vec<Vec<RawEvent>>> = parking_lot::Mutex::new(Vec::new());
/// At most this many spare buffers are kept (each holds [`BATCH`] events).
const SPARE_MAX: usize = 64;

/// Gives a batch's event buffer back once its events are applied.
pub(crate) fn recycle(mut events: Vec<RawEvent>) {
    if events.capacity() < BATCH {
        return;
    }
    events.clear();
    let mut spare = SPARE.lock();
    if spare.len() < SPARE_MAX {
        spare.push(events);
    }
}

fn fresh_buffer() -> Vec<RawEvent> {
    SPARE
        .lock()
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(BATCH))
}

/// One producer's buffer. With tracking off it holds no sender and every call returns at once.
pub(crate) struct EventBuf {
    tx: Option<BatchSender>,
    batch: Batch,
    first_at_us: u64,
}

impl EventBuf {
    pub(crate) fn new(tx: Option<BatchSender>) -> Self {
        EventBuf {
            tx,
            batch: Batch::default(),
            first_at_us: 0,
        }
    }

    pub(crate) fn on(&self) -> bool {
        self.tx.is_some()
    }

    /// Buffers `event`, and sends the batch once it is due. Every event of every item
    /// passes here, so the future is kept small: the event goes into the buffer before
    /// the future is made, and the send (a channel's state, hundreds of bytes) is boxed,
    /// once a batch. Unboxed, it made the future that large, and a caller copied all of it
    /// into its own state at every push (1% of the throughput bench's time, in `memcpy`).
    #[inline]
    pub(crate) fn push(&mut self, event: RawEvent) -> impl Future<Output = ()> + '_ {
        let due = self.add(event);
        async move {
            if due {
                Box::pin(self.flush()).await;
            }
        }
    }

    /// Buffers `event`; `true` when the batch is due ([`BATCH`] events, or the oldest held
    /// [`MAX_HOLD_US`]). Kept apart from the `await` of [`EventBuf::push`] and inlined:
    /// every event of every item passes here.
    #[inline]
    fn add(&mut self, event: RawEvent) -> bool {
        if self.tx.is_none() {
            return false;
        }
        if self.batch.events.is_empty() {
            self.first_at_us = event.at_us;
        }
        let at = event.at_us;
        self.batch.events.push(event);
        self.batch.events.len() >= BATCH || at.saturating_sub(self.first_at_us) > MAX_HOLD_US
    }

    pub(crate) fn note(&mut self, note: Note) {
        if self.tx.is_some() {
            self.batch.notes.push(note);
        }
    }

    /// How long the oldest buffered event may still wait, at `now_us`; `None` when nothing
    /// is buffered.
    fn hold_left(&self, now_us: u64) -> Option<std::time::Duration> {
        if self.tx.is_none() || (self.batch.events.is_empty() && self.batch.notes.is_empty()) {
            return None;
        }
        let age = now_us.saturating_sub(self.first_at_us);
        Some(std::time::Duration::from_micros(
            MAX_HOLD_US.saturating_sub(age),
        ))
    }

    /// Sends what is buffered. Waits when the tracker is behind: tracking never drops an
    /// event, it slows the pipeline instead (the channel is bounded, so memory is too).
    pub(crate) async fn flush(&mut self) {
        let Some(tx) = &self.tx else { return };
        if self.batch.events.is_empty() && self.batch.notes.is_empty() {
            return;
        }
        let batch = mem::replace(
            &mut self.batch,
            Batch {
                events: fresh_buffer(),
                notes: Vec::new(),
            },
        );
        if tx.send(batch).await.is_err() {
            // The tracker is gone (the pipeline was torn down): stop recording.
            self.tx = None;
        }
    }

    /// Sends `event` alone, for a buffer used once.
    pub(crate) async fn send_one(mut self, event: RawEvent) {
        let Some(tx) = self.tx.take() else { return };
        self.batch.events.push(event);
        let _ = tx.send(mem::take(&mut self.batch)).await;
    }

    /// Sends what is buffered if the tracker has room for it now; otherwise keeps it.
    fn try_flush(&mut self) {
        let Some(tx) = &self.tx else { return };
        let batch = mem::take(&mut self.batch);
        match tx.try_send(batch) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(batch)) => self.batch = batch,
            Err(mpsc::error::TrySendError::Closed(_)) => self.tx = None,
        }
    }

    /// A future to race against a wait (a slow task): it sends the buffered events once
    /// they are due, so a worker busy for seconds on one item shows it as running within
    /// [`MAX_HOLD_US`], not when it is done. It never completes. It arms its timer only when
    /// first polled, which a biased `select!` does only once the wait turned out not to be
    /// ready at once: the hot path of a fast stage pays no timer.
    pub(crate) fn flush_when_due<'a>(&'a mut self, clock: &'a Clock) -> FlushWhenDue<'a> {
        FlushWhenDue {
            buf: self,
            clock,
            timer: None,
        }
    }
}

/// See [`EventBuf::flush_when_due`].
pub(crate) struct FlushWhenDue<'a> {
    buf: &'a mut EventBuf,
    clock: &'a Clock,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Future for FlushWhenDue<'_> {
    type Output = std::convert::Infallible;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            // Nothing buffered: nothing will be while the worker waits, so nothing to do.
            let Some(left) = this.buf.hold_left(this.clock.now_us()) else {
                return Poll::Pending;
            };
            match &mut this.timer {
                None => this.timer = Some(Box::pin(tokio::time::sleep(left))),
                Some(timer) => {
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.buf.try_flush();
                    // Still buffered (the tracker is behind): look again a hold later.
                    this.timer = None;
                    if this.buf.hold_left(this.clock.now_us()).is_some() {
                        this.timer = Some(Box::pin(tokio::time::sleep(
                            std::time::Duration::from_micros(MAX_HOLD_US),
                        )));
                    }
                }
            }
        }
    }
}
