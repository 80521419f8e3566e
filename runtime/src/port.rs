//! Where a stage's outputs go: the first route whose filter accepts the value, else the
//! pipeline's output, else nowhere (the item is done). The pipeline's input is a port too.

use std::sync::Arc;

use flowdeck_protocol::{EventKind, ItemId, ItemStatus, StageIndex};

use crate::events::{EventBuf, Extra, RawEvent};

/// An item in a stage's queue.
pub(crate) struct Envelope<T> {
    pub id: ItemId,
    pub value: T,
    pub enqueued_us: u64,
}

pub(crate) type Filter<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

pub(crate) struct Route<T> {
    pub to: StageIndex,
    pub tx: async_channel::Sender<Envelope<T>>,
    pub filter: Option<Filter<T>>,
}

pub(crate) struct Port<T> {
    pub routes: Vec<Route<T>>,
    /// The pipeline's output, when this stage is marked as one.
    pub sink: Option<async_channel::Sender<T>>,
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
    /// Made by fan-out from this parent.
    Child(ItemId),
}

impl<T> Port<T> {
    /// Sends `value` on, waiting while the next queue is full (backpressure).
    pub(crate) async fn send(
        &self,
        id: ItemId,
        value: T,
        origin: Origin,
        now_us: u64,
        buf: &mut EventBuf,
    ) -> Sent {
        let route = self
            .routes
            .iter()
            .find(|r| r.filter.as_ref().is_none_or(|f| f(&value)));
        let Some(route) = route else {
            if let Some(sink) = &self.sink {
                // A dropped receiver means nobody wants outputs any more: the item is done.
                let _ = sink.send(value).await;
            }
            return Sent::Out;
        };
        if buf.on() {
            let (from, extra) = match origin {
                Origin::Input => (None, None),
                Origin::Moved => (Some(ItemStatus::Queued), None),
                Origin::Child(parent) => (None, Some(Box::new(Extra::Parents(vec![parent])))),
            };
            buf.push(RawEvent {
                item: id,
                at_us: now_us,
                duration_us: 0,
                attempt: 0,
                stage: route.to,
                worker: None,
                kind: EventKind::Queued,
                from,
                last: false,
                extra,
            })
            .await;
        }
        let envelope = Envelope {
            id,
            value,
            enqueued_us: now_us,
        };
        if route.tx.send(envelope).await.is_err() {
            // The next stage was aborted: nothing will take the item.
            buf.push(RawEvent {
                item: id,
                at_us: now_us,
                duration_us: 0,
                attempt: 0,
                stage: route.to,
                worker: None,
                kind: EventKind::Cancelled,
                from: Some(ItemStatus::Queued),
                last: false,
                extra: None,
            })
            .await;
            return Sent::Closed;
        }
        Sent::Stage
    }

    /// Whether an edge takes `value` (else it leaves the pipeline).
    pub(crate) fn has_route_for(&self, value: &T) -> bool {
        self.routes
            .iter()
            .any(|r| r.filter.as_ref().is_none_or(|f| f(value)))
    }
}
