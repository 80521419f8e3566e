//! Health warnings that name the culprit (#17, first part: the engine and the
//! snapshot-based rules; the dashboard, API, Prometheus gauge, log line and callbacks come
//! next).
//!
//! The engine is fed a snapshot at a time with the time it was taken, and keeps no clock
//! of its own, so tests drive it with made-up times and take no wall time. Each rule finds
//! conditions, keyed by rule, stage and worker. A condition must hold for the rule's
//! grace period before it fires (a blip does not), and a firing warning clears only after
//! the condition has been gone for the rule's clear period (a flicker does not re-fire it).
//! The peers' lesson (Ray's "cannot be scheduled" with free resources, tokio-console's
//! false "blocking" flags) is that a warning that fires when nothing is wrong teaches
//! users to ignore all of them: every rule here waits, and asks for a clear signal.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use flowdeck_protocol::{ItemId, PipelineState, Snapshot, WorkerState};
use parking_lot::Mutex;

/// A user's `on_warning`: called once when a warning fires and once when it clears.
pub(crate) type WarningCallback = Box<dyn Fn(&Change) + Send + Sync>;

/// The engine run on the pipeline's snapshots (a built-in [`crate::Monitor`], once a
/// second): it logs each firing at WARN and each clearing at INFO, once, calls the
/// `on_warning` callbacks, and leaves the state where [`crate::PipelineHandle::warnings`]
/// reads it.
pub(crate) struct Health {
    pub engine: Arc<Mutex<Engine>>,
    pub callbacks: Vec<WarningCallback>,
}

impl Health {
    fn check(&mut self, snap: &Snapshot) {
        let changes = self.engine.lock().observe(snap.uptime_ms, snap);
        for c in &changes {
            match c {
                Change::Fired(w) => tracing::warn!(
                    rule = w.rule.name(),
                    stage = w.stage.as_deref().unwrap_or(""),
                    "{}",
                    w.message
                ),
                Change::Cleared(w) => tracing::info!(
                    rule = w.rule.name(),
                    stage = w.stage.as_deref().unwrap_or(""),
                    "cleared: {}",
                    w.message
                ),
            }
            for f in &self.callbacks {
                if let Err(m) = crate::guard::call(|| f(c)) {
                    tracing::error!("an on_warning callback panicked: {m}");
                }
            }
        }
    }
}

impl crate::Monitor for Health {
    fn on_update(&mut self, snapshot: &Snapshot) {
        self.check(snapshot);
    }

    fn on_finish(&mut self, snapshot: &Snapshot) {
        self.check(snapshot);
    }
}

/// The rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// An item in flight far longer than its stage's p99.
    StuckItem,
    /// A worker busy on one item with no completion for a long window while its queue
    /// waits.
    StalledWorker,
    /// Work queued at a stage that nothing takes: all its workers paused, or none left.
    StarvedStage,
    /// More retries than successes at a stage.
    RetryStorm,
    /// A queue that keeps growing because items arrive faster than they are served.
    GrowingQueue,
    /// After the run ends, items that are neither completed, failed nor cancelled.
    LostItems,
}

impl Rule {
    pub const ALL: [Rule; 6] = [
        Rule::StuckItem,
        Rule::StalledWorker,
        Rule::StarvedStage,
        Rule::RetryStorm,
        Rule::GrowingQueue,
        Rule::LostItems,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::StuckItem => "stuck_item",
            Rule::StalledWorker => "stalled_worker",
            Rule::StarvedStage => "starved_stage",
            Rule::RetryStorm => "retry_storm",
            Rule::GrowingQueue => "growing_queue",
            Rule::LostItems => "lost_items",
        }
    }
}

