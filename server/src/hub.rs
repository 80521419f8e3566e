//! The stream hub: turns the runtime's change feed into numbered frames and serves them to
//! every connected browser.
//!
//! One task owns the publishing. It collects the ids of items the change feed touched and,
//! once per refresh interval, publishes one [`Delta`]: the aggregates, the touched items'
//! current rows (each once, however often it changed), a rate point, and the error summary
//! when it changed. Each frame is serialized once and kept in a bounded log (by frame count
//! and by bytes); the hub also applies it to its own [`LiveState`] mirror, which is what a
//! new client's [`Full`] frame is made from.
//!
//! Clients never get a queue of their own that could grow: each one reads the shared log at
//! its own cursor, pulled by its socket. A client that reconnects with `Last-Event-ID` gets
//! exactly the frames after that id while they are in the log; one that fell further behind
//! (a reconnect after a long outage, or a stalled socket) gets a fresh full frame and goes
//! on from there. So a slow client never slows the runtime or the other clients.

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use flowdeck_protocol::{
    stream::{Delta, Full, ItemRow, LiveState, Point, DELTA_EVENT, FULL_EVENT, ROWS_CHUNK},
    window::WindowQuery,
    ItemId, Snapshot, TaskDetail,
};
use flowdeck_runtime::{FeedError, PipelineHandle};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::watch;

use crate::windows::{Current, Subscription, WindowError, Windows};

/// How much of the past the hub keeps for reconnecting clients.
#[derive(Clone, Copy, Debug)]
pub struct LogLimits {
    pub frames: usize,
    pub bytes: usize,
}

impl Default for LogLimits {
    /// Four minutes at the default 250 ms refresh, and never more than 64 MiB.
    fn default() -> Self {
        LogLimits {
            frames: 960,
            bytes: 64 << 20,
        }
    }
}

/// One frame, serialized once for every client: whole, and without its task rows for the
/// clients that show none (`?rows=none`; the same id, so they resume as exactly).
pub struct Published {
    pub id: u64,
    pub event: &'static str,
    pub json: Arc<str>,
    pub without_rows: Arc<str>,
    /// A full frame's rows, in JSON arrays of at most [`ROWS_CHUNK`], for the clients that
    /// take them apart from the frame (`?rows=chunked`). Empty for a delta.
    pub chunks: Vec<Arc<str>>,
}

/// A frame whose task rows can be left out.
trait Rows: Serialize {
    fn rows(&mut self) -> &mut Vec<ItemRow>;
}

impl Rows for Full {
    fn rows(&mut self) -> &mut Vec<ItemRow> {
        &mut self.items
    }
}

impl Rows for Delta {
    fn rows(&mut self) -> &mut Vec<ItemRow> {
        &mut self.items
    }
}

struct Log {
    frames: VecDeque<Arc<Published>>,
    bytes: usize,
    limits: LogLimits,
}

impl Log {
    fn push(&mut self, p: Arc<Published>) {
        self.bytes += p.json.len() + p.without_rows.len();
        self.frames.push_back(p);
        while self.frames.len() > 1
            && (self.frames.len() > self.limits.frames || self.bytes > self.limits.bytes)
        {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.json.len() + old.without_rows.len();
            }
        }
    }

    fn latest(&self) -> u64 {
        self.frames.back().map_or(0, |p| p.id)
    }

    /// The frame with this id, if the log still holds it.
    fn get(&self, id: u64) -> Option<Arc<Published>> {
        let first = self.frames.front()?.id;
        let index = usize::try_from(id.checked_sub(first)?).ok()?;
        self.frames.get(index).cloned()
    }
}

struct Shared {
    pipeline: PipelineHandle,
    log: RwLock<Log>,
    mirror: RwLock<LiveState>,
    /// The last full frame made for a client, reused while the mirror has not moved.
    full: Mutex<Option<Arc<Published>>>,
    /// The task-list windows clients subscribe to, recomputed with every frame.
    windows: Arc<Windows>,
}

/// The publisher and the way clients read from it. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
    published: watch::Receiver<u64>,
}

