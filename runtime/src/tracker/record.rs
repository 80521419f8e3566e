//! Per-item detail, kept for the most recent items only, in a ring indexed by item id.
//!
//! Ids are allocated in increasing order, so `id % capacity` gives each of the last
//! `capacity` items its own slot with no hashing, and a new item simply overwrites the one
//! `capacity` ids older. A record is about 120 bytes plus 40 per stage visited: a
//! three-stage item costs about 240 bytes (the benchmark measures it).

use flowdeck_protocol::{
    ErrorInfo, Event, EventKind, ItemDetail, ItemId, ItemStatus, ItemSummary, Preview, StageIndex,
    StageVisit, Value,
};

use crate::events::RawEvent;

const NO_WORKER: u16 = u16::MAX;

/// The most bytes of captured inputs the tracker holds (64 MiB): at the default 2 KiB cap,
/// 32,768 previews. Past it, new previews are dropped and counted until old items leave
/// the ring.
pub(crate) const INPUT_BUDGET: usize = 64 << 20;

#[derive(Clone, Copy)]
struct Visit {
    stage: StageIndex,
    worker: u16,
    attempts: u32,
    queued_us: u64,
    started_us: u64,
    /// When the visit ended, in the low 56 bits (µs: 2,284 years), and how, in the top
    /// 8 (0: not yet): 32 bytes a visit rather than 40, and an item has one per stage.
    end: u64,
}

const END_TIME: u64 = (1 << 56) - 1;

impl Visit {
    fn end_of(finished_us: u64, outcome: Option<ItemStatus>) -> u64 {
        let how = outcome.map_or(0, |s| s as u64 + 1);
        (finished_us & END_TIME) | (how << 56)
    }

    fn finished_us(&self) -> u64 {
        self.end & END_TIME
    }

    fn outcome(&self) -> Option<ItemStatus> {
        let how = (self.end >> 56) as usize;
        how.checked_sub(1)
            .and_then(|i| ItemStatus::ALL.get(i).copied())
    }
}

/// A captured preview: a stage's input, or its output.
struct Kept {
    stage: StageIndex,
    output: bool,
    preview: Preview,
}

/// A step of an item's attempts that its visit does not hold: a retry (with the error
/// that caused it), or a wait for a person's answer and the answer's arrival.
struct Step {
    kind: EventKind,
    stage: StageIndex,
    worker: u16,
    attempt: u32,
    at_us: u64,
    duration_us: u64,
    /// Boxed: waits have none, and a step is kept per wait of every waiting item.
    error: Option<Box<ErrorInfo>>,
}

pub(crate) struct ItemRecord {
    id: ItemId,
    status: ItemStatus,
    stage: StageIndex,
    /// Orders concurrent updates: an event older than the last applied one does not
    /// change the status (batches from different workers can arrive out of order).
    updated_us: u64,
    /// The step of the event that set the status, for ties on `updated_us` ([`step_key`]).
    updated_step: u64,
    created_us: u64,
    visits: Vec<Visit>,
    /// Boxed slice: 16 bytes, not a `Vec`'s 24; set once.
    parents: Box<[ItemId]>,
    error: Option<Box<ErrorInfo>>,
    // Boxed so the common case (none) costs 8 bytes per retained item, not 24.
    #[allow(clippy::box_collection)]
    annotations: Option<Box<Vec<(String, Value)>>>,
    #[allow(clippy::box_collection)]
    steps: Option<Box<Vec<Step>>>,
    /// Captured inputs and outputs by stage (`Stage::capture`, `Stage::capture_output`),
    /// the newest of each per stage.
    #[allow(clippy::box_collection)]
    inputs: Option<Box<Vec<Kept>>>,
    /// The tracker's sequence number when the record last changed: what a reporter asks
    /// for (`Tracker::changed_since`) instead of reading every event.
    changed: u64,
}

impl ItemRecord {
    /// A new item's record, with `visits` (emptied) for its visits: the ring passes the
    /// evicted record's, so a full ring allocates nothing per item.
    fn new(id: ItemId, at_us: u64, stage: StageIndex, mut visits: Vec<Visit>) -> Self {
        visits.clear();
        ItemRecord {
            id,
            status: ItemStatus::Queued,
            stage,
            updated_us: at_us,
            updated_step: 0,
            created_us: at_us,
            visits,
            parents: Box::default(),
            error: None,
            annotations: None,
            steps: None,
            inputs: None,
            changed: 0,
        }
    }

