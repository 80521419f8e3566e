//! A built pipeline and the two ways to run it: [`Pipeline::run`] to completion over a
//! collection, or [`Pipeline::start`] for an always-on service fed through a [`Feeder`].

use std::{
    any::Any,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use flowdeck_protocol::{Edge, EventKind, ItemId, PipelineState};
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, watch};

use crate::{
    error::Closed,
    events::{EventBuf, Subject},
    handle::{PipelineHandle, Summary},
    node::{Env, StageRuntime},
    port::{Origin, Port, Sent},
    shared::{Previous, Shared},
    tracker::Tracker,
    watch::{drive, Monitor, WarningWatch},
};

type Callback = Box<dyn Fn(&flowdeck_protocol::Event) + Send + Sync>;
type Part = (
    crate::graph::Build,
    Box<dyn Any + Send>,
    Box<dyn Any + Send>,
    crate::graph::Joins,
);

pub(crate) struct Options {
    pub tracking: bool,
    pub retention: usize,
    pub callbacks: Vec<(Option<EventKind>, Callback)>,
    pub monitors: Vec<(Box<dyn Monitor>, Duration)>,
    /// The health warnings' thresholds; `None` turns them off.
    pub warnings: Option<crate::warnings::Thresholds>,
    pub on_warning: Vec<crate::warnings::WarningCallback>,
    pub on_question: Vec<crate::ask::QuestionCallback>,
    /// The terminal progress display, if asked for.
    #[cfg(feature = "progress")]
    pub progress: Option<crate::progress::Progress>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tracking: true,
            retention: 100_000,
            callbacks: Vec::new(),
            monitors: Vec::new(),
            warnings: Some(Default::default()),
            on_warning: Vec::new(),
            on_question: Vec::new(),
            #[cfg(feature = "progress")]
            progress: None,
        }
    }
}

/// A checked pipeline, not yet running. Building needs no async runtime; starting does.
pub struct Pipeline<In, Out> {
    name: String,
    stage_names: Vec<String>,
    workers: Vec<usize>,
    edges: Vec<Edge>,
    input: Port<In>,
    sink: (async_channel::Sender<Out>, async_channel::Receiver<Out>),
    options: Options,
    parts: Vec<Part>,
}

/// What a finished run gives back.
pub struct Report<Out> {
    /// The outputs of the stages marked as outputs, in the order they finished.
    pub outputs: Vec<Out>,
    pub summary: Summary,
}

/// A started pipeline: its control handle, its input and its outputs.
pub struct Running<In, Out> {
    pub handle: PipelineHandle,
    pub input: Feeder<In>,
    /// The pipeline's outputs. Read them, or drop this receiver to discard them: a full,
    /// unread output queue holds the pipeline back.
    pub outputs: async_channel::Receiver<Out>,
}

/// The pipeline's input end, shared by every [`Feeder`] clone and the handle.
pub(crate) struct Source<In> {
    port: RwLock<Option<Arc<Port<In>>>>,
    /// Set when the port is taken: a bulk send holds the port for all its items and reads
    /// this flag before each one (a load, where taking the port is a lock and a count).
    shut: AtomicBool,
    env: Arc<Env>,
    closed: watch::Sender<bool>,
}

impl<In> Source<In> {
    pub(crate) fn close(&self) {
        self.shut.store(true, Ordering::Release);
        self.port.write().take();
        self.closed.send_replace(true);
    }

    /// The port, unless the input is closed.
    fn port(&self) -> Result<Arc<Port<In>>, Closed> {
        self.port.read().clone().ok_or(Closed)
    }

    fn is_closed(&self) -> bool {
        self.shut.load(Ordering::Acquire)
    }
}

/// Closes the input when the last feeder is dropped.
struct FeedGuard<In>(Arc<Source<In>>);

impl<In> Drop for FeedGuard<In> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Feeds items into a running pipeline. Clone it for several producers; the input closes
/// (and the pipeline drains) when every clone is dropped or [`Feeder::close`] is called.
pub struct Feeder<In> {
    source: Arc<Source<In>>,
    _guard: Arc<FeedGuard<In>>,
}

impl<In> Clone for Feeder<In> {
    fn clone(&self) -> Self {
        Feeder {
            source: self.source.clone(),
            _guard: self._guard.clone(),
        }
    }
}