/// When a rule fires and clears, and the numbers it compares with. Every rule can be
/// switched off (`enabled`).
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    pub enabled: Vec<Rule>,
    /// A stuck item: in flight longer than `stuck_factor` × its stage's p99, and at least
    /// `stuck_floor_ms` (a stage of 5 ms tasks should not warn at 15 ms).
    pub stuck_factor: f64,
    pub stuck_floor_ms: u64,
    /// A stalled worker: no completion on one item for this long while the queue waits.
    pub stalled_ms: u64,
    /// A starved stage: work queued and nothing taking it for this long.
    pub starved_ms: u64,
    /// A retry storm: over `storm_window_ms`, at least `storm_min_retries` retries, and
    /// more than successes.
    pub storm_window_ms: u64,
    pub storm_min_retries: u64,
    /// A growing queue: over `growth_window_ms`, the queue grew by at least
    /// `growth_min_share` of its capacity while arrivals exceeded service.
    pub growth_window_ms: u64,
    pub growth_min_share: f64,
    /// How long a condition must hold before it fires, and be gone before it clears.
    pub grace_ms: u64,
    pub clear_ms: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            enabled: Rule::ALL.to_vec(),
            stuck_factor: 3.0,
            stuck_floor_ms: 10_000,
            stalled_ms: 60_000,
            starved_ms: 30_000,
            storm_window_ms: 60_000,
            storm_min_retries: 10,
            growth_window_ms: 120_000,
            growth_min_share: 0.1,
            grace_ms: 10_000,
            clear_ms: 30_000,
        }
    }
}

/// A warning, current or cleared.
#[derive(Clone, Debug, PartialEq)]
pub struct Warning {
    pub rule: Rule,
    pub stage: Option<String>,
    pub worker: Option<u16>,
    /// The items it is about (a stuck item, a stalled worker's item), for links.
    pub items: Vec<ItemId>,
    pub message: String,
    /// When the condition was first seen (ms of the pipeline's clock), when it was last
    /// seen, and when the warning cleared.
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub cleared_ms: Option<u64>,
}

/// What one check changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Fired(Warning),
    Cleared(Warning),
}

/// Which condition: a rule at a stage (and worker).
type Key = (Rule, Option<usize>, Option<u16>);

/// What a rule found this time.
struct Finding {
    message: String,
    items: Vec<ItemId>,
}

struct Condition {
    since_ms: u64,
    firing: bool,
    gone_since: Option<u64>,
    warning: Warning,
}

/// A sample kept for the rules that look at a window.
struct Sample {
    at_ms: u64,
    stages: Vec<StageSample>,
}

#[derive(Clone, Copy, Default)]
struct StageSample {
    queued: u64,
    /// Everything that ever entered the stage: what is queued, in flight or done.
    arrived: u64,
    /// Everything that left it: completed, failed or cancelled.
    served: u64,
    completed: u64,
    retried: u64,
}

/// The engine: feed it snapshots with [`Engine::observe`].
pub struct Engine {
    thresholds: Thresholds,
    conditions: HashMap<Key, Condition>,
    samples: VecDeque<Sample>,
    /// (stage, worker) → (item, since when it has been on it, the worker's processed then).
    on_item: HashMap<(usize, u16), (ItemId, u64, u64)>,
    recent: VecDeque<Warning>,
}

/// Cleared warnings kept for the API.
const RECENT: usize = 100;

impl Engine {
    pub fn new(thresholds: Thresholds) -> Self {
        Engine {
            thresholds,
            conditions: HashMap::new(),
            samples: VecDeque::new(),
            on_item: HashMap::new(),
            recent: VecDeque::new(),
        }
    }

    /// The warnings firing now.
    pub fn current(&self) -> Vec<Warning> {
        let mut w: Vec<Warning> = self
            .conditions
            .values()
            .filter(|c| c.firing)
            .map(|c| c.warning.clone())
            .collect();
        w.sort_by_key(|w| (w.first_seen_ms, w.rule));
        w
    }

    /// The warnings that cleared, newest first.
    pub fn recent(&self) -> Vec<Warning> {
        self.recent.iter().rev().cloned().collect()
    }