impl Hub {
    /// Starts publishing `pipeline` every `every`.
    pub fn start(pipeline: PipelineHandle, every: Duration, limits: LogLimits) -> Hub {
        // Subscribe before reading the first state, so no change falls between the two.
        let feed = pipeline.subscribe();
        let first_id = first_frame_id();
        let mirror = initial_state(&pipeline, first_id);
        let first = publish_full(&mirror);
        let shared = Arc::new(Shared {
            pipeline,
            log: RwLock::new(Log {
                frames: VecDeque::new(),
                bytes: 0,
                limits,
            }),
            mirror: RwLock::new(mirror),
            full: Mutex::new(None),
            windows: Arc::default(),
        });
        shared.log.write().push(first);
        let (tx, rx) = watch::channel(first_id);
        tokio::spawn(publisher(shared.clone(), feed, tx, every));
        Hub {
            shared,
            published: rx,
        }
    }

    /// The pipeline this hub streams.
    pub fn pipeline(&self) -> &PipelineHandle {
        &self.shared.pipeline
    }

    /// A read of the mirror: what a client that is fully caught up shows.
    pub fn with_state<R>(&self, f: impl FnOnce(&LiveState) -> R) -> R {
        f(&self.shared.mirror.read())
    }

    /// The newest snapshot the stream carries.
    pub fn snapshot(&self) -> Snapshot {
        self.with_state(|s| s.snapshot.clone())
    }

    /// One item's detail, provenance and the stage names they refer to, while retained.
    pub fn task(&self, id: ItemId) -> Option<TaskDetail> {
        let pipeline = self.pipeline();
        let tracker = pipeline.tracker();
        let detail = tracker.item(id)?;
        let (started_unix_ms, now_ms) = pipeline.clock();
        Some(TaskDetail {
            detail,
            provenance: tracker.provenance(id),
            stage_names: pipeline.stage_names().to_vec(),
            started_unix_ms,
            now_ms,
            retryable: pipeline.can_retry(id),
            from_store: false,
        })
    }

    /// The id of the newest frame.
    pub fn latest_id(&self) -> u64 {
        self.shared.log.read().latest()
    }

    /// A full frame of the current mirror (cached until the mirror moves). The mirror is
    /// copied under its lock and serialized after: serializing 100,000 rows under it would
    /// hold up the next delta, and every stream with it.
    fn full(&self) -> Arc<Published> {
        let id = self.shared.mirror.read().id;
        if let Some(p) = self.shared.full.lock().as_ref().filter(|p| p.id == id) {
            return p.clone();
        }
        let mut full = self.shared.mirror.read().to_full();
        let p = publish(full.id, FULL_EVENT, &mut full);
        let mut cached = self.shared.full.lock();
        if cached.as_ref().is_none_or(|c| c.id < p.id) {
            *cached = Some(p.clone());
        }
        p
    }

    /// Subscribes to a window of the task list: its current rows, and a hold that keeps it
    /// recomputed with every frame until dropped.
    pub fn subscribe_window(&self, q: WindowQuery) -> Result<(Subscription, Current), WindowError> {
        let shared = &self.shared;
        shared.windows.subscribe(q.clone(), || {
            let mirror = shared.mirror.read();
            (mirror.id, mirror.window(&q))
        })
    }

    /// How many different task-list windows clients hold.
    pub fn windows(&self) -> usize {
        self.shared.windows.subscribed()
    }

    /// The frames a client that last applied `last_seen` needs, from now on.
    pub fn frames(
        &self,
        last_seen: Option<u64>,
    ) -> impl futures::Stream<Item = Arc<Published>> + use<> {
        let hub = self.clone();
        futures::stream::unfold((hub, last_seen), |(mut hub, cursor)| async move {
            loop {
                let latest = hub.shared.log.read().latest();
                match cursor {
                    Some(c) if c == latest => {
                        // Mark what is published as seen, then look again, so a frame
                        // published in between is not waited past.
                        hub.published.borrow_and_update();
                        if hub.shared.log.read().latest() == c
                            && hub.published.changed().await.is_err()
                        {
                            return None;
                        }
                        continue;
                    }
                    Some(c) if c < latest => {
                        let next = hub.shared.log.read().get(c + 1);
                        if let Some(p) = next {
                            let id = p.id;
                            return Some((p, (hub, Some(id))));
                        }
                    }
                    _ => {}
                }
                // New, too far behind, or from another server's lifetime: start over.
                let p = hub.full();
                let id = p.id;
                return Some((p, (hub, Some(id))));
            }
        })
    }
}

