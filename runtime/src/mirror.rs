//! A pipeline that runs in another process, seen here through what it reports: its events
//! go into a tracker of its own, and its snapshots stand for the workers' counters. What
//! reads a [`PipelineHandle`] (a dashboard's pages, its API, a run store) reads a mirror
//! the same way. Its controls do not act here: each becomes a [`Command`] that the
//! reporting process collects ([`Mirror::take_commands`]) and applies to the real one.

use std::sync::Arc;

use flowdeck_protocol::{
    report::Command, Edge, ItemDetail, ItemId, PipelineState, Snapshot, StageIndex, StageSnapshot,
};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use crate::{
    error::ControlError,
    events::{BatchSender, EventBuf},
    handle::PipelineHandle,
    node::{Env, StageRuntime},
    shared::{Previous, Shared},
    tracker::Tracker,
    worker::WorkerSlot,
};

/// Commands pressed on the mirror, waiting for the reporter.
#[derive(Default)]
struct Commands {
    queue: Mutex<Vec<Command>>,
    ready: Notify,
}

impl Commands {
    fn push(&self, c: Command) {
        self.queue.lock().push(c);
        self.ready.notify_waiters();
    }
}

/// The feeding side of a mirrored pipeline.
#[derive(Clone)]
pub struct Mirror {
    shared: Arc<Shared>,
    commands: Arc<Commands>,
    reported: Arc<Mutex<Snapshot>>,
}

/// A stage of a mirrored pipeline: its numbers are the reported ones, its controls queue
/// commands.
struct MirrorStage {
    name: String,
    index: StageIndex,
    reported: Arc<Mutex<Snapshot>>,
    commands: Arc<Commands>,
}

impl MirrorStage {
    fn with<R>(&self, f: impl FnOnce(&StageSnapshot) -> R) -> Option<R> {
        self.reported
            .lock()
            .stages
            .get(usize::from(self.index))
            .map(f)
    }
}

impl StageRuntime for MirrorStage {
    fn name(&self) -> &str {
        &self.name
    }
    fn index(&self) -> StageIndex {
        self.index
    }
    fn capacity(&self) -> usize {
        self.with(|s| s.capacity).unwrap_or(0)
    }
    fn queued(&self) -> usize {
        self.with(|s| s.queued as usize).unwrap_or(0)
    }
    fn oldest_queued_us(&self, _now_us: u64) -> u64 {
        self.with(|s| s.oldest_queued_ms * 1000).unwrap_or(0)
    }
    fn is_paused(&self) -> bool {
        self.with(|s| s.paused).unwrap_or(false)
    }
    fn slots(&self) -> Vec<Arc<WorkerSlot>> {
        Vec::new()
    }
    fn is_live(&self, _slot: &WorkerSlot) -> bool {
        false
    }
    fn set_paused(&self, paused: bool) {
        let stage = self.name.clone();
        self.commands.push(if paused {
            Command::Pause { stage }
        } else {
            Command::Resume { stage }
        });
    }
    fn set_workers(self: Arc<Self>, n: usize) {
        self.commands.push(Command::Scale {
            stage: self.name.clone(),
            workers: n,
        });
    }
    fn cancel(&self, id: ItemId, _queued_here: bool) -> bool {
        self.commands.push(Command::Cancel { item: id });
        true
    }
    fn retry(
        &self,
        id: ItemId,
        _tracker: Option<BatchSender>,
    ) -> BoxFuture<'static, Result<(), ControlError>> {
        self.commands.push(Command::Retry { item: id });
        Box::pin(async { Ok(()) })
    }
    fn retry_many(
        &self,
        ids: Vec<ItemId>,
        _tracker: Option<BatchSender>,
    ) -> Vec<(ItemId, ControlError)> {
        for item in ids {
            self.commands.push(Command::Retry { item });
        }
        Vec::new()
    }
    fn keeps_input(&self, _id: ItemId) -> bool {
        // The reporting process knows; it answers a retry it cannot do by ignoring it.
        true
    }
    fn close_input(&self) {}
    fn drain_cancelled<'a>(&'a self, _buf: &'a mut EventBuf) -> BoxFuture<'a, u64> {
        Box::pin(async { 0 })
    }
    fn waiting(&self) -> usize {
        self.with(|s| s.waiting as usize).unwrap_or(0)
    }
    fn max_waiting(&self) -> usize {
        self.with(|s| s.max_waiting as usize).unwrap_or(0)
    }
    // The reporting process cancels its own when it drains.
    fn cancel_waiting(&self) {}

    fn join_stats(&self) -> Option<flowdeck_protocol::JoinSnapshot> {
        self.with(|s| s.join.clone()).flatten()
    }

    fn group_of(&self, _id: flowdeck_protocol::ItemId) -> Option<String> {
        None
    }
}

