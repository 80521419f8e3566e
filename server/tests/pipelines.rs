//! A dashboard of several pipelines, over real HTTP: `/` leads to their list, the list's
//! API counts each exactly (the live run from its snapshot, earlier runs from the store)
//! and sorts and filters on the server, and each pipeline's pages, API, stream, server
//! functions and controls under `/p/{slug}/` reach that pipeline and no other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::serve_state;
use flowdeck_runtime::{Line, Running, Stage};
use flowdeck_server::{dashboard::Dashboard, Config};
use serde_json::Value;

/// A one-stage pipeline named `name` whose every `fail_every`th item fails.
fn named(name: &str, fail_every: u64) -> Running<u64, u64> {
    Line::<u64>::new(name)
        .stage(
            Stage::map(
                "work",
                move |n: u64, _cx: flowdeck_runtime::Ctx| async move {
                    if n.is_multiple_of(fail_every) {
                        return Err(format!("no {n}"));
                    }
                    Ok(n)
                },
            )
            .workers(2),
        )
        .build()
        .unwrap()
        .start()
}

/// Feeds `items` through and waits for the run to end.
async fn run(running: Running<u64, u64>, items: u64) {
    let handle = running.handle.clone();
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..items).await;
    drop(running.input);
    handle.wait().await;
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get_json(url: String) -> Value {
    let res = client().get(&url).send().await.unwrap();
    assert!(res.status().is_success(), "{url}: {}", res.status());
    res.json().await.unwrap()
}

