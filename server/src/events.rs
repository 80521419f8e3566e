//! `GET /api/events`: one pipeline's live stream, read from its hub's frame log (see
//! [`crate::hub`] for how frames are made, numbered and kept).

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;

use crate::state::AppState;

/// The SSE message id a reconnecting browser sends back.
fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `GET /api/events`: the live stream. A full frame first (or, with `Last-Event-ID`, the
/// frames missed), then a delta every refresh; keep-alive comments keep proxies from
/// closing an idle connection.
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    use futures::StreamExt;
    let mut shutdown = state.shutdown.subscribe();
    let stream = state
        .hub
        .frames(last_event_id(&headers))
        .map(|p| {
            Ok(Event::default()
                .event(p.event)
                .id(p.id.to_string())
                .data(&*p.json))
        })
        // A server shutting down waits for open connections; a stream never ends alone.
        .take_until(async move {
            let _ = shutdown.wait_for(|&stop| stop).await;
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_ignores_garbage() {
        let mut h = HeaderMap::new();
        assert_eq!(last_event_id(&h), None);
        h.insert("last-event-id", "42".parse().unwrap());
        assert_eq!(last_event_id(&h), Some(42));
        h.insert("last-event-id", "forty".parse().unwrap());
        assert_eq!(last_event_id(&h), None);
    }
}
