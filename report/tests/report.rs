//! Reporting to a standalone dashboard over real HTTP: the reported run is listed with
//! exact counts, served under its base and kept in the store; a control pressed on the
//! dashboard reaches the reporting pipeline; bad reports get 401, 400 and 413 JSON; a
//! reporter capped below its pipeline's pace sends failures first and counts what it
//! drops; and a dashboard that is down costs the pipeline nothing but the items it drops,
//! counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flowdeck_report::{Options, ReportTo};
use flowdeck_runtime::{Line, Running, Stage};
use flowdeck_server::{dashboard::Dashboard, Config};
use serde_json::Value;

const TOKEN: &str = "a-long-enough-ingest-token";

/// A standalone dashboard (no pipeline of its own) on a free port; its base URL.
async fn standalone(db: &tempfile::TempDir) -> String {
    standalone_with(db, Duration::from_secs(15), Default::default()).await
}

/// The same, marking a reporter lost after `reporter_timeout` of silence, with `alerts`.
async fn standalone_with(
    db: &tempfile::TempDir,
    reporter_timeout: Duration,
    alerts: flowdeck_server::alerts::Alerts,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        addr: listener.local_addr().unwrap(),
        refresh: Duration::from_millis(50),
        store: Some(flowdeck_store::StoreConfig::new(db.path().join("runs.db"))),
        ingest_token: Some(TOKEN.into()),
        standalone: true,
        reporter_timeout,
        alerts,
        ..Config::default()
    };
    let placeholder = flowdeck_runtime::mirror("standalone".into(), vec![], vec![], 0).0;
    let state = Dashboard::new(config).state(placeholder).unwrap();
    let app = flowdeck_server::router(state)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Two stages; every 10th item fails; `delay` of work per item; each item annotated.
fn pipeline(name: &str, delay: Duration) -> Running<u64, u64> {
    line(name, delay).build().unwrap().start()
}

/// The pipeline of [`pipeline`] with no delay, its tracker retaining 1,000 items.
fn retaining_1000(name: &str) -> Running<u64, u64> {
    line(name, Duration::ZERO)
        .retention(1_000)
        .build()
        .unwrap()
        .start()
}

fn line(name: &str, delay: Duration) -> Line<u64, u64> {
    Line::<u64>::new(name)
        .stage(Stage::map("parse", |n: u64, _cx| async move { Ok::<_, String>(n) }).workers(2))
        .stage(
            Stage::map(
                "work",
                move |n: u64, cx: flowdeck_runtime::Ctx| async move {
                    tokio::time::sleep(delay).await;
                    cx.annotate("n", n);
                    if n.is_multiple_of(10) {
                        return Err(format!("no {n}"));
                    }
                    Ok(n)
                },
            )
            .workers(4),
        )
}

/// Feeds `n` items through, waits for the end, then for the reporter to send it.
async fn run_through(
    running: Running<u64, u64>,
    n: u64,
    reporter: flowdeck_report::Reporter,
) -> flowdeck_report::ReportStats {
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..n).await;
    drop(running.input);
    running.handle.wait().await;
    tokio::time::timeout(Duration::from_secs(30), reporter.finished())
        .await
        .expect("the run's end was sent")
}

async fn get_json(url: String) -> Value {
    let res = reqwest::get(&url).await.unwrap();
    let status = res.status();
    if !status.is_success() {
        panic!("{url}: {status}: {}", res.text().await.unwrap());
    }
    res.json().await.unwrap()
}

