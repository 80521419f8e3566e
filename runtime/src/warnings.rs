//! Health warnings that name the culprit: the rules and the engine that applies them to a
//! pipeline's snapshots (`crate::watch` runs it once a second on a running pipeline).
//!
//! The engine is fed a snapshot at a time with the time it was taken, and keeps no clock
//! of its own, so tests drive it with made-up times and take no wall time. Each rule finds
//! conditions, keyed by rule, stage and worker. A condition must hold for the rule's
//! grace period before it fires (a blip does not), and a firing warning clears only after
//! the condition has been gone for the rule's clear period (a flicker does not re-fire it).
//! The peers' lesson (Ray's "cannot be scheduled" with free resources, tokio-console's
//! false "blocking" flags) is that a warning that fires when nothing is wrong teaches
//! users to ignore all of them: every rule here waits, and asks for a clear signal.
//! docs/warnings.md lists each rule with its threshold and the reason for it.

use std::collections::{HashMap, VecDeque};

use flowdeck_protocol::{ItemId, PipelineState, Snapshot, WorkerState, HELD_BACK};
pub use flowdeck_protocol::{Rule, Warning};
use serde::{Deserialize, Serialize};

/// A user's `on_warning`: called once when a warning fires and once when it clears.
pub(crate) type WarningCallback = Box<dyn Fn(&Change) + Send + Sync>;

/// What a check knows besides the snapshot.
#[derive(Clone, Debug, Default)]
pub struct Signals {
    /// The runtime's worst scheduling delay since the last check, in ms.
    pub late_ms: u64,
    /// Items failed for good so far, by error kind.
    pub failures_by_kind: Vec<(String, u64)>,
    /// Which join group an item is a part of, in words: a stuck item names its group.
    pub group_of: Option<GroupOf>,
}

/// Finds the join group of an item ([`crate::PipelineHandle::group_of`]).
#[derive(Clone)]
pub struct GroupOf(pub std::sync::Arc<dyn Fn(ItemId) -> Option<String> + Send + Sync>);

impl std::fmt::Debug for GroupOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupOf")
    }
}

/// When a rule fires and clears, and the numbers it compares with. Set from Rust
/// ([`crate::Line::warnings`]) or the config file's `[warnings]` section, where every
/// field is optional; any rule can be switched off (`disabled`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Rules that never fire.
    pub disabled: Vec<Rule>,
    /// A stuck item: in flight longer than `stuck_factor` × its stage's p99, and at least
    /// `stuck_floor_ms` (a stage of 5 ms tasks should not warn at 15 ms).
    pub stuck_factor: f64,
    pub stuck_floor_ms: u64,
    /// A stalled worker: no completion on one item for this long while the queue waits.
    pub stalled_ms: u64,
    /// A starved stage: work queued and nothing taking it for this long.
    pub starved_ms: u64,
    /// A retry storm: over `storm_window_ms`, at least `storm_min` retries and more than
    /// successes; or at least `storm_min` failures, `storm_fail_share` of the stage's
    /// finished items or more, `storm_kind_share` of them of one error kind.
    pub storm_window_ms: u64,
    pub storm_min: u64,
    pub storm_fail_share: f64,
    pub storm_kind_share: f64,
    /// A growing queue: over `growth_window_ms`, the queue grew by at least
    /// `growth_min_share` of its capacity while arrivals exceeded service.
    pub growth_window_ms: u64,
    pub growth_min_share: f64,
    /// A blocked runtime: a ready task ran this late.
    pub blocked_ms: u64,
    /// How long a condition must hold before it fires, and be gone before it clears.
    pub grace_ms: u64,
    pub clear_ms: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            disabled: Vec::new(),
            stuck_factor: 3.0,
            stuck_floor_ms: 10_000,
            stalled_ms: 60_000,
            starved_ms: 30_000,
            storm_window_ms: 60_000,
            storm_min: 10,
            storm_fail_share: 0.5,
            storm_kind_share: 0.8,
            growth_window_ms: 120_000,
            growth_min_share: 0.1,
            blocked_ms: 200,
            grace_ms: 10_000,
            clear_ms: 30_000,
        }
    }
}