    /// A record as another process's tracker reported it (a mirror's): the visits, the
    /// retries and waits (from the history's events), parents, error, annotations and
    /// captured data of the detail.
    pub(crate) fn from_detail(d: &ItemDetail) -> Self {
        let steps: Vec<Step> = d
            .history
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::Retrying | EventKind::Waiting | EventKind::Answered
                )
            })
            .map(|e| Step {
                kind: e.kind,
                stage: e.stage,
                worker: e.worker.unwrap_or(NO_WORKER),
                attempt: e.attempt,
                at_us: e.at_us,
                duration_us: e.duration_us.unwrap_or(0),
                error: e.error.clone().map(Box::new),
            })
            .collect();
        let mut inputs = Vec::new();
        for v in &d.visits {
            for (preview, output) in [(&v.input, false), (&v.output, true)] {
                if let Some(preview) = preview {
                    inputs.push(Kept {
                        stage: v.stage,
                        output,
                        preview: preview.clone(),
                    });
                }
            }
        }
        ItemRecord {
            id: d.id,
            status: d.status,
            stage: d.stage,
            updated_us: d.updated_us,
            updated_step: step_key(d.stage, 0, QUEUED),
            created_us: d.created_us,
            visits: d
                .visits
                .iter()
                .map(|v| Visit {
                    stage: v.stage,
                    worker: v.worker.unwrap_or(NO_WORKER),
                    attempts: v.attempts,
                    queued_us: v.queued_us,
                    started_us: v.started_us.unwrap_or(0),
                    end: Visit::end_of(v.finished_us.unwrap_or(0), v.outcome),
                })
                .collect(),
            parents: d.parents.as_slice().into(),
            error: d.error.clone().map(Box::new),
            annotations: (!d.annotations.is_empty()).then(|| Box::new(d.annotations.clone())),
            steps: (!steps.is_empty()).then(|| Box::new(steps)),
            inputs: (!inputs.is_empty()).then(|| Box::new(inputs)),
            changed: 0,
        }
    }

    pub(crate) fn changed(&self) -> u64 {
        self.changed
    }

    pub(crate) fn touch(&mut self, seq: u64) {
        self.changed = seq;
    }

    /// The bytes its captured inputs take.
    fn input_bytes(&self) -> usize {
        self.inputs
            .as_deref()
            .map_or(0, |v| v.iter().map(|k| k.preview.text.len()).sum())
    }

    /// Keeps a captured input or output (replacing the stage's earlier one, as after a
    /// manual retry); returns the change in bytes kept.
    fn keep_input(&mut self, stage: StageIndex, output: bool, preview: Preview) -> isize {
        let add = preview.text.len() as isize;
        let inputs = self.inputs.get_or_insert_with(Default::default);
        match inputs
            .iter_mut()
            .find(|k| k.stage == stage && k.output == output)
        {
            Some(slot) => {
                let old = slot.preview.text.len() as isize;
                slot.preview = preview;
                add - old
            }
            None => {
                inputs.push(Kept {
                    stage,
                    output,
                    preview,
                });
                add
            }
        }
    }

    /// The kept input (or output) of a stage.
    fn kept(&self, stage: StageIndex, output: bool) -> Option<Preview> {
        self.inputs.as_deref().and_then(|v| {
            v.iter()
                .find(|k| k.stage == stage && k.output == output)
                .map(|k| k.preview.clone())
        })
    }

    /// The item's visit to `stage`, made if it has none yet. Visits are kept in the order
    /// of the stages' `depths` (an item's path through a DAG only goes deeper), not the
    /// order their events arrive in: batches from different workers arrive in any order,
    /// so the next stage's worker may report an item before the one that sent it there.
    /// Without depths (a mirror's records come whole), in arrival order.
    fn visit(&mut self, stage: StageIndex, at_us: u64, depths: &[u16]) -> &mut Visit {
        let found = self.visits.iter().rposition(|v| v.stage == stage);
        let i = match found {
            Some(i) => i,
            None => {
                let depth = |s: StageIndex| depths.get(usize::from(s)).copied();
                let i = match depth(stage) {
                    Some(d) => self
                        .visits
                        .iter()
                        .position(|v| depth(v.stage).is_some_and(|dv| dv > d))
                        .unwrap_or(self.visits.len()),
                    None => self.visits.len(),
                };
                self.visits.insert(
                    i,
                    Visit {
                        stage,
                        worker: NO_WORKER,
                        attempts: 0,
                        queued_us: at_us,
                        started_us: 0,
                        end: 0,
                    },
                );
                i
            }
        };
        &mut self.visits[i]
    }

    fn apply(&mut self, e: &RawEvent, depths: &[u16]) {
        let worker = e.worker.unwrap_or(NO_WORKER);
        match e.kind {
            EventKind::Queued => {
                let requeued = e.from == Some(ItemStatus::Failed);
                let v = self.visit(e.stage, e.at_us, depths);
                if requeued {
                    v.end = 0;
                }
                v.queued_us = e.at_us;
                if !e.parents().is_empty() {
                    self.parents = e.parents().into();
                }
            }
            EventKind::Started => {
                let v = self.visit(e.stage, e.at_us, depths);
                if v.started_us == 0 {
                    v.started_us = e.at_us.max(1);
                }
                v.worker = worker;
                v.attempts = v.attempts.max(e.attempt);
            }
            EventKind::Retrying | EventKind::Waiting | EventKind::Answered => {
                let steps = self.steps.get_or_insert_with(Default::default);
                // An item has few steps, and many items may wait at once: no room to spare.
                steps.reserve_exact(1);
                steps.push(Step {
                    kind: e.kind,
                    stage: e.stage,
                    worker,
                    attempt: e.attempt,
                    at_us: e.at_us,
                    duration_us: e.duration_us,
                    error: e.error().cloned().map(Box::new),
                });
            }
            EventKind::Completed | EventKind::Failed | EventKind::Cancelled => {
                let status = e.kind.status_after(e.last);
                let v = self.visit(e.stage, e.at_us, depths);
                v.attempts = v.attempts.max(e.attempt);
                let outcome = if status == ItemStatus::Queued {
                    ItemStatus::Completed
                } else {
                    status
                };
                v.end = Visit::end_of(e.at_us, Some(outcome));
                if e.kind == EventKind::Completed && !e.parents().is_empty() {
                    self.parents = e.parents().into();
                }
                if let Some(err) = e.error() {
                    self.error = Some(Box::new(err.clone()));
                }
            }
        }
        self.advance(
            e.at_us,
            step(e),
            e.kind == EventKind::Completed && !e.last,
            e.stage,
            e.kind.status_after(e.last),
        );
    }

    /// Applies a completion with no error, parents or captured data, and the parts folded
    /// in it ([`RawEvent::began`], [`RawEvent::next`]): what [`ItemRecord::apply`] does with
    /// each part in turn, without making the parts or matching on their kinds. Nearly every
    /// event of a busy pipeline is one of these, and the tracker's time is the pipeline's.
    fn apply_completion(&mut self, e: &RawEvent, depths: &[u16]) {
        let worker = e.worker.unwrap_or(NO_WORKER);
        let began_us = e.began_us();
        let v = self.visit(e.stage, e.first_at_us(), depths);
        if e.began.is_some() {
            if v.started_us == 0 {
                v.started_us = began_us.max(1);
            }
            v.worker = worker;
        }
        v.attempts = v.attempts.max(e.attempt);
        v.end = Visit::end_of(e.at_us, Some(ItemStatus::Completed));
        if e.began.is_some() {
            let started = step_key(e.stage, e.attempt, STARTED);
            self.advance(began_us, started, false, e.stage, ItemStatus::Running);
        }
        let to = EventKind::Completed.status_after(e.last);
        let done = step_key(e.stage, e.attempt, ENDED);
        self.advance(e.at_us, done, !e.last, e.stage, to);
        if let Some(next) = e.next {
            self.visit(next, e.at_us, depths).queued_us = e.at_us;
            let queued = step_key(next, 0, QUEUED);
            self.advance(e.at_us, queued, false, next, ItemStatus::Queued);
        }
    }

    /// Takes the status an event leaves the item in, if the event is the latest so far.
    /// Batches from different workers arrive in any order, and trivial tasks make several
    /// steps of one item within one microsecond: a tie on the time goes to the later step
    /// (stage, attempt, kind), so a late "completed at b" cannot take a completed item
    /// back to queued. `moving_on`: a completion that is not the item's last, which keeps
    /// the stage the item was queued at.
    #[inline]
    fn advance(
        &mut self,
        at_us: u64,
        step: u64,
        moving_on: bool,
        stage: StageIndex,
        status: ItemStatus,
    ) {
        if (at_us, step) >= (self.updated_us, self.updated_step) {
            self.updated_step = step;
            self.updated_us = at_us;
            // A stage's completion and the next stage's queueing share a timestamp: the
            // queueing names the stage the item is now at.
            if !(moving_on && self.stage != stage) {
                self.stage = stage;
            }
            self.status = status;
        }
    }

    pub(crate) fn annotate(&mut self, key: String, value: Value) {
        let notes = self.annotations.get_or_insert_with(Default::default);
        match notes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => notes.push((key, value)),
        }
    }

    pub(crate) fn status(&self) -> ItemStatus {
        self.status
    }

    pub(crate) fn stage(&self) -> StageIndex {
        self.stage
    }

    pub(crate) fn parents(&self) -> &[ItemId] {
        &self.parents
    }

    pub(crate) fn stages(&self) -> Vec<StageIndex> {
        self.visits.iter().map(|v| v.stage).collect()
    }

    pub(crate) fn summary(&self) -> ItemSummary {
        ItemSummary {
            id: self.id,
            status: self.status,
            stage: self.stage,
            attempts: self.visits.last().map_or(0, |v| v.attempts),
            updated_us: self.updated_us,
            error: self.error.as_deref().cloned(),
        }
    }

    /// The item's status changes rebuilt from its visits, retries and waits, oldest first.
    pub(crate) fn history(&self) -> Vec<Event> {
        let worker = |w: u16| (w != NO_WORKER).then_some(w);
        let ev = |kind, stage, w, attempt, at_us, duration_us, last, error| Event {
            seq: 0,
            item: self.id,
            stage,
            worker: worker(w),
            kind,
            attempt,
            at_us,
            duration_us,
            last,
            error,
            from: None,
        };
        let mut out = Vec::new();
        for v in &self.visits {
            out.push(ev(
                EventKind::Queued,
                v.stage,
                NO_WORKER,
                0,
                v.queued_us,
                None,
                false,
                None,
            ));
            if v.started_us > 0 {
                out.push(ev(
                    EventKind::Started,
                    v.stage,
                    v.worker,
                    1,
                    v.started_us,
                    None,
                    false,
                    None,
                ));
            }
            for r in self
                .steps
                .iter()
                .flat_map(|r| r.iter())
                .filter(|r| r.stage == v.stage)
            {
                if r.kind != EventKind::Retrying {
                    out.push(ev(
                        r.kind, r.stage, r.worker, r.attempt, r.at_us, None, false, None,
                    ));
                    continue;
                }
                out.push(ev(
                    EventKind::Retrying,
                    r.stage,
                    r.worker,
                    r.attempt,
                    r.at_us,
                    Some(r.duration_us),
                    false,
                    r.error.as_deref().cloned(),
                ));
                out.push(ev(
                    EventKind::Started,
                    r.stage,
                    r.worker,
                    r.attempt + 1,
                    r.at_us,
                    None,
                    false,
                    None,
                ));
            }
            if let Some(outcome) = v.outcome() {
                let (kind, last) = match outcome {
                    ItemStatus::Failed => (EventKind::Failed, false),
                    ItemStatus::Cancelled => (EventKind::Cancelled, false),
                    _ => (
                        EventKind::Completed,
                        self.visits.last().is_some_and(|l| std::ptr::eq(l, v))
                            && self.status == ItemStatus::Completed,
                    ),
                };
                let error = (kind == EventKind::Failed)
                    .then(|| self.error.as_deref().cloned())
                    .flatten();
                let took = (v.started_us > 0).then(|| v.finished_us().saturating_sub(v.started_us));
                out.push(ev(
                    kind,
                    v.stage,
                    v.worker,
                    v.attempts,
                    v.finished_us(),
                    took,
                    last,
                    error,
                ));
            }
        }
        out.sort_by_key(|e| e.at_us);
        out
    }

    pub(crate) fn detail(&self) -> ItemDetail {
        ItemDetail {
            id: self.id,
            status: self.status,
            stage: self.stage,
            created_us: self.created_us,
            updated_us: self.updated_us,
            visits: self
                .visits
                .iter()
                .map(|v| StageVisit {
                    stage: v.stage,
                    worker: (v.worker != NO_WORKER).then_some(v.worker),
                    attempts: v.attempts,
                    queued_us: v.queued_us,
                    started_us: (v.started_us > 0).then_some(v.started_us),
                    finished_us: (v.finished_us() > 0).then_some(v.finished_us()),
                    outcome: v.outcome(),
                    input: self.kept(v.stage, false),
                    output: self.kept(v.stage, true),
                })
                .collect(),
            parents: self.parents.to_vec(),
            error: self.error.as_deref().cloned(),
            annotations: self.annotations.as_deref().cloned().unwrap_or_default(),
            history: self.history(),
        }
    }
}

