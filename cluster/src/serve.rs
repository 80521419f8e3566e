//! A worker process's side: [`WorkerProcess`], the distributed stages it serves (started by
//! [`crate::Cluster::serve`]), with the driver's pauses applied as they come and a
//! heartbeat sent every [`HEARTBEAT`].

use std::sync::{atomic::Ordering, Arc};

use flowdeck_protocol::{ProcessSnapshot, ProcessStage};
use flowdeck_runtime::PipelineHandle;
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::{
    cluster::{Inner, HEARTBEAT},
    layout::processes_subject,
    wire::ControlState,
    worker::{Counters, Gate},
    ClusterError,
};

/// One distributed stage served by this process.
pub(crate) struct Served {
    pub index: u16,
    pub name: String,
    pub handle: PipelineHandle,
    pub gate: Arc<Gate>,
    pub counters: Arc<Counters>,
    /// Relays the questions its tasks ask to the driver, and the answers back.
    pub relay: JoinHandle<()>,
}

/// The distributed stages a worker process serves.
pub struct WorkerProcess {
    pub(crate) stages: Arc<Vec<Served>>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl WorkerProcess {
    /// The local pipeline running stage `stage` here: its snapshot, tracker and controls
    /// (a dashboard of this process can serve it).
    pub fn handle(&self, stage: &str) -> Option<&PipelineHandle> {
        self.stages
            .iter()
            .find(|s| s.name == stage)
            .map(|s| &s.handle)
    }

    /// How many of this process's workers run stage `stage`.
    pub fn set_workers(&self, stage: &str, workers: usize) -> Result<(), ClusterError> {
        let s = self
            .stages
            .iter()
            .find(|s| s.name == stage)
            .ok_or_else(|| ClusterError::Name(format!("no distributed stage {stage:?}")))?;
        s.handle
            .set_workers(stage, workers)
            .map_err(|e| ClusterError::Name(e.to_string()))?;
        s.gate.target.store(workers, Ordering::Release);
        s.gate.poke();
        Ok(())
    }

    /// Stops pulling, lets the items in hand finish and answers them, then returns.
    pub async fn stop(self) {
        for s in self.stages.iter() {
            s.gate.stopping.store(true, Ordering::Release);
            s.gate.poke();
        }
        for s in self.stages.iter() {
            s.handle.wait().await;
        }
        for t in &self.tasks {
            t.abort();
        }
        for s in self.stages.iter() {
            s.relay.abort();
        }
    }

    /// Serves until the process is asked to stop (Ctrl-C or SIGTERM), then stops as
    /// [`stop`](Self::stop) does.
    pub async fn run(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        self.stop().await;
    }
}

/// Applies the driver's pause states to this process's stages.
pub(crate) async fn obey(mut control: async_nats::Subscriber, stages: Arc<Vec<Served>>) {
    while let Some(m) = control.next().await {
        let Ok(state) = serde_json::from_slice::<ControlState>(&m.payload) else {
            continue;
        };
        for s in stages.iter() {
            let paused = state
                .paused
                .get(usize::from(s.index))
                .copied()
                .unwrap_or(false);
            if s.gate.paused.swap(paused, Ordering::AcqRel) != paused {
                let _ = if paused {
                    s.handle.pause(&s.name)
                } else {
                    s.handle.resume(&s.name)
                };
                s.gate.poke();
            }
        }
    }
}

/// Sends this process's heartbeat every [`HEARTBEAT`].
pub(crate) async fn heartbeat(inner: Arc<Inner>, stages: Arc<Vec<Served>>) {
    let pid = std::process::id();
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut sampler = flowdeck_runtime::resources::Sampler::new();
    loop {
        tick.tick().await;
        let beat = ProcessSnapshot {
            resources: Some(sampler.sample()),
            process: inner.process.clone(),
            host: inner.host.clone(),
            pid,
            version: inner.settings.version.clone(),
            started_unix_ms: inner.started_unix_ms,
            silent_ms: 0,
            lost: false,
            stages: stages
                .iter()
                .map(|s| {
                    let snap = s.handle.snapshot();
                    let mut beat = ProcessStage {
                        name: s.name.clone(),
                        paused: s.gate.paused.load(Ordering::Acquire),
                        workers: snap
                            .stages
                            .into_iter()
                            .next()
                            .map(|st| st.workers)
                            .unwrap_or_default(),
                        ..ProcessStage::default()
                    };
                    s.counters.beat(&mut beat);
                    beat
                })
                .collect(),
        };
        if let Ok(body) = serde_json::to_vec(&beat) {
            let _ = inner
                .client
                .publish(processes_subject(&inner.pipeline), body.into())
                .await;
        }
    }
}