    /// Checks every rule on `snap`, taken at `at_ms` (any monotonic clock in ms); returns
    /// the warnings that fired or cleared.
    pub fn observe(&mut self, at_ms: u64, snap: &Snapshot) -> Vec<Change> {
        self.sample(at_ms, snap);
        let mut found: HashMap<Key, Finding> = HashMap::new();
        let t = self.thresholds.clone();
        let on = |r: Rule| t.enabled.contains(&r);
        if on(Rule::StuckItem) || on(Rule::StalledWorker) {
            self.items_in_flight(at_ms, snap, &mut found);
        }
        if on(Rule::StarvedStage) {
            for (i, s) in snap.stages.iter().enumerate() {
                if s.stalled() {
                    let why = if s.paused {
                        "its workers are paused"
                    } else {
                        "it has no workers"
                    };
                    found.insert(
                        (Rule::StarvedStage, Some(i), None),
                        Finding {
                            message: format!(
                                "stage {} has {} items queued and nothing taking them: {why}",
                                s.name, s.queued
                            ),
                            items: Vec::new(),
                        },
                    );
                }
            }
        }
        if on(Rule::RetryStorm) {
            self.retry_storms(snap, &mut found);
        }
        if on(Rule::GrowingQueue) {
            self.growing_queues(snap, &mut found);
        }
        if on(Rule::LostItems) && matches!(snap.state, PipelineState::Finished) {
            let t = snap.totals;
            let accounted = t.completed + t.failed + t.cancelled;
            if t.submitted > accounted {
                found.insert(
                    (Rule::LostItems, None, None),
                    Finding {
                        message: format!(
                            "the run ended with {} of {} items neither completed, failed nor cancelled",
                            t.submitted - accounted,
                            t.submitted
                        ),
                        items: Vec::new(),
                    },
                );
            }
        }
        self.settle(at_ms, snap, found)
    }

    /// Stuck items and stalled workers: what each busy worker has been on, and for how
    /// long, as seen across snapshots.
    fn items_in_flight(&mut self, at_ms: u64, snap: &Snapshot, found: &mut HashMap<Key, Finding>) {
        let t = &self.thresholds;
        let mut seen = HashMap::new();
        for (i, s) in snap.stages.iter().enumerate() {
            for w in &s.workers {
                let Some(item) = w.current_item.filter(|_| w.state == WorkerState::Busy) else {
                    continue;
                };
                let key = (i, w.id);
                let (since, processed_then) = match self.on_item.get(&key) {
                    Some(&(prev, since, p)) if prev == item => (since, p),
                    _ => (at_ms, w.processed),
                };
                seen.insert(key, (item, since, processed_then));
                let running = at_ms.saturating_sub(since);
                let p99_ms = s.latency.p99_us / 1000;
                let limit = ((p99_ms as f64 * t.stuck_factor) as u64).max(t.stuck_floor_ms);
                if t.enabled.contains(&Rule::StuckItem) && running > limit {
                    found.insert(
                        (Rule::StuckItem, Some(i), Some(w.id)),
                        Finding {
                            message: format!(
                                "item #{item} has been running at {}-{} for {} s, over {} s (3 × the stage's p99 of {} ms, at least {} s)",
                                s.name,
                                w.id,
                                running / 1000,
                                limit / 1000,
                                p99_ms,
                                t.stuck_floor_ms / 1000
                            ),
                            items: vec![item],
                        },
                    );
                }
                if t.enabled.contains(&Rule::StalledWorker)
                    && running > t.stalled_ms
                    && w.processed == processed_then
                    && s.queued > 0
                {
                    found.insert(
                        (Rule::StalledWorker, Some(i), Some(w.id)),
                        Finding {
                            message: format!(
                                "worker {}-{} has finished nothing for {} s, busy with item #{item}, while {} items wait in its queue",
                                s.name,
                                w.id,
                                running / 1000,
                                s.queued
                            ),
                            items: vec![item],
                        },
                    );
                }
            }
        }
        self.on_item = seen;
    }

    /// The oldest sample no older than `window_ms` before the newest.
    fn window_start(&self, window_ms: u64) -> Option<&Sample> {
        let newest = self.samples.back()?.at_ms;
        self.samples
            .iter()
            .find(|s| newest.saturating_sub(s.at_ms) <= window_ms)
    }

