//! The task-list windows clients subscribe to (`/api/events?rows=window&…`), each computed
//! once per frame however many clients share it.
//!
//! The publisher recomputes every subscribed window after applying a frame to its mirror,
//! and holds this registry's lock from before it logs the frame until the windows are
//! current: a stream that takes the lock to look for its window after reading a frame from
//! the log therefore finds the window as of that frame or later, never an older one. A
//! client that has caught up with the log holds exactly the window of the frame it last
//! applied; one catching up may hold a newer window than its frames for the length of the
//! catch-up (a window replaces the previous one whole, so nothing accumulates from it).

use std::{collections::HashMap, sync::Arc};

use flowdeck_protocol::{
    stream::LiveState,
    window::{Window, WindowQuery},
};
use parking_lot::{Mutex, MutexGuard};

/// The most different windows subscribed at once: each costs a pass over the retained
/// rows per frame.
pub const MAX_WINDOWS: usize = 256;

/// One subscribed window.
struct Entry {
    clients: usize,
    window: Window,
    json: Arc<str>,
    /// The frame the window last changed at.
    changed_at: u64,
}

/// The registry. The publisher locks it with [`Windows::lock`] around each frame.
#[derive(Default)]
pub struct Windows {
    entries: Mutex<HashMap<WindowQuery, Entry>>,
}

/// A window as a stream sends it: its JSON, and the frame it last changed at.
#[derive(Clone)]
pub struct Current {
    pub json: Arc<str>,
    pub changed_at: u64,
}

/// Why a window cannot be subscribed to.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("{0}")]
    Query(#[from] flowdeck_protocol::filter::FilterError),
    #[error("{MAX_WINDOWS} different task-list windows are open already")]
    TooMany,
}

/// Held for the publisher's whole update of one frame.
pub struct Updating<'a>(MutexGuard<'a, HashMap<WindowQuery, Entry>>);

impl Updating<'_> {
    /// Recomputes every window from `state` (the mirror at frame `id`).
    pub fn recompute(&mut self, state: &LiveState, id: u64) {
        for (q, e) in self.0.iter_mut() {
            // A query that parsed when subscribed parses while the stages stay the same.
            let Ok(w) = state.window(q) else { continue };
            if w != e.window {
                e.json = to_json(&w);
                e.window = w;
                e.changed_at = id;
            }
        }
    }
}

impl Windows {
    pub fn lock(&self) -> Updating<'_> {
        Updating(self.entries.lock())
    }

    /// Subscribes to `q`, the window computed from `state` (the mirror, caught up with the
    /// log while the caller holds no [`Updating`]) if nobody shares it yet.
    pub fn subscribe(
        self: &Arc<Self>,
        q: WindowQuery,
        state: impl FnOnce() -> (u64, Result<Window, flowdeck_protocol::filter::FilterError>),
    ) -> Result<(Subscription, Current), WindowError> {
        let mut entries = self.entries.lock();
        let current = match entries.get_mut(&q) {
            Some(e) => {
                e.clients += 1;
                current(e)
            }
            None => {
                if entries.len() >= MAX_WINDOWS {
                    return Err(WindowError::TooMany);
                }
                let (id, w) = state();
                let window = w?;
                let e = Entry {
                    clients: 1,
                    json: to_json(&window),
                    window,
                    changed_at: id,
                };
                let c = current(&e);
                entries.insert(q.clone(), e);
                c
            }
        };
        Ok((
            Subscription {
                windows: self.clone(),
                query: q,
            },
            current,
        ))
    }

    /// How many different windows are subscribed.
    pub fn subscribed(&self) -> usize {
        self.entries.lock().len()
    }
}

fn current(e: &Entry) -> Current {
    Current {
        json: e.json.clone(),
        changed_at: e.changed_at,
    }
}

fn to_json(w: &Window) -> Arc<str> {
    serde_json::to_string(w).map_or_else(|_| "{}".into(), Into::into)
}

/// A client's hold on a window; dropped with its stream.
pub struct Subscription {
    windows: Arc<Windows>,
    query: WindowQuery,
}

impl Subscription {
    /// The window now (as of the newest frame its publisher finished).
    pub fn current(&self) -> Option<Current> {
        self.windows.entries.lock().get(&self.query).map(current)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut entries = self.windows.entries.lock();
        if let Some(e) = entries.get_mut(&self.query) {
            e.clients -= 1;
            if e.clients == 0 {
                entries.remove(&self.query);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowdeck_protocol::window::Window;

    fn query(from: u64) -> WindowQuery {
        WindowQuery {
            from,
            count: 10,
            ..WindowQuery::default()
        }
    }

    /// Clients of one window share it; it goes with the last of them; past
    /// [`MAX_WINDOWS`] different ones, a new one is refused.
    #[test]
    fn windows_are_shared_dropped_with_their_last_client_and_bounded() {
        let windows = Arc::new(Windows::default());
        let computed = std::cell::Cell::new(0);
        let subscribe = |from| {
            windows.subscribe(query(from), || {
                computed.set(computed.get() + 1);
                (7, Ok(Window::default()))
            })
        };
        let (a, now) = subscribe(0).unwrap();
        assert_eq!(now.changed_at, 7);
        let (b, _) = subscribe(0).unwrap();
        assert_eq!((windows.subscribed(), computed.get()), (1, 1), "shared");
        drop(a);
        assert!(b.current().is_some());
        drop(b);
        assert_eq!(windows.subscribed(), 0, "gone with its last client");
        let held: Vec<_> = (0..MAX_WINDOWS as u64)
            .map(|from| subscribe(from).unwrap())
            .collect();
        assert!(matches!(subscribe(9_999), Err(WindowError::TooMany)));
        assert!(subscribe(3).is_ok(), "one already open is shared");
        drop(held);
        assert_eq!(windows.subscribed(), 0);
    }
}
