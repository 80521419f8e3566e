//! Where a stage's outputs go: the first route whose filter accepts the value, else the
//! pipeline's output, else nowhere (the item is done). The pipeline's input is a port too.
//! Only the first accepting route gets the value: routing picks one next stage. Besides
//! that, a stage's broadcast edges ([`Port::copies`]) each get a copy of every output, as
//! a new item whose parent is the one copied.

use std::sync::Arc;

use flowdeck_protocol::{EventKind, ItemId, ItemStatus, StageIndex};

use crate::{
    events::{EventBuf, Subject},
    group::{End, Groups},
    guard,
    join::{Arrival, Deposit},
    worker::WorkerSlot,
};

/// An item in a stage's queue.
#[derive(Clone)]
pub(crate) struct Envelope<T> {
    pub id: ItemId,
    pub value: T,
    pub enqueued_us: u64,
    /// The joins' groups it counts in (none outside a join's reach).
    pub groups: Groups,
}

pub(crate) type Filter<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

pub(crate) struct Route<T> {
    pub to: StageIndex,
    pub dest: Dest<T>,
    pub filter: Option<Filter<T>>,
}

/// What an edge leads to: a stage's queue, or a join, which takes the value into its
/// group at once.
pub(crate) enum Dest<T> {
    Queue(crate::queue::Sender<Envelope<T>>),
    Join(Arc<dyn Deposit<T>>),
}

pub(crate) struct Port<T> {
    pub routes: Vec<Route<T>>,
    /// The broadcast edges: every output goes to each of these too, as a copy (made by
    /// `copy`, set with the first of them; the type is `Clone` there, not here).
    pub copies: Vec<Route<T>>,
    pub copy: Option<fn(&T) -> T>,
    /// The pipeline's output, when this stage is marked as one.
    pub sink: Option<async_channel::Sender<T>>,
    /// The queues of the joins this stage is the origin of: held open while the stage
    /// may still make groups.
    pub keep: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

/// Where a value went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Sent {
    /// Queued at another stage.
    Stage,
    /// Left the pipeline.
    Out,
    /// The next stage was aborted; the item was recorded as cancelled.
    Closed,
}

/// How the item being sent came to be, for its `Queued` event.
#[derive(Clone, Copy)]
pub(crate) enum Origin {
    /// New from the input; no parent.
    Input,
    /// Moving on after a stage finished with it.
    Moved,
    /// Moving on, its `Queued` event already folded in the stage's completion
    /// ([`crate::events::RawEvent::next`]).
    Reported,
    /// Made by fan-out from this parent.
    Child(ItemId),
}

/// Where a value goes, as the port's filters chose.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Target {
    /// The route at this index.
    Route(usize),
    /// The broadcast edge at this index ([`Port::copies`]).
    Copy(usize),
    /// No edge takes it: it leaves the pipeline.
    Out,
}

impl<T> Port<T> {
    /// The first route whose filter accepts `value`. Filters are the user's code: one that
    /// panics fails the item (the message says so) instead of the worker.
    #[inline]
    pub(crate) fn target(&self, value: &T) -> Result<Target, String> {
        if let [Route { filter: None, .. }] = self.routes.as_slice() {
            return Ok(Target::Route(0));
        }
        for (i, route) in self.routes.iter().enumerate() {
            let takes = match &route.filter {
                None => true,
                Some(f) => guard::call(|| f(value))
                    .map_err(|m| format!("a routing filter (connect_if) panicked: {m}"))?,
            };
            if takes {
                return Ok(Target::Route(i));
            }
        }
        Ok(Target::Out)
    }

    /// The stage whose queue `target` leads to; `None` for a join or the output.
    #[inline]
    pub(crate) fn queue_at(&self, target: Target) -> Option<StageIndex> {
        match target {
            Target::Route(i) => self
                .routes
                .get(i)
                .filter(|r| matches!(r.dest, Dest::Queue(_)))
                .map(|r| r.to),
            Target::Copy(_) | Target::Out => None,
        }
    }

