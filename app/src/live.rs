//! The live store: the one place pages read pipeline state from.
//!
//! On the server it holds the picture the page is rendered with (loaded through the
//! `initial_view` server function, so the browser hydrates from the same data). In the
//! browser, one EventSource per tab keeps a [`LiveState`] current by applying the stream's
//! frames in order; pages never open their own connections (browsers allow six HTTP/1.1
//! connections per origin).
//!
//! The state itself is not a signal: a 100,000-item state is updated in place, and a
//! version counter tells the pages to read it again. Pausing the view stops the counter,
//! not the stream, so nothing is missed while the page holds still.

use flowdeck_protocol::stream::{Full, LiveState};
use leptos::prelude::*;

use crate::backend::Viewer;

/// The state of the tab's stream connection, shown in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Rendered by the server; the browser has not connected yet.
    Static,
    Live,
    /// The stream dropped; the browser is reconnecting on its own.
    Reconnecting,
}

/// The live store, provided as context by [`provide`].
#[derive(Clone, Copy)]
pub struct Live {
    initial: Resource<Result<Full, ServerFnError>>,
    pub(crate) viewer: Resource<Result<Viewer, ServerFnError>>,
    state: StoredValue<Option<LiveState>>,
    /// Bumped whenever pages should read the state again.
    version: RwSignal<u64>,
    pub connection: RwSignal<Connection>,
    /// While set, the page holds still; frames are still applied underneath.
    pub frozen: RwSignal<bool>,
    /// Frames received since the page loaded.
    pub received: RwSignal<u64>,
    /// A render is scheduled for the next animation frame.
    render_pending: StoredValue<bool>,
    /// The newest task-list window the stream sent, as JSON: the Tasks page (its own
    /// module) reads it, so the first load carries no code for it.
    window: StoredValue<Option<String>>,
}

impl Live {
    /// Runs `f` on the state the page shows: the streamed one once it arrives, the server's
    /// until then. Reactive: call it inside a closure in the view, under a `<Suspense>`.
    pub fn with<R>(&self, f: impl FnOnce(&LiveState) -> R) -> Option<R> {
        self.version.track();
        if self.state.with_value(Option::is_some) {
            return self.state.with_value(|s| s.as_ref().map(f));
        }
        let full = self.initial.get()?.ok()?;
        Some(f(&LiveState::from_full(full)))
    }

    /// Runs `f` on the newest task-list window's JSON, if the stream sent one. Reactive, as
    /// [`Live::with`].
    pub fn with_window<R>(&self, f: impl FnOnce(Option<&str>) -> R) -> R {
        self.version.track();
        self.window.with_value(|w| f(w.as_deref()))
    }

    /// Who is looking. Until the server has said, nobody who may control.
    pub fn viewer(&self) -> Viewer {
        self.viewer.get().and_then(Result::ok).unwrap_or_default()
    }

    /// Whether control buttons are hidden.
    pub fn readonly(&self) -> bool {
        !self.viewer().can_control
    }

    /// Flips the frozen state; on thaw, shows what arrived meanwhile.
    pub fn toggle_frozen(&self) {
        let frozen = !self.frozen.get_untracked();
        self.frozen.set(frozen);
        if !frozen {
            self.version.update(|v| *v += 1);
        }
    }

