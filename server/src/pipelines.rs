//! Several pipelines in one dashboard: the registry of them (those of this process and
//! those that report to it), their list's rows, and how their paths are named (each one's
//! pages under its base, `/p/{slug}`). The routes are in `scopes`.

use std::{collections::HashMap, sync::Arc};

use axum::Router;
use parking_lot::RwLock;

use flowdeck_protocol::pipelines::{is_slug, slug, PipelineQuery, PipelineRow};
use flowdeck_runtime::PipelineHandle;
use flowdeck_store::{RunId, Store, StoreError};

use crate::hub::Hub;

/// One pipeline as the list reads it: its slug, its hub and its live run in the store.
#[derive(Clone)]
pub struct Entry {
    slug: String,
    name: String,
    hub: Hub,
    run: Option<RunId>,
}

impl Entry {
    pub fn new(slug: &str, hub: &Hub, run: Option<RunId>) -> Self {
        Entry {
            slug: slug.to_owned(),
            name: hub.pipeline().name().to_owned(),
            hub: hub.clone(),
            run,
        }
    }
}

/// The pipelines a dashboard serves, in the order they were given, then those that
/// report to it in the order they first did. Empty for a dashboard of one (it has no
/// list). Cheap to clone; every clone sees pipelines added later.
#[derive(Clone, Default)]
pub struct Pipelines {
    entries: Arc<RwLock<Vec<Entry>>>,
    /// The routers of reporting pipelines, by slug: they arrive while the server runs, so
    /// their base is looked up per request ([`dispatch`]).
    reported: Arc<RwLock<HashMap<String, Router>>>,
    store: Option<Store>,
    /// Set in standalone mode: there is a list even with one pipeline, since the root
    /// serves none.
    standalone: bool,
}

impl Pipelines {
    /// The registry of `entries`, in order.
    pub(crate) fn new(entries: Vec<Entry>, store: Option<Store>) -> Self {
        Pipelines {
            entries: Arc::new(RwLock::new(entries)),
            reported: Arc::default(),
            store,
            standalone: false,
        }
    }

    /// The registry of a standalone dashboard: no pipeline of its own, those that report.
    pub(crate) fn standalone(store: Option<Store>) -> Self {
        Pipelines {
            store,
            standalone: true,
            ..Pipelines::default()
        }
    }

    /// Whether `/` is the list: more than one pipeline, or a standalone dashboard.
    pub fn many(&self) -> bool {
        self.standalone || self.entries.read().len() > 1
    }

    /// (slug, name) of each, in order.
    pub fn links(&self) -> Vec<(String, String)> {
        self.entries
            .read()
            .iter()
            .map(|e| (e.slug.clone(), e.name.clone()))
            .collect()
    }

    /// Whether `slug` is taken by a pipeline of this process (not a reporting one).
    pub(crate) fn is_local(&self, slug: &str) -> bool {
        self.entries.read().iter().any(|e| e.slug == slug)
            && !self.reported.read().contains_key(slug)
    }

    /// Serves a reporting pipeline under `/p/{slug}/` with its `routes`: a new one, or a
    /// new run of one (which replaces the previous run's routes and row).
    pub(crate) fn put_reported(&self, entry: Entry, routes: Router) {
        let slug = entry.slug.clone();
        {
            let mut entries = self.entries.write();
            match entries.iter_mut().find(|e| e.slug == slug) {
                Some(e) => *e = entry,
                None => entries.push(entry),
            }
        }
        self.reported.write().insert(slug, routes);
    }

    /// The routes of the pipeline reporting at `slug`.
    pub(crate) fn reported(&self, slug: &str) -> Option<Router> {
        self.reported.read().get(slug).cloned()
    }

    /// Whether this registry lists nothing: a dashboard of one pipeline (not standalone).
    pub(crate) fn is_single(&self) -> bool {
        self.entries.read().is_empty() && !self.standalone
    }

    /// The list's rows now, read off the runtime's threads: what the API and the page
    /// answer.
    pub(crate) async fn read(&self, q: PipelineQuery) -> Result<Vec<PipelineRow>, String> {
        let pipelines = self.clone();
        tokio::task::spawn_blocking(move || pipelines.rows(&q, crate::persist::now_ms()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// The list's rows, filtered and sorted. Reads the store (blocking): call off the
    /// runtime's threads. Two queries whatever the number of pipelines and items: the
    /// window's runs are counted from their recorded totals, not from their items.
    pub fn rows(&self, q: &PipelineQuery, now_ms: u64) -> Result<Vec<PipelineRow>, StoreError> {
        let entries = self.entries.read().clone();
        let live: Vec<RunId> = entries.iter().filter_map(|e| e.run).collect();
        let (before, last) = match &self.store {
            Some(store) => (
                match q.window.span_ms() {
                    Some(span) => store.pipeline_runs(now_ms.saturating_sub(span), &live)?,
                    None => HashMap::new(),
                },
                store.last_runs(&live)?,
            ),
            None => (HashMap::new(), HashMap::new()),
        };
        let mut rows: Vec<PipelineRow> = entries
            .iter()
            .map(|e| {
                let s = e.hub.pipeline().snapshot();
                let t = &s.totals;
                let earlier = before.get(&e.name).cloned().unwrap_or_default();
                PipelineRow {
                    slug: e.slug.clone(),
                    name: e.name.clone(),
                    state: s.state,
                    throughput: t.throughput,
                    queued: t.queued,
                    running: t.running,
                    completed: t.completed + earlier.completed,
                    failed: t.failed + earlier.failed,
                    cancelled: t.cancelled + earlier.cancelled,
                    runs: 1 + earlier.runs,
                    last_run: last.get(&e.name).cloned(),
                    warnings: s.warnings.iter().filter(|w| w.cleared_ms.is_none()).count() as u32,
                }
            })
            .collect();
        q.apply(&mut rows);
        Ok(rows)
    }
}

/// `path` without the `/p/{slug}` base it is under, if any: what it is to the pipeline.
pub(crate) fn unscoped(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/p/") else {
        return path;
    };
    let (slug, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if is_slug(slug) {
        if tail.is_empty() {
            "/"
        } else {
            tail
        }
    } else {
        path
    }
}

/// The slugs of `first` and `more`, in order; an error naming two that share one.
pub(crate) fn slugs(
    first: &PipelineHandle,
    more: &[PipelineHandle],
) -> Result<Vec<String>, String> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(more.len() + 1);
    for p in std::iter::once(first).chain(more) {
        let name = p.name().to_owned();
        let s = slug(&name);
        if let Some(other) = seen.insert(s.clone(), name.clone()) {
            return Err(format!(
                "two pipelines would be served at /p/{s}/: {other:?} and {name:?}; give them names that differ in letters or digits"
            ));
        }
        out.push(s);
    }
    Ok(out)
}
