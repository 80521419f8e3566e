//! The control handle of a running pipeline: queries, snapshots and control actions.

use std::{sync::Arc, time::Duration};

use flowdeck_protocol::{ErrorSummary, ItemId, ItemStatus, PipelineState, Snapshot, StageIndex};

use crate::{
    error::ControlError,
    shared::Shared,
    tracker::{Feed, Stats, Tracker},
};

/// A stage's attempt durations since the start: how many were below each bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    pub stage: String,
    /// (bound in µs, attempts shorter than it), bounds ascending: 128 µs to 67 s.
    pub below: Vec<(u64, u64)>,
    /// All attempts (the `+Inf` bucket).
    pub count: u64,
    /// Their total duration in µs.
    pub sum_us: u64,
}

/// The state of a pipeline after it finished.
#[derive(Clone, Debug)]
pub struct Summary {
    pub snapshot: Snapshot,
    /// Exact counts by status and stage (all zero with tracking off).
    pub stats: Stats,
    pub errors: ErrorSummary,
    pub elapsed: Duration,
}

/// Controls a running pipeline. Cheap to clone; every clone controls the same pipeline.
///
/// ```
/// use flowdeck_runtime::{Line, Stage};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let running = Line::<u32>::new("ctl")
///     .stage(Stage::map("work", |n: u32, _cx| async move { Ok::<_, String>(n) }).workers(2))
///     .build()
///     .unwrap()
///     .start();
/// let h = running.handle.clone();
/// h.pause("work").unwrap();
/// h.set_workers("work", 4).unwrap();
/// assert!(h.pause("nope").is_err());
/// h.resume("work").unwrap();
/// running.input.send(7).await.unwrap();
/// drop(running.input); // closing the input drains the pipeline
/// assert_eq!(running.outputs.recv().await.ok(), Some(7));
/// h.wait().await;
/// # });
/// ```
#[derive(Clone)]
pub struct PipelineHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for PipelineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineHandle")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

