//! The OpenAPI document against the real server: every documented operation is called,
//! its status must be one the document lists, and its JSON body must match the schema the
//! document gives for that status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{pipeline_asking, serve_state};
use flowdeck_server::{
    dashboard::{Custom, Dashboard, Page, Source, Table, View, WidgetCx},
    Config,
};
use serde_json::{json, Value};

/// Checks `v` against the subset of JSON Schema the document uses; returns the first
/// mismatch with its path.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return check(doc, &doc["components"]["schemas"][name], v, at);
    }
    if let Some(any) = schema["anyOf"].as_array() {
        return any
            .iter()
            .find(|s| check(doc, s, v, at).is_ok())
            .map(|_| ())
            .ok_or_else(|| format!("{at}: {v} matches none of anyOf"));
    }
    if let Some(all) = schema["allOf"].as_array() {
        return all.iter().try_for_each(|s| check(doc, s, v, at));
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(v) {
            return Err(format!("{at}: {v} not in {options:?}"));
        }
    }
    let ok = match schema["type"].as_str() {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_u64() || v.is_i64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some("null") => v.is_null(),
        Some(t) => return Err(format!("{at}: the test knows no type {t}")),
    };
    if !ok {
        return Err(format!("{at}: {v} is not {}", schema["type"]));
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), v.as_f64()) {
        if n < min {
            return Err(format!("{at}: {n} < {min}"));
        }
    }
    if let Some(required) = schema["required"].as_array() {
        for key in required.iter().filter_map(Value::as_str) {
            if v.get(key).is_none() {
                return Err(format!("{at}: missing {key}"));
            }
        }
    }
    if let (Some(props), Some(o)) = (schema["properties"].as_object(), v.as_object()) {
        for (key, sub) in props {
            if let Some(x) = o.get(key) {
                check(doc, sub, x, &format!("{at}.{key}"))?;
            }
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(prefix) = schema["prefixItems"].as_array() {
            for (i, (s, x)) in prefix.iter().zip(items).enumerate() {
                check(doc, s, x, &format!("{at}[{i}]"))?;
            }
        } else if schema["items"].is_object() {
            for (i, x) in items.iter().enumerate() {
                check(doc, &schema["items"], x, &format!("{at}[{i}]"))?;
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_answers_as_documented() {
    // Item 77 waits for a person at the first stage, so that the questions' endpoints have
    // a question to show and answer.
    let running = pipeline_asking(10_000, Some(77));
    let handle = running.handle.clone();
    // A dashboard with one custom page, so that its spec can be asked for.
    // And a run store, so that the runs' endpoints answer.
    let db = tempfile::tempdir().unwrap();
    let config = Config {
        refresh: Duration::from_millis(50),
        store: Some(flowdeck_store::StoreConfig::new(db.path().join("runs.db"))),
        ingest_token: Some("openapi-test-ingest-token".into()),
        ..Config::default()
    };
    // An alert named as the test names a path's `{name}`, so that its test can be sent
    // (to a port nobody listens on: its delivery fails in the background).
    let dash = Dashboard::new(config.clone())
        .alert(flowdeck_server::alerts::Alert::webhook(
            "b",
            flowdeck_server::alerts::Secret::new("http://127.0.0.1:9/hook"),
            [flowdeck_server::alerts::On::Run],
        ))
        .page(
            Page::new("p", "P")
                .widget(Table::new("Stages", &Source::stages()), (0, 0))
                .widget(
                    Custom::view("Queue", |cx: WidgetCx| async move {
                        Ok::<_, String>(
                            View::new().stat("Queued", cx.snapshot.totals.queued.to_string()),
                        )
                    }),
                    (2, 0),
                ),
        );
    let state = dash.state(handle.clone()).unwrap();
    let base = serve_state(move |_| state, config).await;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..300u64).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Something to cancel: items held in the queue of a paused stage.
    handle.pause("a").unwrap();
    let queued = running.input.send(1000).await.unwrap();
    let http = reqwest::Client::new();
    let doc: Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let failed = handle.tracker().errors().recent[0].id;
    let done = handle.tracker().items(
        Some(flowdeck_runtime::protocol::ItemStatus::Completed),
        None,
        1,
    )[0]
    .id;

    let question = loop {
        if let Some(q) = handle.questions().pending().first() {
            break q.id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut called = 0;
    // Reads first, then control (stop last: it ends the pipeline).
    let mut ops: Vec<(String, String, Value)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((path.clone(), method.clone(), op.clone()));
        }
    }
    ops.sort_by_key(|(path, method, _)| {
        let ends = path.ends_with("/drain") as u8 + 2 * path.ends_with("/stop") as u8;
        (method == "post", ends, path.clone())
    });
    for (path, method, op) in ops {
        // A failure's detail carries its captured input and whether it can be retried.
        let id = if path.contains("/retry") || path == "/api/v1/tasks/{id}" {
            failed
        } else if path.contains("/cancel") {
            queued
        } else {
            done
        };
        let id = if path.starts_with("/api/v1/questions/") {
            question
        } else {
            id
        };
        // The live run is the store's first.
        let id = if path.starts_with("/api/v1/runs/") {
            1
        } else {
            id
        };
        let id = if path.contains("/widgets/") {
            "queue".to_owned()
        } else {
            id.to_string()
        };
        let url = format!(
            "{base}{}",
            path.replace("{name}", "b")
                .replace("{item}", &done.to_string())
                .replace("{id}", &id)
                .replace("{worker}", "0")
                .replace("{slug}", "p")
                .replace("{source}", "stages")
        );
        // A run as it was at a moment needs the moment.
        let url = if path.ends_with("/at") {
            format!("{url}?ms=0")
        } else {
            url
        };
        let req = match method.as_str() {
            "get" => http.get(&url),
            // A report from another process, with the reporters' token.
            "post" if path == "/api/v1/ingest" => http
                .post(&url)
                .bearer_auth("openapi-test-ingest-token")
                .json(&json!({
                    "pipeline": "reported", "stages": ["a"], "edges": [{"from": null, "to": 0}],
                    "started_unix_ms": 1, "snapshot": null, "items": [], "dropped": 0
                })),
            "post" => {
                let body = if path.ends_with("/workers") {
                    json!({"workers": 2})
                } else if path.ends_with("/answer") {
                    json!({"choice": "yes"})
                } else if path == "/api/v1/tasks/retry" || path == "/api/v1/tasks/cancel" {
                    // Only counted: the single-task actions below need their tasks as
                    // they are.
                    json!({"stage": "b", "q": "-x", "dry_run": true})
                } else {
                    json!({})
                };
                http.post(&url).json(&body)
            }
            m => panic!("{path}: the test knows no method {m}"),
        };
        let res = if path == "/api/events" || path.ends_with("/stream") {
            // The stream never ends: its status and type are what can be checked.
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-type"], "text/event-stream");
            called += 1;
            continue;
        } else {
            req.send().await.unwrap()
        };
        let status = res.status().as_u16().to_string();
        let documented = &op["responses"][&status];
        assert!(
            documented.is_object(),
            "{method} {path}: {status} is not documented"
        );
        let ty = res.headers()["content-type"].to_str().unwrap().to_owned();
        let (media, body) = documented["content"]
            .as_object()
            .and_then(|c| c.iter().next())
            .unwrap_or_else(|| panic!("{method} {path}: no content documented"));
        assert!(
            ty.starts_with(media.as_str()),
            "{method} {path}: {ty}, documented {media}"
        );
        let text = res.text().await.unwrap();
        if !body["schema"].is_null() {
            let value: Value = serde_json::from_str(&text).unwrap();
            check(&doc, &body["schema"], &value, &format!("{method} {path}")).unwrap();
        }
        // A worker that runs no attempt now has nothing to restart: 409, as documented.
        let restart_idle = path.ends_with("/restart") && status == "409";
        assert!(
            status.starts_with('2') || restart_idle,
            "{method} {path}: {status} {text}"
        );
        called += 1;
    }
    assert!(called >= 29, "{called} operations");

    // And an error answer matches the Error schema.
    let res = http
        .get(format!("{base}/api/v1/tasks?limit=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    check(
        &doc,
        &json!({"$ref": "#/components/schemas/Error"}),
        &body,
        "400",
    )
    .unwrap();
}