    /// Applies one stream message. An error means the state cannot go on from it: the
    /// caller reconnects for a fresh full frame.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn accept(&self, event: &str, data: &str) -> Result<(), String> {
        use flowdeck_protocol::{
            stream::{Delta, DELTA_EVENT, FULL_EVENT},
            window::WINDOW_EVENT,
        };
        match event {
            FULL_EVENT => {
                let full: Full = serde_json::from_str(data).map_err(|e| e.to_string())?;
                self.state.set_value(Some(LiveState::from_full(full)));
            }
            // Parsed by the page that asked for it.
            WINDOW_EVENT => self.window.set_value(Some(data.to_owned())),
            DELTA_EVENT => {
                let delta: Delta = serde_json::from_str(data).map_err(|e| e.to_string())?;
                #[cfg(feature = "hydrate")]
                crate::probe::record(delta.snapshot.started_unix_ms, delta.oldest_change_us);
                let applied = self.state.try_update_value(|s| match s {
                    Some(state) => state.apply_delta(delta).map_err(|gap| gap.to_string()),
                    None => Err("a delta before the first full frame".to_owned()),
                });
                applied.unwrap_or_else(|| Err("the page is gone".to_owned()))?;
            }
            other => return Err(format!("unknown stream event {other:?}")),
        }
        self.received.update(|n| *n += 1);
        if self.connection.get_untracked() != Connection::Live {
            self.connection.set(Connection::Live);
        }
        self.schedule_render();
        Ok(())
    }

    /// Asks the pages to read the state again at the next animation frame, once however
    /// many frames arrive before it: applying a frame and drawing it are separate browser
    /// tasks, and the page never draws more often than the screen refreshes.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn schedule_render(&self) {
        if self.render_pending.get_value() {
            return;
        }
        self.render_pending.set_value(true);
        let live = *self;
        request_animation_frame(move || {
            live.render_pending.set_value(false);
            if !live.frozen.get_untracked() {
                live.version.update(|v| *v += 1);
            }
        });
    }
}

/// Creates the store and, in the browser, opens the tab's stream.
pub fn provide() {
    let live = Live {
        initial: Resource::new(|| (), |_| crate::fetch::initial_view()),
        viewer: Resource::new(|| (), |_| crate::fetch::whoami()),
        state: StoredValue::new(None),
        version: RwSignal::new(0),
        connection: RwSignal::new(Connection::Static),
        frozen: RwSignal::new(false),
        received: RwSignal::new(0),
        render_pending: StoredValue::new(false),
        window: StoredValue::new(None),
    };
    provide_context(live);
    // Effects run only in the browser: the server never connects.
    Effect::new(move |started: Option<()>| {
        if started.is_none() {
            untrack(|| stream::connect_once_hydrated(live));
        }
    });
}

/// Tells the store that the whole page is hydrated, lazily loaded page included: the
/// stream may change the state from now on. Called by the wasm entry point.
pub fn hydrated() {
    #[cfg(feature = "hydrate")]
    stream::hydrated();
}

/// Asks the stream for one window of the task list (`Some`: the query string of a
/// `flowdeck_protocol::window::WindowQuery`), or for no rows (`None`), from now on. The
/// stream reopens where the page is (`last=`), so moving the window costs the window and
/// the frames missed meanwhile, not a full frame.
pub fn want_window(query: Option<String>) {
    #[cfg(feature = "hydrate")]
    stream::want_window(query);
    #[cfg(not(feature = "hydrate"))]
    let _ = query;
}

/// The store provided by [`provide`].
pub fn use_live() -> Live {
    expect_context::<Live>()
}

#[cfg(feature = "hydrate")]
mod stream {
    //! The browser side of the stream, on the browser's own EventSource: one listener per
    //! event name, called in the order the frames arrive (two separate async streams
    //! could interleave a full frame and the delta after it).

    use std::cell::RefCell;

    use flowdeck_protocol::{
        stream::{DELTA_EVENT, EVENTS_PATH, FULL_EVENT},
        window::WINDOW_EVENT,
    };
    use leptos::prelude::*;
    use wasm_bindgen::{closure::Closure, JsCast};
    use web_sys::{EventSource, MessageEvent};

    use super::{Connection, Live};

    /// The open connection and the callbacks it holds (dropping them would detach them).
    struct Open {
        source: EventSource,
        _on_frame: Vec<Closure<dyn FnMut(MessageEvent)>>,
        _on_error: Closure<dyn FnMut(web_sys::Event)>,
    }

    thread_local! {
        static OPEN: RefCell<Option<Open>> = const { RefCell::new(None) };
        /// The task-list window a page asked for, and the store that opened the stream.
        static WINDOW: RefCell<(Option<String>, Option<Live>)> = const { RefCell::new((None, None)) };
    }

