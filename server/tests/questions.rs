//! Questions over real HTTP: a stage asks, the API lists the question (its Markdown body
//! rendered, HTML shown as text), and answers it: the first valid answer reaches the item;
//! a bad choice or form field is a 400 naming it and leaves the question open; a second
//! answer is a 409 naming who answered; a viewer, someone the question does not name and
//! an unknown id are refused; each attempt is in the audit log. The stream carries the
//! questions and the count, and Prometheus the waiting items.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{sync::Arc, time::Duration};

use common::serve_config;
use flowdeck_runtime::{Line, PipelineHandle, Question, Stage};
use flowdeck_server::{
    auth::{new_token, Auth, AuthConfig, Role, TokenConfig},
    Config,
};
use reqwest::Client;
use serde_json::{json, Value};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Fix {
    /// The corrected title.
    title: String,
    #[schemars(range(min = 1, max = 5))]
    score: u8,
}

/// A pipeline whose one stage asks about every item: items under 10 with a form and
/// anyone may answer, the others only for `ada` (or role `ops`).
fn asking() -> flowdeck_runtime::Running<u32, (u32, String, Option<String>)> {
    Line::<u32>::new("review")
        .stage(
            Stage::map("approve", |n: u32, cx| async move {
                let q = Question::new(format!("Publish summary {n}?"))
                    .body("**Summary** <script>alert(1)</script> [x](javascript:alert(1))")
                    .options(["publish", "rewrite"]);
                if n < 10 {
                    let a = cx.ask(q.form::<Fix>()).await?;
                    Ok::<_, String>((n, a.choice, a.data.map(|f| f.title)))
                } else {
                    let a = cx.ask(q.assignees(["ada", "ops"])).await?;
                    Ok((n, a.choice, None))
                }
            })
            .workers(2),
        )
        .build()
        .unwrap()
        .start()
}