fn config(db: &tempfile::TempDir) -> Config {
    Config {
        refresh: Duration::from_millis(50),
        store: Some(flowdeck_store::StoreConfig::new(db.path().join("runs.db"))),
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pipeline_answers_under_its_base_and_the_list_counts_them_exactly() {
    let db = tempfile::tempdir().unwrap();
    // An earlier run of "orders", kept in the store: a window of an hour counts it.
    {
        let earlier = named("orders", 10);
        let handle = earlier.handle.clone();
        run(earlier, 50).await;
        let store = flowdeck_store::Store::open(flowdeck_store::StoreConfig::new(
            db.path().join("runs.db"),
        ))
        .unwrap();
        let snapshot = handle.snapshot();
        let id = store.begin_run(flowdeck_store::RunStart {
            pipeline: "orders".into(),
            started_ms: snapshot.started_unix_ms,
            stages: vec!["work".into()],
            edges: vec![],
        });
        let ended = snapshot.started_unix_ms + snapshot.uptime_ms;
        store.end_run(id, flowdeck_store::RunState::Finished, snapshot, ended);
        store.flush();
    }

    let orders = named("orders", 10);
    let billing = named("Billing EU", 4);
    let (o, b) = (orders.handle.clone(), billing.handle.clone());
    let base = serve_state(
        |c| {
            Dashboard::new(c.clone())
                .pipeline(b.clone())
                .state(o.clone())
                .unwrap()
        },
        config(&db),
    )
    .await;
    run(orders, 100).await;
    run(billing, 40).await;

    // `/` is the list now.
    let res = client().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(res.status(), 307);
    assert_eq!(res.headers()["location"], "/pipelines");
    let page = client()
        .get(format!("{base}/pipelines"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"href="/p/billing-eu/""#),
        "the list links each pipeline"
    );

    // The live runs, exactly: 10 of 100 orders failed, 10 of 40 billings.
    let rows = get_json(format!("{base}/api/v1/pipelines")).await;
    let rows = rows.as_array().unwrap();
    let row = |slug: &str| rows.iter().find(|r| r["slug"] == slug).unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["name"], "Billing EU", "sorted by name: {rows:?}");
    let (o_row, b_row) = (row("orders"), row("billing-eu"));
    assert_eq!(
        (o_row["completed"].as_u64(), o_row["failed"].as_u64()),
        (Some(90), Some(10))
    );
    assert_eq!(
        (b_row["completed"].as_u64(), b_row["failed"].as_u64()),
        (Some(30), Some(10))
    );
    assert_eq!(o_row["runs"], 1);
    assert_eq!(o_row["state"], "finished");
    assert_eq!(o_row["last_run"]["id"], 1, "the earlier run: {o_row}");
    assert_eq!(o_row["last_run"]["failed"], 5);
    assert!(b_row["last_run"].is_null(), "billing ran once: {b_row}");

    // The last hour: the earlier run of orders counts too, from its recorded totals.
    let rows = get_json(format!(
        "{base}/api/v1/pipelines?window=hour&sort=completed"
    ))
    .await;
    assert_eq!(rows[0]["slug"], "orders", "most completed first: {rows}");
    assert_eq!(
        (rows[0]["runs"].as_u64(), rows[0]["completed"].as_u64()),
        (Some(2), Some(135))
    );
    assert_eq!(rows[0]["failed"], 15);

    // Sorted and filtered by the server.
    let slugs = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["slug"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let by = |q: &'static str| {
        let url = format!("{base}/api/v1/pipelines?{q}");
        async move { get_json(url).await }
    };
    assert_eq!(
        slugs(&by("sort=name&order=desc").await),
        ["orders", "billing-eu"]
    );
    assert_eq!(
        slugs(&by("sort=failed&order=asc").await),
        ["billing-eu", "orders"]
    );
    assert_eq!(slugs(&by("q=BILL").await), ["billing-eu"]);
    assert_eq!(slugs(&by("window=hour&min_failed=11").await), ["orders"]);
    assert_eq!(slugs(&by("state=running").await), Vec::<String>::new());
    for (q, names) in [
        ("sort=nope", "sort"),
        ("window=year", "window"),
        ("order=up", "order"),
        ("min_failed=-1", "min_failed"),
        ("colour=red", "colour"),
    ] {
        let res = client()
            .get(format!("{base}/api/v1/pipelines?{q}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{q}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains(names),
            "{q}: {body}"
        );
    }

    // Each pipeline's API, under its base and at the root for the first.
    let summary = get_json(format!("{base}/p/billing-eu/api/v1/summary")).await;
    assert_eq!(summary["name"], "Billing EU", "{summary}");
    let summary = get_json(format!("{base}/api/v1/summary")).await;
    assert_eq!(summary["name"], "orders", "{summary}");
    let failed = get_json(format!("{base}/p/billing-eu/api/v1/tasks?status=failed")).await;
    let ids: Vec<u64> = failed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [36, 32, 28, 24, 20, 16, 12, 8, 4, 0],
        "billing's failures, not orders'"
    );
    let res = client()
        .get(format!("{base}/p/nobody/api/v1/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Its pages: links under its base, and the page of its own pipeline.
    let page = client()
        .get(format!("{base}/p/billing-eu/workers"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains(r#"href="/p/billing-eu/tasks""#),
        "nav under the base"
    );
    assert!(!page.contains(r#"href="/tasks""#), "a link out of the base");

    // Its Runs page lists its own runs: billing's one, none of orders' two.
    let runs = client()
        .get(format!("{base}/p/billing-eu/runs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        runs.matches(r#"data-testid="run-row""#).count(),
        1,
        "{runs}"
    );
    assert!(runs.contains("<td>Billing EU</td>") && !runs.contains("<td>orders</td>"));
    let runs = client()
        .get(format!("{base}/runs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        runs.matches(r#"data-testid="run-row""#).count(),
        2,
        "orders' two runs"
    );

    // Its server functions and stream.
    let site = get_json(format!("{base}/p/billing-eu/api/site")).await;
    assert_eq!(site["pipelines"].as_array().unwrap().len(), 2, "{site}");
    let view = get_json(format!("{base}/p/billing-eu/api/view")).await;
    assert_eq!(view["snapshot"]["pipeline"], "Billing EU", "{view}");
    let mut events = client()
        .get(format!("{base}/p/billing-eu/api/events"))
        .send()
        .await
        .unwrap();
    let first = String::from_utf8(events.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.contains("Billing EU"), "{first}");
    assert!(!first.contains(r#""pipeline":"orders""#), "{first}");

    // A control reaches its pipeline only.
    let res = client()
        .post(format!("{base}/p/billing-eu/api/v1/stages/work/pause"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert!(b.snapshot().stages[0].paused);
    assert!(!o.snapshot().stages[0].paused);
    let audit = get_json(format!("{base}/api/v1/audit")).await;
    assert_eq!(audit[0]["target"], "Billing EU: work", "{audit}");
}

#[tokio::test]
async fn two_pipelines_with_one_slug_stop_startup_with_a_message() {
    let (a, b) = (named("Orders", 2), named("orders!", 2));
    let err = Dashboard::new(Config::default())
        .pipeline(b.handle.clone())
        .state(a.handle.clone())
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(message.contains("/p/orders/"), "{message}");
    assert!(
        message.contains("\"Orders\"") && message.contains("\"orders!\""),
        "{message}"
    );
}
