//! `GET /api/events`: one pipeline's live stream, read from its hub's frame log (see
//! [`crate::hub`] for how frames are made, numbered and kept), compressed per connection
//! when the client accepts it ([`crate::compress`]).

use std::{convert::Infallible, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::{RawQuery, State},
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
};
use futures::StreamExt;

use flowdeck_protocol::{
    filter::TaskFilter,
    stream::ROWS_EVENT,
    window::{Tab, WindowQuery, WINDOW_EVENT, WINDOW_MAX},
};
use serde::Deserialize;

use crate::{
    compress::Encoder,
    error::ApiError,
    hub::Published,
    state::AppState,
    windows::{Subscription, WindowError},
};

/// How long the stream may stay silent before a comment keeps proxies from closing it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A frame larger than this is compressed off the async workers (a full frame of a big
/// retention can take milliseconds).
const BLOCKING_FRAME: usize = 64 * 1024;

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

/// Which task rows a client takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Rows {
    /// In every frame (`?rows=all`, the default).
    #[default]
    All,
    /// None (`?rows=none`).
    None,
    /// In every frame, a full frame's after it in chunks (`?rows=chunked`).
    Chunked,
    /// None in the frames; the rows of one window of the task list in `window` events
    /// whenever it changes (`?rows=window&tab=…&stage=…&q=…&from=…&count=…`).
    Window,
}

/// How many rows a window spans when the query does not say.
const WINDOW_DEFAULT: u32 = 100;

/// The stream's query string. Other parameters are ignored.
#[derive(Debug, Default, Deserialize)]
struct Params {
    #[serde(default)]
    rows: Rows,
    tab: Option<Tab>,
    stage: Option<String>,
    q: Option<String>,
    from: Option<u64>,
    count: Option<u32>,
    /// The frame the client last applied, as `Last-Event-ID` says it (which wins when
    /// both are given): a page that reopens its stream to move its window resumes so.
    last: Option<u64>,
}

impl Params {
    /// Reads and checks the query; `stages` are the pipeline's stage names.
    fn parse(query: Option<&str>, stages: &[String]) -> Result<Params, ApiError> {
        let p: Params = crate::api::query::parse(query.unwrap_or_default())?;
        if let Some(n) = p.count.filter(|n| !(1..=WINDOW_MAX).contains(n)) {
            return Err(ApiError::BadRequest(format!(
                "count must be from 1 to {WINDOW_MAX}, not {n}"
            )));
        }
        if let Some(name) = p.stage.as_ref().filter(|n| !stages.contains(n)) {
            return Err(ApiError::BadRequest(
                crate::bulk::SelectionError::unknown_stage(name, stages).to_string(),
            ));
        }
        if let Some(q) = &p.q {
            TaskFilter::parse(q, stages).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        }
        Ok(p)
    }

    /// The window asked for, with `rows=window`.
    fn window(&self) -> Option<WindowQuery> {
        (self.rows == Rows::Window).then(|| WindowQuery {
            tab: self.tab.unwrap_or_default(),
            stage: self.stage.clone(),
            q: self.q.clone().unwrap_or_default(),
            from: self.from.unwrap_or_default(),
            count: self.count.unwrap_or(WINDOW_DEFAULT),
        })
    }
}

/// A stream's window: its hold on it, and the change it last sent.
struct Held {
    subscription: Subscription,
    sent: u64,
}

impl Held {
    /// The window as a `window` event, when it changed since the last one sent.
    fn changed(&mut self, out: &mut Vec<u8>) {
        if let Some(c) = self.subscription.current() {
            if c.changed_at != self.sent {
                self.sent = c.changed_at;
                sse(out, WINDOW_EVENT, None, &c.json);
            }
        }
    }
}