impl<In: Send + 'static> Feeder<In> {
    /// Sends one item, waiting while the first stage's queue is full. Returns its id.
    pub async fn send(&self, item: In) -> Result<ItemId, Closed> {
        let port = self.source.port()?;
        let mut buf = EventBuf::new(self.source.env.tracker());
        let id = self.push(&port, item, &mut buf).await;
        buf.flush().await;
        id
    }

    /// Sends every item of `items`, recording their events in batches: the fast path for
    /// bulk input. Returns how many were taken before the input closed, if it did.
    pub async fn send_all(&self, items: impl IntoIterator<Item = In>) -> u64 {
        let Ok(port) = self.source.port() else {
            return 0;
        };
        let mut buf = EventBuf::new(self.source.env.tracker());
        let mut n = 0;
        for item in items {
            if self.source.is_closed() || self.push(&port, item, &mut buf).await.is_err() {
                break;
            }
            n += 1;
        }
        buf.flush().await;
        n
    }

    /// Sends every item the stream yields until it ends or the input closes.
    pub async fn send_stream(&self, items: impl futures::Stream<Item = In>) -> u64 {
        let mut buf = EventBuf::new(self.source.env.tracker());
        let mut n = 0;
        let mut items = std::pin::pin!(items);
        while let Some(item) = items.next().await {
            // The port is taken per item: held while the stream waits for its next one,
            // it would keep the input open after a close, and the pipeline from draining.
            let Ok(port) = self.source.port() else { break };
            if self.push(&port, item, &mut buf).await.is_err() {
                break;
            }
            n += 1;
            if items.size_hint().0 == 0 {
                // Nothing known to be ready: show what came so far without waiting.
                buf.flush().await;
            }
        }
        buf.flush().await;
        n
    }

    /// Sends one item through `port`, taken by the caller while the input was open.
    async fn push(&self, port: &Port<In>, item: In, buf: &mut EventBuf) -> Result<ItemId, Closed> {
        let env = &self.source.env;
        let id = env.next_id();
        let now = env.clock.now_us();
        let target = match port.target(&item) {
            Ok(t) => t,
            Err(msg) => {
                // An input filter panicked: the item enters and fails at once, at the
                // stage the first input edge leads to.
                let stage = port.routes.first().map_or(0, |r| r.to);
                let here = Subject {
                    item: id,
                    stage,
                    worker: None,
                };
                buf.push(
                    here.event(EventKind::Failed, None, now)
                        .with_error(crate::error::runtime_error("Panic", msg)),
                )
                .await;
                return Ok(id);
            }
        };
        match port
            .send(
                id,
                item,
                Default::default(),
                target,
                Origin::Input,
                now,
                buf,
                None,
            )
            .await
        {
            Sent::Stage => Ok(id),
            // No input edge took it: it is done as soon as it arrives.
            Sent::Out => {
                let here = Subject {
                    item: id,
                    stage: 0,
                    worker: None,
                };
                buf.push(here.event(EventKind::Completed, None, now).last())
                    .await;
                Ok(id)
            }
            Sent::Closed => Err(Closed),
        }
    }

    /// Closes the input: queued items are still finished, new ones are refused.
    pub fn close(&self) {
        self.source.close();
    }
}