/// Ranks of steps within an attempt ([`step`]).
const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ENDED: u8 = 5;

/// A step (stage, attempt, rank) as one number that orders as the triple does: compared
/// and stored in one word, so the next event's comparison reads what the last one wrote
/// straight from the store buffer (a tuple's narrow stores read back as one wide load
/// stalled the tracker on every event).
#[inline]
fn step_key(stage: StageIndex, attempt: u32, rank: u8) -> u64 {
    (u64::from(stage) << 40) | (u64::from(attempt) << 8) | u64::from(rank)
}

/// Where an event falls in its item's life, for ordering events of one microsecond.
fn step(e: &RawEvent) -> u64 {
    let rank = match e.kind {
        EventKind::Queued => QUEUED,
        EventKind::Started => STARTED,
        EventKind::Waiting => 2,
        EventKind::Answered => 3,
        EventKind::Retrying => 4,
        EventKind::Completed | EventKind::Failed | EventKind::Cancelled => ENDED,
    };
    step_key(e.stage, e.attempt, rank)
}

/// The ring of the most recent items' records.
pub(crate) struct Ring {
    slots: Vec<Option<ItemRecord>>,
    capacity: usize,
    visits_hint: usize,
    /// Each stage's depth in the graph, which orders an item's visits ([`ItemRecord::visit`]).
    depths: Vec<u16>,
    /// The highest id applied: the retained items are the `capacity` ids up to it.
    newest: Option<ItemId>,
    /// Bytes of captured inputs held, and the most that may be: a preview that would pass
    /// it is dropped (and counted), so capture never grows the tracker past its bound.
    input_bytes: usize,
    input_budget: usize,
    pub(crate) inputs_dropped: u64,
}

