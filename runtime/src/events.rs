//! How status changes travel from workers to the tracker: each worker (and each feeder)
//! buffers its events and sends them in batches, so the hot path pays a `Vec::push`, not a
//! lock or a channel operation, per event.

use std::mem;

use flowdeck_protocol::{ErrorInfo, EventKind, ItemId, ItemStatus, StageIndex, Value};
use tokio::sync::mpsc;

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
    pub extra: Option<Box<Extra>>,
}

#[derive(Debug)]
pub(crate) enum Extra {
    Error(ErrorInfo),
    /// The items this one was made from (fan-out: one parent; fan-in: several).
    Parents(Vec<ItemId>),
}

impl RawEvent {
    pub(crate) fn error(&self) -> Option<&ErrorInfo> {
        match self.extra.as_deref() {
            Some(Extra::Error(e)) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn parents(&self) -> &[ItemId] {
        match self.extra.as_deref() {
            Some(Extra::Parents(p)) => p,
            _ => &[],
        }
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
/// The longest an event waits in a busy worker's buffer before it is sent anyway, so a
/// dashboard never lags a slow stage by more than this.
const MAX_HOLD_US: u64 = 50_000;

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

    pub(crate) async fn push(&mut self, event: RawEvent) {
        if self.tx.is_none() {
            return;
        }
        if self.batch.events.is_empty() {
            self.first_at_us = event.at_us;
        }
        let at = event.at_us;
        self.batch.events.push(event);
        if self.batch.events.len() >= BATCH || at.saturating_sub(self.first_at_us) > MAX_HOLD_US {
            self.flush().await;
        }
    }

    pub(crate) fn note(&mut self, note: Note) {
        if self.tx.is_some() {
            self.batch.notes.push(note);
        }
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
                events: Vec::with_capacity(BATCH),
                notes: Vec::new(),
            },
        );
        if tx.send(batch).await.is_err() {
            // The tracker is gone (the pipeline was torn down): stop recording.
            self.tx = None;
        }
    }
}
