//! The dashboard as the monitor reads it: the live stream (SSE) applied to a
//! [`LiveState`] exactly as the browser applies it, resuming after a dropped connection
//! from the last frame applied (`Last-Event-ID`), and the JSON API for a task's detail and
//! a stored run.

use std::{sync::Arc, time::Duration};

use eventsource_stream::Eventsource;
use flowdeck_protocol::{
    runs::{ItemPage, StoredRun},
    stream::{Delta, Frame, Full, LiveState, DELTA_EVENT, FULL_EVENT},
    ErrorSummary, ItemId, TaskDetail,
};
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::app::Link;

/// What the stream keeps up to date, shared with the screen.
pub type Shared = Arc<Mutex<Option<LiveState>>>;

#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// `base` is the dashboard's address, such as `http://127.0.0.1:3000`.
    pub fn new(base: &str, token: Option<String>) -> Result<Client, String> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "{base:?} is not a dashboard address: give one like http://127.0.0.1:3000"
            ));
        }
        if base.starts_with("https://") {
            return Err("flowdeck top speaks plain HTTP: run it on the dashboard's host, or tunnel the port (ssh -L 3000:127.0.0.1:3000 host)".into());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Client { base, token, http })
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.get(format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let res = self
            .get(path)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.base))?;
        let status = res.status();
        if !status.is_success() {
            let body = res.text().await.unwrap_or_default();
            return Err(explain(status, &body));
        }
        res.json().await.map_err(|e| format!("{path}: {e}"))
    }

    /// Answers question `id` with `reply`: the question as it closed, or the server's
    /// reason for refusing (the field it names, who answered first).
    pub async fn answer(
        &self,
        id: flowdeck_protocol::question::QuestionId,
        reply: &flowdeck_protocol::question::Reply,
    ) -> Result<flowdeck_protocol::question::QuestionInfo, String> {
        self.post(&format!("/api/v1/questions/{id}/answer"), reply)
            .await
    }

    /// Restarts worker `worker` of `stage`: its attempt fails and is retried by the
    /// stage's policy. The error is the server's reason (not an admin, nothing running).
    pub async fn restart(&self, stage: &str, worker: u16) -> Result<(), String> {
        let path = format!("/api/v1/stages/{stage}/workers/{worker}/restart");
        self.post::<serde_json::Value>(&path, &serde_json::json!({}))
            .await
            .map(|_| ())
    }

    /// The custom pages, each with its widgets' content (custom widgets only: the others
    /// are drawn by a browser).
    pub async fn pages(&self) -> Result<Vec<crate::app::PageShown>, String> {
        #[derive(serde::Deserialize)]
        struct Listed {
            path: String,
            custom: bool,
        }
        let listed: Vec<Listed> = self.json("/api/v1/pages").await?;
        let mut pages = Vec::new();
        for l in listed.into_iter().filter(|l| l.custom) {
            let slug = l.path.trim_start_matches("/pages/").to_owned();
            let spec: flowdeck_protocol::page::PageSpec =
                self.json(&format!("/api/v1/pages/{slug}")).await?;
            let mut widgets = Vec::new();
            for placed in &spec.widgets {
                widgets.push(match &placed.widget {
                    flowdeck_protocol::page::Widget::Custom(c) => Some(
                        self.json(&format!("/api/v1/pages/{slug}/widgets/{}", c.id()))
                            .await,
                    ),
                    _ => None,
                });
            }
            pages.push(crate::app::PageShown {
                url: format!("{}{}", self.base, l.path),
                spec,
                widgets,
            });
        }
        Ok(pages)
    }

    /// POSTs `body` as JSON; the answer, or the server's reason for refusing.
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, String> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .timeout(Duration::from_secs(10));
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let res = req
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.base))?;
        let status = res.status();
        if !status.is_success() {
            let body = res.text().await.unwrap_or_default();
            // The server's message says what to fix (the field, who answered first).
            let said = serde_json::from_str::<serde_json::Value>(&body).ok();
            return Err(match said.as_ref().and_then(|v| v["message"].as_str()) {
                Some(message) if status.as_u16() != 401 => format!("refused ({status}): {message}"),
                _ => explain(status, &body),
            });
        }
        res.json().await.map_err(|e| e.to_string())
    }

    /// One task, live or (with `run`) from a stored run.
    pub async fn task(&self, id: ItemId, run: Option<i64>) -> Result<TaskDetail, String> {
        match run {
            Some(run) => self.json(&format!("/api/v1/runs/{run}/tasks/{id}")).await,
            None => self.json(&format!("/api/v1/tasks/{id}")).await,
        }
    }

    /// A finished run from the run store, as the live pages would show it: its last
    /// snapshot (with its warnings), its error summary, and its newest 1,000 kept items.
    pub async fn stored_run(&self, run: i64) -> Result<LiveState, String> {
        let stored: StoredRun = self.json(&format!("/api/v1/runs/{run}")).await?;
        let page: ItemPage = self
            .json(&format!("/api/v1/runs/{run}/tasks?limit=1000"))
            .await?;
        let errors: ErrorSummary = self.json(&format!("/api/v1/runs/{run}/errors")).await?;
        let mut snapshot = stored.snapshot.unwrap_or_default();
        snapshot.pipeline = stored.info.pipeline;
        snapshot.warnings = stored.warnings;
        if let Some(end) = stored.info.ended_ms {
            snapshot.uptime_ms = end.saturating_sub(stored.info.started_ms);
        }
        Ok(LiveState::from_full(Full {
            id: 0,
            snapshot,
            // The page's ids need not be consecutive (only finished items are kept, some
            // shed): nothing is trimmed by id.
            retention: u64::MAX,
            items: page.items.iter().map(Into::into).collect(),
            history: Vec::new(),
            errors,
            questions: Vec::new(),
        }))
    }

    /// Follows the live stream for good: applies each frame to `state`, and says how the
    /// link is on `link`. A dropped connection is retried (250 ms, doubling to 5 s) with
    /// the last frame's id, so the server sends exactly the frames missed; a gap the server
    /// can no longer fill comes back as a full frame.
    pub async fn follow(self, state: Shared, link: watch::Sender<Link>) {
        let mut last: Option<u64> = None;
        let mut backoff = Duration::from_millis(250);
        loop {
            let why = match self.stream(&state, &link, &mut last).await {
                Ok(()) => "the stream ended".to_owned(),
                Err(why) => why,
            };
            if *link.borrow() == Link::Live {
                backoff = Duration::from_millis(250);
            }
            link.send_replace(Link::Reconnecting(why));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn stream(
        &self,
        state: &Shared,
        link: &watch::Sender<Link>,
        last: &mut Option<u64>,
    ) -> Result<(), String> {
        let mut req = self
            .get(flowdeck_protocol::stream::EVENTS_PATH)
            .header("accept", "text/event-stream");
        if let Some(id) = *last {
            req = req.header("last-event-id", id.to_string());
        }
        let res = req.send().await.map_err(|e| short(&e))?;
        if !res.status().is_success() {
            let status = res.status();
            return Err(explain(status, &res.text().await.unwrap_or_default()));
        }
        let mut events = res.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| e.to_string())?;
            let frame = match event.event.as_str() {
                FULL_EVENT => serde_json::from_str::<Full>(&event.data).map(Frame::Full),
                DELTA_EVENT => serde_json::from_str::<Delta>(&event.data).map(Frame::Delta),
                _ => continue,
            }
            .map_err(|e| format!("a frame the monitor cannot read: {e}"))?;
            let id = frame.id();
            {
                let mut st = state.lock();
                match (st.as_mut(), frame) {
                    (_, Frame::Full(full)) => *st = Some(LiveState::from_full(full)),
                    (Some(s), Frame::Delta(d)) => {
                        if let Err(gap) = s.apply_delta(d) {
                            // Start over from a full frame.
                            *last = None;
                            return Err(gap.to_string());
                        }
                    }
                    (None, Frame::Delta(_)) => {
                        *last = None;
                        return Err("a delta before the first full frame".into());
                    }
                }
            }
            *last = Some(id);
            if *link.borrow() != Link::Live {
                link.send_replace(Link::Live);
            }
        }
        Ok(())
    }
}

/// A failed request in a few words.
fn short(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "cannot connect".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        e.to_string()
    }
}

/// An HTTP error as the user can act on it.
fn explain(status: reqwest::StatusCode, body: &str) -> String {
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect());
    match status.as_u16() {
        401 => "the dashboard wants sign-in: give an API token (--token or FLOWDECK_TOKEN; flowdeck new-token makes one)".into(),
        403 => format!("refused (403): {detail}"),
        404 => format!("not found: {detail}"),
        _ => format!("HTTP {status}: {detail}"),
    }
}
