//! The pipelines that report to this dashboard from other processes (`report_to`): each
//! one's runtime mirror by slug, with the run it mirrors, and the watch that marks a
//! reporter's run aborted when it goes silent. `ingest` feeds them.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use flowdeck_runtime::Mirror;
use parking_lot::Mutex;

/// The reporting pipelines' mirrors, by slug, with the run each mirrors.
#[derive(Clone, Default)]
pub struct Reporters {
    map: Arc<Mutex<HashMap<String, Reporter>>>,
    /// Whether the watch for silent reporters runs (started with the first reporter).
    watching: Arc<std::sync::atomic::AtomicBool>,
}

struct Reporter {
    started_unix_ms: u64,
    stages: Vec<String>,
    mirror: Mirror,
    /// The reporter's count of finished items it could not send, when last logged.
    dropped: u64,
    /// When its last batch came.
    seen: Instant,
    /// Marked aborted for its silence: a batch of the same run after that starts a new
    /// run here (the old one's feed and store record are closed).
    lost: bool,
}

impl Reporters {
    /// The mirror of the run that started at `started_unix_ms` with `stages` at `slug`: the
    /// one already served, or the one `make` makes (a new pipeline, or a new run of it,
    /// or the run of a reporter that was marked lost and came back). `timeout` is how long
    /// a reporter may stay silent before its run is marked aborted.
    pub(crate) fn mirror(
        &self,
        slug: &str,
        started_unix_ms: u64,
        stages: &[String],
        timeout: Duration,
        make: impl FnOnce() -> Mirror,
    ) -> Mirror {
        let mut map = self.map.lock();
        if let Some(r) = map.get(slug) {
            if r.started_unix_ms == started_unix_ms && r.stages == stages && !r.lost {
                return r.mirror.clone();
            }
            if r.lost {
                tracing::info!(
                    slug,
                    "a silent reporter is back: its run goes on as a new one"
                );
            }
        }
        let mirror = make();
        map.insert(
            slug.to_owned(),
            Reporter {
                started_unix_ms,
                stages: stages.to_vec(),
                mirror: mirror.clone(),
                dropped: 0,
                seen: Instant::now(),
                lost: false,
            },
        );
        drop(map);
        self.watch(timeout);
        mirror
    }

    /// Notes a batch from the reporter at `slug`, with its count of finished items it could
    /// not send: logged the first time and each time it doubles, since their counts are in
    /// its snapshot but their rows are not here, and whoever reads a task list should know
    /// why.
    pub(crate) fn heard(&self, slug: &str, pipeline: &str, dropped: u64) {
        let mut map = self.map.lock();
        let Some(r) = map.get_mut(slug) else {
            return;
        };
        r.seen = Instant::now();
        if dropped > r.dropped.saturating_mul(2) {
            tracing::warn!(
                pipeline,
                dropped,
                "a reporter could not send every finished item (more than it may send a period, or this dashboard was unreachable): counted, not listed"
            );
            r.dropped = dropped;
        }
    }

    /// Starts, once, the watch that marks a reporter's run aborted when it has sent
    /// nothing for `timeout` (checked every second, or every `timeout` if shorter).
    fn watch(&self, timeout: Duration) {
        if self
            .watching
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let map = Arc::downgrade(&self.map);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(timeout.min(Duration::from_secs(1)));
            loop {
                tick.tick().await;
                // The dashboard is gone: nothing left to watch.
                let Some(map) = map.upgrade() else { return };
                for (slug, r) in map.lock().iter_mut() {
                    let silent = r.seen.elapsed();
                    if !r.lost && silent >= timeout && r.mirror.is_running() {
                        tracing::warn!(
                            slug,
                            silent_s = silent.as_secs(),
                            "a reporting pipeline went silent: its run is marked aborted"
                        );
                        r.mirror.lost(silent);
                        r.lost = true;
                    }
                }
            }
        });
    }
}
