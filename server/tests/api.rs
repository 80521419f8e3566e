//! The JSON API over real HTTP: shapes, filters and cursor paging; bad input gets a 400
//! naming the problem and unknown ids a 404, never a 500; random query strings included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::HashSet, time::Duration};

use common::{pipeline, serve};
use flowdeck_server::hub::LogLimits;
use proptest::prelude::*;
use serde_json::Value;

async fn get(url: &str) -> (u16, Value) {
    let res = reqwest::get(url).await.unwrap();
    let status = res.status().as_u16();
    let ty = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        ty.starts_with("application/json"),
        "{url}: content-type {ty}"
    );
    (status, res.json().await.unwrap())
}

/// A finished run of 600 items with failures and retries, and its server.
async fn finished_run() -> (String, flowdeck_runtime::PipelineHandle) {
    let running = pipeline(10_000);
    let handle = running.handle.clone();
    let base = serve(handle.clone(), 50, LogLimits::default()).await;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..600u64).await;
    drop(running.input);
    tokio::time::timeout(Duration::from_secs(60), handle.wait())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    (base, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_describes_the_pipeline() {
    let (base, handle) = finished_run().await;
    let (code, summary) = get(&format!("{base}/api/v1/summary")).await;
    assert_eq!(code, 200);
    assert_eq!(summary["name"], "stream-test");
    assert_eq!(summary["status"], "finished");
    assert_eq!(summary["workers"]["total"], 9);
    let t = &summary["tasks"];
    assert_eq!(
        t["completed"].as_u64().unwrap() + t["failed"].as_u64().unwrap(),
        600
    );

    let (_, stages) = get(&format!("{base}/api/v1/stages")).await;
    assert_eq!(stages.as_array().unwrap().len(), 3);
    assert_eq!(stages[1]["name"], "b");
    let (_, workers) = get(&format!("{base}/api/v1/workers")).await;
    assert_eq!(workers.as_array().unwrap().len(), 9);
    assert_eq!(workers[0]["stage"], "a");

    let (_, errors) = get(&format!("{base}/api/v1/errors")).await;
    assert_eq!(errors["total"], handle.tracker().errors().total);
    assert!(errors["total"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_filter_and_page_by_cursor() {
    let (base, handle) = finished_run().await;
    // Every item once, newest first, across pages of 64.
    let mut seen = Vec::new();
    let mut cursor: Option<u64> = None;
    loop {
        let url = match cursor {
            Some(c) => format!("{base}/api/v1/tasks?limit=64&cursor={c}"),
            None => format!("{base}/api/v1/tasks?limit=64"),
        };
        let (code, page) = get(&url).await;
        assert_eq!(code, 200);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_u64().unwrap()),
        );
        match page["next_cursor"].as_u64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 600);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        600,
        "no item twice"
    );
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");

    let (_, failed) = get(&format!("{base}/api/v1/tasks?status=failed&limit=1000")).await;
    let failed = failed["items"].as_array().unwrap().clone();
    assert_eq!(failed.len() as u64, handle.tracker().errors().total);
    assert!(failed.iter().all(|i| i["status"] == "failed"));
    let (_, at_b) = get(&format!(
        "{base}/api/v1/tasks?status=failed&stage=b&limit=1000"
    ))
    .await;
    assert!(at_b["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["stage"] == 1));
    let (_, broken) = get(&format!("{base}/api/v1/tasks?q=broken&limit=1000")).await;
    let broken = broken["items"].as_array().unwrap();
    assert!(!broken.is_empty());
    assert!(broken
        .iter()
        .all(|i| i["error"]["message"].as_str().unwrap().contains("broken")));

    let id = seen[10];
    let (code, task) = get(&format!("{base}/api/v1/tasks/{id}")).await;
    assert_eq!(code, 200);
    assert_eq!(task["detail"]["id"], id);
    assert_eq!(task["provenance"][0]["id"], id);
    assert_eq!(task["stage_names"], serde_json::json!(["a", "b", "c"]));

    // A failure shows the input it failed on (the stages capture failures), at the stage
    // where it failed, and says it can be retried.
    let f = &failed[0];
    let (_, task) = get(&format!("{base}/api/v1/tasks/{}", f["id"])).await;
    let visits = task["detail"]["visits"].as_array().unwrap();
    let at = visits.iter().find(|v| v["stage"] == f["stage"]).unwrap();
    assert_eq!(at["input"]["text"], f["id"].to_string(), "{at}");
    assert_eq!(task["retryable"], true);
    assert!(visits
        .iter()
        .filter(|v| v["stage"] != f["stage"])
        .all(|v| v.get("input").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_400_naming_the_problem() {
    let (base, _handle) = finished_run().await;
    for (query, names) in [
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("limit=ten", "invalid digit"),
        ("status=bogus", "bogus"),
        ("stage=nope", "nope"),
        ("colour=red", "colour"),
        ("cursor=-4", "invalid digit"),
    ] {
        let (code, body) = get(&format!("{base}/api/v1/tasks?{query}")).await;
        assert_eq!(code, 400, "{query}");
        assert_eq!(body["error"], "bad_request");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(names), "{query}: {message}");
    }
    let (code, body) = get(&format!("{base}/api/v1/tasks/abc")).await;
    assert_eq!((code, body["error"].as_str()), (400, Some("bad_request")));
    let (code, body) = get(&format!("{base}/api/v1/tasks/99999999")).await;
    assert_eq!((code, body["error"].as_str()), (404, Some("not_found")));
    let (code, _) = get(&format!("{base}/api/v1/no-such-thing")).await;
    assert_eq!(code, 404);
    // A body over the limit is refused before any handler reads it.
    let res = reqwest::Client::new()
        .post(format!("{base}/api/view"))
        .body(vec![b'x'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_security_headers() {
    let running = pipeline(100);
    let handle = running.handle.clone();
    let base = serve(handle.clone(), 50, LogLimits::default()).await;
    let (code, body) = get(&format!("{base}/readyz")).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("ready")));
    drop(running.input);
    handle.wait().await;
    let (code, body) = get(&format!("{base}/readyz")).await;
    assert_eq!((code, body["pipeline"].as_str()), (503, Some("finished")));
    let (code, _) = get(&format!("{base}/healthz")).await;
    assert_eq!(code, 200, "alive even when the pipeline is done");

    // A page: its policy trusts only the scripts carrying this response's nonce.
    let res = reqwest::get(format!("{base}/")).await.unwrap();
    let h = res.headers().clone();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no nonce in {csp}"))
        .to_owned();
    assert!(nonce.len() >= 16, "{nonce}");
    let html = res.text().await.unwrap();
    let scripts = html.matches("<script").count();
    assert!(scripts > 0);
    assert_eq!(
        html.matches(&format!("<script nonce=\"{nonce}\"")).count()
            + html
                .matches(&format!("<script type=\"module\" nonce=\"{nonce}\""))
                .count(),
        scripts,
        "every inline script carries the nonce: {html}"
    );
    let again = reqwest::get(format!("{base}/")).await.unwrap();
    assert!(
        !again.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains(&nonce),
        "a fresh nonce per response"
    );
    // Not a page: no script at all.
    let res = reqwest::get(format!("{base}/api/v1/summary"))
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'none'"), "{csp}");
}

/// [`finished_run`] on a runtime of its own, for the property tests' synchronous runner.
fn finished_run_blocking() -> (
    tokio::runtime::Runtime,
    String,
    flowdeck_runtime::PipelineHandle,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (base, handle) = rt.block_on(finished_run());
    (rt, base, handle)
}

#[test]
fn random_query_strings_never_get_a_500() {
    let (rt, base, _handle) = finished_run_blocking();
    let client = reqwest::Client::new();
    let key = prop::sample::select(vec![
        "status", "stage", "q", "limit", "cursor", "x", "", "names", "range", "step", "agg",
        "level", "source", "since",
    ]);
    let value = prop_oneof![
        "[a-z0-9%&=+ -]{0,12}",
        any::<i64>().prop_map(|n| n.to_string()),
        Just("failed".to_string()),
        Just("b".to_string()),
    ];
    let query = prop::collection::vec((key, value), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
            .collect::<Vec<_>>()
            .join("&")
    });
    let path = prop::sample::select(vec![
        "/api/v1/tasks",
        "/api/v1/summary",
        "/api/v1/tasks/1",
        "/api/v1/metrics",
        "/api/v1/logs",
    ]);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(200));
    runner
        .run(&(path, query), |(path, query)| {
            let (status, is_json) = rt.block_on(async {
                let res = client
                    .get(format!("{base}{path}?{query}"))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let body = res.bytes().await.unwrap();
                (status, serde_json::from_slice::<Value>(&body).is_ok())
            });
            prop_assert!(
                matches!(status, 200 | 400 | 404),
                "{path}?{query} answered {status}"
            );
            prop_assert!(is_json, "{path}?{query} answered a body that is not JSON");
            Ok(())
        })
        .unwrap();
}

async fn post(url: &str, body: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_actions_work_and_are_audited() {
    let running = pipeline(1_000);
    let handle = running.handle.clone();
    let base = serve(handle.clone(), 50, LogLimits::default()).await;

    let (code, _) = post(&format!("{base}/api/v1/stages/b/pause"), Some("{}")).await;
    assert_eq!(code, 200);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(handle.snapshot().stages[1].paused);
    let (code, _) = post(&format!("{base}/api/v1/stages/b/resume"), Some("{}")).await;
    assert_eq!(code, 200);
    assert!(!handle.snapshot().stages[1].paused);
    let (code, _) = post(
        &format!("{base}/api/v1/stages/c/workers"),
        Some(r#"{"workers": 5}"#),
    )
    .await;
    assert_eq!(code, 200);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(handle.snapshot().stages[2].workers.len(), 5);

    // Refusals name the problem.
    for (path, body, want) in [
        ("stages/zzz/pause", Some("{}"), 404),
        ("stages/c/workers", Some(r#"{"workers": 0}"#), 400),
        ("stages/c/workers", Some(r#"{"workers": "many"}"#), 400),
        ("stages/c/workers", Some("{}"), 400),
        ("stages/b/pause", None, 400),
        ("tasks/abc/cancel", Some("{}"), 400),
        ("tasks/424242/retry", Some("{}"), 404),
    ] {
        let (code, reply) = post(&format!("{base}/api/v1/{path}"), body).await;
        assert_eq!(code, want, "{path} {body:?}: {reply}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let (code, _) = post(&format!("{base}/api/v1/pipeline/drain"), Some("{}")).await;
    assert_eq!(code, 200);
    tokio::time::timeout(Duration::from_secs(10), handle.wait())
        .await
        .unwrap();

    let (_, audit) = get(&format!("{base}/api/v1/audit")).await;
    let audit = audit.as_array().unwrap();
    assert_eq!(audit.len(), 11, "every action, refused ones too");
    assert_eq!(audit[0]["action"], "pause");
    assert_eq!(audit[0]["outcome"], "ok");
    assert_eq!(audit[2]["target"], "c to 5 workers");
    assert!(audit[3]["outcome"].as_str().unwrap().contains("zzz"));
    assert_eq!(audit[10]["action"], "drain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_worker_is_restarted_from_the_api_and_its_item_retried() {
    use flowdeck_runtime::{Line, RetryPolicy, Stage};
    // Item 5's first attempt never ends.
    let running = Line::<u64>::new("hang")
        .stage(
            Stage::map("work", |n: u64, cx: flowdeck_runtime::Ctx| async move {
                if n == 5 && cx.attempt() == 1 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, String>(n)
            })
            .workers(1)
            .retry(RetryPolicy::attempts(2)),
        )
        .build()
        .unwrap()
        .start();
    let handle = running.handle.clone();
    let base = serve(handle.clone(), 50, LogLimits::default()).await;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    let mut hung = 0;
    for n in 0..10u64 {
        let id = running.input.send(n).await.unwrap();
        if n == 5 {
            hung = id;
        }
    }
    let restart = |worker: &str| format!("{base}/api/v1/stages/work/workers/{worker}/restart");
    for (url, body, want) in [
        (restart("0"), None, 400),
        (restart("zero"), Some("{}"), 400),
        (restart("7"), Some("{}"), 404),
        (
            format!("{base}/api/v1/stages/nope/workers/0/restart"),
            Some("{}"),
            404,
        ),
    ] {
        let (code, reply) = post(&url, body).await;
        assert_eq!(code, want, "{url}: {reply}");
        assert!(
            reply["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{reply}"
        );
    }
    // Wait, however long it takes here, for the worker to hang on item 5.
    let mut waited = 0;
    while handle.tracker().status(hung) != Some(flowdeck_runtime::protocol::ItemStatus::Running) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
        assert!(waited < 1500, "item {hung} never ran");
    }
    let (code, reply) = post(&restart("0"), Some("{}")).await;
    assert_eq!(code, 200, "{reply}");
    drop(running.input);
    tokio::time::timeout(Duration::from_secs(30), handle.wait())
        .await
        .unwrap();
    let (_, task) = get(&format!("{base}/api/v1/tasks/{hung}")).await;
    assert_eq!(task["detail"]["status"], "completed", "{task}");
    let said = task.to_string();
    assert!(said.contains("restarted by anonymous"), "{said}");
    // Nothing runs now: a restart has nothing to drop.
    let (code, reply) = post(&restart("0"), Some("{}")).await;
    assert_eq!(code, 409, "{reply}");
    let (_, audit) = get(&format!("{base}/api/v1/audit")).await;
    let ok = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "restart" && e["outcome"] == "ok")
        .expect("the restart is audited");
    assert_eq!(ok["target"], "work worker 0");
    assert_eq!(ok["user"], "anonymous");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readonly_dashboard_refuses_control_with_403() {
    let running = pipeline(100);
    let handle = running.handle.clone();
    let config = flowdeck_server::Config {
        readonly: true,
        ..flowdeck_server::Config::default()
    };
    let base = common::serve_config(handle.clone(), config).await;
    for path in [
        "stages/a/pause",
        "stages/a/resume",
        "stages/a/workers/0/restart",
        "pipeline/stop",
        "tasks/1/cancel",
    ] {
        let (code, reply) = post(&format!("{base}/api/v1/{path}"), Some("{}")).await;
        assert_eq!(
            (code, reply["error"].as_str()),
            (403, Some("forbidden")),
            "{path}"
        );
    }
    assert!(!handle.snapshot().stages[0].paused);
    assert_eq!(handle.state(), flowdeck_protocol::PipelineState::Running);
    let (_, summary) = get(&format!("{base}/api/v1/summary")).await;
    assert_eq!(summary["status"], "running", "reading still works");
}

#[test]
fn random_control_bodies_never_get_a_500() {
    let (rt, base, _handle) = finished_run_blocking();
    let client = reqwest::Client::new();
    let path = prop::sample::select(vec![
        "/api/v1/stages/a/pause",
        "/api/v1/stages/a/resume",
        "/api/v1/stages/b/workers",
        "/api/v1/stages/nope/workers",
        "/api/v1/tasks/3/retry",
        "/api/v1/tasks/x/cancel",
        "/api/v1/pipeline/drain",
    ]);
    let body = prop_oneof![
        Just("{}".to_owned()),
        any::<i64>().prop_map(|n| format!(r#"{{"workers":{n}}}"#)),
        "[ -~]{0,40}",
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        Just(r#"{"workers":2,"extra":1}"#.to_owned()),
    ];
    let ty = prop::sample::select(vec!["application/json", "text/plain", ""]);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(200));
    runner
        .run(&(path, body, ty), |(path, body, ty)| {
            let (status, is_json) = rt.block_on(async {
                let mut req = client.post(format!("{base}{path}")).body(body.clone());
                if !ty.is_empty() {
                    req = req.header("content-type", ty);
                }
                let res = req.send().await.unwrap();
                let status = res.status().as_u16();
                let bytes = res.bytes().await.unwrap();
                (status, serde_json::from_slice::<Value>(&bytes).is_ok())
            });
            prop_assert!(
                matches!(status, 200 | 400 | 404 | 409),
                "{path} with {ty} {body:?} answered {status}"
            );
            prop_assert!(
                is_json,
                "{path} with {body:?} answered a body that is not JSON"
            );
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_unless_origins_are_configured() {
    let preflight = |base: String, origin: &'static str| async move {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{base}/api/v1/summary"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap()
    };
    let running = pipeline(100);
    let closed =
        common::serve_config(running.handle.clone(), flowdeck_server::Config::default()).await;
    let res = preflight(closed, "https://tools.example").await;
    assert!(res.headers().get("access-control-allow-origin").is_none());

    let open = common::serve_config(
        running.handle.clone(),
        flowdeck_server::Config {
            cors_origins: vec!["https://tools.example".into()],
            ..flowdeck_server::Config::default()
        },
    )
    .await;
    let res = preflight(open.clone(), "https://tools.example").await;
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://tools.example"
    );
    let allowed = res.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    // Never with credentials: a cookie session cannot be used from another site.
    assert!(res
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    let res = preflight(open, "https://elsewhere.example").await;
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_show_in_the_api_and_on_the_workers_page() {
    use flowdeck_protocol::{ProcessSnapshot, ProcessStage, WorkerSnapshot, WorkerState};
    let running = pipeline(1000);
    std::mem::forget(running.input);
    let process = ProcessSnapshot {
        process: "gpu-3:4242".into(),
        host: "gpu-3".into(),
        pid: 4242,
        version: "1.2.3".into(),
        started_unix_ms: 1_796_000_000_000,
        silent_ms: 4_100,
        lost: true,
        stages: vec![ProcessStage {
            name: "b".into(),
            done: 17,
            failed: 2,
            redelivered: 5,
            workers: vec![WorkerSnapshot {
                id: 0,
                state: WorkerState::Busy,
                current_item: Some(42),
                processed: 17,
                ..WorkerSnapshot::default()
            }],
            ..ProcessStage::default()
        }],
        resources: Some(flowdeck_protocol::Resources {
            cpu_ratio: Some(0.5),
            cores: 8,
            resident_bytes: Some(3 << 30),
            ..Default::default()
        }),
    };
    let shown = process.clone();
    running.handle.set_processes(move || vec![shown.clone()]);
    let base = serve(running.handle, 50, LogLimits::default()).await;
    tokio::time::sleep(Duration::from_millis(150)).await;

    let (status, body) = get(&format!("{base}/api/v1/processes")).await;
    assert_eq!(status, 200);
    let listed: Vec<ProcessSnapshot> = serde_json::from_value(body).unwrap();
    assert_eq!(listed, vec![process]);

    let page = reqwest::get(format!("{base}/workers"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for shown in [
        "b on gpu-3:4242",
        "v1.2.3 · heartbeat 4.1 s ago · 17 done, 2 failed, 5 redelivered",
        ">lost<",
        "#42",
    ] {
        assert!(page.contains(shown), "{shown:?} not on the workers page");
    }
}