    fn retry_storms(&self, snap: &Snapshot, found: &mut HashMap<Key, Finding>) {
        let t = &self.thresholds;
        let (Some(from), Some(to)) = (self.window_start(t.storm_window_ms), self.samples.back())
        else {
            return;
        };
        for (i, s) in snap.stages.iter().enumerate() {
            let (Some(a), Some(b)) = (from.stages.get(i), to.stages.get(i)) else {
                continue;
            };
            let retries = b.retried.saturating_sub(a.retried);
            let successes = b.completed.saturating_sub(a.completed);
            if retries >= t.storm_min_retries && retries > successes {
                found.insert(
                    (Rule::RetryStorm, Some(i), None),
                    Finding {
                        message: format!(
                            "stage {} retried {retries} times and succeeded {successes} times in the last {} s",
                            s.name,
                            (to.at_ms - from.at_ms) / 1000
                        ),
                        items: Vec::new(),
                    },
                );
            }
        }
    }

    fn growing_queues(&self, snap: &Snapshot, found: &mut HashMap<Key, Finding>) {
        let t = &self.thresholds;
        let (Some(from), Some(to)) = (self.window_start(t.growth_window_ms), self.samples.back())
        else {
            return;
        };
        let span_ms = to.at_ms.saturating_sub(from.at_ms);
        // Half the window at least, so that a burst at start-up is not a trend.
        if span_ms < t.growth_window_ms / 2 {
            return;
        }
        let secs = span_ms as f64 / 1000.0;
        for (i, s) in snap.stages.iter().enumerate() {
            let (Some(a), Some(b)) = (from.stages.get(i), to.stages.get(i)) else {
                continue;
            };
            let grew = b.queued.saturating_sub(a.queued);
            let arriving = b.arrived.saturating_sub(a.arrived) as f64 / secs;
            let served = b.served.saturating_sub(a.served) as f64 / secs;
            let min_growth = (s.capacity as f64 * t.growth_min_share).max(1.0);
            if (grew as f64) >= min_growth && arriving > served * 1.05 && b.queued > a.queued {
                let room = (s.capacity as u64).saturating_sub(b.queued);
                let per_s = (arriving - served).max(f64::MIN_POSITIVE);
                found.insert(
                    (Rule::GrowingQueue, Some(i), None),
                    Finding {
                        message: format!(
                            "stage {}'s queue grew by {grew} to {} of {} in {} s: {arriving:.1} items/s arrive, {served:.1}/s are served; full in about {} s",
                            s.name,
                            b.queued,
                            s.capacity,
                            secs.round(),
                            (room as f64 / per_s).round()
                        ),
                        items: Vec::new(),
                    },
                );
            }
        }
    }

    fn sample(&mut self, at_ms: u64, snap: &Snapshot) {
        let keep = self
            .thresholds
            .storm_window_ms
            .max(self.thresholds.growth_window_ms);
        self.samples.push_back(Sample {
            at_ms,
            stages: snap
                .stages
                .iter()
                .map(|s| {
                    let served = s.completed + s.failed + s.cancelled;
                    StageSample {
                        queued: s.queued,
                        arrived: served + s.queued + s.in_flight,
                        served,
                        completed: s.completed,
                        retried: s.retried,
                    }
                })
                .collect(),
        });
        while self
            .samples
            .front()
            .is_some_and(|s| at_ms.saturating_sub(s.at_ms) > keep)
        {
            self.samples.pop_front();
        }
    }