async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_run_is_listed_served_kept_and_controlled() {
    let db = tempfile::tempdir().unwrap();
    let base = standalone(&db).await;
    let list = get_json(format!("{base}/api/v1/pipelines")).await;
    assert_eq!(list, serde_json::json!([]), "nothing reports yet");

    let running = pipeline("Nightly Import", Duration::ZERO);
    let handle = running.handle.clone();
    let reporter = handle.report_to(&base, TOKEN);
    let stats = run_through(running, 500, reporter).await;
    let totals = handle.snapshot().totals;
    assert_eq!((totals.completed, totals.failed), (450, 50));
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert!(stats.sent >= 500, "{stats:?}");

    // Listed with exact counts, served under its base, its run kept.
    let list = get_json(format!("{base}/api/v1/pipelines")).await;
    let row = &list[0];
    assert_eq!(row["slug"], "nightly-import", "{list}");
    assert_eq!(
        (row["completed"].as_u64(), row["failed"].as_u64()),
        (Some(450), Some(50))
    );
    assert_eq!(row["state"], "finished");
    // The stream's view follows within a refresh.
    eventually("its summary finished, with 50 failures", || {
        let base = base.clone();
        async move {
            let s = get_json(format!("{base}/p/nightly-import/api/v1/summary")).await;
            s["name"] == "Nightly Import" && s["status"] == "finished" && s["tasks"]["failed"] == 50
        }
    })
    .await;
    let task = get_json(format!("{base}/p/nightly-import/api/v1/tasks/10")).await;
    assert_eq!(task["detail"]["status"], "failed", "{task}");
    assert_eq!(task["detail"]["error"]["message"], "no 10");
    assert_eq!(
        task["detail"]["history"].as_array().unwrap().len(),
        6,
        "{task}"
    );
    // The item's data travels with it: its annotation.
    assert_eq!(
        task["detail"]["annotations"],
        serde_json::json!([["n", 10]]),
        "{task}"
    );
    // Its overview (the base itself, with and without the slash) and its errors page.
    for path in ["/p/nightly-import/", "/p/nightly-import"] {
        let res = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            res.text().await.unwrap().contains("total-completed"),
            "{path}: the overview"
        );
    }
    let page = reqwest::get(format!("{base}/p/nightly-import/errors"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("no 10") || page.contains("String"),
        "its errors page"
    );
    eventually("the run kept as finished", || {
        let base = base.clone();
        async move {
            let runs = get_json(format!("{base}/api/v1/runs")).await;
            runs.as_array().unwrap().iter().any(|r| {
                r["pipeline"] == "Nightly Import" && r["state"] == "finished" && r["stored"] == 500
            })
        }
    })
    .await;

    // A control pressed on the dashboard reaches a running reporter.
    let slow = pipeline("slow one", Duration::from_millis(20));
    let slow_handle = slow.handle.clone();
    let _reporter = slow_handle.report_to(&base, TOKEN);
    let input = slow.input;
    tokio::spawn(async move { input.send_all(0..100_000).await });
    eventually("the second reporter listed", || {
        let base = base.clone();
        async move {
            get_json(format!("{base}/api/v1/pipelines"))
                .await
                .as_array()
                .unwrap()
                .len()
                == 2
        }
    })
    .await;
    let res = reqwest::Client::new()
        .post(format!("{base}/p/slow-one/api/v1/stages/work/pause"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    eventually("the pause applied in the reporting pipeline", || {
        let h = slow_handle.clone();
        async move { h.snapshot().stages[1].paused }
    })
    .await;
    eventually("the dashboard shows it paused", || {
        let base = base.clone();
        async move {
            let stages = get_json(format!("{base}/p/slow-one/api/v1/stages")).await;
            stages[1]["paused"] == true
        }
    })
    .await;
    let audit = get_json(format!("{base}/api/v1/audit")).await;
    assert_eq!(audit[0]["target"], "slow one: work", "{audit}");
    slow_handle.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_are_refused_with_json_naming_the_problem() {
    let db = tempfile::tempdir().unwrap();
    let base = standalone(&db).await;
    let url = format!("{base}/api/v1/ingest");
    let good = serde_json::json!({
        "pipeline": "p", "stages": ["a"], "edges": [], "started_unix_ms": 1,
        "snapshot": null, "items": [], "dropped": 0
    });
    let post = |token: Option<&str>, body: Vec<u8>| {
        let mut req = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            (status, body)
        }
    };
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
    let (status, body) = post(None, bytes(&good)).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = post(Some("wrong-token-of-some-length"), bytes(&good)).await;
    assert_eq!(status, 401);
    let (status, body) = post(Some(TOKEN), b"{\"pipeline\": 3}".to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("pipeline"),
        "{body}"
    );
    let mut bad = good.clone();
    let item = serde_json::json!({"id": 1, "status": "queued", "stage": 9, "created_us": 5,
        "updated_us": 5, "visits": [], "parents": [], "error": null, "annotations": [],
        "history": []});
    bad["items"] = serde_json::json!([item]);
    let (status, body) = post(Some(TOKEN), bytes(&bad)).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("stage 9"),
        "{body}"
    );
    let mut wrong = item.clone();
    wrong["status"] = "done".into();
    bad["items"] = serde_json::json!([wrong]);
    let (status, body) = post(Some(TOKEN), bytes(&bad)).await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("items[0].status"),
        "{body}"
    );
    let mut bad = good.clone();
    bad["stages"] = serde_json::json!([]);
    let (status, body) = post(Some(TOKEN), bytes(&bad)).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("stages"),
        "{body}"
    );
    // Too big: the answer comes from the length alone, before the body is read (a client
    // still sending it would see the connection close instead), so this one says a length
    // and sends no body.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = base.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
        let head = format!(
            "POST /api/v1/ingest HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            9 << 20
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(
            answer.contains(r#""error":"payload_too_large""#),
            "{answer}"
        );
    }
    // Nothing of that was taken.
    let list = get_json(format!("{base}/api/v1/pipelines")).await;
    assert_eq!(list, serde_json::json!([]));
    let (status, body) = post(Some(TOKEN), bytes(&good)).await;
    assert_eq!(status, 200, "{body}");
    // A run met now: the dashboard asks for its pending questions.
    assert_eq!(
        body,
        serde_json::json!({"commands": [], "resend_questions": true})
    );
    let (_, body) = post(Some(TOKEN), bytes(&good)).await;
    assert_eq!(body, serde_json::json!({"commands": []}), "only once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_that_is_down_costs_the_pipeline_only_counted_drops() {
    // Nothing listens there: a port taken and released.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // A host that takes connections and never answers: each send hangs until its timeout.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = hole.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            held.push(socket);
        }
    });
    for (name, port) in [("refused", refused), ("silent", silent)] {
        // Its tracker retains 1,000 items: what a down dashboard can still get later.
        let running = retaining_1000(name);
        let handle = running.handle.clone();
        let reporter = handle.report_to_with(
            &format!("http://127.0.0.1:{port}"),
            TOKEN,
            Options {
                timeout: Duration::from_millis(300),
                max_backoff: Duration::from_millis(500),
                end_grace: Duration::from_millis(500),
                ..Options::default()
            },
        );
        let outputs = running.outputs;
        let drained = tokio::spawn(async move {
            let mut n = 0u64;
            while outputs.recv().await.is_ok() {
                n += 1;
            }
            n
        });
        running.input.send_all(0..5_000).await;
        drop(running.input);
        tokio::time::timeout(Duration::from_secs(30), handle.wait())
            .await
            .expect("the pipeline finishes while its dashboard is down");
        assert_eq!(drained.await.unwrap(), 4_500, "{name}");
        let stats = tokio::time::timeout(Duration::from_secs(10), reporter.finished())
            .await
            .expect("the reporter gives up on the end after its grace");
        assert_eq!(stats.sent, 0, "{name}: {stats:?}");
        assert!(stats.failures > 0, "{name}: {stats:?}");
        // Of 5,000 finished items, the 1,000 retained were still sendable when it gave up.
        assert_eq!(stats.dropped, 4_000, "{name}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reporter_slower_than_its_pipeline_sends_what_is_retained_and_counts_the_rest() {
    let db = tempfile::tempdir().unwrap();
    let base = standalone(&db).await;
    // 5,000 items, far faster than 40 items a batch; the tracker retains the last 1,000.
    let running = retaining_1000("fast");
    let handle = running.handle.clone();
    let reporter = handle.report_to_with(
        &base,
        TOKEN,
        Options {
            max_items: 40,
            ..Options::default()
        },
    );
    let stats = run_through(running, 5_000, reporter).await;
    // What left the tracker before it was sent is counted, never silently lost.
    assert!(
        stats.dropped >= 3_000 && stats.dropped + stats.sent >= 5_000,
        "{stats:?}"
    );
    // Counts are the pipeline's own, exact; the rows are those that were sent.
    let row = &get_json(format!("{base}/api/v1/pipelines")).await[0];
    assert_eq!(
        (row["completed"].as_u64(), row["failed"].as_u64()),
        (Some(4_500), Some(500)),
        "{row}"
    );
    let (mut listed, mut cursor) = (0u64, String::new());
    loop {
        let page = get_json(format!("{base}/p/fast/api/v1/tasks?limit=1000{cursor}")).await;
        listed += page["items"].as_array().unwrap().len() as u64;
        match page["next_cursor"].as_u64() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert!(
        listed >= 1_000 && listed <= stats.sent,
        "{listed} {stats:?}"
    );
    // The newest item, finished and retained at the end, is there with its detail.
    let task = get_json(format!("{base}/p/fast/api/v1/tasks/4999")).await;
    assert_eq!(task["detail"]["status"], "completed", "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_reporter_is_marked_lost_and_its_return_is_a_new_run() {
    let db = tempfile::tempdir().unwrap();
    // What the program's alert hook is told: the reporter lost is an alert too.
    let alerts = flowdeck_server::alerts::Alerts::default();
    let told = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = told.clone();
    alerts.on_alert(move |e| seen.lock().push(e.clone()));
    let base = standalone_with(&db, Duration::from_secs(1), alerts).await;
    // One batch by hand, as a process that then dies would have sent: running, one item
    // queued.
    use flowdeck_protocol::{
        report::ReportBatch, Edge, ItemDetail, ItemStatus, PipelineState, Snapshot, StageSnapshot,
        StageVisit, Totals,
    };
    let edges = vec![Edge {
        from: None,
        to: 0,
        broadcast: false,
    }];
    let batch = ReportBatch {
        pipeline: "gone".into(),
        stages: vec!["a".into()],
        edges: edges.clone(),
        started_unix_ms: 1_700_000_000_000,
        snapshot: Some(Snapshot {
            pipeline: "gone".into(),
            state: PipelineState::Running,
            uptime_ms: 500,
            started_unix_ms: 1_700_000_000_000,
            edges,
            stages: vec![StageSnapshot {
                name: "a".into(),
                ..Default::default()
            }],
            totals: Totals {
                submitted: 1,
                queued: 1,
                ..Default::default()
            },
            ..Default::default()
        }),
        items: vec![ItemDetail {
            id: 0,
            status: ItemStatus::Queued,
            stage: 0,
            created_us: 5,
            updated_us: 5,
            visits: vec![StageVisit {
                stage: 0,
                worker: None,
                attempts: 0,
                queued_us: 5,
                started_us: None,
                finished_us: None,
                outcome: None,
                input: None,
                output: None,
            }],
            parents: vec![],
            error: None,
            annotations: vec![],
            history: vec![],
        }],
        dropped: 0,
        questions: vec![],
        resources: None,
    };
    let post = || async {
        let res = reqwest::Client::new()
            .post(format!("{base}/api/v1/ingest"))
            .bearer_auth(TOKEN)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    };
    post().await;
    let row = &get_json(format!("{base}/api/v1/pipelines")).await[0];
    assert_eq!(row["state"], "running", "{row}");
    // Silent past its timeout: aborted, with a warning that says why.
    eventually("the silent run marked aborted", || {
        let base = base.clone();
        async move {
            let row = &get_json(format!("{base}/api/v1/pipelines")).await[0];
            row["state"] == "aborted" && row["warnings"] == 1
        }
    })
    .await;
    let warnings = get_json(format!("{base}/p/gone/api/v1/warnings")).await;
    let text = warnings.to_string();
    assert!(
        text.contains("no report from this pipeline") && text.contains("1 items were in progress"),
        "{warnings}"
    );
    eventually("its run kept as aborted", || {
        let base = base.clone();
        async move {
            let runs = get_json(format!("{base}/api/v1/runs")).await;
            runs.as_array()
                .unwrap()
                .iter()
                .any(|r| r["pipeline"] == "gone" && r["state"] == "aborted")
        }
    })
    .await;
    eventually("the alerts of the lost process", || {
        let told = told.clone();
        async move {
            let told = told.lock();
            let lost = told.iter().any(|e| {
                e.event == "warning.raised"
                    && e.pipeline == "gone"
                    && e.message.contains("no report from this pipeline's process")
            });
            let aborted = told
                .iter()
                .any(|e| e.event == "run.aborted" && e.pipeline == "gone");
            lost && aborted
        }
    })
    .await;
    let link = told
        .lock()
        .iter()
        .find(|e| e.event == "run.aborted")
        .unwrap()
        .link
        .clone();
    assert!(link.contains("/p/gone/runs/"), "{link}");
    // It comes back with the same run: a new run here, live again.
    post().await;
    let row = &get_json(format!("{base}/api/v1/pipelines")).await[0];
    assert_eq!(row["state"], "running", "{row}");
}

/// The pending questions of the pipeline reporting as `review`, once there are `n`.
async fn pending_questions(base: &str, n: u64) -> Value {
    for _ in 0..400 {
        let res = reqwest::get(format!("{base}/p/review/api/v1/questions?state=pending")).await;
        if let Ok(r) = res {
            if r.status().is_success() {
                let page: Value = r.json().await.unwrap();
                if page["total"] == n {
                    return page;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never {n} questions pending on the dashboard");
}

/// A standalone dashboard on `listener` that stops when `stop` turns true; `db` keeps its
/// runs.
async fn standalone_on(
    listener: tokio::net::TcpListener,
    db: &std::path::Path,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let config = Config {
        addr: listener.local_addr().unwrap(),
        refresh: Duration::from_millis(50),
        store: Some(flowdeck_store::StoreConfig::new(db.join("runs.db"))),
        ingest_token: Some(TOKEN.into()),
        standalone: true,
        ..Config::default()
    };
    let placeholder = flowdeck_runtime::mirror("standalone".into(), vec![], vec![], 0).0;
    let state = Dashboard::new(config).state(placeholder).unwrap();
    let app = flowdeck_server::router(state)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move {
        let mut stop = stop;
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    })
}

/// Questions asked in a reporting process are answered on the standalone dashboard, and
/// the answer reaches the asking item; the dashboard restarted while one waits shows it
/// again (the reporter sends its pending questions to a dashboard that does not know
/// them), and it is still answerable there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reporting_process_asks_and_a_restarted_dashboard_still_answers() {
    use flowdeck_runtime::Question;
    let (first_db, second_db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let first = standalone_on(listener, first_db.path(), stopped).await;

    let running = Line::<u64>::new("review")
        .stage(Stage::map(
            "approve",
            |n: u64, cx: flowdeck_runtime::Ctx| async move {
                let a = cx
                    .ask(
                        Question::new(format!("Keep {n}?"))
                            .body("*Really?*")
                            .options(["keep", "drop"]),
                    )
                    .await?;
                Ok::<_, String>(format!("{n}:{}", a.choice))
            },
        ))
        .build()
        .unwrap()
        .start();
    let handle = running.handle.clone();
    let _reporter = handle.report_to_with(
        &base,
        TOKEN,
        Options {
            every: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            ..Options::default()
        },
    );
    running.input.send_all([1, 2]).await;
    let pending = pending_questions(&base, 2).await;
    // By what they ask: "Keep 1?" is about the item made of 1.
    let by_item = |page: &Value, n: u64| {
        page["questions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["title"] == format!("Keep {n}?"))
            .unwrap()
            .clone()
    };
    // The body is rendered by the dashboard, from the reporter's Markdown.
    assert!(by_item(&pending, 1)["body_html"]
        .as_str()
        .unwrap()
        .contains("<em>Really?</em>"));
    let answer = |base: String, id: u64, choice: &'static str| async move {
        reqwest::Client::new()
            .post(format!("{base}/p/review/api/v1/questions/{id}/answer"))
            .json(&serde_json::json!({ "choice": choice }))
            .send()
            .await
            .unwrap()
    };
    let q1 = by_item(&pending, 1)["id"].as_u64().unwrap();
    let res = answer(base.clone(), q1, "keep").await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let out = tokio::time::timeout(Duration::from_secs(20), running.outputs.recv())
        .await
        .expect("the answer reached the reporting process")
        .unwrap();
    assert_eq!(out, "1:keep");

    // The dashboard restarts (a new process: nothing kept in memory) on the same address.
    stop.send_replace(true);
    first.await.unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (_stop_second, stopped) = tokio::sync::watch::channel(false);
    let _second = standalone_on(listener, second_db.path(), stopped).await;
    let again = pending_questions(&base, 1).await;
    let q2 = by_item(&again, 2)["id"].as_u64().unwrap();
    let res = answer(base.clone(), q2, "drop").await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let out = tokio::time::timeout(Duration::from_secs(20), running.outputs.recv())
        .await
        .expect("the answer given after the restart reached the item")
        .unwrap();
    assert_eq!(out, "2:drop");
    assert_eq!(handle.questions().closed().len(), 2);
}

/// A reporting process whose pipeline joins: the standalone dashboard shows the join's
/// groups and a joined item with every part as a parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_join_shows_its_groups_and_its_parts() {
    use flowdeck_runtime::{Graph, Joined};
    let db = tempfile::tempdir().unwrap();
    let base = standalone(&db).await;
    let mut g = Graph::<u64, u64>::new("joined");
    let split = g.add(Stage::flat_map("split", |n: u64, _cx| async move {
        Ok::<_, String>([n * 10, n * 10 + 1])
    }));
    let join = g.add_join(
        Stage::join("join", |_n: u64, j: Joined<u64>, _cx| async move {
            Ok::<_, String>(j.parts.iter().sum::<u64>())
        })
        .of(split),
    );
    g.input(split).connect(split, join).output(join);
    let running = g.build().unwrap().start();
    let handle = running.handle.clone();
    let reporter = handle.report_to(&base, TOKEN);
    run_through(running, 100, reporter).await;

    // The stream's view follows within a refresh: every group fired, of the split.
    eventually("the join's groups, all fired", || {
        let base = base.clone();
        async move {
            let stages = get_json(format!("{base}/p/joined/api/v1/stages")).await;
            let j = &stages[1]["join"];
            j["of"] == 0 && j["fired"] == 100 && j["waiting"] == 0
        }
    })
    .await;
    let done = get_json(format!(
        "{base}/p/joined/api/v1/tasks?status=completed&stage=join&limit=1000"
    ))
    .await;
    let mut joined = None;
    for id in done["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["id"].as_u64())
    {
        let t = get_json(format!("{base}/p/joined/api/v1/tasks/{id}")).await;
        if t["detail"]["parents"]
            .as_array()
            .is_some_and(|p| p.len() == 2)
        {
            joined = Some(t);
            break;
        }
    }
    let t = joined.expect("a joined item with its two parts");
    let depth1 = t["provenance"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["depth"] == 1)
        .count();
    assert_eq!(depth1, 2, "{t}");
}
