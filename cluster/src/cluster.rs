//! [`Cluster`]: what a user's program holds, and the driver's side of it (a worker
//! process's is in `serve`). The same program runs in two roles:
//! - the **driver** builds the pipeline with some stages handed to
//!   [`Cluster::distribute`], runs it as usual, and calls [`Cluster::watch`] with its
//!   handle so that pauses reach the worker processes and their heartbeats are read;
//! - a **worker process** builds the same pipeline (so it has the stages' functions) and
//!   calls [`Cluster::serve`] instead of running it: it pulls the distributed stages'
//!   items until stopped.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_nats::jetstream;
use flowdeck_protocol::{PipelineState, Preview, ProcessSnapshot};
use flowdeck_runtime::{PipelineHandle, Stage, TaskFn};
use futures::StreamExt;
use parking_lot::Mutex;
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    driver::{DriverCounters, DriverStage, Remote, RemoteError},
    layout::{check_token, control_subject, processes_subject},
    queue::nats,
    serve::{heartbeat, obey, Served, WorkerProcess},
    stage_queue,
    wire::{Answer, ControlState, Reply},
    worker::{Counters, WorkerStage},
    ClusterError, QueueOptions, StageQueue,
};

/// Connections made by this process: a run token is unique even for two in one millisecond.
static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How often a worker process sends its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A worker process silent this long is marked lost.
pub const LOST_AFTER: Duration = Duration::from_secs(3);