    /// Moves each condition along: new ones start waiting out the grace, held ones fire,
    /// gone ones wait out the clear period.
    fn settle(
        &mut self,
        at_ms: u64,
        snap: &Snapshot,
        mut found: HashMap<Key, Finding>,
    ) -> Vec<Change> {
        let t = &self.thresholds;
        let mut changes = Vec::new();
        let stage_name =
            |i: Option<usize>| i.and_then(|i| snap.stages.get(i)).map(|s| s.name.clone());
        for (key, finding) in found.drain() {
            let c = self.conditions.entry(key).or_insert_with(|| Condition {
                since_ms: at_ms,
                firing: false,
                gone_since: None,
                warning: Warning {
                    rule: key.0,
                    stage: stage_name(key.1),
                    worker: key.2,
                    items: Vec::new(),
                    message: String::new(),
                    first_seen_ms: at_ms,
                    last_seen_ms: at_ms,
                    cleared_ms: None,
                },
            });
            c.gone_since = None;
            c.warning.message = finding.message;
            c.warning.items = finding.items;
            c.warning.last_seen_ms = at_ms;
            let grace = match key.0 {
                // A verdict on a finished run: nothing to wait for.
                Rule::LostItems => 0,
                // A user's pause is not a fault: only a long one is.
                Rule::StarvedStage => t.starved_ms,
                _ => t.grace_ms,
            };
            if !c.firing && at_ms.saturating_sub(c.since_ms) >= grace {
                c.firing = true;
                changes.push(Change::Fired(c.warning.clone()));
            }
        }
        let mut done = Vec::new();
        for (key, c) in &mut self.conditions {
            if c.warning.last_seen_ms == at_ms {
                continue;
            }
            if !c.firing {
                // A blip: it went before its grace was out.
                done.push(*key);
                continue;
            }
            let gone = *c.gone_since.get_or_insert(at_ms);
            if at_ms.saturating_sub(gone) >= t.clear_ms {
                c.warning.cleared_ms = Some(at_ms);
                changes.push(Change::Cleared(c.warning.clone()));
                self.recent.push_back(c.warning.clone());
                if self.recent.len() > RECENT {
                    self.recent.pop_front();
                }
                done.push(*key);
            }
        }
        for key in done {
            self.conditions.remove(&key);
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowdeck_protocol::{Latency, StageSnapshot, Totals, WorkerSnapshot};

    fn stage(name: &str) -> StageSnapshot {
        StageSnapshot {
            name: name.into(),
            capacity: 100,
            workers: vec![WorkerSnapshot {
                id: 0,
                state: WorkerState::Idle,
                ..Default::default()
            }],
            latency: Latency {
                p50_us: 1_000,
                p95_us: 2_000,
                p99_us: 3_000,
            },
            ..Default::default()
        }
    }

    fn snap(stages: Vec<StageSnapshot>) -> Snapshot {
        Snapshot {
            state: PipelineState::Running,
            stages,
            ..Default::default()
        }
    }

    fn fired(changes: &[Change]) -> Vec<(Rule, Option<String>)> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Fired(w) => Some((w.rule, w.stage.clone())),
                Change::Cleared(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_starved_stage_fires_after_its_grace_and_clears_after_its_clear_period() {
        let mut e = Engine::new(Thresholds::default());
        let mut s = stage("enrich");
        s.queued = 40;
        s.paused = true;
        // A short pause is a blip: gone before the grace is out, nothing fires.
        assert!(e.observe(0, &snap(vec![s.clone()])).is_empty());
        assert!(e.observe(5_000, &snap(vec![stage("enrich")])).is_empty());
        assert!(e.current().is_empty());
        // Held past its 30 s: it fires, once, naming the stage and why.
        assert!(e.observe(10_000, &snap(vec![s.clone()])).is_empty());
        assert!(e.observe(30_000, &snap(vec![s.clone()])).is_empty());
        let c = e.observe(40_000, &snap(vec![s.clone()]));
        assert_eq!(fired(&c), [(Rule::StarvedStage, Some("enrich".into()))]);
        assert!(
            e.current()[0].message.contains("40 items queued"),
            "{}",
            e.current()[0].message
        );
        assert!(e.current()[0].message.contains("paused"));
        assert!(
            e.observe(45_000, &snap(vec![s.clone()])).is_empty(),
            "not again"
        );
        // Resumed: it clears only once it has been gone for the clear period.
        assert!(e.observe(50_000, &snap(vec![stage("enrich")])).is_empty());
        let c = e.observe(80_000, &snap(vec![stage("enrich")]));
        assert!(matches!(&c[..], [Change::Cleared(w)] if w.cleared_ms == Some(80_000)));
        assert!(e.current().is_empty());
        assert_eq!(e.recent()[0].first_seen_ms, 10_000);
    }

    #[test]
    fn a_stuck_item_and_a_stalled_worker_name_the_worker_and_the_item() {
        let mut e = Engine::new(Thresholds::default());
        let busy = |item, processed, queued| {
            let mut s = stage("enrich");
            s.queued = queued;
            s.workers[0] = WorkerSnapshot {
                id: 0,
                state: WorkerState::Busy,
                current_item: Some(item),
                processed,
                ..Default::default()
            };
            snap(vec![s])
        };
        let mut all = Vec::new();
        for t in (0..=90_000).step_by(5_000) {
            all.extend(fired(&e.observe(t, &busy(42, 7, 3))));
        }
        assert_eq!(
            all,
            [
                (Rule::StuckItem, Some("enrich".into())),
                (Rule::StalledWorker, Some("enrich".into()))
            ]
        );
        let now = e.current();
        assert!(now.iter().all(|w| w.items == [42] && w.worker == Some(0)));
        assert!(now[0].message.contains("#42") && now[0].message.contains("enrich-0"));
        // The worker moves on: both clear after the clear period.
        e.observe(95_000, &busy(43, 8, 3));
        let c = e.observe(130_000, &busy(44, 9, 3));
        assert_eq!(c.len(), 2, "{c:?}");
    }

    #[test]
    fn a_slow_but_steady_worker_is_neither_stuck_nor_stalled() {
        let mut e = Engine::new(Thresholds::default());
        // Each item takes 2 s, well within 3 × its p99 of 2.5 s... and the floor.
        let mut warnings = 0;
        for t in (0..600_000u64).step_by(1_000) {
            let mut s = stage("slow");
            s.latency.p99_us = 2_500_000;
            s.queued = 50;
            s.workers[0] = WorkerSnapshot {
                id: 0,
                state: WorkerState::Busy,
                current_item: Some(t / 2_000),
                processed: t / 2_000,
                ..Default::default()
            };
            warnings += e.observe(t, &snap(vec![s])).len();
        }
        assert_eq!(warnings, 0);
    }

    #[test]
    fn retries_outpacing_successes_are_a_storm() {
        let mut e = Engine::new(Thresholds::default());
        let mut all = Vec::new();
        for i in 0..=30u64 {
            let mut s = stage("model");
            s.retried = i * 20;
            s.completed = i * 5;
            all.extend(fired(&e.observe(i * 1_000, &snap(vec![s]))));
        }
        assert_eq!(all, [(Rule::RetryStorm, Some("model".into()))]);
        assert!(e.current()[0].message.contains("retried"));
    }

    #[test]
    fn a_queue_that_keeps_growing_fires_with_the_time_to_full_and_a_burst_does_not() {
        let mut e = Engine::new(Thresholds::default());
        let at = |queued: u64, served: u64| {
            let mut s = stage("store");
            s.queued = queued;
            s.completed = served;
            snap(vec![s])
        };
        // A burst that drains: 60 queued at once, served within 20 s.
        let mut n = 0;
        for t in 0..200u64 {
            let queued = if t < 20 { 60 - 3 * t } else { 0 };
            n += e.observe(t * 1_000, &at(queued, 60 - queued)).len();
        }
        assert_eq!(n, 0, "a burst is not a trend");
        // Then growth: 1 item every 4 s more than is served, for 5 minutes.
        let mut all = Vec::new();
        for t in 200..500u64 {
            all.extend(fired(
                &e.observe(t * 1_000, &at((t - 200) / 4, 60 + (t - 200) * 2)),
            ));
        }
        assert_eq!(all, [(Rule::GrowingQueue, Some("store".into()))]);
        assert!(
            e.current()[0].message.contains("full in about"),
            "{}",
            e.current()[0].message
        );
    }

    #[test]
    fn items_missing_at_the_end_are_lost_at_once() {
        let mut e = Engine::new(Thresholds::default());
        let mut s = snap(vec![stage("a")]);
        s.state = PipelineState::Finished;
        s.totals = Totals {
            submitted: 100,
            completed: 90,
            failed: 5,
            cancelled: 3,
            ..Default::default()
        };
        let c = e.observe(0, &s);
        assert_eq!(fired(&c), [(Rule::LostItems, None)]);
        assert!(e.current()[0].message.contains("2 of 100"));
    }

    #[test]
    fn a_disabled_rule_never_fires() {
        let mut e = Engine::new(Thresholds {
            enabled: vec![Rule::RetryStorm],
            ..Thresholds::default()
        });
        let mut s = stage("enrich");
        s.queued = 40;
        s.paused = true;
        for t in (0..120_000).step_by(5_000) {
            assert!(e.observe(t, &snap(vec![s.clone()])).is_empty());
        }
    }
}