/// Frame ids start from the clock (milliseconds × 4096), so an id a browser kept from an
/// earlier run of the server is never mistaken for one of this run.
fn first_frame_id() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ms << 12
}

fn initial_state(pipeline: &PipelineHandle, id: u64) -> LiveState {
    let tracker = pipeline.tracker();
    let mut items: Vec<ItemRow> = tracker
        .items(None, None, usize::MAX)
        .iter()
        .map(ItemRow::from)
        .collect();
    items.sort_unstable_by_key(ItemRow::id);
    LiveState::from_full(Full {
        id,
        snapshot: pipeline.snapshot(),
        retention: tracker.retention() as u64,
        items,
        history: Vec::new(),
        errors: tracker.errors(),
        questions: questions_now(pipeline),
    })
}

/// The pipeline's questions for a full frame: the pending ones, then the most recent
/// closed ones, as a client keeps them.
fn questions_now(pipeline: &PipelineHandle) -> Vec<flowdeck_protocol::question::QuestionInfo> {
    let q = pipeline.questions();
    let mut all = q.pending();
    all.extend(
        q.closed()
            .into_iter()
            .take(flowdeck_protocol::stream::QUESTIONS_KEPT),
    );
    all
}

fn publish_full(state: &LiveState) -> Arc<Published> {
    publish(state.id, FULL_EVENT, &mut state.to_full())
}

/// Serializes `body` whole and without its rows (taken out and put back); a full frame's
/// rows in chunks too.
fn publish(id: u64, event: &'static str, body: &mut impl Rows) -> Arc<Published> {
    let rows = std::mem::take(body.rows());
    let without_rows = to_json(&*body);
    let chunks = match event {
        FULL_EVENT => rows.chunks(ROWS_CHUNK).map(|c| to_json(&c)).collect(),
        _ => Vec::new(),
    };
    *body.rows() = rows;
    Arc::new(Published {
        id,
        event,
        json: to_json(&*body),
        without_rows,
        chunks,
    })
}

fn to_json(body: &impl Serialize) -> Arc<str> {
    match serde_json::to_string(body) {
        Ok(json) => json.into(),
        Err(e) => {
            // Plain data cannot fail to serialize; if it ever does, say so in the log.
            tracing::error!(error = %e, "cannot serialize a stream frame");
            "{}".into()
        }
    }
}