impl Thresholds {
    pub fn enabled(&self, rule: Rule) -> bool {
        !self.disabled.contains(&rule)
    }

    /// Checks the numbers: a clear message for a config file's mistake, not a rule that
    /// never or always fires.
    pub fn validate(&self) -> Result<(), String> {
        let share = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("warnings.{name} must be between 0 and 1, got {v}"))
            }
        };
        share("storm_fail_share", self.storm_fail_share)?;
        share("storm_kind_share", self.storm_kind_share)?;
        share("growth_min_share", self.growth_min_share)?;
        if !(self.stuck_factor.is_finite() && self.stuck_factor >= 1.0) {
            return Err(format!(
                "warnings.stuck_factor must be at least 1, got {}",
                self.stuck_factor
            ));
        }
        if self.storm_window_ms == 0 || self.growth_window_ms == 0 {
            return Err("warnings.storm_window_ms and growth_window_ms must be above 0".into());
        }
        Ok(())
    }
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
    /// When the condition began, when the rule knows better than "now" (a runtime that
    /// was blocked for 12 s was blocked from 12 s ago).
    since_ms: Option<u64>,
}

impl Finding {
    fn new(message: String) -> Self {
        Finding {
            message,
            items: Vec::new(),
            since_ms: None,
        }
    }
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
    failures_by_kind: Vec<(String, u64)>,
}

#[derive(Clone, Copy, Default)]
struct StageSample {
    queued: u64,
    /// Everything that ever entered the stage: what is queued, in flight or done.
    arrived: u64,
    /// Everything that left it: completed, failed or cancelled.
    served: u64,
    completed: u64,
    failed: u64,
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
    last_at_ms: u64,
}

/// Cleared warnings kept for the API.
const RECENT: usize = 100;
/// Cleared warnings a snapshot carries, and for how long after they cleared.
const SHOWN_CLEARED: usize = 5;
const SHOWN_CLEARED_MS: u64 = 5 * 60_000;

