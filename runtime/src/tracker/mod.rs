//! The status tracker: turns workers' event batches into counts, per-item detail, an error
//! summary, callbacks and the change feed. It runs as one task per pipeline, so workers
//! never wait on it except when it is a whole channel of batches behind.
//!
//! Memory stays bounded on long runs: counters are kept forever; per-item detail only for
//! the last `retention` items (see [`record`]); the error summary keeps its counts and the
//! last 1,000 failures.

mod record;

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use flowdeck_protocol::{
    Ancestor, ErrorSummary, Event, EventKind, FailedItem, ItemDetail, ItemId, ItemStatus,
    ItemSummary, StageIndex,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{broadcast, mpsc};

use crate::events::{Batch, RawEvent};
use record::{ItemRecord, Ring};

use flowdeck_protocol::RECENT_FAILURES;
const FEED_CAPACITY: usize = 4_096;

type Callback = Box<dyn Fn(&Event) + Send + Sync>;

/// Where finished items go to be kept (a run store). The tracker asks first whether an item
/// is wanted, before building its record, so that a sink that is behind costs nothing.
pub trait FinishedSink: Send + Sync {
    /// Whether an item that just finished with `status` would be kept now.
    fn wants(&self, status: ItemStatus) -> bool;
    /// The items of one batch that finished and were wanted, with their whole detail.
    fn finished(&self, items: Vec<ItemDetail>);
    /// Items that finished but were not wanted, or whose detail was no longer retained.
    fn skipped(&self, n: u64);
    /// Items handed over before (to [`finished`](Self::finished), or skipped) that changed
    /// since without leaving their status: each worker sends its events in batches, so a
    /// stage's completion of an item (its visit's end, the input it kept, its annotations)
    /// can arrive after the next stage's worker reported the item done. A sink updates
    /// what it kept of these and keeps none it had not: a skipped item stays skipped.
    fn amended(&self, items: Vec<ItemDetail>);
}

/// Counts for one stage, kept forever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageCounts {
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
    pub cancelled: u64,
}

/// Counts by status and by stage. Every item is in exactly one status, so the statuses
/// always add up to `submitted` once the tracker has caught up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub submitted: u64,
    pub queued: u64,
    pub running: u64,
    pub retrying: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Waiting for a person's answer.
    pub waiting: u64,
    pub by_stage: Vec<StageCounts>,
}

impl Stats {
    pub fn count(&self, status: ItemStatus) -> u64 {
        match status {
            ItemStatus::Queued => self.queued,
            ItemStatus::Running => self.running,
            ItemStatus::Retrying => self.retrying,
            ItemStatus::Completed => self.completed,
            ItemStatus::Failed => self.failed,
            ItemStatus::Cancelled => self.cancelled,
            ItemStatus::Waiting => self.waiting,
        }
    }
}

struct State {
    seq: u64,
    /// Items per status, indexed like `ItemStatus::ALL`. Signed: a batch from one worker
    /// can move an item out of a status before another's batch has moved it in.
    counts: [i64; 7],
    submitted: u64,
    stages: Vec<StageCounts>,
    ring: Ring,
    errors_total: u64,
    errors_by_kind: HashMap<String, u64>,
    errors_by_stage: Vec<u64>,
    recent_failures: VecDeque<FailedItem>,
}

