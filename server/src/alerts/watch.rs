//! What turns a pipeline's state into alert events: a task per pipeline that looks twice a
//! second and reports transitions only (a warning raised, then cleared; the run ending; a
//! failure count crossing its threshold; new questions; the store degrading or
//! recovering), so that a condition that holds alerts once.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use flowdeck_protocol::{ItemId, PipelineState};
use flowdeck_runtime::PipelineHandle;
use parking_lot::Mutex;

use super::{Alert, AlertEvent, Alerts, On};

/// Unix time now, in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One alert's failure count: per second, over its window, with the latest items.
struct Window {
    alert: Arc<Alert>,
    stage: Option<u16>,
    seconds: VecDeque<(u64, u64)>,
    items: VecDeque<ItemId>,
    over: bool,
}

impl Window {
    fn add(&mut self, second: u64, item: ItemId) {
        match self.seconds.back_mut() {
            Some((s, n)) if *s == second => *n += 1,
            _ => self.seconds.push_back((second, 1)),
        }
        if self.items.len() == super::payload::NAMED {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    /// Failures within the window ending at `second`.
    fn count(&mut self, second: u64) -> u64 {
        let within = self
            .alert
            .failures
            .as_ref()
            .map_or(0, |f| f.within.as_secs());
        while self
            .seconds
            .front()
            .is_some_and(|(s, _)| *s + within <= second)
        {
            self.seconds.pop_front();
        }
        self.seconds.iter().map(|(_, n)| n).sum()
    }
}

/// Watches `pipeline` for `alerts` (nothing when there are none). `link` makes a
/// dashboard path (`/tasks?..`) into the link a message carries; `store` is the run store
/// and the live run, whose degrading is an event too.
pub fn watch(
    alerts: &Alerts,
    pipeline: PipelineHandle,
    store: Option<(flowdeck_store::Store, flowdeck_store::RunId)>,
    link: impl Fn(&str) -> String + Send + Sync + 'static,
) {
    if alerts.is_empty() {
        return;
    }
    let stages = pipeline.stage_names().to_vec();
    let windows: Vec<Window> = alerts
        .inner
        .alerts
        .lock()
        .iter()
        .filter_map(|a| {
            let rule = a.failures.as_ref()?;
            let stage = match &rule.stage {
                Some(name) => Some(u16::try_from(stages.iter().position(|s| s == name)?).ok()?),
                None => None,
            };
            Some(Window {
                alert: a.clone(),
                stage,
                seconds: VecDeque::new(),
                items: VecDeque::new(),
                over: false,
            })
        })
        .collect();
    let windows = Arc::new(Mutex::new(windows));
    if !windows.lock().is_empty() {
        let counted = windows.clone();
        // On the tracker's thread, for every failure: a lock and a few additions.
        pipeline.tracker().on_task_fail(move |e| {
            let second = now_ms() / 1000;
            for w in counted.lock().iter_mut() {
                let rule = w.alert.failures.as_ref();
                let kind_ok = rule.and_then(|r| r.kind.as_deref()).is_none_or(|k| {
                    e.error
                        .as_ref()
                        .is_some_and(|err| err.kind.eq_ignore_ascii_case(k))
                });
                if kind_ok && w.stage.is_none_or(|s| s == e.stage) {
                    w.add(second, e.item);
                }
            }
        });
    }
    let alerts = alerts.clone();
    tokio::spawn(async move {
        let name = pipeline.name().to_owned();
        let run = store.as_ref().map(|(_, r)| *r);
        let event = |event: &str, stage: Option<String>, message: String, path: &str| AlertEvent {
            event: event.to_owned(),
            pipeline: name.clone(),
            run,
            stage,
            items: Vec::new(),
            error_kind: None,
            message,
            count: 1,
            at_unix_ms: now_ms(),
            link: link(path),
        };
        let mut warnings: BTreeMap<(String, Option<String>, Option<u16>), String> = BTreeMap::new();
        let mut questions: BTreeSet<u64> = BTreeSet::new();
        let mut lost: BTreeSet<String> = BTreeSet::new();
        let mut state = pipeline.state();
        let mut degraded = false;
        let mut every = tokio::time::interval(Duration::from_millis(500));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            // Read first: what the run's end brings (a lost reporter's warning) is read
            // below in the same look, before the watch ends.
            let was = state;
            state = pipeline.state();
            // Warnings: raised and cleared, each once.
            let (current, _) = pipeline.warnings();
            let now: BTreeMap<_, _> = current
                .iter()
                .map(|w| ((w.rule.name().to_owned(), w.stage.clone(), w.worker), w))
                .collect();
            for (key, w) in &now {
                if !warnings.contains_key(key) {
                    let mut e = event("warning.raised", w.stage.clone(), w.message.clone(), "/");
                    e.items = w
                        .items
                        .iter()
                        .copied()
                        .take(super::payload::NAMED)
                        .collect();
                    alerts.publish(On::Warnings, e);
                }
            }
            for (key, message) in &warnings {
                if !now.contains_key(key) {
                    let said = format!("cleared: {message}");
                    alerts.publish(
                        On::Warnings,
                        event("warning.cleared", key.1.clone(), said, "/"),
                    );
                }
            }
            warnings = now
                .into_iter()
                .map(|(k, w)| (k, w.message.clone()))
                .collect();

            // Failures over a threshold: once when crossed, again only after falling back.
            let second = now_ms() / 1000;
            let crossed: Vec<(Arc<Alert>, u64, Vec<ItemId>)> = windows
                .lock()
                .iter_mut()
                .filter_map(|w| {
                    let n = w.count(second);
                    let over = w.alert.failures.as_ref().is_some_and(|f| n > f.over);
                    let fire = over && !w.over;
                    w.over = over;
                    fire.then(|| (w.alert.clone(), n, w.items.iter().copied().collect()))
                })
                .collect();
            for (alert, n, items) in crossed {
                let Some(rule) = alert.failures.as_ref() else {
                    continue;
                };
                let what = rule
                    .kind
                    .as_deref()
                    .map(|k| format!(" `{k}`"))
                    .unwrap_or_default();
                let at = rule
                    .stage
                    .as_deref()
                    .map(|s| format!(" at {s}"))
                    .unwrap_or_default();
                let mut query = vec!["status=failed".to_owned()];
                if let Some(s) = &rule.stage {
                    query.push(format!("stage={s}"));
                }
                if let Some(k) = &rule.kind {
                    query.push(format!("q=kind:{k}"));
                }
                let message = format!(
                    "{n} failures{what}{at} within {} s (more than {})",
                    rule.within.as_secs(),
                    rule.over
                );
                let mut e = event(
                    "failures.over",
                    rule.stage.clone(),
                    message,
                    &format!("/tasks?{}", query.join("&")),
                );
                e.count = n;
                e.items = items;
                e.error_kind = rule.kind.clone();
                alerts.publish_to(&alert.name, e);
            }

            // Questions newly waiting for a person.
            let pending = pipeline.questions().pending();
            let fresh: Vec<_> = pending
                .iter()
                .filter(|q| !questions.contains(&q.id))
                .collect();
            if let Some(first) = fresh.first() {
                let more = match fresh.len() {
                    1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                };
                let mut e = event(
                    "question.waiting",
                    Some(first.stage_name.clone()),
                    format!("{}{more}", first.title),
                    "/questions",
                );
                e.count = fresh.len() as u64;
                e.items = fresh
                    .iter()
                    .map(|q| q.item)
                    .take(super::payload::NAMED)
                    .collect();
                alerts.publish(On::Questions, e);
            }
            questions = pending.iter().map(|q| q.id).collect();

            // Worker processes of distributed stages gone silent, and back.
            let processes = pipeline.processes();
            for p in &processes {
                let stage = p.stages.first().map(|s| s.name.clone());
                if p.lost && !lost.contains(&p.process) {
                    let said = format!(
                        "worker process {} lost: no heartbeat for {} s; its items go to other \
                         processes once their ack wait runs out",
                        p.process,
                        p.silent_ms / 1000
                    );
                    alerts.publish(
                        On::Processes,
                        event("process.lost", stage, said, "/workers"),
                    );
                } else if !p.lost && lost.contains(&p.process) {
                    let said = format!("worker process {} is back", p.process);
                    alerts.publish(
                        On::Processes,
                        event("process.back", stage, said, "/workers"),
                    );
                }
            }
            lost = processes
                .into_iter()
                .filter(|p| p.lost)
                .map(|p| p.process)
                .collect();

            // The run store writing, or not.
            if let Some((store, run)) = &store {
                let status = store.status(*run);
                if status.degraded != degraded {
                    degraded = status.degraded;
                    let (name, said) = if degraded {
                        (
                            "store.degraded",
                            format!(
                                "the run store cannot write: {}",
                                status.problem.unwrap_or_default()
                            ),
                        )
                    } else {
                        ("store.recovered", "the run store writes again".to_owned())
                    };
                    alerts.publish(On::Store, event(name, None, said, "/runs"));
                }
            }

            // The run's end, once; then nothing more will happen.
            if state != was && matches!(state, PipelineState::Finished | PipelineState::Aborted) {
                let s = pipeline.tracker().stats();
                let counts = format!(
                    "{} completed, {} failed, {} cancelled",
                    s.completed, s.failed, s.cancelled
                );
                let (name, said) = if state == PipelineState::Aborted {
                    ("run.aborted", format!("the run was aborted: {counts}"))
                } else {
                    ("run.finished", format!("the run finished: {counts}"))
                };
                let path = run.map_or("/".to_owned(), |r| format!("/runs/{r}"));
                let mut e = event(name, None, said, &path);
                e.count = s.failed;
                alerts.publish(On::Run, e);
                break;
            }
        }
    });
}