/// A pipeline named `name` with these stages and edges, run elsewhere: the handle reads
/// it, the [`Mirror`] feeds it. `retention` is the tracker's, as for a local pipeline.
/// Call within a tokio runtime.
pub fn mirror(
    name: String,
    stage_names: Vec<String>,
    edges: Vec<Edge>,
    retention: usize,
) -> (PipelineHandle, Mirror) {
    let commands = Arc::new(Commands::default());
    let reported = Arc::new(Mutex::new(Snapshot {
        pipeline: name.clone(),
        state: PipelineState::Running,
        edges: edges.clone(),
        ..Snapshot::default()
    }));
    let env = Arc::new(Env::new(None, &name));
    let stages: Vec<Arc<dyn StageRuntime>> = stage_names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Arc::new(MirrorStage {
                name: n.clone(),
                index: i as StageIndex,
                reported: reported.clone(),
                commands: commands.clone(),
            }) as Arc<dyn StageRuntime>
        })
        .collect();
    let close = {
        let (env, commands) = (env.clone(), commands.clone());
        // An abort cancels the environment first; a drain does not.
        move || {
            commands.push(if env.abort.is_cancelled() {
                Command::Stop
            } else {
                Command::Drain
            })
        }
    };
    let (state, _) = watch::channel(PipelineState::Running);
    let shared = Arc::new(Shared {
        name,
        tracker: Tracker::new(stage_names.len(), retention),
        stage_names,
        edges,
        env,
        tracking: true,
        stages,
        close_input: Box::new(close),
        state,
        rates: Mutex::new(Previous::default()),
        expected: Mutex::new(None),
        health: None,
        health_final: watch::Sender::new(true),
        progress: Mutex::new(None),
        monitors: Mutex::new(Vec::new()),
        reported: Some(reported.clone()),
        processes: Mutex::new(None),
        resources: Mutex::new(None),
    });
    let handle = PipelineHandle::new(shared.clone());
    (
        handle,
        Mirror {
            shared,
            commands,
            reported,
        },
    )
}

impl Mirror {
    /// Takes reported items: each one's current detail, as the reporting tracker holds it.
    /// The counts follow each item from its status here to its reported one, so they stay
    /// exact whatever order items arrive in, and a detail sent twice changes nothing.
    pub fn items(&self, items: Vec<ItemDetail>) {
        self.shared.tracker.put(items);
    }

    /// Takes what the reporting process uses (sent beside its snapshots) as the
    /// pipeline's resources.
    pub fn resources(&self, r: flowdeck_protocol::Resources) {
        self.shared.set_resources(r);
    }

    /// Takes a reported snapshot as the pipeline's numbers (workers, queues, totals,
    /// warnings) and its state. A finished or aborted state ends the mirror's run.
    pub fn snapshot(&self, snapshot: Snapshot) {
        let state = snapshot.state;
        *self.reported.lock() = snapshot;
        self.shared.state.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
        if matches!(state, PipelineState::Finished | PipelineState::Aborted) {
            self.shared.tracker.close_feed();
        }
    }

    /// Whether the mirrored run has not ended (finished, aborted or lost).
    pub fn is_running(&self) -> bool {
        !matches!(
            *self.shared.state.borrow(),
            PipelineState::Finished | PipelineState::Aborted
        )
    }

    /// Ends the mirrored run as aborted because its reporter went silent: its last
    /// snapshot with that state and a warning (`lost_items`) saying why and how many items
    /// were in progress then, since their end will not be known here.
    pub fn lost(&self, silent_for: std::time::Duration) {
        let mut s = self.reported.lock().clone();
        if matches!(s.state, PipelineState::Finished | PipelineState::Aborted) {
            return;
        }
        let stats = self.shared.tracker.stats();
        let open = stats.queued + stats.running + stats.retrying;
        s.state = PipelineState::Aborted;
        s.warnings.insert(
            0,
            flowdeck_protocol::Warning {
                rule: flowdeck_protocol::Rule::LostItems,
                stage: None,
                worker: None,
                items: Vec::new(),
                message: format!(
                    "no report from this pipeline's process for {} s: its run is marked aborted; {open} items were in progress here, their end is unknown",
                    silent_for.as_secs()
                ),
                first_seen_ms: s.uptime_ms,
                last_seen_ms: s.uptime_ms,
                cleared_ms: None,
            },
        );
        self.snapshot(s);
    }

    /// Takes the reporting process's question changes: a question asked there is
    /// answerable here (an answer, checked here, goes back as a [`Command::Answer`] with
    /// the asker's numbering), and its closing there closes it here, as it closed.
    pub fn questions(&self, changes: Vec<flowdeck_protocol::question::QuestionChange>) {
        use flowdeck_protocol::question::QuestionChange;
        let questions = &self.shared.env.questions;
        for change in changes {
            match change {
                QuestionChange::Asked(info) => {
                    if questions.get(info.id).is_some_and(|q| q.state.is_pending()) {
                        continue;
                    }
                    let commands = self.commands.clone();
                    let relay = move |question: u64,
                                      reply: &flowdeck_protocol::question::Reply,
                                      by: Option<&str>| {
                        commands.push(Command::Answer {
                            question,
                            reply: reply.clone(),
                            by: by.map(str::to_owned),
                        });
                    };
                    questions.open(
                        info,
                        crate::ask::Responder::Relayed(Arc::new(relay)),
                        None,
                        None,
                    );
                }
                QuestionChange::Closed(info) => questions.closed_elsewhere(info),
            }
        }
    }

    /// The commands pressed since the last call, oldest first.
    pub fn take_commands(&self) -> Vec<Command> {
        std::mem::take(&mut *self.commands.queue.lock())
    }

    /// Resolves when a command is pressed (for a reporter holding a request open).
    pub async fn command_pressed(&self) {
        self.commands.ready.notified().await;
    }
}