impl Engine {
    pub fn new(thresholds: Thresholds) -> Self {
        Engine {
            thresholds,
            conditions: HashMap::new(),
            samples: VecDeque::new(),
            on_item: HashMap::new(),
            recent: VecDeque::new(),
            last_at_ms: 0,
        }
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Changes the rules and thresholds; warnings of a rule now disabled clear at once.
    pub fn set_thresholds(&mut self, t: Thresholds) -> Vec<Change> {
        let mut changes = Vec::new();
        let off: Vec<Key> = self
            .conditions
            .keys()
            .filter(|k| !t.enabled(k.0))
            .copied()
            .collect();
        for key in off {
            if let Some(c) = self.conditions.remove(&key) {
                if c.firing {
                    changes.push(Change::Cleared(self.clear(c.warning, self.last_at_ms)));
                }
            }
        }
        self.thresholds = t;
        changes
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

    /// What a snapshot shows: the warnings firing, then the few that cleared in the last
    /// minutes.
    pub fn shown(&self) -> Vec<Warning> {
        let mut w = self.current();
        w.extend(
            self.recent
                .iter()
                .rev()
                .take(SHOWN_CLEARED)
                .filter(|w| {
                    self.last_at_ms.saturating_sub(w.cleared_ms.unwrap_or(0)) <= SHOWN_CLEARED_MS
                })
                .cloned(),
        );
        w
    }

    /// Checks every rule on `snap`, taken at `at_ms` (any monotonic clock in ms); returns
    /// the warnings that fired or cleared.
    pub fn observe(&mut self, at_ms: u64, snap: &Snapshot, signals: &Signals) -> Vec<Change> {
        self.last_at_ms = at_ms;
        self.sample(at_ms, snap, signals);
        let mut found: HashMap<Key, Finding> = HashMap::new();
        let mut t = self.thresholds.clone();
        if matches!(snap.state, PipelineState::Finished | PipelineState::Aborted) {
            // The run is over: nothing is stuck, stalled, starved or blocked any more, and
            // what fired clears at once (see `settle`). Only the verdict is left.
            t.disabled = Rule::ALL
                .into_iter()
                .filter(|r| *r != Rule::LostItems)
                .collect();
        }
        if t.enabled(Rule::StuckItem) || t.enabled(Rule::StalledWorker) {
            self.items_in_flight(at_ms, snap, signals, &mut found);
        }
        if t.enabled(Rule::SlowGroup) {
            slow_groups(&t, snap, &mut found);
        }
        if t.enabled(Rule::StarvedStage) {
            starved_stages(snap, &mut found);
        }
        if t.enabled(Rule::RetryStorm) {
            self.retry_storms(snap, signals, &mut found);
        }
        if t.enabled(Rule::GrowingQueue) {
            self.growing_queues(snap, &mut found);
        }
        if t.enabled(Rule::LostItems) && matches!(snap.state, PipelineState::Finished) {
            let t = snap.totals;
            let accounted = t.completed + t.failed + t.cancelled;
            if t.submitted > accounted {
                found.insert(
                    (Rule::LostItems, None, None),
                    Finding::new(format!(
                        "the run ended with {} of {} items neither completed, failed nor cancelled",
                        t.submitted - accounted,
                        t.submitted
                    )),
                );
            }
        }
        if t.enabled(Rule::BlockedRuntime) && signals.late_ms > t.blocked_ms {
            // Which stage holds the thread cannot be seen without timing every poll (too
            // dear on the hot path); the suspects are the stages with a worker busy now,
            // or whose attempts take as long as the delay.
            let suspects: Vec<String> = snap
                .stages
                .iter()
                .filter(|s| {
                    s.workers.iter().any(|w| w.state == WorkerState::Busy)
                        || s.latency.p99_us / 1000 >= signals.late_ms / 2
                })
                .map(|s| format!("{} (p99 {} ms)", s.name, s.latency.p99_us / 1000))
                .collect();
            let suspects = if suspects.is_empty() {
                "no stage was busy, so the blocking code is outside the pipeline".to_owned()
            } else {
                format!("suspects: {}", suspects.join(", "))
            };
            found.insert(
                (Rule::BlockedRuntime, None, None),
                Finding {
                    message: format!(
                        "the async runtime ran a ready task {} ms late (over {} ms): something blocks its threads, such as a blocking call or long computation in a task (use spawn_blocking); {suspects}",
                        signals.late_ms, t.blocked_ms
                    ),
                    items: Vec::new(),
                    since_ms: Some(at_ms.saturating_sub(signals.late_ms)),
                },
            );
        }
        self.settle(at_ms, snap, found)
    }

    /// Stuck items and stalled workers: what each busy worker has been on, and for how
    /// long, as seen across snapshots.
    fn items_in_flight(
        &mut self,
        at_ms: u64,
        snap: &Snapshot,
        signals: &Signals,
        found: &mut HashMap<Key, Finding>,
    ) {
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
                if t.enabled(Rule::StuckItem) && running > limit {
                    // Inside a join's group, the item holds the whole group back.
                    let group = signals
                        .group_of
                        .as_ref()
                        .and_then(|g| (g.0)(item))
                        .map(|g| format!("; it is {g}"))
                        .unwrap_or_default();
                    found.insert(
                        (Rule::StuckItem, Some(i), Some(w.id)),
                        Finding {
                            message: format!(
                                "item #{item} has been running at {}-{} for {} s, over {} s ({} × the stage's p99 of {} ms, at least {} s){group}",
                                s.name,
                                w.id,
                                running / 1000,
                                limit / 1000,
                                t.stuck_factor,
                                p99_ms,
                                t.stuck_floor_ms / 1000
                            ),
                            items: vec![item],
                            since_ms: None,
                        },
                    );
                }
                if t.enabled(Rule::StalledWorker)
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
                            since_ms: None,
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

    fn retry_storms(&self, snap: &Snapshot, signals: &Signals, found: &mut HashMap<Key, Finding>) {
        let t = &self.thresholds;
        let (Some(from), Some(to)) = (self.window_start(t.storm_window_ms), self.samples.back())
        else {
            return;
        };
        let secs = (to.at_ms - from.at_ms) / 1000;
        // The error kind most new failures share, if one dominates.
        let mut new_by_kind: Vec<(&str, u64)> = to
            .failures_by_kind
            .iter()
            .map(|(k, n)| {
                let before = from
                    .failures_by_kind
                    .iter()
                    .find(|(b, _)| b == k)
                    .map_or(0, |(_, n)| *n);
                (k.as_str(), n.saturating_sub(before))
            })
            .collect();
        new_by_kind.sort_by_key(|k| std::cmp::Reverse(k.1));
        let new_failures: u64 = new_by_kind.iter().map(|(_, n)| n).sum();
        let dominant = new_by_kind
            .first()
            .filter(|(_, n)| *n > 0 && *n as f64 >= new_failures as f64 * t.storm_kind_share);
        for (i, s) in snap.stages.iter().enumerate() {
            let (Some(a), Some(b)) = (from.stages.get(i), to.stages.get(i)) else {
                continue;
            };
            let retries = b.retried.saturating_sub(a.retried);
            let successes = b.completed.saturating_sub(a.completed);
            let failures = b.failed.saturating_sub(a.failed);
            let message = if retries >= t.storm_min && retries > successes {
                format!(
                    "stage {} retried {retries} times and succeeded {successes} times in the last {secs} s",
                    s.name
                )
            } else if let Some((kind, n)) = dominant.filter(|_| {
                failures >= t.storm_min
                    && failures as f64 >= (failures + successes) as f64 * t.storm_fail_share
            }) {
                format!(
                    "stage {} failed {failures} items and completed {successes} in the last {secs} s; {n} of the pipeline's {new_failures} new failures are {kind}",
                    s.name
                )
            } else {
                continue;
            };
            let message = message + &storm_groups(s, signals);
            found.insert((Rule::RetryStorm, Some(i), None), Finding::new(message));
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
        // The sample halfway: the queue must grow in both halves of the window, so that a
        // queue that filled at start-up and stays full (a bottleneck, not a trend) does not
        // count.
        let mid_ms = from.at_ms + span_ms / 2;
        let Some(mid) = self.samples.iter().find(|s| s.at_ms >= mid_ms) else {
            return;
        };
        for (i, s) in snap.stages.iter().enumerate() {
            let (Some(a), Some(m), Some(b)) =
                (from.stages.get(i), mid.stages.get(i), to.stages.get(i))
            else {
                continue;
            };
            if !(a.queued < m.queued && m.queued < b.queued) {
                continue;
            }
            let grew = b.queued.saturating_sub(a.queued);
            let arriving = b.arrived.saturating_sub(a.arrived) as f64 / secs;
            let served = b.served.saturating_sub(a.served) as f64 / secs;
            let min_growth = (s.capacity as f64 * t.growth_min_share).max(1.0);
            if (grew as f64) >= min_growth && arriving > served * 1.05 && b.queued > a.queued {
                let room = (s.capacity as u64).saturating_sub(b.queued);
                let per_s = (arriving - served).max(f64::MIN_POSITIVE);
                found.insert(
                    (Rule::GrowingQueue, Some(i), None),
                    Finding::new(format!(
                        "stage {}'s queue grew by {grew} to {} of {} in {} s: {arriving:.1} items/s arrive, {served:.1}/s are served; full in about {} s",
                        s.name,
                        b.queued,
                        s.capacity,
                        secs.round(),
                        (room as f64 / per_s).round()
                    )),
                );
            }
        }
    }

    fn sample(&mut self, at_ms: u64, snap: &Snapshot, signals: &Signals) {
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
                        failed: s.failed,
                        retried: s.retried,
                    }
                })
                .collect(),
            failures_by_kind: signals.failures_by_kind.clone(),
        });
        while self
            .samples
            .front()
            .is_some_and(|s| at_ms.saturating_sub(s.at_ms) > keep)
        {
            self.samples.pop_front();
        }
    }

    fn clear(&mut self, mut w: Warning, at_ms: u64) -> Warning {
        w.cleared_ms = Some(at_ms);
        self.recent.push_back(w.clone());
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        w
    }

    /// Moves each condition along: new ones start waiting out the grace, held ones fire,
    /// gone ones wait out the clear period.
    fn settle(
        &mut self,
        at_ms: u64,
        snap: &Snapshot,
        mut found: HashMap<Key, Finding>,
    ) -> Vec<Change> {
        let mut t = self.thresholds.clone();
        if matches!(snap.state, PipelineState::Finished | PipelineState::Aborted) {
            // The run is over: nothing is stuck, stalled or starved any more.
            t.clear_ms = 0;
        }
        let mut changes = Vec::new();
        let stage_name =
            |i: Option<usize>| i.and_then(|i| snap.stages.get(i)).map(|s| s.name.clone());
        for (key, finding) in found.drain() {
            let since = finding.since_ms.unwrap_or(at_ms);
            let c = self.conditions.entry(key).or_insert_with(|| Condition {
                since_ms: since,
                firing: false,
                gone_since: None,
                warning: Warning {
                    rule: key.0,
                    stage: stage_name(key.1),
                    worker: key.2,
                    items: Vec::new(),
                    message: String::new(),
                    first_seen_ms: since,
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
        let mut cleared = Vec::new();
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
                cleared.push(c.warning.clone());
                done.push(*key);
            }
        }
        for key in done {
            self.conditions.remove(&key);
        }
        for w in cleared {
            changes.push(Change::Cleared(self.clear(w, at_ms)));
        }
        changes
    }
}

/// The join groups a storming stage's items under way belong to, for its message: how
/// many of them are parts of waiting groups, and the group most of them are in.
fn storm_groups(s: &flowdeck_protocol::StageSnapshot, signals: &Signals) -> String {
    let Some(group_of) = &signals.group_of else {
        return String::new();
    };
    let items: Vec<ItemId> = s
        .workers
        .iter()
        .filter(|w| w.state == WorkerState::Busy)
        .filter_map(|w| w.current_item)
        .collect();
    let mut groups: Vec<(String, usize)> = Vec::new();
    for g in items.iter().filter_map(|&id| (group_of.0)(id)) {
        match groups.iter_mut().find(|(name, _)| *name == g) {
            Some((_, n)) => *n += 1,
            None => groups.push((g, 1)),
        }
    }
    let parts: usize = groups.iter().map(|(_, n)| n).sum();
    let Some((most, n)) = groups.iter().max_by_key(|(_, n)| *n) else {
        return String::new();
    };
    let most = most.strip_prefix("a part of ").unwrap_or(most);
    format!(
        "; {parts} of its {} items under way are parts of waiting join groups, {n} of them of {most}",
        items.len()
    )
}

/// Join groups waiting far longer than the join's groups take to fill: `stuck_factor` ×
/// the p99 of their fill times, and at least `stuck_floor_ms`. Names the oldest group (its
/// origin item) and how many of its parts arrived.
fn slow_groups(t: &Thresholds, snap: &Snapshot, found: &mut HashMap<Key, Finding>) {
    for (i, s) in snap.stages.iter().enumerate() {
        let Some(j) = &s.join else { continue };
        let Some(oldest) = &j.oldest else { continue };
        let limit = ((j.fill_p99_ms as f64 * t.stuck_factor) as u64).max(t.stuck_floor_ms);
        if j.oldest_ms <= limit {
            continue;
        }
        found.insert(
            (Rule::SlowGroup, Some(i), None),
            Finding {
                message: format!(
                    "the group of item #{} at join {} has waited {} s, over {} s ({} × the p99 of {} ms groups take to fill, at least {} s): {} of {} parts arrived",
                    oldest.origin,
                    s.name,
                    j.oldest_ms / 1000,
                    limit / 1000,
                    t.stuck_factor,
                    j.fill_p99_ms,
                    t.stuck_floor_ms / 1000,
                    oldest.arrived,
                    oldest.expected
                ),
                items: vec![oldest.origin],
                since_ms: None,
            },
        );
    }
}

/// Starved stages: work queued and nothing taking it (every worker paused, or none left),
/// or workers mostly idle with work queued while the stage before waits for room in this
/// stage's queue. The second cannot happen while workers pull as they should, which is
/// why it is worth a warning, where a stage idling behind a slow stage (a bottleneck
/// upstream, the overview's business) is not.
fn starved_stages(snap: &Snapshot, found: &mut HashMap<Key, Finding>) {
    for (i, s) in snap.stages.iter().enumerate() {
        let why = if s.stalled() {
            if s.paused {
                "its workers are paused".to_owned()
            } else {
                "it has no workers".to_owned()
            }
        } else {
            let idle = 1.0 - s.busy_ratio - s.blocked_ratio;
            let waiting_upstream: Vec<&str> = snap
                .edges
                .iter()
                .filter(|e| usize::from(e.to) == i)
                .filter_map(|e| e.from)
                .filter_map(|f| snap.stages.get(usize::from(f)))
                .filter(|u| u.blocked_ratio >= HELD_BACK)
                .map(|u| u.name.as_str())
                .collect();
            if s.queued == 0 || s.workers.is_empty() || idle < 0.6 || waiting_upstream.is_empty() {
                continue;
            }
            format!(
                "its workers idle {:.0}% of the time while {} waits for room in its queue",
                idle * 100.0,
                waiting_upstream.join(", ")
            )
        };
        found.insert(
            (Rule::StarvedStage, Some(i), None),
            Finding::new(format!(
                "stage {} has {} items queued and nothing taking them: {why}",
                s.name, s.queued
            )),
        );
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

    fn observe(e: &mut Engine, at_ms: u64, s: &Snapshot) -> Vec<Change> {
        e.observe(at_ms, s, &Signals::default())
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
        assert!(observe(&mut e, 0, &snap(vec![s.clone()])).is_empty());
        assert!(observe(&mut e, 5_000, &snap(vec![stage("enrich")])).is_empty());
        assert!(e.current().is_empty());
        // Held past its 30 s: it fires, once, naming the stage and why.
        assert!(observe(&mut e, 10_000, &snap(vec![s.clone()])).is_empty());
        assert!(observe(&mut e, 30_000, &snap(vec![s.clone()])).is_empty());
        let c = observe(&mut e, 40_000, &snap(vec![s.clone()]));
        assert_eq!(fired(&c), [(Rule::StarvedStage, Some("enrich".into()))]);
        assert!(
            e.current()[0].message.contains("40 items queued"),
            "{}",
            e.current()[0].message
        );
        assert!(e.current()[0].message.contains("paused"));
        assert!(
            observe(&mut e, 45_000, &snap(vec![s.clone()])).is_empty(),
            "not again"
        );
        // Resumed: it clears only once it has been gone for the clear period.
        assert!(observe(&mut e, 50_000, &snap(vec![stage("enrich")])).is_empty());
        let c = observe(&mut e, 80_000, &snap(vec![stage("enrich")]));
        assert!(matches!(&c[..], [Change::Cleared(w)] if w.cleared_ms == Some(80_000)));
        assert!(e.current().is_empty());
        assert_eq!(e.recent()[0].first_seen_ms, 10_000);
    }

    /// A join's group waiting past 3 × the p99 of fill times (at least the floor) fires,
    /// naming the group's origin item and its parts; a stuck item inside a group names
    /// the group.
    #[test]
    fn a_slow_group_names_the_group_and_a_stuck_part_its_group() {
        let mut e = Engine::new(Thresholds::default());
        let join = |oldest_ms| {
            let mut s = stage("assemble");
            s.join = Some(flowdeck_protocol::JoinSnapshot {
                of: 0,
                waiting: 4,
                oldest_ms,
                fill_p99_ms: 5_000,
                oldest: Some(flowdeck_protocol::OldestGroup {
                    origin: 17,
                    arrived: 9,
                    expected: 10,
                }),
                ..Default::default()
            });
            snap(vec![stage("split"), s])
        };
        // 3 × 5 s = 15 s: a group at 14 s is within what groups take.
        assert!(observe(&mut e, 0, &join(14_000)).is_empty());
        assert!(observe(&mut e, 20_000, &join(14_000)).is_empty());
        let mut all = Vec::new();
        for t in (25_000..=60_000).step_by(5_000) {
            all.extend(fired(&observe(&mut e, t, &join(16_000 + t))));
        }
        assert_eq!(all, [(Rule::SlowGroup, Some("assemble".into()))]);
        let w = &e.current()[0];
        assert_eq!(w.items, [17]);
        assert!(
            w.message.contains("item #17") && w.message.contains("9 of 10 parts"),
            "{}",
            w.message
        );

        let mut e = Engine::new(Thresholds::default());
        let mut s = stage("work");
        s.workers[0] = WorkerSnapshot {
            id: 0,
            state: WorkerState::Busy,
            current_item: Some(42),
            ..Default::default()
        };
        let signals = Signals {
            group_of: Some(GroupOf(std::sync::Arc::new(|id| {
                (id == 42).then(|| "a part of the group of item #7 at join assemble".to_owned())
            }))),
            ..Default::default()
        };
        for t in (0..=30_000).step_by(5_000) {
            e.observe(t, &snap(vec![s.clone()]), &signals);
        }
        let w = &e.current()[0];
        assert_eq!(w.rule, Rule::StuckItem);
        assert!(
            w.message.contains("group of item #7 at join assemble"),
            "{}",
            w.message
        );
    }

    /// A retry storm at a stage whose items under way are parts of a join's groups names
    /// the group most of them are in.
    #[test]
    fn a_retry_storm_names_the_group_its_items_are_in() {
        let mut e = Engine::new(Thresholds::default());
        let at = |retried: u64| {
            let mut s = stage("ocr");
            s.retried = retried;
            s.workers = (0..3)
                .map(|id| WorkerSnapshot {
                    id,
                    state: WorkerState::Busy,
                    current_item: Some(40 + u64::from(id)),
                    ..Default::default()
                })
                .collect();
            snap(vec![s])
        };
        let signals = Signals {
            group_of: Some(GroupOf(std::sync::Arc::new(|id| {
                (id != 42).then(|| "a part of the group of item #7 at join assemble".to_owned())
            }))),
            ..Default::default()
        };
        for (t, retried) in [
            (0, 0),
            (30_000, 20),
            (60_000, 40),
            (70_000, 60),
            (90_000, 80),
        ] {
            e.observe(t, &at(retried), &signals);
        }
        let w = e
            .current()
            .into_iter()
            .find(|w| w.rule == Rule::RetryStorm)
            .unwrap();
        assert!(
            w.message.contains(
                "2 of its 3 items under way are parts of waiting join groups, 2 of them of the group of item #7 at join assemble"
            ),
            "{}",
            w.message
        );
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
            all.extend(fired(&observe(&mut e, t, &busy(42, 7, 3))));
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
        observe(&mut e, 95_000, &busy(43, 8, 3));
        let c = observe(&mut e, 130_000, &busy(44, 9, 3));
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
            warnings += observe(&mut e, t, &snap(vec![s])).len();
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
            all.extend(fired(&observe(&mut e, i * 1_000, &snap(vec![s]))));
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
            n += observe(&mut e, t * 1_000, &at(queued, 60 - queued)).len();
        }
        assert_eq!(n, 0, "a burst is not a trend");
        // Then growth: 1 item every 4 s more than is served, for 5 minutes.
        let mut all = Vec::new();
        for t in 200..500u64 {
            all.extend(fired(&observe(
                &mut e,
                t * 1_000,
                &at((t - 200) / 4, 60 + (t - 200) * 2),
            )));
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
        let c = observe(&mut e, 0, &s);
        assert_eq!(fired(&c), [(Rule::LostItems, None)]);
        assert!(e.current()[0].message.contains("2 of 100"));
    }

    #[test]
    fn a_disabled_rule_never_fires() {
        let mut e = Engine::new(Thresholds {
            disabled: vec![Rule::StarvedStage],
            ..Thresholds::default()
        });
        let mut s = stage("enrich");
        s.queued = 40;
        s.paused = true;
        for t in (0..120_000).step_by(5_000) {
            assert!(observe(&mut e, t, &snap(vec![s.clone()])).is_empty());
        }
    }
}