    /// Sends `value` where `target` says, waiting while the next queue is full
    /// (backpressure). A worker waiting so is marked blocked on `slot`, and its buffered
    /// events go to the tracker first, so a dashboard sees where the item is meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send(
        &self,
        id: ItemId,
        value: T,
        groups: Groups,
        target: Target,
        origin: Origin,
        now_us: u64,
        buf: &mut EventBuf,
        slot: Option<&WorkerSlot>,
    ) -> Sent {
        let route = match target {
            Target::Route(i) => self.routes.get(i),
            Target::Copy(i) => self.copies.get(i),
            Target::Out => {
                if let Some(sink) = &self.sink {
                    // A dropped receiver means nobody wants outputs any more: the item is
                    // done.
                    if let Err(async_channel::TrySendError::Full(value)) = sink.try_send(value) {
                        let send = async { sink.send(value).await.map_err(|_| ()) };
                        let _ = wait_for_room(buf, slot, send).await;
                    }
                }
                return Sent::Out;
            }
        };
        let Some(route) = route else {
            return Sent::Out;
        };
        let tx = match &route.dest {
            Dest::Queue(tx) => tx,
            Dest::Join(join) => {
                let part = Arrival {
                    id,
                    value,
                    groups,
                    origin,
                    now: now_us,
                };
                join.arrive(part, buf, slot).await;
                return Sent::Stage;
            }
        };
        if buf.on() {
            let here = Subject {
                item: id,
                stage: route.to,
                worker: None,
            };
            let event = match origin {
                Origin::Input => Some(here.event(EventKind::Queued, None, now_us)),
                Origin::Moved => {
                    Some(here.event(EventKind::Queued, Some(ItemStatus::Queued), now_us))
                }
                Origin::Reported => None,
                Origin::Child(parent) => Some(
                    here.event(EventKind::Queued, None, now_us)
                        .with_parents(vec![parent]),
                ),
            };
            if let Some(event) = event {
                buf.push(event).await;
            }
        }
        // Kept to tell the groups, should the item be refused.
        let ends = groups.clone();
        let envelope = Envelope {
            id,
            value,
            enqueued_us: now_us,
            groups,
        };
        let sent = match tx.try_send(envelope) {
            Ok(()) => Ok(()),
            Err(async_channel::TrySendError::Closed(_)) => Err(()),
            Err(async_channel::TrySendError::Full(envelope)) => {
                let send = async { tx.send(envelope).await.map_err(|_| ()) };
                wait_for_room(buf, slot, send).await
            }
        };
        if sent.is_err() {
            // The next stage was aborted: nothing will take the item.
            let here = Subject {
                item: id,
                stage: route.to,
                worker: None,
            };
            buf.push(here.event(EventKind::Cancelled, Some(ItemStatus::Queued), now_us))
                .await;
            ends.end(id, End::cancelled, now_us, buf, slot).await;
            return Sent::Closed;
        }
        Sent::Stage
    }
}

impl<T> Port<T> {
    /// A port with no edges yet.
    pub(crate) fn empty() -> Self {
        Port {
            routes: Vec::new(),
            copies: Vec::new(),
            copy: None,
            sink: None,
            keep: Vec::new(),
        }
    }

    /// Whether the stage has a broadcast edge (most have none).
    #[inline]
    pub(crate) fn has_copies(&self) -> bool {
        self.copy.is_some() && !self.copies.is_empty()
    }

    /// Copies of `value` for the broadcast edges, each with where it goes: none when the
    /// stage has no broadcast edge (the common case costs one branch).
    #[inline]
    pub(crate) fn copies_of(&self, value: &T) -> Vec<(Target, T)> {
        match self.copy {
            Some(copy) if self.has_copies() => (0..self.copies.len())
                .map(|i| (Target::Copy(i), copy(value)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The slow path of a send, once the queue turned out full: flushes the buffered events,
/// marks the worker blocked on downstream, and waits for room while `send` (made lazily,
/// so it runs after the flush) waits. (The hot path is a `try_send` in place, with no
/// future to build.)
pub(crate) async fn wait_for_room(
    buf: &mut EventBuf,
    slot: Option<&WorkerSlot>,
    send: impl std::future::Future<Output = Result<(), ()>>,
) -> Result<(), ()> {
    buf.flush().await;
    if let Some(slot) = slot {
        slot.begin_blocked();
    }
    let sent = send.await;
    if let Some(slot) = slot {
        slot.end_blocked();
    }
    sent
}