/// One frame as SSE: its event name, its id (the frame's), its JSON (whole, or without
/// the task rows). For a chunked client, a full frame without rows, then its rows in
/// `rows` events, the last of which carries the frame's id instead.
fn message(p: &Published, rows: Rows) -> Vec<u8> {
    let chunked = rows == Rows::Chunked && !p.chunks.is_empty();
    let json = match rows {
        Rows::None | Rows::Window => &p.without_rows,
        Rows::Chunked if chunked => &p.without_rows,
        Rows::All | Rows::Chunked => &p.json,
    };
    let bytes = json.len() + p.chunks.iter().map(|c| c.len() + 32).sum::<usize>();
    let mut out = Vec::with_capacity(bytes + 48);
    sse(&mut out, p.event, (!chunked).then_some(p.id), json);
    if chunked {
        let last = p.chunks.len() - 1;
        for (i, chunk) in p.chunks.iter().enumerate() {
            sse(&mut out, ROWS_EVENT, (i == last).then_some(p.id), chunk);
        }
    }
    out
}

/// Appends one SSE message.
fn sse(out: &mut Vec<u8>, event: &str, id: Option<u64>, json: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    if let Some(id) = id {
        out.extend_from_slice(format!("id: {id}\n").as_bytes());
    }
    // Compact JSON has no line breaks; were there any, each line is a data line of its own.
    for line in json.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// `GET /api/events`: the live stream. A full frame first (or, with `Last-Event-ID`, the
/// frames missed), then a delta every refresh; keep-alive comments keep proxies from
/// closing an idle connection. Brotli or gzip when the client accepts it, with one
/// compression context for the connection and every frame flushed as it is sent.
///
/// `?rows=none` leaves the task rows out of every frame, for a page that shows none: the
/// same frames and ids otherwise, so its resume is as exact. `?rows=chunked` sends a full
/// frame's rows after it in chunks, each parsed by a browser in a task of its own.
/// `?rows=window&…` sends frames without rows and one window of the task list (see
/// [`crate::windows`]): first, and then before each frame at which it changed. `?last=`
/// resumes as `Last-Event-ID` does, for a page that reopens its stream to move its window.
pub async fn events(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = match Params::parse(query.as_deref(), state.hub.pipeline().stage_names()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let rows = params.rows;
    // The window first, as of now: the frames that follow are older or as old.
    let mut first = Vec::new();
    let held = match params.window().map(|q| state.hub.subscribe_window(q)) {
        None => None,
        Some(Ok((subscription, now))) => {
            sse(&mut first, WINDOW_EVENT, None, &now.json);
            Some(Held {
                subscription,
                sent: now.changed_at,
            })
        }
        Some(Err(e @ WindowError::TooMany)) => {
            return ApiError::Conflict(e.to_string()).into_response()
        }
        Some(Err(e)) => return ApiError::BadRequest(e.to_string()).into_response(),
    };
    let mut shutdown = state.shutdown.subscribe();
    let frames = state
        .hub
        .frames(last_event_id(&headers).or(params.last))
        // A server shutting down waits for open connections; a stream never ends alone.
        .take_until(async move {
            let _ = shutdown.wait_for(|&stop| stop).await;
        })
        .boxed();
    let (encoder, coding) = Encoder::for_request(&headers);
    let body = futures::stream::unfold(
        (frames, encoder, held, first),
        move |(mut frames, mut encoder, mut held, first)| async move {
            let text = if !first.is_empty() {
                first
            } else {
                match tokio::time::timeout(KEEP_ALIVE, frames.next()).await {
                    Ok(Some(p)) => {
                        // A changed window goes before the frame it belongs with.
                        let mut text = Vec::new();
                        if let Some(h) = &mut held {
                            h.changed(&mut text);
                        }
                        text.extend(message(&p, rows));
                        text
                    }
                    Ok(None) => return None,
                    Err(_) => b":\n\n".to_vec(),
                }
            };
            let bytes = if text.len() > BLOCKING_FRAME && !matches!(encoder, Encoder::Identity) {
                let (encoder_back, bytes) = tokio::task::spawn_blocking(move || {
                    let bytes = encoder.frame(text);
                    (encoder, bytes)
                })
                .await
                .ok()?;
                encoder = encoder_back;
                bytes
            } else {
                encoder.frame(text)
            };
            Some((
                Ok::<_, Infallible>(Bytes::from(bytes)),
                (frames, encoder, held, Vec::new()),
            ))
        },
    );
    let mut res = Body::from_stream(body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(coding) = coding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_rows_and_a_window() {
        let stages = vec!["parse".to_string(), "enrich".to_string()];
        let rows = |q: &str| Params::parse(Some(q), &stages).map(|p| p.rows);
        assert_eq!(Params::parse(None, &stages).unwrap().rows, Rows::All);
        assert_eq!(rows("rows=all").unwrap(), Rows::All);
        assert_eq!(rows("rows=none").unwrap(), Rows::None);
        assert_eq!(rows("x=1&rows=none&").unwrap(), Rows::None);
        assert_eq!(rows("rows=chunked").unwrap(), Rows::Chunked);
        let err = rows("rows=some").unwrap_err().to_string();
        assert!(err.contains("rows") && err.contains("window"), "{err}");
        let p = Params::parse(
            Some("rows=window&tab=failed&stage=enrich&q=kind%3Atimeout&from=40&count=100&last=9"),
            &stages,
        )
        .unwrap();
        assert_eq!(
            p.window(),
            Some(WindowQuery {
                tab: Tab::Failed,
                stage: Some("enrich".into()),
                q: "kind:timeout".into(),
                from: 40,
                count: 100,
            })
        );
        assert_eq!(p.last, Some(9));
        let plain = Params::parse(Some("rows=window"), &stages)
            .unwrap()
            .window();
        assert_eq!(
            plain.map(|w| (w.tab, w.from, w.count)),
            Some((Tab::All, 0, 100))
        );
        for (bad, names) in [
            ("rows=window&count=0", "count must be"),
            ("count=1001", "count must be"),
            ("count=-1", "count"),
            ("tab=busy", "tab"),
            ("stage=nope", "no stage named"),
            ("q=colour%3Ared", "colour"),
            ("from=x", "from"),
            ("last=x", "last"),
        ] {
            let err = Params::parse(Some(bad), &stages).unwrap_err().to_string();
            assert!(err.contains(names), "{bad}: {err}");
        }
    }

    /// A chunked client gets the full frame without rows and no id, then the rows in order,
    /// the last chunk with the frame's id; a delta goes whole.
    #[test]
    fn a_full_frames_rows_follow_it_and_the_last_chunk_has_its_id() {
        let full = Published {
            id: 7,
            event: "full",
            json: r#"{"id":7,"items":[[1],[2],[3]]}"#.into(),
            without_rows: r#"{"id":7,"items":[]}"#.into(),
            chunks: vec!["[[1],[2]]".into(), "[[3]]".into()],
        };
        let text = String::from_utf8(message(&full, Rows::Chunked)).unwrap();
        assert_eq!(
            text,
            "event: full\ndata: {\"id\":7,\"items\":[]}\n\n\
             event: rows\ndata: [[1],[2]]\n\n\
             event: rows\nid: 7\ndata: [[3]]\n\n"
        );
        let whole = String::from_utf8(message(&full, Rows::All)).unwrap();
        assert!(whole.starts_with("event: full\nid: 7\ndata: {\"id\":7,\"items\":[[1],[2],[3]]}"));
        let delta = Published {
            id: 8,
            event: "delta",
            json: r#"{"items":[[4]]}"#.into(),
            without_rows: r#"{"items":[]}"#.into(),
            chunks: Vec::new(),
        };
        let text = String::from_utf8(message(&delta, Rows::Chunked)).unwrap();
        assert_eq!(text, "event: delta\nid: 8\ndata: {\"items\":[[4]]}\n\n");
    }

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