struct Server {
    base: String,
    http: Client,
    tokens: [(String, &'static str); 3],
    handle: PipelineHandle,
}

async fn server() -> (
    Server,
    flowdeck_runtime::Running<u32, (u32, String, Option<String>)>,
) {
    let tokens = [
        ("ada", Role::Admin),
        ("bob", Role::Admin),
        ("vic", Role::Viewer),
    ]
    .map(|(name, role)| {
        let (token, sha256) = new_token();
        (
            token,
            TokenConfig {
                name: name.into(),
                sha256,
                role,
            },
            name,
        )
    });
    let auth = Auth::new(AuthConfig {
        users: vec![],
        tokens: tokens.iter().map(|t| t.1.clone()).collect(),
        session_minutes: 60,
        login_attempts_per_minute: 10,
        secure_cookie: false,
        trusted_proxies: vec![],
    })
    .unwrap();
    let running = asking();
    let handle = running.handle.clone();
    let config = Config {
        auth: Some(Arc::new(auth)),
        refresh: Duration::from_millis(50),
        ..Config::default()
    };
    let base = serve_config(handle.clone(), config).await;
    let server = Server {
        base,
        http: Client::new(),
        tokens: tokens.map(|(token, _, name)| (token, name)),
        handle,
    };
    (server, running)
}

impl Server {
    fn token(&self, name: &str) -> &str {
        &self.tokens.iter().find(|t| t.1 == name).unwrap().0
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token("ada"))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    async fn answer(&self, who: &str, id: u64, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/api/v1/questions/{id}/answer", self.base))
            .bearer_auth(self.token(who))
            .json(&body)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    /// Waits until `n` questions are pending; returns them by item.
    async fn pending(&self, n: usize) -> Vec<Value> {
        for _ in 0..500 {
            let (_, page) = self.get("/api/v1/questions?state=pending").await;
            let mut qs = page["questions"].as_array().unwrap().clone();
            if qs.len() >= n {
                qs.sort_by_key(|q| q["item"].as_u64());
                return qs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("never {n} questions pending");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_are_listed_answered_once_and_refused_with_reasons() {
    let (s, running) = server().await;
    running.input.send_all([1, 11]).await;
    let qs = s.pending(2).await;
    let (form, named) = (&qs[0], &qs[1]);
    let (fid, nid) = (form["id"].as_u64().unwrap(), named["id"].as_u64().unwrap());
    assert_eq!(form["options"], json!(["publish", "rewrite"]));
    assert_eq!(form["fields"][0]["name"], "title");
    assert_eq!(form["fields"][1]["type"], "integer");
    let html = form["body_html"].as_str().unwrap();
    assert!(html.contains("<strong>Summary</strong>"), "{html}");
    assert!(
        !html.contains("<script") && !html.contains("javascript:"),
        "{html}"
    );
    assert_eq!(named["assignees"], json!(["ada", "ops"]));

    // The summary counts them (from the stream's next frame); the items are waiting.
    let mut summary = Value::Null;
    for _ in 0..500 {
        summary = s.get("/api/v1/summary").await.1;
        if summary["questions"] == 2 && summary["tasks"]["waiting"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(summary["questions"], 2, "{summary}");
    assert_eq!(summary["tasks"]["waiting"], 2, "{summary}");
    let (_, waiting) = s.get("/api/v1/tasks?status=waiting").await;
    assert_eq!(waiting["items"].as_array().unwrap().len(), 2, "{waiting}");

    // Refusals: each leaves the question open.
    let (code, err) = s
        .answer("ada", fid, json!({"choice": "maybe", "data": {}}))
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (400, Some("choice")),
        "{err}"
    );
    let (code, err) = s
        .answer(
            "ada",
            fid,
            json!({"choice": "publish", "data": {"title": "T", "score": 9}}),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (400, Some("data.score")),
        "{err}"
    );
    assert!(
        err["message"].as_str().unwrap().contains("at most 5"),
        "{err}"
    );
    let (code, err) = s
        .answer(
            "ada",
            fid,
            json!({"choice": "publish", "data": {"score": 2}}),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (400, Some("data.title")),
        "{err}"
    );
    let (code, err) = s.answer("vic", fid, json!({"choice": "publish"})).await;
    assert_eq!(code, 403, "a viewer: {err}");
    let (code, err) = s.answer("bob", nid, json!({"choice": "publish"})).await;
    assert_eq!(code, 403, "not named: {err}");
    assert!(err["message"].as_str().unwrap().contains("ada"), "{err}");
    let (code, _) = s.answer("ada", 999_999, json!({"choice": "publish"})).await;
    assert_eq!(code, 404);
    let (code, _) = s.get("/api/v1/questions/nope").await;
    assert_eq!(code, 400);
    assert_eq!(s.handle.questions().pending_count(), 2, "still open");

    // The first valid answer wins and reaches the item; the second is a 409 naming it.
    let (code, q) = s
        .answer(
            "bob",
            fid,
            json!({"choice": "publish", "data": {"title": "Fixed", "score": 4}}),
        )
        .await;
    assert_eq!(code, 200, "{q}");
    assert_eq!(
        (q["state"].as_str(), q["answer"]["by"].as_str()),
        (Some("answered"), Some("bob"))
    );
    let (code, err) = s
        .answer(
            "ada",
            fid,
            json!({"choice": "rewrite", "data": {"title": "X", "score": 1}}),
        )
        .await;
    assert_eq!(code, 409, "{err}");
    assert!(err["message"].as_str().unwrap().contains("by bob"), "{err}");
    let (code, _) = s.answer("ada", nid, json!({"choice": "rewrite"})).await;
    assert_eq!(code, 200);
    let mut outs = vec![
        running.outputs.recv().await.unwrap(),
        running.outputs.recv().await.unwrap(),
    ];
    outs.sort();
    assert_eq!(
        outs,
        [
            (1, "publish".to_owned(), Some("Fixed".to_owned())),
            (11, "rewrite".to_owned(), None)
        ]
    );

    let (_, page) = s.get("/api/v1/questions?state=answered").await;
    assert_eq!(page["total"], 2, "{page}");
    let (_, one) = s.get(&format!("/api/v1/questions/{fid}")).await;
    assert_eq!(one["answer"]["data"]["title"], "Fixed");
    // Every attempt is audited with who, and what.
    let (_, audit) = s.get("/api/v1/audit").await;
    let answers: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "answer")
        .map(|e| {
            (
                e["user"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        answers.contains(&("bob".into(), "ok: publish".into())),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|(u, o)| u == "vic" && o.contains("viewer")),
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|(_, o)| o.starts_with("ok")).count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_carries_questions_and_prometheus_the_waiting_items() {
    use eventsource_stream::Eventsource;
    use futures::StreamExt;
    let (s, running) = server().await;
    let res = s
        .http
        .get(format!("{}/api/events", s.base))
        .bearer_auth(s.token("ada"))
        .send()
        .await
        .unwrap();
    let mut events = res.bytes_stream().eventsource();
    running.input.send(12).await.unwrap();
    let mut state: Option<flowdeck_protocol::stream::LiveState> = None;
    let asked = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(e)) = events.next().await {
            let frame: flowdeck_protocol::stream::Frame = match e.event.as_str() {
                "full" => {
                    flowdeck_protocol::stream::Frame::Full(serde_json::from_str(&e.data).unwrap())
                }
                _ => {
                    flowdeck_protocol::stream::Frame::Delta(serde_json::from_str(&e.data).unwrap())
                }
            };
            let st = state.get_or_insert_with(Default::default);
            st.apply(frame).unwrap();
            if st.snapshot.questions_pending == 1 {
                if let Some(q) = st.pending_questions().next() {
                    return q.clone();
                }
            }
        }
        panic!("the stream ended");
    })
    .await
    .expect("no question on the stream");
    assert_eq!(asked.item, 0);
    let text = s
        .http
        .get(format!("{}/prometheus", s.base))
        .bearer_auth(s.token("ada"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"flowdeck_items{pipeline="review",state="waiting"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"flowdeck_questions_pending{pipeline="review"} 1"#),
        "{text}"
    );
    common::promtool::promtool(&text).unwrap();
}