impl Ring {
    pub(crate) fn new(capacity: usize, visits_hint: usize) -> Self {
        Ring {
            slots: Vec::new(),
            capacity,
            visits_hint: visits_hint.clamp(1, 4),
            depths: Vec::new(),
            newest: None,
            input_bytes: 0,
            input_budget: INPUT_BUDGET,
            inputs_dropped: 0,
        }
    }

    pub(crate) fn set_depths(&mut self, depths: Vec<u16>) {
        self.depths = depths;
    }

    /// Bytes of captured inputs held now.
    pub(crate) fn input_bytes(&self) -> usize {
        self.input_bytes
    }

    #[cfg(test)]
    pub(crate) fn set_input_budget(&mut self, bytes: usize) {
        self.input_budget = bytes;
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn index(&self, id: ItemId) -> usize {
        (id % self.capacity as u64) as usize
    }

    pub(crate) fn get(&self, id: ItemId) -> Option<&ItemRecord> {
        if self.capacity == 0 {
            return None;
        }
        self.slots
            .get(self.index(id))?
            .as_ref()
            .filter(|r| r.id == id)
    }

    pub(crate) fn get_mut(&mut self, id: ItemId) -> Option<&mut ItemRecord> {
        if self.capacity == 0 {
            return None;
        }
        let i = self.index(id);
        self.slots.get_mut(i)?.as_mut().filter(|r| r.id == id)
    }

    /// Applies an event (the tracker's `seq`-th), creating the record if this is the
    /// newest item for its slot.
    #[cfg(test)]
    pub(crate) fn apply(&mut self, e: &RawEvent, seq: u64) -> bool {
        self.apply_parts(&[e], seq)
    }

    /// Applies the events of one item, in order (the parts of a folded event, the last
    /// of them the tracker's `seq`-th), finding its record once; creates the record if
    /// this is the newest item for its slot. True if the item had finished before and
    /// still has: the events came late (see [`ItemRecord::apply_completion`]).
    pub(crate) fn apply_parts(&mut self, parts: &[&RawEvent], seq: u64) -> bool {
        let Some(e) = parts.first() else { return false };
        let Some(i) = self.record_for(e.item, e.at_us, e.stage) else {
            return false;
        };
        let Some(r) = self.slots[i].as_mut() else {
            return false;
        };
        let finished = r.status.is_terminal();
        for part in parts {
            r.apply(part, &self.depths);
        }
        r.changed = seq;
        let late = finished && r.status.is_terminal();
        for part in parts {
            for (p, output) in [(part.input(), false), (part.output(), true)] {
                let Some(p) = p else { continue };
                if self.input_bytes + p.text.len() > self.input_budget {
                    self.inputs_dropped += 1;
                } else {
                    let change = r.keep_input(part.stage, output, p.clone());
                    self.input_bytes = self.input_bytes.saturating_add_signed(change);
                }
            }
        }
        late
    }

    /// Applies a completion with nothing boxed in it, and the parts folded in it, as
    /// [`Ring::apply_parts`] would ([`ItemRecord::apply_completion`]), and says the same:
    /// whether it came after the item had finished.
    pub(crate) fn apply_completion(&mut self, e: &RawEvent, seq: u64) -> bool {
        let Some(i) = self.record_for(e.item, e.first_at_us(), e.stage) else {
            return false;
        };
        let Some(r) = self.slots[i].as_mut() else {
            return false;
        };
        let finished = r.status.is_terminal();
        r.apply_completion(e, &self.depths);
        r.changed = seq;
        finished && r.status.is_terminal()
    }

    /// The slot holding `item`'s record, made (from an event at `at_us` at `stage`) if
    /// `item` is newer than the slot's holder; `None` when the record is not kept.
    #[inline]
    fn record_for(&mut self, item: ItemId, at_us: u64, stage: StageIndex) -> Option<usize> {
        if self.capacity == 0 {
            return None;
        }
        let i = self.slot_for(item);
        let slot = &mut self.slots[i];
        match slot {
            Some(r) if r.id == item => {}
            // An older item's record gives way; a late event for an evicted item does not
            // evict the newer one.
            Some(r) if r.id > item => return None,
            _ => {
                let visits = match slot.take() {
                    Some(old) => {
                        self.input_bytes -= old.input_bytes();
                        old.visits
                    }
                    None => Vec::with_capacity(self.visits_hint),
                };
                *slot = Some(ItemRecord::new(item, at_us, stage, visits));
            }
        }
        Some(i)
    }

    /// The slot of `id`, which becomes the newest if it is; the ring grows to hold it
    /// lazily, so a short run never pays for the whole retention.
    fn slot_for(&mut self, id: ItemId) -> usize {
        self.newest = Some(self.newest.map_or(id, |n| n.max(id)));
        let i = self.index(id);
        if i >= self.slots.len() {
            let want = (i + 1).max(self.slots.len() * 2).min(self.capacity);
            self.slots.resize_with(want, || None);
        }
        i
    }

    /// Puts a whole record in its slot (a mirror's, from a reported detail), in place of
    /// the item's earlier one or an older item's; its captured data counts against the
    /// budget like any other (past it, the previews are left out and counted). Returns
    /// whether it was kept: a record older than its slot's holder is not.
    pub(crate) fn put(&mut self, mut r: ItemRecord) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let i = self.slot_for(r.id);
        if self.slots[i].as_ref().is_some_and(|old| old.id > r.id) {
            return false;
        }
        let old = self.slots[i].as_ref().map_or(0, ItemRecord::input_bytes);
        let new = r.input_bytes();
        if self.input_bytes - old + new > self.input_budget {
            self.inputs_dropped += r.inputs.as_ref().map_or(0, |v| v.len() as u64);
            r.inputs = None;
            self.input_bytes -= old;
        } else {
            self.input_bytes = self.input_bytes - old + new;
        }
        self.slots[i] = Some(r);
        true
    }