/// How a cluster's queues behave and what its processes say of themselves.
#[derive(Clone, Debug)]
pub struct Settings {
    pub queue: QueueOptions,
    /// How many items of each distributed stage the driver has out in the cluster at
    /// once: the driver-side stage's worker count (`set_workers` changes it while running).
    pub in_flight: usize,
    /// The version a worker process reports in its heartbeats (your program's).
    pub version: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            queue: QueueOptions::default(),
            in_flight: 256,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

type Serve = Box<
    dyn FnOnce(Arc<Inner>) -> Pin<Box<dyn Future<Output = Result<Served, ClusterError>> + Send>>
        + Send,
>;

pub(crate) struct Inner {
    pub js: jetstream::Context,
    pub(crate) client: async_nats::Client,
    pub(crate) pipeline: String,
    /// This driver's run: message ids and replies carry it.
    pub run: String,
    pub settings: Settings,
    /// This process: `host:pid`.
    pub(crate) process: String,
    pub(crate) host: String,
    pub(crate) started_unix_ms: u64,
    /// The distributed stages' names, by distributed index.
    names: Mutex<Vec<String>>,
    /// The worker side of each distributed stage, for [`Cluster::serve`].
    serve: Mutex<Vec<Serve>>,
    pub counters: DriverCounters,
    /// The running pipeline, while it runs ([`Cluster::watch`]).
    handle: Mutex<Option<PipelineHandle>>,
    processes: Mutex<HashMap<String, Seen>>,
}

struct Seen {
    beat: ProcessSnapshot,
    at: Instant,
    lost: bool,
}

impl Inner {
    /// Shows a message no worker could read as a failed item of the stage.
    pub(crate) fn record_malformed(&self, stage: &str, reply: Reply) {
        let Answer::Failed {
            kind,
            message,
            payload,
        } = reply.outcome
        else {
            return;
        };
        let Some(handle) = self.handle.lock().clone() else {
            tracing::warn!("stage {stage}: {message}");
            return;
        };
        let stage = stage.to_owned();
        tokio::spawn(async move {
            let input = payload.map(|text| Preview {
                bytes: text.len() as u64,
                text,
            });
            let _ = handle.record_failed(&stage, &kind, message, input).await;
        });
    }
}

/// A pipeline's connection to its cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

/// What the driver counted, with what the worker processes' last heartbeats say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Items dispatched to distributed stages.
    pub dispatched: u64,
    /// Replies matched to their dispatch.
    pub answered: u64,
    /// Of those, items answered on a later delivery than their first: retried after a
    /// failure, or their earlier worker died or stalled.
    pub redelivered: u64,
    /// Replies with no dispatch waiting: answered twice, only counted.
    pub unmatched: u64,
    /// Messages on a stage's subject that were not its items.
    pub malformed: u64,
    /// Replies JetStream dropped as duplicates (summed over the processes' heartbeats).
    pub duplicate_replies: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Cluster {
    /// Connects to the NATS server at `url` (`nats://host:4222`; a comma-separated list
    /// for a NATS cluster) for pipeline `pipeline`, a token of lowercase letters, digits
    /// and dashes that every process of the pipeline uses.
    pub async fn connect(
        url: &str,
        pipeline: &str,
        settings: Settings,
    ) -> Result<Self, ClusterError> {
        check_token(pipeline)?;
        let client = async_nats::ConnectOptions::new()
            .name(format!("flowdeck {pipeline}"))
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(nats)?;
        Ok(Self::new(client, pipeline, settings))
    }

    /// Like [`connect`](Self::connect), over a connection made by the caller: for TLS,
    /// credentials, NKeys or any other `async_nats::ConnectOptions`.
    pub fn with_client(
        client: async_nats::Client,
        pipeline: &str,
        settings: Settings,
    ) -> Result<Self, ClusterError> {
        check_token(pipeline)?;
        Ok(Self::new(client, pipeline, settings))
    }

    fn new(client: async_nats::Client, pipeline: &str, settings: Settings) -> Self {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let pid = std::process::id();
        let started_unix_ms = unix_ms();
        Cluster {
            inner: Arc::new(Inner {
                js: jetstream::new(client.clone()),
                client,
                pipeline: pipeline.to_owned(),
                run: format!(
                    "r{started_unix_ms}-{pid}-{}",
                    RUNS.fetch_add(1, Ordering::Relaxed)
                ),
                settings,
                process: format!("{host}:{pid}"),
                host,
                started_unix_ms,
                names: Mutex::new(Vec::new()),
                serve: Mutex::new(Vec::new()),
                counters: DriverCounters::default(),
                handle: Mutex::new(None),
                processes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Makes `stage` distributed: in the driver, its items go to worker processes over
    /// JetStream; in a worker process, [`serve`](Self::serve) runs its function on them.
    /// Its inputs and outputs travel as JSON. Call it in the same order in every process
    /// (building the same pipeline does): the order names the stage's streams.
    ///
    /// What the stage declared keeps its meaning: `workers` is each worker process's
    /// concurrency, `retry` is applied with JetStream's `Nak` and backoff, `timeout` by the
    /// worker, `rate_limit` by the driver across the whole cluster, `classify` names
    /// failures. Captures stay in one process and are not sent.
    pub fn distribute<I, O, T>(&self, stage: Stage<I, O, T>) -> Stage<I, O, Remote<I, O, T>>
    where
        I: Serialize + DeserializeOwned + Send + 'static,
        O: Serialize + DeserializeOwned + Send + 'static,
        T: TaskFn<I, O>,
    {
        let (parts, task) = stage.into_parts();
        let index = {
            let mut names = self.inner.names.lock();
            names.push(parts.name.clone());
            u16::try_from(names.len() - 1).unwrap_or(u16::MAX)
        };
        let queue = StageQueue::checked(&self.inner.pipeline, index);
        let name = parts.name.clone();
        let workers = parts.workers;
        let worker_queue = queue.clone();
        let serve: Serve = Box::new(move |inner: Arc<Inner>| {
            Box::pin(async move {
                let consumer = stage_queue(&inner.js, &worker_queue, &inner.settings.queue).await?;
                let counters = Arc::new(Counters::default());
                let dispatches = crate::worker::Dispatches::default();
                let relay_queue = worker_queue.clone();
                let stage = Arc::new(WorkerStage {
                    queue: worker_queue,
                    task,
                    retry: parts.retry,
                    timeout: parts.timeout,
                    classify: parts.classify,
                    js: inner.js.clone(),
                    options: inner.settings.queue.clone(),
                    process: inner.process.clone(),
                    counters: counters.clone(),
                    dispatches: dispatches.clone(),
                    _types: std::marker::PhantomData,
                });
                let (handle, gate) = stage
                    .start(consumer, name.clone(), workers)
                    .map_err(ClusterError::Name)?;
                let relay = tokio::spawn(crate::worker::relay_questions(
                    inner.client.clone(),
                    relay_queue,
                    inner.process.clone(),
                    handle.clone(),
                    dispatches,
                ));
                Ok(Served {
                    index,
                    name,
                    handle,
                    gate,
                    counters,
                    relay,
                })
            }) as Pin<Box<dyn Future<Output = _> + Send>>
        });
        self.inner.serve.lock().push(serve);
        let remote = Remote {
            stage: DriverStage::new(parts.name.clone(), queue, self.inner.clone()),
            _types: std::marker::PhantomData,
        };
        Stage::with_task(parts.name, remote)
            .workers(self.inner.settings.in_flight)
            .queue(parts.capacity)
            .rate_limit(parts.rate_limit.map_or(0, |r| r.get()))
            .classify(|e: &RemoteError| e.kind.clone())
    }

    /// In the driver, once the pipeline has started: relays the distributed stages' pause
    /// to every worker process (within [`CONTROL_EVERY`]), reads their heartbeats, marks a
    /// silent one lost after [`LOST_AFTER`], and shows messages no worker could read as
    /// failed items. Ends with the run.
    pub fn watch(&self, handle: &PipelineHandle) {
        *self.inner.handle.lock() = Some(handle.clone());
        let weak = Arc::downgrade(&self.inner);
        let list = weak.clone();
        handle.set_processes(move || list.upgrade().map(|i| i.processes()).unwrap_or_default());
        let client = self.inner.client.clone();
        let subject = processes_subject(&self.inner.pipeline);
        let mut running = Some(handle.clone());
        tokio::spawn(async move {
            let mut beats = match client.subscribe(subject).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot read worker heartbeats: {e}");
                    return;
                }
            };
            let mut tick = tokio::time::interval(CONTROL_EVERY);
            let mut last: Option<(ControlState, Instant)> = None;
            // Heartbeats are read for as long as anyone holds the cluster or the
            // pipeline's handle: a finished run's page still shows its processes.
            loop {
                tokio::select! {
                    m = beats.next() => match (m, weak.upgrade()) {
                        (Some(m), Some(inner)) => inner.heard(&m.payload),
                        _ => return,
                    },
                    _ = tick.tick() => {
                        let Some(inner) = weak.upgrade() else { return };
                        if let Some(handle) = &running {
                            if matches!(handle.state(), PipelineState::Finished | PipelineState::Aborted) {
                                // Let go of the pipeline: it holds the cluster, not the
                                // other way round, once the run is over.
                                running = None;
                                inner.handle.lock().take();
                            } else {
                                inner.relay(handle, &mut last).await;
                            }
                        }
                        inner.mark_lost();
                    }
                }
            }
        });
    }

    /// In a worker process: starts every distributed stage's workers. They pull until
    /// [`WorkerProcess::stop`]; pauses come from the driver.
    pub async fn serve(&self) -> Result<WorkerProcess, ClusterError> {
        let makers = std::mem::take(&mut *self.inner.serve.lock());
        if makers.is_empty() {
            return Err(ClusterError::Name(
                "no stage is distributed: build the pipeline (with Cluster::distribute) \
                 before serving"
                    .into(),
            ));
        }
        let mut stages = Vec::new();
        for make in makers {
            stages.push(make(self.inner.clone()).await?);
        }
        let stages = Arc::new(stages);
        let control = self
            .inner
            .client
            .subscribe(control_subject(&self.inner.pipeline))
            .await
            .map_err(nats)?;
        let tasks = vec![
            tokio::spawn(obey(control, stages.clone())),
            tokio::spawn(heartbeat(self.inner.clone(), stages.clone())),
        ];
        Ok(WorkerProcess { stages, tasks })
    }

    /// The worker processes that sent heartbeats since [`watch`](Self::watch) began, as
    /// their last heartbeat showed them, with how long ago that was and whether they are
    /// lost (silent for [`LOST_AFTER`]). The pipeline's snapshots carry the same list.
    pub fn processes(&self) -> Vec<ProcessSnapshot> {
        self.inner.processes()
    }

    pub fn stats(&self) -> ClusterStats {
        let c = &self.inner.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        ClusterStats {
            dispatched: get(&c.dispatched),
            answered: get(&c.answered),
            redelivered: get(&c.redelivered),
            unmatched: get(&c.unmatched),
            malformed: get(&c.malformed),
            duplicate_replies: self
                .inner
                .processes
                .lock()
                .values()
                .flat_map(|s| &s.beat.stages)
                .map(|s| s.duplicate_replies)
                .sum(),
        }
    }

    /// The NATS connection, for a program that wants more of it.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// This driver's run token, which message ids carry.
    pub fn run(&self) -> &str {
        &self.inner.run
    }
}

/// How often the driver looks at its pause states and republishes them.
pub const CONTROL_EVERY: Duration = Duration::from_millis(100);

impl Inner {
    fn processes(&self) -> Vec<ProcessSnapshot> {
        let mut out: Vec<_> = self
            .processes
            .lock()
            .values()
            .map(|s| {
                let silent = s.at.elapsed();
                ProcessSnapshot {
                    silent_ms: u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
                    lost: silent >= LOST_AFTER,
                    ..s.beat.clone()
                }
            })
            .collect();
        out.sort_by(|a, b| a.process.cmp(&b.process));
        out
    }

    fn heard(&self, payload: &[u8]) {
        let Ok(beat) = serde_json::from_slice::<ProcessSnapshot>(payload) else {
            return;
        };
        let mut p = self.processes.lock();
        if p.get(&beat.process).is_some_and(|s| s.lost) {
            tracing::info!("worker process {} is back", beat.process);
        }
        p.insert(
            beat.process.clone(),
            Seen {
                beat,
                at: Instant::now(),
                lost: false,
            },
        );
    }

    fn mark_lost(&self) {
        for s in self.processes.lock().values_mut() {
            if !s.lost && s.at.elapsed() >= LOST_AFTER {
                s.lost = true;
                tracing::warn!(
                    "worker process {} lost: no heartbeat for {:?}; its items go to others \
                     after ack_wait",
                    s.beat.process,
                    LOST_AFTER
                );
            }
        }
    }

    /// Publishes the pause states when they changed, and every second anyway.
    async fn relay(&self, handle: &PipelineHandle, last: &mut Option<(ControlState, Instant)>) {
        let state = ControlState {
            run: self.run.clone(),
            paused: self
                .names
                .lock()
                .iter()
                .map(|n| handle.is_paused(n).unwrap_or(false))
                .collect(),
        };
        let due = match last {
            Some((s, at)) => *s != state || at.elapsed() >= Duration::from_secs(1),
            None => true,
        };
        if !due {
            return;
        }
        if let Ok(body) = serde_json::to_vec(&state) {
            let _ = self
                .client
                .publish(control_subject(&self.pipeline), body.into())
                .await;
        }
        *last = Some((state, Instant::now()));
    }
}