impl<In: Send + 'static, Out: Send + 'static> Pipeline<In, Out> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        name: String,
        stage_names: Vec<String>,
        workers: Vec<usize>,
        edges: Vec<Edge>,
        input: Port<In>,
        sink: (async_channel::Sender<Out>, async_channel::Receiver<Out>),
        options: Options,
        parts: Vec<Part>,
    ) -> Self {
        Pipeline {
            name,
            stage_names,
            workers,
            edges,
            input,
            sink,
            options,
            parts,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts the workers. Must be called within a tokio runtime.
    pub fn start(self) -> Running<In, Out> {
        let Pipeline {
            name,
            stage_names,
            workers,
            edges,
            input,
            sink,
            options,
            parts,
        } = self;
        let (tx, rx) = if options.tracking {
            let (tx, rx) = mpsc::channel(256);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let env = Arc::new(Env::new(tx.as_ref().map(|t| t.downgrade()), &name));
        for f in options.on_question {
            env.questions.on_change(f);
        }
        let retention = if options.tracking {
            options.retention
        } else {
            0
        };
        let tracker = Tracker::new(stage_names.len(), retention);
        tracker.order_stages(&edges);
        for (filter, f) in options.callbacks {
            tracker.add_callback(filter, f);
        }
        let stages: Vec<Arc<dyn StageRuntime>> = parts
            .into_iter()
            .map(|(build, port, queue, joins)| build(env.clone(), port, queue, joins))
            .collect();
        let (sink_tx, outputs) = sink;
        // Only the stages' ports may hold the output queue open from here on.
        drop(sink_tx);
        let tracker_task = rx.map(|rx| tokio::spawn(tracker.clone().run(rx)));
        for (stage, n) in stages.iter().zip(workers) {
            stage.clone().set_workers(n);
        }
        let (closed, mut closed_rx) = watch::channel(false);
        let source = Arc::new(Source {
            port: RwLock::new(Some(Arc::new(input))),
            shut: AtomicBool::new(false),
            env: env.clone(),
            closed,
        });
        let close_source = source.clone();
        let (state, _) = watch::channel(PipelineState::Running);
        let health = options.warnings.map(|t| WarningWatch {
            engine: Arc::new(parking_lot::Mutex::new(crate::warnings::Engine::new(t))),
            callbacks: options.on_warning,
        });
        let shared = Arc::new(Shared {
            name,
            stage_names,
            edges,
            env: env.clone(),
            tracker: tracker.clone(),
            tracking: tx.is_some(),
            stages,
            close_input: Box::new(move || close_source.close()),
            state,
            rates: Mutex::new(Previous::default()),
            expected: Mutex::new(None),
            health: health.as_ref().map(|h| h.engine.clone()),
            health_final: watch::Sender::new(health.is_none()),
            progress: Mutex::new(None),
            monitors: Mutex::new(Vec::new()),
            reported: None,
            processes: Mutex::new(None),
            resources: Mutex::new(None),
        });
        let handle = PipelineHandle::new(shared.clone());

        // The supervisor: once the input is closed and every worker has stopped, it records
        // what an abort left behind, lets the tracker finish, and marks the end.
        let control = tx;
        let sup = shared.clone();
        tokio::spawn(async move {
            let _ = closed_rx.wait_for(|c| *c).await;
            sup.state.send_if_modified(|s| {
                let draining = *s == PipelineState::Running;
                if draining {
                    *s = PipelineState::Draining;
                }
                draining
            });
            sup.env.tasks.close();
            sup.env.tasks.wait().await;
            if sup.env.abort.is_cancelled() {
                let mut buf = EventBuf::new(control.clone());
                for stage in &sup.stages {
                    stage.drain_cancelled(&mut buf).await;
                }
                buf.flush().await;
            }
            drop(control);
            if let Some(task) = tracker_task {
                let _ = task.await;
            }
            let end = if sup.env.abort.is_cancelled() {
                PipelineState::Aborted
            } else {
                PipelineState::Finished
            };
            sup.state.send_replace(end);
        });

        for (monitor, every) in options.monitors {
            let task = tokio::spawn(drive(monitor, every, handle.clone()));
            shared.monitors.lock().push(task);
        }
        if let Some(health) = health {
            tokio::spawn(health.watch(handle.clone()));
        }
        #[cfg(feature = "progress")]
        if let Some(progress) = options.progress {
            *shared.progress.lock() = Some(tokio::spawn(progress.watch(handle.clone())));
        }

        Running {
            handle,
            input: Feeder {
                source: source.clone(),
                _guard: Arc::new(FeedGuard(source)),
            },
            outputs,
        }
    }

    /// Runs the pipeline over `items` to completion: feeds them (waiting when the first
    /// queue is full), collects the outputs, and returns them with a summary.
    pub async fn run(self, items: impl IntoIterator<Item = In>) -> Report<Out> {
        self.start().run(items).await
    }
}

impl<In: Send + 'static, Out: Send + 'static> Running<In, Out> {
    /// Feeds `items`, closes the input, collects the outputs and waits for the end: what
    /// [`Pipeline::run`] does after starting. Start first when something must watch the
    /// run from its first item (a dashboard, a progress bar) through the handle.
    pub async fn run(self, items: impl IntoIterator<Item = In>) -> Report<Out> {
        let items = items.into_iter();
        let Running {
            handle,
            input,
            outputs,
        } = self;
        if let (lo, Some(hi)) = items.size_hint() {
            if lo == hi {
                handle.set_expected(lo as u64);
            }
        }
        let feed = async move {
            input.send_all(items).await;
            input.close();
        };
        let collect = async move {
            let mut out = Vec::new();
            while let Ok(o) = outputs.recv().await {
                out.push(o);
            }
            out
        };
        let ((), outputs) = futures::join!(feed, collect);
        handle.wait().await;
        // The progress display's last lines are printed, and the monitors have seen the
        // end, before the caller goes on (and perhaps exits).
        let progress = handle.shared.progress.lock().take();
        let monitors = std::mem::take(&mut *handle.shared.monitors.lock());
        let watchers = progress.into_iter().chain(monitors);
        let _ =
            tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(watchers)).await;
        Report {
            outputs,
            summary: handle.summary(),
        }
    }
}