impl PipelineHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        PipelineHandle { shared }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn stage_names(&self) -> &[String] {
        &self.shared.stage_names
    }

    /// The status tracker: per-item status, history, provenance, stats and errors.
    pub fn tracker(&self) -> &Tracker {
        &self.shared.tracker
    }

    /// Subscribes to the change feed. Take a [`snapshot`](Self::snapshot) after
    /// subscribing and apply the events whose `seq` is above the snapshot's.
    pub fn subscribe(&self) -> Feed {
        self.shared.tracker.subscribe()
    }

    pub fn state(&self) -> PipelineState {
        *self.shared.state.borrow()
    }

    /// When the pipeline started (Unix ms) and its clock now (ms since then): what event
    /// times (µs since the start) are read against.
    pub fn clock(&self) -> (u64, u64) {
        if let Some(reported) = &self.shared.reported {
            // A mirror's events are timed by the reporting process's clock.
            let s = reported.lock();
            return (s.started_unix_ms, s.uptime_ms);
        }
        let clock = &self.shared.env.clock;
        (
            clock.started_unix_ms(),
            crate::clock::micros(clock.elapsed()) / 1000,
        )
    }

    /// Tells the pipeline how many items to expect, so snapshots carry an ETA.
    pub fn set_expected(&self, n: u64) {
        *self.shared.expected.lock() = Some(n);
    }

    /// The current state of the whole pipeline. Rates and latency percentiles cover the
    /// time since the previous snapshot (at least 100 ms).
    pub fn snapshot(&self) -> Snapshot {
        crate::snapshot::take(&self.shared)
    }

    /// Each stage's attempt durations since the start, as a cumulative histogram (for
    /// Prometheus, which aggregates histograms across processes; percentiles would not add
    /// up). Counts every worker the stage ever had.
    pub fn latency_histograms(&self) -> Vec<LatencyHistogram> {
        self.shared
            .stages
            .iter()
            .map(|stage| {
                let mut counts = crate::histogram::Counts::default();
                let mut sum_us = 0;
                for slot in stage.slots() {
                    slot.latency.add_to(&mut counts);
                    sum_us += slot.busy_us.load(std::sync::atomic::Ordering::Relaxed);
                }
                LatencyHistogram {
                    stage: stage.name().to_owned(),
                    below: crate::histogram::EXPORT_BOUNDS_US
                        .iter()
                        .copied()
                        .zip(counts.cumulative())
                        .collect(),
                    count: counts.total(),
                    sum_us,
                }
            })
            .collect()
    }

    /// The final picture, for a report.
    pub fn summary(&self) -> Summary {
        Summary {
            snapshot: self.snapshot(),
            stats: self.shared.tracker.stats(),
            errors: self.shared.tracker.errors(),
            elapsed: self.shared.env.clock.elapsed(),
        }
    }

    fn stage(&self, name: &str) -> Result<&Arc<dyn crate::node::StageRuntime>, ControlError> {
        self.shared
            .stages
            .iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| ControlError::UnknownStage(name.to_owned()))
    }

    /// The index of the stage called `name`, as events and snapshots name it.
    pub fn stage_index(&self, name: &str) -> Result<StageIndex, ControlError> {
        self.stage(name).map(|s| s.index())
    }

    /// A join stage's groups: how many wait, the oldest's age, parts arrived of expected,
    /// fired, timed out and late. `None` for a stage that is no join.
    pub fn join_stats(
        &self,
        stage: &str,
    ) -> Result<Option<flowdeck_protocol::JoinSnapshot>, ControlError> {
        Ok(self.stage(stage)?.join_stats())
    }

    /// Which join group item `id` is a part of, in words (the join, the origin item, the
    /// parts arrived of expected), while the group waits.
    pub fn group_of(&self, id: ItemId) -> Option<String> {
        self.shared.stages.iter().find_map(|s| s.group_of(id))
    }

    /// Stops the stage's workers from taking new items; running attempts finish.
    pub fn pause(&self, stage: &str) -> Result<(), ControlError> {
        self.stage(stage)?.set_paused(true);
        Ok(())
    }

    /// Makes snapshots list the worker processes `f` returns: flowdeck-cluster's driver
    /// shows its distributed stages' processes this way, on the workers page, in the API
    /// and in `flowdeck top`. A panic in `f` leaves the list empty.
    pub fn set_processes(
        &self,
        f: impl Fn() -> Vec<flowdeck_protocol::ProcessSnapshot> + Send + Sync + 'static,
    ) {
        *self.shared.processes.lock() = Some(Arc::new(f));
    }

    /// The worker processes [`Self::set_processes`] lists, without taking a snapshot (which
    /// would reset the rates' interval): empty when nothing lists them.
    pub fn processes(&self) -> Vec<flowdeck_protocol::ProcessSnapshot> {
        crate::snapshot::processes(&self.shared)
    }

    /// Makes snapshots carry `r`, what the process uses: the dashboard serving the
    /// pipeline samples it every second ([`crate::resources::Sampler`]), as does a
    /// reporting process, so that the overview, the API and `flowdeck top` show it.
    /// A mirrored pipeline's are its reporting process's, which only its batches set.
    pub fn set_resources(&self, r: flowdeck_protocol::Resources) {
        if self.shared.reported.is_none() {
            self.shared.set_resources(r);
        }
    }

    /// Whether the stage is paused: a cheap look, unlike a snapshot.
    pub fn is_paused(&self, stage: &str) -> Result<bool, ControlError> {
        Ok(self.stage(stage)?.is_paused())
    }

    pub fn resume(&self, stage: &str) -> Result<(), ControlError> {
        self.stage(stage)?.set_paused(false);
        Ok(())
    }

    /// Changes how many workers the stage runs. Extra workers stop after their current
    /// item; a stage at zero keeps its queue until it gets workers again.
    pub fn set_workers(&self, stage: &str, workers: usize) -> Result<(), ControlError> {
        self.stage(stage)?.clone().set_workers(workers);
        Ok(())
    }

    /// Records an item that came to stage `stage` from outside the pipeline and failed
    /// before it could run: a message on a distributed stage's queue that no worker could
    /// read (flowdeck-cluster). It gets a new id and shows as failed with `kind` and
    /// `message`, like any failed item, with `input` (what arrived) on its page.
    pub async fn record_failed(
        &self,
        stage: &str,
        kind: &str,
        message: impl Into<String>,
        input: Option<flowdeck_protocol::Preview>,
    ) -> Result<ItemId, ControlError> {
        let stage = self.stage(stage)?.index();
        let env = &self.shared.env;
        let id = env.next_id();
        let mut buf = crate::events::EventBuf::new(env.tracker());
        let here = crate::events::Subject {
            item: id,
            stage,
            worker: None,
        };
        buf.push(
            here.event(
                flowdeck_protocol::EventKind::Failed,
                None,
                env.clock.now_us(),
            )
            .with_error(crate::error::runtime_error(kind, message))
            .with_input(input),
        )
        .await;
        buf.flush().await;
        Ok(id)
    }

    /// Restarts worker `worker` of `stage` (numbered from 0, as snapshots number them):
    /// its attempt under way is dropped and fails with "restarted by `by`", which the
    /// stage's retry policy handles like any failure (it counts as an attempt), and the
    /// worker goes on with its next item. For a worker stuck on an attempt that never
    /// ends. Returns the item whose attempt was dropped.
    pub fn restart_worker(
        &self,
        stage: &str,
        worker: u16,
        by: &str,
    ) -> Result<ItemId, ControlError> {
        let slots = self.stage(stage)?.slots();
        let slot = slots
            .get(usize::from(worker))
            .filter(|s| s.running.load(std::sync::atomic::Ordering::Acquire))
            .ok_or_else(|| ControlError::UnknownWorker {
                stage: stage.to_owned(),
                worker,
                workers: slots
                    .iter()
                    .filter(|s| s.running.load(std::sync::atomic::Ordering::Acquire))
                    .count(),
            })?;
        slot.restart(by).ok_or_else(|| ControlError::WorkerIdle {
            stage: stage.to_owned(),
            worker,
        })
    }

    /// Cancels an item: skipped if queued, interrupted if running or waiting to retry.
    pub fn cancel(&self, item: ItemId) -> Result<(), ControlError> {
        match self.shared.tracker.stage_of(item) {
            Some((status, _)) if status.is_terminal() => Err(ControlError::AlreadyDone(item)),
            Some((status, stage)) => {
                let found = self
                    .shared
                    .stages
                    .get(usize::from(stage))
                    .is_some_and(|s| s.cancel(item, status == ItemStatus::Queued));
                if found {
                    Ok(())
                } else {
                    Err(ControlError::UnknownItem(item))
                }
            }
            // Not retained (or tracking off): it can still be running somewhere.
            None if self.shared.stages.iter().any(|s| s.cancel(item, false)) => Ok(()),
            None => Err(ControlError::UnknownItem(item)),
        }
    }

    /// The health warnings firing now and those that cleared (newest first); both empty
    /// when warnings are off.
    pub fn warnings(&self) -> (Vec<crate::warnings::Warning>, Vec<crate::warnings::Warning>) {
        if let Some(reported) = &self.shared.reported {
            // A mirror's are those its reporting process's snapshot carries.
            let all = reported.lock().warnings.clone();
            return all.into_iter().partition(|w| w.firing());
        }
        match &self.shared.health {
            Some(engine) => {
                let e = engine.lock();
                (e.current(), e.recent())
            }
            None => (Vec::new(), Vec::new()),
        }
    }

    /// Waits until the run has ended and its warnings have had their last check: what fired
    /// clears, and lost items are counted. At once when warnings are off.
    pub async fn warnings_settled(&self) {
        let mut rx = self.shared.health_final.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// The health warnings' rules and thresholds; `None` when warnings are off.
    pub fn warning_thresholds(&self) -> Option<crate::warnings::Thresholds> {
        self.shared
            .health
            .as_ref()
            .map(|e| e.lock().thresholds().clone())
    }

    /// Changes the health warnings' rules and thresholds while the pipeline runs (a
    /// dashboard applies its config file's `[warnings]` this way). Warnings of a rule now
    /// disabled clear at once. An error when warnings were turned off at build time or
    /// the numbers make no sense.
    pub fn set_warning_thresholds(&self, t: crate::warnings::Thresholds) -> Result<(), String> {
        t.validate()?;
        let engine = self
            .shared
            .health
            .as_ref()
            .ok_or("health warnings were turned off when the pipeline was built")?;
        for c in engine.lock().set_thresholds(t) {
            if let crate::warnings::Change::Cleared(w) = c {
                tracing::info!(
                    rule = w.rule.name(),
                    "cleared (rule disabled): {}",
                    w.message
                );
            }
        }
        Ok(())
    }

    /// Whether failed item `item` can be retried: the stage where it failed still keeps its
    /// input (`Stage::keep_failed`). `None` when the item is not a retained failure.
    pub fn can_retry(&self, item: ItemId) -> Option<bool> {
        match self.shared.tracker.stage_of(item) {
            Some((ItemStatus::Failed, stage)) => Some(
                self.shared
                    .stages
                    .get(usize::from(stage))
                    .is_some_and(|s| s.keeps_input(item)),
            ),
            _ => None,
        }
    }

    /// Puts a failed item back in the queue of the stage where it failed. Works as long as
    /// that stage keeps the item's input (`Stage::keep_failed`, the newest 10,000 failures
    /// by default), even after the item's detail has left the tracker's retention.
    pub async fn retry(&self, item: ItemId) -> Result<(), ControlError> {
        let tracker = self.shared.env.tracker();
        match self.shared.tracker.stage_of(item) {
            Some((ItemStatus::Failed, stage)) => match self.shared.stages.get(usize::from(stage)) {
                Some(s) => s.retry(item, tracker).await,
                None => Err(ControlError::UnknownItem(item)),
            },
            Some(_) => Err(ControlError::NotFailed(item)),
            // Not retained (or tracking off): the stage that kept its input knows it.
            None => {
                for s in &self.shared.stages {
                    match s.retry(item, tracker.clone()).await {
                        Err(ControlError::InputGone(_)) => continue,
                        other => return other,
                    }
                }
                Err(ControlError::UnknownItem(item))
            }
        }
    }

    /// Retries failed items `items` (each with the stage it failed at, as the tracker
    /// has it) at once: the inputs are taken now and go back into their queues in the
    /// background, so this never waits for room. Answers those that could not be (their
    /// input no longer kept, the run over), and why.
    pub fn retry_many(&self, items: &[(ItemId, StageIndex)]) -> Vec<(ItemId, ControlError)> {
        let mut by_stage: Vec<Vec<ItemId>> = vec![Vec::new(); self.shared.stages.len()];
        let mut refused = Vec::new();
        for &(id, stage) in items {
            match by_stage.get_mut(usize::from(stage)) {
                Some(ids) => ids.push(id),
                None => refused.push((id, ControlError::UnknownItem(id))),
            }
        }
        for (stage, ids) in self.shared.stages.iter().zip(by_stage) {
            if !ids.is_empty() {
                refused.extend(stage.retry_many(ids, self.shared.env.tracker()));
            }
        }
        refused
    }

    /// Closes the input and lets every queued item finish. [`wait`](Self::wait) tells when.
    pub fn drain(&self) {
        (self.shared.close_input)();
        // A question could wait for hours: the items waiting for people are cancelled,
        // and so is any asked from now on.
        self.shared.env.questions.refuse_new();
        for s in &self.shared.stages {
            s.cancel_waiting();
        }
    }

    /// The questions this pipeline's stages ask people ([`crate::Ctx::ask`]): the pending
    /// ones, the most recent closed ones, and [`Questions::answer`](crate::ask::Questions::answer).
    pub fn questions(&self) -> &crate::ask::Questions {
        &self.shared.env.questions
    }

    /// Stops at once: running attempts are interrupted and queued items are cancelled.
    pub fn abort(&self) {
        self.shared.env.abort.cancel();
        self.shared.env.questions.refuse_new();
        for s in &self.shared.stages {
            s.cancel_waiting();
        }
        for s in &self.shared.stages {
            s.close_input();
        }
        (self.shared.close_input)();
    }

    /// Waits until the pipeline has finished (drained or aborted) and the tracker has
    /// recorded everything.
    pub async fn wait(&self) {
        let mut rx = self.shared.state.subscribe();
        let _ = rx
            .wait_for(|s| matches!(s, PipelineState::Finished | PipelineState::Aborted))
            .await;
    }
}
