//! Custom pages over real HTTP: a dashboard built with the Rust builder lists its page
//! beside the built-in ones, serves the page's spec, its table sources and health checks
//! (the user's and the built-in ones), the custom stylesheet and the logo; unknown names
//! are 404s with a JSON body, a failing source a 502 naming the failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{pipeline, serve_state};
use flowdeck_server::{
    branding::{Branding, Colour},
    dashboard::*,
    Config,
};
use serde_json::Value;

async fn get(url: &str) -> (u16, String) {
    let res = reqwest::get(url).await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn json(url: &str) -> (u16, Value) {
    let (status, body) = get(url).await;
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_page_is_listed_served_and_fed() {
    let running = pipeline(1000);
    let handle = running.handle.clone();
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    let input = running.input;
    tokio::spawn(async move {
        for n in 0..500u64 {
            if input.send(n).await.is_err() {
                break;
            }
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.svg");
    std::fs::write(&logo, "<svg xmlns='http://www.w3.org/2000/svg'/>").unwrap();
    let mut palette = BTreeMap::new();
    palette.insert("accent".to_owned(), Colour::Both("#d9480f".into()));
    let config = Config {
        branding: Branding::load(Some("Acme".into()), &palette, None, Some(&logo)).unwrap(),
        ..Config::default()
    };
    let mut dash = Dashboard::new(config.clone());
    let orders = dash.counter("orders_total");
    orders.increment(3);
    let db = dash.check("database", || async { Outcome::warn("replica lag 3 s") });
    let regions = dash.source("regions", || async {
        Ok(TableData {
            columns: vec!["region".into(), "orders".into()],
            rows: vec![vec!["east".into(), Cell::from(12.0)]],
        })
    });
    let broken = dash.source("broken", || async { Err("connection refused".to_owned()) });
    let dash = dash.page(
        Page::new("monitor", "Production Monitor")
            .widget(
                Chart::new("Done")
                    .series(&builtin::tasks_completed())
                    .series(&orders),
                (0, 0),
            )
            .widget(Table::new("Regions", &regions), (2, 0))
            .widget(Table::new("Broken", &broken), (0, 1))
            .widget(
                Status::new("Health").check(&Check::pipeline()).check(&db),
                (2, 1),
            ),
    );
    let state = dash.state(handle).unwrap();
    let base = serve_state(move |_| state, config).await;

    let (status, pages) = json(&format!("{base}/api/v1/pages")).await;
    assert_eq!(status, 200);
    let last = pages.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["path"], "/pages/monitor");
    assert_eq!(last["custom"], true);

    let (status, spec) = json(&format!("{base}/api/v1/pages/monitor")).await;
    assert_eq!(status, 200);
    assert_eq!(spec["widgets"][0]["chart"]["series"][1], "orders_total");
    assert_eq!(spec["widgets"][1]["at"], serde_json::json!([2, 0]));
    let (status, err) = json(&format!("{base}/api/v1/pages/nope")).await;
    assert_eq!((status, err["error"].as_str()), (404, Some("not_found")));

    let (status, rows) = json(&format!("{base}/api/v1/sources/regions")).await;
    assert_eq!(status, 200);
    assert_eq!(rows["rows"][0], serde_json::json!(["east", 12.0]));
    let (status, rows) = json(&format!("{base}/api/v1/sources/stages")).await;
    assert_eq!(status, 200);
    assert_eq!(rows["rows"].as_array().unwrap().len(), 3);
    let (status, err) = json(&format!("{base}/api/v1/sources/broken")).await;
    assert_eq!(status, 502);
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("connection refused"));
    let (status, _) = json(&format!("{base}/api/v1/sources/nope")).await;
    assert_eq!(status, 404);

    let (status, checks) = json(&format!("{base}/api/v1/checks")).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pipeline", "database"]);
    assert_eq!(checks[1]["health"], "warn");
    let (status, err) = json(&format!("{base}/api/v1/checks?names=pipeline,nope")).await;
    assert_eq!(status, 404);
    assert!(err["message"].as_str().unwrap().contains("nope"));

    // Series with labels read through the API, and the page's HTML names the custom page.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, range) = json(&format!(
        "{base}/api/v1/metrics?names=flowdeck_items_total{{outcome=completed}},orders_total&range=60"
    ))
    .await;
    assert_eq!(status, 200, "{range}");
    let series = range["series"].as_array().unwrap();
    let items: Vec<&Value> = series
        .iter()
        .filter(|s| s["name"] == "flowdeck_items_total")
        .collect();
    assert_eq!(items.len(), 1, "only the completed series: {range}");
    assert_eq!(
        items[0]["labels"][0],
        serde_json::json!(["outcome", "completed"])
    );
    assert!(series.iter().any(|s| s["name"] == "orders_total"));

    let (status, css) = get(&format!("{base}/custom.css")).await;
    assert_eq!(status, 200);
    assert!(css.contains("--accent: light-dark(#d9480f, #d9480f)"));
    let res = reqwest::get(format!("{base}/logo")).await.unwrap();
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    let (status, html) = get(&format!("{base}/pages/monitor")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Production Monitor") && html.contains("/custom.css"));
    assert!(html.contains("Acme"));
    let (status, _) = get(&format!("{base}/pages/nope")).await;
    assert_eq!(status, 404);
}