/// The publishing task: gathers touched ids from the feed, publishes a frame every tick.
async fn publisher(
    shared: Arc<Shared>,
    mut feed: flowdeck_runtime::Feed,
    tx: watch::Sender<u64>,
    every: Duration,
) {
    let pipeline = shared.pipeline.clone();
    let tracker = pipeline.tracker();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut touched: HashSet<ItemId> = HashSet::new();
    // The oldest event the next delta carries, for the page's lag probe.
    let mut oldest: Option<u64> = None;
    let mut feed_open = true;
    let mut resync = false;
    let mut rates = RatePoints::new(&shared.mirror.read().snapshot);
    let mut asked = pipeline.questions().subscribe();
    let mut questions = Vec::new();
    let mut asked_open = true;
    loop {
        tokio::select! {
            biased;
            _ = tick.tick() => {}
            change = asked.recv(), if asked_open => {
                match change {
                    Ok(change) => questions.push(change),
                    // Changes were skipped: a full frame brings the questions as they are.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => resync = true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => asked_open = false,
                }
                continue;
            }
            batch = feed.recv(), if feed_open => {
                match batch {
                    Ok(events) => {
                        touched.extend(events.iter().map(|e| e.item));
                        let first = events.iter().map(|e| e.at_us).min();
                        oldest = match (oldest, first) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    // Events were skipped: the touched set is incomplete, rebuild instead.
                    Err(FeedError::Lagged(_)) => resync = true,
                    Err(FeedError::Closed) => feed_open = false,
                }
                continue;
            }
        }
        if tx.is_closed() {
            return;
        }
        let id = shared.log.read().latest() + 1;
        let published = if resync {
            resync = false;
            touched.clear();
            questions.clear();
            oldest = None;
            let mut state = initial_state(&pipeline, id);
            state.history = shared.mirror.read().history.clone();
            rates = RatePoints::new(&state.snapshot);
            let p = publish_full(&state);
            let mut windows = shared.windows.lock();
            shared.log.write().push(p.clone());
            *shared.mirror.write() = state;
            windows.recompute(&shared.mirror.read(), id);
            p
        } else {
            let snapshot = pipeline.snapshot();
            let mut ids: Vec<ItemId> = touched.drain().collect();
            ids.sort_unstable();
            let items = tracker.summaries(ids).iter().map(ItemRow::from).collect();
            // Only what changed in the error summary: under steady failures a frame carries
            // the new failures, not the thousand the summary lists.
            let errors = if tracker.errors_total() == shared.mirror.read().errors.total {
                None
            } else {
                tracker.errors().delta_from(&shared.mirror.read().errors)
            };
            let mut delta = Delta {
                id,
                point: rates.point(&snapshot),
                snapshot,
                items,
                errors,
                oldest_change_us: oldest.take(),
                questions: std::mem::take(&mut questions),
            };
            let p = publish(id, DELTA_EVENT, &mut delta);
            // Held until the windows are current: see `crate::windows`.
            let mut windows = shared.windows.lock();
            shared.log.write().push(p.clone());
            if let Err(gap) = shared.mirror.write().apply_delta(delta) {
                tracing::error!(%gap, "stream mirror out of step");
            }
            windows.recompute(&shared.mirror.read(), id);
            p
        };
        let _ = tx.send(published.id);
    }
}

/// Turns successive snapshots into rate points.
struct RatePoints {
    at: Instant,
    submitted: u64,
    left: u64,
    failed: u64,
}

impl RatePoints {
    fn new(s: &Snapshot) -> Self {
        RatePoints {
            at: Instant::now(),
            submitted: s.totals.submitted,
            left: left(s),
            failed: s.totals.failed,
        }
    }

    fn point(&mut self, s: &Snapshot) -> Point {
        let now = Instant::now();
        let secs = now.duration_since(self.at).as_secs_f64().max(1e-3);
        let rate = |new: u64, old: u64| new.saturating_sub(old) as f64 / secs;
        let point = Point {
            at_ms: s.uptime_ms,
            input_rate: rate(s.totals.submitted, self.submitted),
            output_rate: rate(left(s), self.left),
            failed_rate: rate(s.totals.failed, self.failed),
            queued: s.totals.queued,
            running: s.totals.running,
        };
        *self = RatePoints::new(s);
        point
    }
}

fn left(s: &Snapshot) -> u64 {
    s.totals.completed + s.totals.failed + s.totals.cancelled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u64, len: usize) -> Arc<Published> {
        Arc::new(Published {
            id,
            event: DELTA_EVENT,
            json: "x".repeat(len).into(),
            without_rows: "".into(),
            chunks: Vec::new(),
        })
    }

    #[test]
    fn the_log_is_bounded_by_frames_and_by_bytes() {
        let mut log = Log {
            frames: VecDeque::new(),
            bytes: 0,
            limits: LogLimits {
                frames: 3,
                bytes: 100,
            },
        };
        for id in 10..15 {
            log.push(frame(id, 10));
        }
        assert_eq!(log.frames.len(), 3);
        assert!(log.get(11).is_none());
        assert_eq!(log.get(12).map(|p| p.id), Some(12));
        assert_eq!(log.latest(), 14);
        log.push(frame(15, 95));
        assert_eq!(
            log.frames.len(),
            1,
            "bytes over the limit drop the oldest frames"
        );
        assert_eq!(log.bytes, 95);
        assert!(log.get(16).is_none());
    }
}
