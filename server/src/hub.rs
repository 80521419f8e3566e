//! The SSE hub: one task takes a snapshot of the pipeline every refresh interval and
//! serializes it once; every connected browser reads the newest one.
//!
//! A `watch` channel holds only the latest value, so a slow or stalled client skips to the
//! newest snapshot instead of queueing old ones: it never slows the runtime or other clients.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use flowdeck_protocol::Snapshot;
use flowdeck_runtime::PipelineHandle;
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

use crate::state::AppState;

/// One published snapshot: the struct for server rendering, the JSON for the stream.
pub struct Published {
    /// Increases with every publication: the SSE message id.
    pub id: u64,
    pub snapshot: Snapshot,
    pub json: Arc<str>,
}

#[derive(Clone)]
pub struct Hub {
    rx: watch::Receiver<Arc<Published>>,
}

impl Hub {
    /// Starts publishing snapshots of `pipeline` every `every`.
    pub fn start(pipeline: PipelineHandle, every: Duration) -> Hub {
        let first = publish(0, pipeline.snapshot());
        let (tx, rx) = watch::channel(Arc::new(first));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut id = 0;
            loop {
                tick.tick().await;
                id += 1;
                if tx.send(Arc::new(publish(id, pipeline.snapshot()))).is_err() {
                    break;
                }
            }
        });
        Hub { rx }
    }

    pub fn latest(&self) -> Arc<Published> {
        self.rx.borrow().clone()
    }

    fn stream(&self) -> impl Stream<Item = Arc<Published>> + use<> {
        WatchStream::new(self.rx.clone())
    }
}

fn publish(id: u64, snapshot: Snapshot) -> Published {
    let json = serde_json::to_string(&snapshot).unwrap_or_else(|_| "{}".to_owned());
    Published {
        id,
        snapshot,
        json: json.into(),
    }
}

/// `GET /api/events`: the live stream, one `snapshot` event per refresh, with keep-alive
/// comments so proxies do not close an idle connection.
pub async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = state.hub.stream().map(|p| {
        Ok(Event::default()
            .event("snapshot")
            .id(p.id.to_string())
            .data(&*p.json))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