/// Each stage's depth: the most edges on a path to it from the input (the graph has no
/// cycle: `build()` refuses one). Relaxed at most once per stage, so it ends regardless.
fn depths(stages: usize, edges: &[flowdeck_protocol::Edge]) -> Vec<u16> {
    let mut depth = vec![0u16; stages];
    for _ in 0..stages {
        let mut changed = false;
        for e in edges {
            let Some(from) = e.from else { continue };
            let (Some(&d), Some(&to)) =
                (depth.get(usize::from(from)), depth.get(usize::from(e.to)))
            else {
                continue;
            };
            if to <= d {
                depth[usize::from(e.to)] = d.saturating_add(1);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depth
}

fn slot(status: ItemStatus) -> usize {
    status as usize
}

/// The tracker's shared half: queries lock it briefly; the tracker task applies batches.
///
/// Everything a dashboard asks about items: counts, one item's status and history, items by
/// status, provenance across fan-out, the error summary, callbacks and the change feed.
///
/// ```
/// use std::sync::{atomic::{AtomicU64, Ordering}, Arc};
/// use flowdeck_runtime::{protocol::{EventKind, ItemStatus}, Line, Stage};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let failures = Arc::new(AtomicU64::new(0));
/// let seen = failures.clone();
/// let running = Line::<u32>::new("docs")
///     // One input becomes three items; each remembers the input it came from.
///     .stage(Stage::flat_map("split", |n: u32, _cx| async move { Ok::<_, String>(vec![n, n + 1, n + 2]) }))
///     .stage(Stage::map("check", |n: u32, cx| async move {
///         cx.annotate("bytes", n * 100);
///         if n == 12 { Err("too big".to_string()) } else { Ok(n) }
///     }))
///     .on(EventKind::Failed, move |_| { seen.fetch_add(1, Ordering::Relaxed); })
///     .build()
///     .unwrap()
///     .start();
/// let mut feed = running.handle.subscribe();
/// running.input.send(10).await.unwrap();
/// drop(running.input);
/// while running.outputs.recv().await.is_ok() {}
/// running.handle.wait().await;
///
/// let tracker = running.handle.tracker();
/// let stats = tracker.stats();
/// assert_eq!((stats.completed, stats.failed), (3, 1)); // the input and two children
/// assert_eq!(failures.load(Ordering::Relaxed), 1);
///
/// let failed = tracker.items(Some(ItemStatus::Failed), None, 10);
/// let item = tracker.item(failed[0].id).unwrap();
/// assert_eq!(item.error.unwrap().message, "too big");
/// assert_eq!(item.annotations[0].0, "bytes");
/// assert!(tracker.history(item.id).unwrap().iter().any(|e| e.kind == EventKind::Started));
///
/// // Provenance: the failed child, then the input it was split from.
/// let chain = tracker.provenance(item.id);
/// assert_eq!(chain.len(), 2);
/// assert_eq!(chain[1].id, item.parents[0]);
///
/// let errors = tracker.errors();
/// assert_eq!((errors.total, errors.by_stage.clone()), (1, vec![0, 1]));
///
/// // The change feed: numbered events, no gaps.
/// let first = feed.recv().await.unwrap();
/// assert_eq!(first[0].seq, 1);
/// # });
/// ```
pub struct Tracker {
    state: Mutex<State>,
    /// Panics caught in callbacks: a callback is user code, and one that panics must not
    /// stop the tracker (and with it every dashboard).
    callback_panics: std::sync::atomic::AtomicU64,
    callbacks: RwLock<Vec<(Option<EventKind>, Callback)>>,
    /// Dropped when the tracker finishes, which closes every subscription.
    feed: RwLock<Option<broadcast::Sender<Arc<[Event]>>>>,
    sink: RwLock<Option<Arc<dyn FinishedSink>>>,
}

impl Tracker {
    pub(crate) fn new(stage_count: usize, retention: usize) -> Arc<Self> {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        Arc::new(Tracker {
            state: Mutex::new(State {
                seq: 0,
                counts: [0; 7],
                submitted: 0,
                stages: vec![StageCounts::default(); stage_count],
                ring: Ring::new(retention, stage_count),
                errors_total: 0,
                errors_by_kind: HashMap::new(),
                errors_by_stage: vec![0; stage_count],
                recent_failures: VecDeque::new(),
            }),
            callbacks: RwLock::new(Vec::new()),
            callback_panics: std::sync::atomic::AtomicU64::new(0),
            feed: RwLock::new(Some(feed)),
            sink: RwLock::new(None),
        })
    }

    /// Orders each item's visits by its stages' depths in the graph of `edges`, whatever
    /// order their events arrive in.
    pub(crate) fn order_stages(&self, edges: &[flowdeck_protocol::Edge]) {
        let mut st = self.state.lock();
        let depths = depths(st.stages.len(), edges);
        st.ring.set_depths(depths);
    }

    /// Runs until every sender is gone, applying batches in arrival order.
    pub(crate) async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Batch>) {
        while let Some(batch) = rx.recv().await {
            self.apply(batch);
        }
        self.close_feed();
    }

    /// Ends the change feed: subscribers learn the pipeline has finished.
    pub(crate) fn close_feed(&self) {
        self.feed.write().take();
    }

    fn apply(&self, batch: Batch) {
        let callbacks = self.callbacks.read();
        let feed = self.feed.read();
        let watched = feed.as_ref().is_some_and(|f| f.receiver_count() > 0);
        let wanted = !callbacks.is_empty() || watched;
        let mut out = Vec::with_capacity(if wanted { batch.events.len() } else { 0 });
        let sink = self.sink.read().clone();
        let (mut kept, mut amended, mut skipped) = (Vec::new(), Vec::new(), 0u64);
        {
            let mut st = self.state.lock();
            let (mut finished, mut late) = (Vec::new(), Vec::new());
            for folded in &batch.events {
                let plain = folded.is_plain_completion();
                let first = st.seq + 1;
                st.seq += folded.parts();
                let last = st.seq;
                // Nearly every event: applied and counted without making its parts.
                if plain {
                    if st.ring.apply_completion(folded, last) && sink.is_some() {
                        late.push(folded.item);
                    }
                    st.count_completion(folded);
                    if !wanted && sink.is_none() {
                        continue;
                    }
                }
                // The parts a folded event stands for, numbered in order; its record is
                // found once for all of them.
                let (started, queued) = (folded.started_part(), folded.queued_part());
                let mut list = [folded; 3];
                let mut n = 0;
                for part in [started.as_ref(), Some(folded), queued.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    list[n] = part;
                    n += 1;
                }
                let parts = &list[..n];
                if !plain && st.ring.apply_parts(parts, last) && sink.is_some() {
                    late.push(folded.item);
                }
                for (seq, &e) in (first..).zip(parts) {
                    if !plain {
                        st.count(e);
                    }
                    if wanted {
                        out.push(to_event(seq, e));
                    }
                    if let Some(sink) = &sink {
                        let to = e.kind.status_after(e.last);
                        if to.is_terminal() {
                            if sink.wants(to) {
                                finished.push(e.item);
                            } else {
                                skipped += 1;
                            }
                        }
                    }
                }
            }
            let seq = st.seq;
            for note in batch.notes {
                if let Some(r) = st.ring.get_mut(note.item) {
                    r.annotate(note.key, note.value);
                    r.touch(seq);
                    if sink.is_some() && r.status().is_terminal() {
                        late.push(note.item);
                    }
                }
            }
            // Rare (a late batch), so this costs nothing in the common case. An item that
            // also finished in this batch goes over once, finished, with everything.
            if !late.is_empty() {
                finished.sort_unstable();
                late.sort_unstable();
                late.dedup();
                late.retain(|id| finished.binary_search(id).is_err());
                amended = late
                    .into_iter()
                    .filter_map(|id| st.ring.get(id).map(ItemRecord::detail))
                    .collect();
            }
            // After the notes: an item's annotations travel in the batch it finishes in.
            for id in finished {
                match st.ring.get(id) {
                    Some(r) => kept.push(r.detail()),
                    None => skipped += 1,
                }
            }
        }
        if let Some(sink) = &sink {
            hand_over(sink.as_ref(), kept, amended, skipped);
        }
        crate::events::recycle(batch.events);
        if !wanted || out.is_empty() {
            return;
        }
        for e in &out {
            for (filter, f) in callbacks.iter() {
                if filter.is_none_or(|k| k == e.kind) {
                    if let Err(message) = crate::guard::call(|| f(e)) {
                        self.callback_panicked(e, &message);
                    }
                }
            }
        }
        if let (true, Some(feed)) = (watched, feed.as_ref()) {
            // A receiver may leave meanwhile: nobody watching is fine.
            let _ = feed.send(out.into());
        }
    }

    /// The retained items that changed after the tracker's `after`-th event, with their
    /// status now, by id. This is how a reporter follows the pipeline without the change
    /// feed: the feed costs the pipeline a copy of every event, a scan costs only the
    /// reader, once a period. Walked in slices, letting go of the lock between them.
    /// Take [`Tracker::seq`] before calling, and pass it next time.
    pub fn changed_since(&self, after: u64) -> Vec<(ItemId, ItemStatus)> {
        const SLICE: u64 = 4_096;
        let mut found = Vec::new();
        let Some((oldest, newest)) = self.state.lock().ring.id_range() else {
            return found;
        };
        let mut low = oldest;
        loop {
            let high = low.saturating_add(SLICE - 1).min(newest);
            {
                let st = self.state.lock();
                for id in low..=high {
                    if let Some(r) = st.ring.get(id).filter(|r| r.changed() > after) {
                        found.push((id, r.status()));
                    }
                }
            }
            if high == newest {
                return found;
            }
            low = high + 1;
        }
    }

    /// Puts items as another process's tracker reported them (a mirror's): each replaces
    /// the item's record, the counts move from its status here to its reported one (an
    /// item not seen before counts as submitted), a newly failed item enters the error
    /// summary, a newly finished one goes to the sink, and the change feed gets one event
    /// per item, so a hub refreshes its row. Putting the same detail twice changes nothing
    /// but its record's stamp: a resent report is harmless.
    pub fn put(&self, items: Vec<ItemDetail>) {
        if items.is_empty() {
            return;
        }
        let feed = self.feed.read();
        let watched = feed.as_ref().is_some_and(|f| f.receiver_count() > 0);
        let sink = self.sink.read().clone();
        let (mut out, mut kept, mut skipped) = (Vec::new(), Vec::new(), 0u64);
        let mut amended = Vec::new();
        {
            let mut st = self.state.lock();
            for d in items {
                let held = st.ring.get(d.id);
                let before = held.map(|r| r.status());
                // Finished here and reported again, changed (the reporting process's own
                // late batch): the sink updates what it kept. A resent report is the same
                // detail, and goes nowhere.
                let changed_after_finish = sink.is_some()
                    && d.status.is_terminal()
                    && before == Some(d.status)
                    && held.is_some_and(|r| r.detail() != d);
                let here = crate::events::Subject {
                    item: d.id,
                    stage: d.stage,
                    worker: d.visits.last().and_then(|v| v.worker),
                };
                let mut e = here
                    .event(entering(d.status), before, d.updated_us)
                    .attempt(d.visits.last().map_or(0, |v| v.attempts), 0);
                if d.status == ItemStatus::Completed {
                    e = e.last();
                }
                if let Some(error) = d.error.clone() {
                    e = e.with_error(error);
                }
                let mut record = ItemRecord::from_detail(&d);
                // Numbered only if kept: the feed's numbers have no gaps.
                let seq = st.seq + 1;
                record.touch(seq);
                if !st.ring.put(record) {
                    continue;
                }
                st.seq = seq;
                if before != Some(d.status) {
                    st.count(&e);
                    if d.status.is_terminal() && !before.is_some_and(ItemStatus::is_terminal) {
                        match &sink {
                            Some(sink) if sink.wants(d.status) => kept.push(d),
                            Some(_) => skipped += 1,
                            None => {}
                        }
                    }
                } else if changed_after_finish {
                    amended.push(d);
                }
                if watched {
                    out.push(to_event(seq, &e));
                }
            }
        }
        if let Some(sink) = &sink {
            hand_over(sink.as_ref(), kept, amended, skipped);
        }
        if let (false, Some(feed)) = (out.is_empty(), feed.as_ref()) {
            let _ = feed.send(out.into());
        }
    }

    /// Hands every item that finishes from now on to `sink` (a run store), with its whole
    /// detail, as long as the sink wants it.
    pub fn set_sink(&self, sink: Arc<dyn FinishedSink>) {
        *self.sink.write() = Some(sink);
    }

    /// Logs the first panic of the callbacks and every 1,000th after it, so a callback
    /// that panics on every event cannot flood the log.
    fn callback_panicked(&self, e: &Event, message: &str) {
        let n = self
            .callback_panics
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n.is_multiple_of(1_000) {
            tracing::error!(
                item = e.item,
                kind = ?e.kind,
                panics = n + 1,
                "a tracker callback panicked (the event is still recorded): {message}"
            );
        }
    }

    /// How many times a callback panicked (each caught and logged).
    pub fn callback_panics(&self) -> u64 {
        self.callback_panics
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn add_callback(&self, filter: Option<EventKind>, f: Callback) {
        self.callbacks.write().push((filter, f));
    }

    /// Calls `f` on every status change.
    pub fn on_status_change(&self, f: impl Fn(&Event) + Send + Sync + 'static) {
        self.add_callback(None, Box::new(f));
    }
    /// Calls `f` when an attempt starts.
    pub fn on_task_start(&self, f: impl Fn(&Event) + Send + Sync + 'static) {
        self.add_callback(Some(EventKind::Started), Box::new(f));
    }
    /// Calls `f` when a stage finishes an item.
    pub fn on_task_complete(&self, f: impl Fn(&Event) + Send + Sync + 'static) {
        self.add_callback(Some(EventKind::Completed), Box::new(f));
    }
    /// Calls `f` when an attempt failed and will be retried.
    pub fn on_task_retry(&self, f: impl Fn(&Event) + Send + Sync + 'static) {
        self.add_callback(Some(EventKind::Retrying), Box::new(f));
    }
    /// Calls `f` when an item fails for good.
    pub fn on_task_fail(&self, f: impl Fn(&Event) + Send + Sync + 'static) {
        self.add_callback(Some(EventKind::Failed), Box::new(f));
    }

    /// The change feed: every event, numbered, in batches. A receiver that falls more than
    /// 4,096 batches behind gets [`FeedError::Lagged`] and should resync from a snapshot.
    pub fn subscribe(&self) -> Feed {
        match self.feed.read().as_ref() {
            Some(feed) => Feed(feed.subscribe()),
            // Finished: a feed that reports `Closed` at once.
            None => Feed(broadcast::channel(1).1),
        }
    }

    /// The sequence number of the last applied event.
    pub fn seq(&self) -> u64 {
        self.state.lock().seq
    }

    pub fn stats(&self) -> Stats {
        let st = self.state.lock();
        let c = |s| u64::try_from(st.counts[slot(s)]).unwrap_or(0);
        Stats {
            submitted: st.submitted,
            queued: c(ItemStatus::Queued),
            running: c(ItemStatus::Running),
            retrying: c(ItemStatus::Retrying),
            completed: c(ItemStatus::Completed),
            failed: c(ItemStatus::Failed),
            cancelled: c(ItemStatus::Cancelled),
            waiting: c(ItemStatus::Waiting),
            by_stage: st.stages.clone(),
        }
    }

    /// The item's status, if its detail is retained.
    pub fn status(&self, id: ItemId) -> Option<ItemStatus> {
        self.state.lock().ring.get(id).map(|r| r.status())
    }

    pub(crate) fn stage_of(&self, id: ItemId) -> Option<(ItemStatus, StageIndex)> {
        self.state
            .lock()
            .ring
            .get(id)
            .map(|r| (r.status(), r.stage()))
    }

    pub fn item(&self, id: ItemId) -> Option<ItemDetail> {
        self.state.lock().ring.get(id).map(|r| r.detail())
    }

    /// The details of those of `ids` still retained, in the order given, under one lock.
    /// Callers with many ids take them a chunk at a time, so the pipeline's events are
    /// not held up behind one long lock.
    pub fn details(&self, ids: &[ItemId]) -> Vec<ItemDetail> {
        let st = self.state.lock();
        ids.iter()
            .filter_map(|&id| st.ring.get(id).map(|r| r.detail()))
            .collect()
    }

    pub fn history(&self, id: ItemId) -> Option<Vec<Event>> {
        self.state.lock().ring.get(id).map(|r| r.history())
    }

    /// Captured inputs (`Stage::capture`): the bytes held now, and how many previews were
    /// dropped because holding them would have passed the tracker's budget (64 MiB).
    pub fn captured(&self) -> (usize, u64) {
        let st = self.state.lock();
        (st.ring.input_bytes(), st.ring.inputs_dropped)
    }

    /// How many of the most recent items keep their detail (0 with tracking off).
    /// The oldest and newest ids that may be retained; `None` before the first item.
    pub fn retained_ids(&self) -> Option<(ItemId, ItemId)> {
        self.state.lock().ring.id_range()
    }

    pub fn retention(&self) -> usize {
        self.state.lock().ring.capacity()
    }

    /// The summaries of those of `ids` still retained, in the order given, under one lock:
    /// how a streaming server refreshes the items a batch of the change feed touched.
    pub fn summaries(&self, ids: impl IntoIterator<Item = ItemId>) -> Vec<ItemSummary> {
        let st = self.state.lock();
        ids.into_iter()
            .filter_map(|id| st.ring.get(id).map(|r| r.summary()))
            .collect()
    }

    /// Retained items, newest first, filtered by status and stage; at most `limit`.
    pub fn items(
        &self,
        status: Option<ItemStatus>,
        stage: Option<StageIndex>,
        limit: usize,
    ) -> Vec<ItemSummary> {
        self.find(None, limit, status, stage, |_| true)
    }

    /// Retained items with an id below `before` (a cursor; `None`: from the newest),
    /// newest first, in `status` and at `stage` when given, that `keep` accepts; at most
    /// `limit`. The ring is walked by id in slices, letting go of the lock between them, so
    /// that a query over 100,000 items never holds up the tracker, and the pipeline behind
    /// it, for more than a slice's worth; nothing is sorted.
    pub fn find(
        &self,
        before: Option<ItemId>,
        limit: usize,
        status: Option<ItemStatus>,
        stage: Option<StageIndex>,
        keep: impl Fn(&ItemSummary) -> bool,
    ) -> Vec<ItemSummary> {
        const SLICE: u64 = 4_096;
        let mut found = Vec::new();
        let Some((oldest, newest)) = self.state.lock().ring.id_range() else {
            return found;
        };
        let mut next = match before {
            Some(b) if b <= oldest => return found,
            Some(b) => (b - 1).min(newest),
            None => newest,
        };
        while found.len() < limit {
            let low = next.saturating_sub(SLICE - 1).max(oldest);
            {
                let st = self.state.lock();
                for id in (low..=next).rev() {
                    let Some(r) = st.ring.get(id) else { continue };
                    if status.is_some_and(|s| r.status() != s)
                        || stage.is_some_and(|s| r.stage() != s)
                    {
                        continue;
                    }
                    let summary = r.summary();
                    if keep(&summary) {
                        found.push(summary);
                        if found.len() == limit {
                            break;
                        }
                    }
                }
            }
            if low == oldest {
                break;
            }
            next = low - 1;
        }
        found
    }

    /// The item and its ancestors across stages, nearest first: through fan-out (one
    /// parent) and fan-in (several). Ancestors whose detail is gone appear with
    /// `retained: false`.
    pub fn provenance(&self, id: ItemId) -> Vec<Ancestor> {
        let st = self.state.lock();
        let walked = flowdeck_protocol::provenance(id, |id| {
            Ok::<_, std::convert::Infallible>(
                st.ring.get(id).map(|r| (r.parents().to_vec(), r.stages())),
            )
        });
        match walked {
            Ok(chain) => chain,
            Err(never) => match never {},
        }
    }

    /// Items that failed for good, so far: a cheap way to tell whether the error summary
    /// changed.
    pub fn errors_total(&self) -> u64 {
        self.state.lock().errors_total
    }

    /// Items failed for good, by error kind, most frequent first: what the health
    /// warnings compare between checks, without copying the recent failures.
    pub fn errors_by_kind(&self) -> Vec<(String, u64)> {
        sorted_kinds(&self.state.lock().errors_by_kind)
    }

    pub fn errors(&self) -> ErrorSummary {
        let st = self.state.lock();
        ErrorSummary {
            total: st.errors_total,
            by_kind: sorted_kinds(&st.errors_by_kind),
            by_stage: st.errors_by_stage.clone(),
            recent: st.recent_failures.iter().rev().cloned().collect(),
        }
    }
}

/// Failures by kind, most frequent first, then by name: the order every error summary
/// lists them in.
fn sorted_kinds(counts: &HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut by_kind: Vec<(String, u64)> = counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
    by_kind.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    by_kind
}

impl State {
    /// Counts a plain completion ([`RawEvent::is_plain_completion`]) as [`State::count`]
    /// counts its parts: the started part moves the item from where it was to running,
    /// the completion from running on, and the next stage's queueing from queued to queued.
    fn count_completion(&mut self, e: &RawEvent) {
        if let Some(began) = e.began {
            self.moved(Some(began), ItemStatus::Running);
        }
        self.moved(e.from, EventKind::Completed.status_after(e.last));
        if e.from.is_some() {
            if let Some(stage) = self.stages.get_mut(usize::from(e.stage)) {
                stage.completed += 1;
            }
        }
    }

    /// An item moved from `from` (`None`: it is new) to `to`.
    #[inline]
    fn moved(&mut self, from: Option<ItemStatus>, to: ItemStatus) {
        match from {
            Some(from) => self.counts[slot(from)] -= 1,
            None => self.submitted += 1,
        }
        self.counts[slot(to)] += 1;
    }

    fn count(&mut self, e: &RawEvent) {
        self.moved(e.from, e.kind.status_after(e.last));
        let Some(stage) = self.stages.get_mut(usize::from(e.stage)) else {
            return;
        };
        match e.kind {
            EventKind::Completed if e.from.is_some() => stage.completed += 1,
            EventKind::Retrying => stage.retried += 1,
            EventKind::Cancelled => stage.cancelled += 1,
            EventKind::Failed => {
                stage.failed += 1;
                self.errors_total += 1;
                if let Some(n) = self.errors_by_stage.get_mut(usize::from(e.stage)) {
                    *n += 1;
                }
                if let Some(err) = e.error() {
                    *self.errors_by_kind.entry(err.kind.clone()).or_default() += 1;
                    if self.recent_failures.len() == RECENT_FAILURES {
                        self.recent_failures.pop_front();
                    }
                    self.recent_failures.push_back(FailedItem {
                        id: e.item,
                        stage: e.stage,
                        at_us: e.at_us,
                        error: err.clone(),
                    });
                }
            }
            _ => {}
        }
    }
}

/// Gives a sink one batch's finished items, those it was given before that changed since,
/// and the count of those it did not take.
fn hand_over(
    sink: &dyn FinishedSink,
    kept: Vec<ItemDetail>,
    amended: Vec<ItemDetail>,
    skipped: u64,
) {
    if !kept.is_empty() {
        sink.finished(kept);
    }
    if !amended.is_empty() {
        sink.amended(amended);
    }
    if skipped > 0 {
        sink.skipped(skipped);
    }
}

/// The kind of event that leaves an item in `status` (a reported item's latest change).
fn entering(status: ItemStatus) -> EventKind {
    match status {
        ItemStatus::Queued => EventKind::Queued,
        ItemStatus::Running => EventKind::Started,
        ItemStatus::Retrying => EventKind::Retrying,
        ItemStatus::Completed => EventKind::Completed,
        ItemStatus::Failed => EventKind::Failed,
        ItemStatus::Cancelled => EventKind::Cancelled,
        ItemStatus::Waiting => EventKind::Waiting,
    }
}

fn to_event(seq: u64, e: &RawEvent) -> Event {
    Event {
        seq,
        item: e.item,
        stage: e.stage,
        worker: e.worker,
        kind: e.kind,
        attempt: e.attempt,
        at_us: e.at_us,
        duration_us: (e.duration_us > 0).then_some(e.duration_us),
        last: e.last,
        error: e.error().cloned(),
        from: e.from,
    }
}

/// A subscription to the change feed.
pub struct Feed(broadcast::Receiver<Arc<[Event]>>);

/// Why the feed gave no batch.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FeedError {
    #[error("the subscriber fell behind and {0} batches were skipped: resync from a snapshot")]
    Lagged(u64),
    #[error("the pipeline has finished")]
    Closed,
}

impl Feed {
    /// The next batch of events, in sequence order.
    pub async fn recv(&mut self) -> Result<Arc<[Event]>, FeedError> {
        self.0.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => FeedError::Lagged(n),
            broadcast::error::RecvError::Closed => FeedError::Closed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depths_are_the_longest_path_from_the_input() {
        let edge = |from: Option<u16>, to: u16| flowdeck_protocol::Edge {
            from,
            to,
            broadcast: false,
        };
        // 0 -> 1 -> 3, 0 -> 3, 2 from the input alone, and an edge naming no stage.
        let edges = [
            edge(None, 0),
            edge(Some(0), 1),
            edge(Some(1), 3),
            edge(Some(0), 3),
            edge(None, 2),
            edge(Some(9), 0),
        ];
        assert_eq!(depths(4, &edges), [0, 1, 0, 2]);
    }

    use crate::events::{Batch, Extra, RawEvent};
    use proptest::prelude::*;

    fn status() -> impl Strategy<Value = ItemStatus> {
        prop::sample::select(ItemStatus::ALL.to_vec())
    }

    type Completion = (
        (ItemId, StageIndex, u64, u64, u32),
        (Option<ItemStatus>, Option<StageIndex>),
        (bool, Option<ItemStatus>, Option<u16>),
    );

    /// A completion as workers push them: an item (of few, so they meet), its stage, the
    /// started and next-queued parts folded in or not, last or not, new or not.
    fn completion() -> impl Strategy<Value = Completion> {
        (
            (1..6u64, 0..3u16, 0..40u64, 0..3u64, 1..3u32),
            (prop::option::of(status()), prop::option::of(0..3u16)),
            (
                any::<bool>(),
                prop::option::of(status()),
                prop::option::of(0..2u16),
            ),
        )
    }

    fn event(c: &Completion, extra: Option<Box<Extra>>) -> RawEvent {
        let ((item, stage, at_us, duration_us, attempt), (began, next), (last, from, worker)) = *c;
        RawEvent {
            item,
            at_us,
            duration_us,
            attempt,
            stage,
            worker,
            kind: EventKind::Completed,
            from,
            last,
            began,
            next,
            extra,
        }
    }

    /// What a tracker holds: its sequence, counts, records and changes.
    type Held = (
        u64,
        Stats,
        Vec<Option<ItemDetail>>,
        Vec<(ItemId, ItemStatus)>,
    );

    fn state(t: &Tracker) -> Held {
        let items = (0..8).map(|id| t.item(id)).collect();
        (t.seq(), t.stats(), items, t.changed_since(0))
    }

    proptest! {
        /// The fast path for plain completions leaves the tracker exactly as applying
        /// their parts one by one does (the same events with an empty box of extras take
        /// the general path): records, counts, sequence numbers and the change feed.
        #[test]
        fn a_plain_completion_is_applied_as_its_parts_are(
            batches in prop::collection::vec(prop::collection::vec(completion(), 1..12), 1..6),
            retention in 2..8usize,
        ) {
            let fast = Tracker::new(3, retention);
            let watched = Tracker::new(3, retention);
            let general = Tracker::new(3, retention);
            // Stages 0 -> 2 -> 1: visits are ordered by depth, not index or arrival.
            let edge = |from, to| flowdeck_protocol::Edge { from, to, broadcast: false };
            let edges = [edge(None, 0), edge(Some(0), 2), edge(Some(2), 1)];
            for t in [&fast, &watched, &general] {
                t.order_stages(&edges);
            }
            let mut feeds = (watched.subscribe(), general.subscribe());
            for events in batches {
                let batch = |extra: fn() -> Option<Box<Extra>>| Batch {
                    events: events.iter().map(|c| event(c, extra())).collect(),
                    notes: Vec::new(),
                };
                fast.apply(batch(|| None));
                watched.apply(batch(|| None));
                general.apply(batch(|| Some(Box::default())));
                let a: Vec<Event> = feeds.0.0.try_recv().unwrap().to_vec();
                let b: Vec<Event> = feeds.1.0.try_recv().unwrap().to_vec();
                prop_assert_eq!(a, b);
            }
            prop_assert_eq!(state(&fast), state(&general));
            prop_assert_eq!(state(&watched), state(&general));
        }
    }

    /// A sink that keeps what it is handed, and wants items while `wants` says so.
    #[derive(Default)]
    struct Kept {
        wants: std::sync::atomic::AtomicBool,
        finished: parking_lot::Mutex<Vec<ItemDetail>>,
        amended: parking_lot::Mutex<Vec<ItemDetail>>,
        skipped: std::sync::atomic::AtomicU64,
    }

    impl FinishedSink for Kept {
        fn wants(&self, _: ItemStatus) -> bool {
            self.wants.load(std::sync::atomic::Ordering::Relaxed)
        }
        fn finished(&self, items: Vec<ItemDetail>) {
            self.finished.lock().extend(items);
        }
        fn skipped(&self, n: u64) {
            self.skipped
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
        fn amended(&self, items: Vec<ItemDetail>) {
            self.amended.lock().extend(items);
        }
    }

    /// Item `item` completed at `stage` at `at_us`, started there `took` earlier, moving
    /// on to `next` or done.
    fn completed(
        item: ItemId,
        stage: StageIndex,
        at_us: u64,
        next: Option<StageIndex>,
    ) -> RawEvent {
        event(
            &(
                (item, stage, at_us, 5, 1),
                (Some(ItemStatus::Queued), next),
                (next.is_none(), Some(ItemStatus::Running), Some(0)),
            ),
            None,
        )
    }

    #[test]
    fn a_finished_item_changed_by_a_late_batch_goes_to_the_sink_again() {
        let tracker = Tracker::new(2, 16);
        let sink = Arc::new(Kept::default());
        sink.wants.store(true, std::sync::atomic::Ordering::Relaxed);
        tracker.set_sink(sink.clone());
        let batch =
            |events: Vec<RawEvent>, notes: Vec<crate::events::Note>| Batch { events, notes };
        let queued = |item| RawEvent {
            kind: EventKind::Queued,
            from: None,
            began: None,
            next: None,
            last: false,
            ..completed(item, 0, 1, None)
        };
        tracker.apply(batch((1..4).map(queued).collect(), Vec::new()));
        // Item 1 done at stage 1 (the second worker's batch arrives first), then its
        // completion at stage 0, then a note from stage 0's task.
        tracker.apply(batch(vec![completed(1, 1, 30, None)], Vec::new()));
        let first = sink.finished.lock().clone();
        assert_eq!(first.len(), 1);
        let open = |d: &ItemDetail| d.visits.iter().filter(|v| v.outcome.is_none()).count();
        assert_eq!(
            open(&first[0]),
            1,
            "stage 0's visit is still open: {first:?}"
        );
        assert!(sink.amended.lock().is_empty());
        tracker.apply(batch(vec![completed(1, 0, 10, Some(1))], Vec::new()));
        let amended = sink.amended.lock().clone();
        assert_eq!(amended.len(), 1, "{amended:?}");
        assert_eq!(amended[0].status, ItemStatus::Completed);
        assert_eq!(amended[0].stage, 1);
        assert_eq!(open(&amended[0]), 0, "{amended:?}");
        let note = crate::events::Note {
            item: 1,
            key: "source".into(),
            value: flowdeck_protocol::Value::from("late"),
        };
        tracker.apply(batch(Vec::new(), vec![note]));
        let amended = sink.amended.lock().clone();
        assert_eq!(amended.len(), 2);
        assert_eq!(
            amended[1].annotations,
            vec![("source".into(), flowdeck_protocol::Value::from("late"))]
        );
        // Finished once, and not handed over as finished again.
        assert_eq!(sink.finished.lock().len(), 1);

        // An item that finishes and is changed by an earlier stage in one batch goes over
        // once, finished, whole.
        tracker.apply(batch(
            vec![completed(2, 1, 30, None), completed(2, 0, 10, Some(1))],
            Vec::new(),
        ));
        let finished = sink.finished.lock().clone();
        assert_eq!(finished.len(), 2);
        assert_eq!(open(&finished[1]), 0, "{finished:?}");
        assert_eq!(sink.amended.lock().len(), 2);

        // An item still on its way is not handed over when an older event arrives.
        tracker.apply(batch(vec![completed(3, 0, 10, Some(1))], Vec::new()));
        tracker.apply(batch(vec![completed(3, 0, 5, Some(1))], Vec::new()));
        assert_eq!(sink.amended.lock().len(), 2);
        assert_eq!(sink.finished.lock().len(), 2);
    }

    #[test]
    fn a_finished_item_reported_again_changed_is_amended_and_a_resent_one_is_not() {
        // An item as a reporting process's tracker has it, finished at stage 1.
        let there = Tracker::new(2, 16);
        let queued = RawEvent {
            kind: EventKind::Queued,
            from: None,
            began: None,
            next: None,
            last: false,
            ..completed(1, 0, 1, None)
        };
        let batch = |events: Vec<RawEvent>| Batch {
            events,
            notes: Vec::new(),
        };
        there.apply(batch(vec![queued, completed(1, 0, 10, Some(1))]));
        there.apply(batch(vec![completed(1, 1, 30, None)]));
        let first = there.item(1).unwrap();
        assert_eq!(first.status, ItemStatus::Completed);

        let hub = Tracker::new(2, 16);
        let sink = Arc::new(Kept::default());
        sink.wants.store(true, std::sync::atomic::Ordering::Relaxed);
        hub.set_sink(sink.clone());
        hub.put(vec![first.clone()]);
        assert_eq!(sink.finished.lock().len(), 1);
        // Resent as it was: nothing more for the sink.
        hub.put(vec![first.clone()]);
        assert_eq!(sink.finished.lock().len(), 1);
        assert!(sink.amended.lock().is_empty(), "{:?}", sink.amended.lock());
        // Reported again with a note its process got late: amended, not finished again.
        let mut noted = first;
        noted
            .annotations
            .push(("source".into(), flowdeck_protocol::Value::from("late")));
        hub.put(vec![noted.clone()]);
        assert_eq!(sink.finished.lock().len(), 1);
        assert_eq!(*sink.amended.lock(), vec![noted]);
    }

    fn detail(id: ItemId, status: ItemStatus) -> ItemDetail {
        ItemDetail {
            id,
            status,
            stage: 0,
            created_us: id,
            updated_us: id,
            visits: Vec::new(),
            parents: Vec::new(),
            error: None,
            annotations: Vec::new(),
            history: Vec::new(),
        }
    }

    #[test]
    fn a_put_older_than_its_slot_is_left_out_and_numbers_nothing() {
        let tracker = Tracker::new(1, 2);
        let _feed = tracker.subscribe();
        tracker.put(vec![detail(5, ItemStatus::Running)]);
        // Item 3 would take item 5's slot: older, so not kept, not counted, not numbered.
        tracker.put(vec![detail(3, ItemStatus::Completed)]);
        assert_eq!(tracker.seq(), 1);
        assert_eq!(tracker.status(3), None);
        let stats = tracker.stats();
        assert_eq!((stats.submitted, stats.running, stats.completed), (1, 1, 0));
        // The same item again, finished: it moves, and is numbered next.
        tracker.put(vec![detail(5, ItemStatus::Completed)]);
        assert_eq!(tracker.seq(), 2);
        let stats = tracker.stats();
        assert_eq!((stats.submitted, stats.running, stats.completed), (1, 0, 1));
        assert_eq!(tracker.changed_since(1), vec![(5, ItemStatus::Completed)]);
    }
}