    /// The range of ids that may be retained, oldest first; `None` before the first item.
    pub(crate) fn id_range(&self) -> Option<(ItemId, ItemId)> {
        let newest = self.newest?;
        Some((
            newest.saturating_sub(self.capacity.saturating_sub(1) as ItemId),
            newest,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Extra;

    #[test]
    fn a_visit_keeps_its_end_and_outcome_in_one_word() {
        assert_eq!(std::mem::size_of::<Visit>(), 32);
        for at in [0, 1, 1_234_567, END_TIME] {
            let none = Visit {
                stage: 0,
                worker: 0,
                attempts: 1,
                queued_us: 0,
                started_us: 0,
                end: Visit::end_of(at, None),
            };
            assert_eq!((none.finished_us(), none.outcome()), (at, None));
            for status in ItemStatus::ALL {
                let v = Visit {
                    end: Visit::end_of(at, Some(status)),
                    ..none
                };
                assert_eq!((v.finished_us(), v.outcome()), (at, Some(status)));
            }
        }
    }

    fn failed(item: ItemId, input: Option<&str>) -> RawEvent {
        RawEvent {
            item,
            at_us: item,
            duration_us: 0,
            attempt: 1,
            stage: 0,
            worker: Some(0),
            kind: EventKind::Failed,
            from: Some(ItemStatus::Running),
            last: false,
            began: None,
            next: None,
            extra: Some(Box::new(Extra {
                input: input.map(|t| Preview {
                    text: t.to_owned(),
                    bytes: t.len() as u64,
                }),
                ..Extra::default()
            })),
        }
    }

    fn event(kind: EventKind, stage: StageIndex, last: bool, from: ItemStatus) -> RawEvent {
        RawEvent {
            item: 1,
            at_us: 100,
            duration_us: 0,
            attempt: 1,
            stage,
            worker: Some(0),
            kind,
            from: Some(from),
            last,
            began: None,
            next: None,
            extra: None,
        }
    }

    #[test]
    fn a_late_event_of_the_same_microsecond_does_not_take_an_item_back() {
        let mut ring = Ring::new(4, 2);
        // Stage 1's worker's batch arrives before stage 0's, all within one microsecond.
        ring.apply(&event(EventKind::Started, 1, false, ItemStatus::Queued), 1);
        ring.apply(
            &event(EventKind::Completed, 1, true, ItemStatus::Running),
            2,
        );
        ring.apply(
            &event(EventKind::Completed, 0, false, ItemStatus::Running),
            3,
        );
        let r = ring.get(1).unwrap();
        assert_eq!((r.status(), r.stage()), (ItemStatus::Completed, 1));
    }

    #[test]
    fn visits_follow_the_graph_whatever_order_their_batches_arrive_in() {
        let stages = |ring: &Ring| -> Vec<StageIndex> {
            let visits = ring.get(1).unwrap().detail().visits;
            visits.iter().map(|v| v.stage).collect()
        };
        let mut ring = Ring::new(4, 3);
        // Stages 0 -> 2 -> 1 (a stage's index is not its place on the path).
        ring.set_depths(vec![0, 2, 1]);
        // The last stage's worker reports first, then the middle one's, then the first's.
        ring.apply(&event(EventKind::Started, 1, false, ItemStatus::Queued), 1);
        ring.apply(&event(EventKind::Started, 2, false, ItemStatus::Queued), 2);
        ring.apply(&event(EventKind::Started, 0, false, ItemStatus::Queued), 3);
        assert_eq!(stages(&ring), [0, 2, 1]);
        // Without depths (a mirror's), arrival order.
        let mut ring = Ring::new(4, 3);
        ring.apply(&event(EventKind::Started, 1, false, ItemStatus::Queued), 1);
        ring.apply(&event(EventKind::Started, 0, false, ItemStatus::Queued), 2);
        assert_eq!(stages(&ring), [1, 0]);
    }

    #[test]
    fn captured_inputs_stay_within_the_budget_and_leave_with_their_items() {
        let mut ring = Ring::new(4, 1);
        ring.set_input_budget(10);
        ring.apply(&failed(1, Some("aaaaaa")), 0);
        ring.apply(&failed(2, Some("bbbbbb")), 0);
        assert_eq!(ring.input_bytes(), 6, "the second would pass 10 bytes");
        assert_eq!(ring.inputs_dropped, 1);
        assert_eq!(ring.get(2).unwrap().detail().visits[0].input, None);
        let kept = ring.get(1).unwrap().detail().visits[0].input.clone();
        assert_eq!(kept.unwrap().text, "aaaaaa");
        // Item 5 takes item 1's slot: its bytes are given back.
        ring.apply(&failed(5, None), 0);
        assert_eq!(ring.input_bytes(), 0);
        ring.apply(&failed(6, Some("cccccccc")), 0);
        assert_eq!(ring.input_bytes(), 8);
        // A stage's input kept again replaces the one before.
        ring.apply(&failed(6, Some("dd")), 0);
        assert_eq!(ring.input_bytes(), 2);
    }
}