    pub(super) fn want_window(query: Option<String>) {
        let reopen = WINDOW.with_borrow_mut(|(wanted, live)| {
            let changed = *wanted != query;
            *wanted = query;
            changed.then_some(*live).flatten()
        });
        // Not from inside a render: reopening detaches the stream's callbacks.
        if let Some(live) = reopen {
            leptos::task::spawn_local(async move { open(live, true) });
        }
    }

    thread_local! {
        /// Whether hydration is over, and the store waiting for it to be.
        static HYDRATION: RefCell<(bool, Option<Live>)> = const { RefCell::new((false, None)) };
    }

    /// Opens the stream, but not before the page is hydrated. A lazily loaded page
    /// hydrates after its module arrives, while the shell already runs: a frame applied in
    /// between would make that page render other rows than the server did, and hydration
    /// would fail on the difference.
    pub(super) fn connect_once_hydrated(live: Live) {
        let ready = HYDRATION.with_borrow_mut(|(done, waiting)| {
            if !*done {
                *waiting = Some(live);
            }
            *done
        });
        if ready {
            connect(live);
        }
    }

    pub(super) fn hydrated() {
        // For scripts and browser tests: clicks before this are lost.
        if let Some(root) = document().document_element() {
            _ = root.set_attribute("data-hydrated", "");
        }
        if let Some(live) = HYDRATION.with_borrow_mut(|(done, waiting)| {
            *done = true;
            waiting.take()
        }) {
            connect(live);
        }
    }

    /// Opens the tab's stream and closes it when the app goes away.
    fn connect(live: Live) {
        crate::probe::install();
        open(live, false);
        on_cleanup(close);
    }

    /// Opens the stream; with `resume`, from the frame the store last applied.
    fn open(live: Live, resume: bool) {
        close();
        let window = WINDOW.with_borrow_mut(|(wanted, opened)| {
            *opened = Some(live);
            wanted.clone()
        });
        let mut path = crate::scope::href(EVENTS_PATH);
        match window {
            Some(query) => {
                path.push_str("?rows=window&");
                path.push_str(&query);
            }
            None => path.push_str("?rows=none"),
        }
        if let Some(id) = live
            .state
            .with_value(|s| s.as_ref().map(|s| s.id))
            .filter(|_| resume)
        {
            path.push_str(&format!("&last={id}"));
        }
        let source = match EventSource::new(&path) {
            Ok(source) => source,
            Err(err) => {
                leptos::logging::warn!("flowdeck: cannot open the event stream: {err:?}");
                live.connection.set(Connection::Reconnecting);
                return;
            }
        };
        let mut on_frame = Vec::new();
        for name in [WINDOW_EVENT, FULL_EVENT, DELTA_EVENT] {
            let callback = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                let data = e.data().as_string().unwrap_or_default();
                if let Err(problem) = live.accept(name, &data) {
                    // Out of step: start over with a new connection, which gets a full frame.
                    leptos::logging::warn!("flowdeck: resyncing the stream: {problem}");
                    live.connection.set(Connection::Reconnecting);
                    // Not from inside this callback: reopening drops the callback itself.
                    leptos::task::spawn_local(async move { open(live, false) });
                }
            });
            if source
                .add_event_listener_with_callback(name, callback.as_ref().unchecked_ref())
                .is_err()
            {
                live.connection.set(Connection::Reconnecting);
            }
            on_frame.push(callback);
        }
        // The browser reconnects by itself (sending Last-Event-ID); say so until it has.
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            live.connection.set(Connection::Reconnecting);
        });
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        OPEN.with(|open| {
            *open.borrow_mut() = Some(Open {
                source,
                _on_frame: on_frame,
                _on_error: on_error,
            })
        });
    }

    fn close() {
        if let Some(open) = OPEN.with(|open| open.borrow_mut().take()) {
            open.source.close();
        }
    }
}

#[cfg(not(feature = "hydrate"))]
mod stream {
    pub(super) fn connect_once_hydrated(_live: super::Live) {}
}
