//! The live store: the one place pages read pipeline state from.
//!
//! On the server it holds the snapshot the page is rendered with (loaded through the
//! [`current_snapshot`] server function, so the browser hydrates from the same data). In the
//! browser, one EventSource per tab replaces it as updates stream in. Pages never open their
//! own connections: browsers allow six HTTP/1.1 connections per origin.

use std::sync::Arc;

use flowdeck_protocol::Snapshot;
use leptos::prelude::*;

/// How the server hands the current pipeline state to the app: the server provides one of
/// these as context for every request.
#[derive(Clone)]
pub struct SnapshotSource(pub Arc<dyn Fn() -> Snapshot + Send + Sync>);

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
    initial: Resource<Result<Snapshot, ServerFnError>>,
    streamed: RwSignal<Option<Snapshot>>,
    pub connection: RwSignal<Connection>,
    /// While set, incoming updates are kept aside and the page holds still.
    pub frozen: RwSignal<bool>,
    held: StoredValue<Option<Snapshot>>,
    /// Messages received since the page loaded.
    pub received: RwSignal<u64>,
}

impl Live {
    /// The newest snapshot: the streamed one once it arrives, the server's until then.
    /// Read it inside a `<Suspense>`, so the server waits for the first one.
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.streamed
            .get()
            .or_else(|| self.initial.get().and_then(Result::ok))
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn accept(&self, snapshot: Snapshot) {
        self.received.update(|n| *n += 1);
        if self.frozen.get_untracked() {
            self.held.set_value(Some(snapshot));
        } else {
            self.streamed.set(Some(snapshot));
        }
    }

    /// Flips the frozen state; on thaw, shows what arrived meanwhile.
    pub fn toggle_frozen(&self) {
        let frozen = !self.frozen.get_untracked();
        self.frozen.set(frozen);
        if !frozen {
            if let Some(s) = self.held.try_update_value(Option::take).flatten() {
                self.streamed.set(Some(s));
            }
        }
    }
}

/// The current snapshot, for the first render of a page.
#[server(endpoint = "snapshot")]
pub async fn current_snapshot() -> Result<Snapshot, ServerFnError> {
    let source = use_context::<SnapshotSource>()
        .ok_or_else(|| ServerFnError::new("no pipeline is attached to this server"))?;
    Ok((source.0)())
}

/// Creates the store and, in the browser, opens the tab's stream.
pub fn provide() {
    let live = Live {
        initial: Resource::new(|| (), |_| current_snapshot()),
        streamed: RwSignal::new(None),
        connection: RwSignal::new(Connection::Static),
        frozen: RwSignal::new(false),
        held: StoredValue::new(None),
        received: RwSignal::new(0),
    };
    provide_context(live);
    // Effects run only in the browser, after hydration: the server never connects.
    Effect::new(move |started: Option<()>| {
        if started.is_none() {
            untrack(|| stream::connect(live));
        }
    });
}

/// The store provided by [`provide`].
pub fn use_live() -> Live {
    expect_context::<Live>()
}

/// The SSE path the server streams on.
pub const EVENTS_PATH: &str = "/api/events";

#[cfg(feature = "hydrate")]
mod stream {
    use futures::StreamExt;
    use gloo_net::eventsource::futures::EventSource;
    use leptos::prelude::*;
    use send_wrapper::SendWrapper;

    use super::{Connection, Live, EVENTS_PATH};

    pub(super) fn connect(live: Live) {
        let mut source = match EventSource::new(EVENTS_PATH) {
            Ok(source) => source,
            Err(err) => {
                leptos::logging::warn!("flowdeck: cannot open the event stream: {err:?}");
                live.connection.set(Connection::Reconnecting);
                return;
            }
        };
        let Ok(mut snapshots) = source.subscribe("snapshot") else {
            live.connection.set(Connection::Reconnecting);
            return;
        };
        leptos::task::spawn_local(async move {
            while let Some(message) = snapshots.next().await {
                match message {
                    Ok((_, event)) => {
                        let parsed = event
                            .data()
                            .as_string()
                            .and_then(|text| serde_json::from_str(&text).ok());
                        if let Some(snapshot) = parsed {
                            live.connection.set(Connection::Live);
                            live.accept(snapshot);
                        }
                    }
                    // The browser reconnects by itself; say so until the next message.
                    Err(_) => live.connection.set(Connection::Reconnecting),
                }
            }
        });
        let source = SendWrapper::new(source);
        on_cleanup(move || source.take().close());
    }
}

#[cfg(not(feature = "hydrate"))]
mod stream {
    pub(super) fn connect(_live: super::Live) {}
}

/// The header's indicator of the stream's state.
#[component]
pub fn ConnectionBadge() -> impl IntoView {
    let live = use_live();
    let label = move || match live.connection.get() {
        Connection::Static => "connecting",
        Connection::Live => "live",
        Connection::Reconnecting => "reconnecting",
    };
    view! {
        <span class="badge" data-state=label role="status" aria-live="polite">
            {label}
        </span>
    }
}
