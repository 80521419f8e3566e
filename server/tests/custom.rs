//! Custom widgets over real HTTP: a template widget's HTML comes sanitized and its data
//! beside it, a view comes as blocks, a closure that panics, errs or takes too long shows
//! its error in its own widget while the others still answer, the content is made once
//! per refresh however many ask, a config file's widget reads its template file and a
//! source, and bad widgets stop startup naming the page and widget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use common::{pipeline, serve_state};
use flowdeck_server::{dashboard::*, settings::FileConfig, Config};
use serde_json::{json, Value};

async fn json_of(url: &str) -> (u16, Value) {
    let res = reqwest::get(url).await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_widgets_render_on_the_server_and_keep_their_failures() {
    let running = pipeline(1000);
    let handle = running.handle.clone();
    std::mem::forget(running.input);
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    let hostile = Custom::new("Tenants", move |cx: WidgetCx| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            Ok::<_, String>(json!({ "name": "<script>x</script>", "stages": cx.snapshot.stages.len() }))
        }
    })
    .template(
        r#"<p class="n">{{ data.name }}</p><script>alert(1)</script><img src=x onerror="alert(1)">
        <a href="javascript:alert(1)">x</a><div style="position: fixed; color: red">{{ data.stages }} stages of {{ pipeline }}</div>"#,
    )
    .every(Duration::from_secs(60));
    let view = Custom::view("Backlog", |cx: WidgetCx| async move {
        Ok::<_, String>(
            View::new()
                .stat("Queued", cx.snapshot.totals.queued.to_string())
                .markdown("**bold** <b>raw</b>"),
        )
    });
    let panics = Custom::new("Panics", |_cx: WidgetCx| async move {
        if true {
            panic!("the tenant service is down");
        }
        Ok::<_, String>(json!({}))
    })
    .template("x");
    let errs = Custom::new("Errs", |_cx: WidgetCx| async move {
        Err::<Value, _>("no such tenant")
    })
    .template("x");
    let slow = Custom::new("Slow", |_cx: WidgetCx| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<_, String>(json!({}))
    })
    .template("x")
    .deadline(Duration::from_millis(200));
    let bad_render = Custom::new("Bad render", |_cx: WidgetCx| async move {
        Ok::<_, String>(json!({ "n": 1 }))
    })
    .template("{{ data.n | no_such_filter }}");
    let page = Page::new("ops", "Ops")
        .widget(hostile, (0, 0))
        .widget(view, (2, 0))
        .widget(panics, (0, 1))
        .widget(errs, (2, 1))
        .widget(slow, (0, 2))
        .widget(bad_render, (2, 2));
    let config = Config::default();
    let state = Dashboard::new(config.clone())
        .page(page)
        .state(handle)
        .unwrap();
    let base = serve_state(move |_| state, config).await;
    let url = |id: &str| format!("{base}/api/v1/pages/ops/widgets/{id}");

    let (status, spec) = json_of(&format!("{base}/api/v1/pages/ops")).await;
    assert_eq!(status, 200);
    assert_eq!(
        spec["widgets"][0]["custom"]["id"], "",
        "ids default to the title"
    );
    assert_eq!(spec["widgets"][0]["custom"]["every"], 60);

    let (status, t) = json_of(&url("tenants")).await;
    assert_eq!(status, 200, "{t}");
    let html = t["html"].as_str().unwrap();
    for gone in ["<script", "onerror", "javascript:", "position"] {
        assert!(!html.contains(gone), "{gone} in {html}");
    }
    assert!(html.contains("&lt;script&gt;x"), "data is escaped: {html}");
    assert!(html.contains("3 stages of stream-test"), "{html}");
    assert!(html.contains("color:red"), "{html}");
    assert_eq!(t["data"]["stages"], 3, "the closure's data is served too");
    assert_eq!(t["error"], Value::Null);

    // Made once per refresh, however many ask at once.
    let tenants = url("tenants");
    let many = (0..20).map(|_| json_of(&tenants));
    for (status, _) in futures::future::join_all(many).await {
        assert_eq!(status, 200);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let (_, v) = json_of(&url("backlog")).await;
    assert_eq!(v["view"][0]["stat"]["label"], "Queued");
    // Drawn on the server too, in the theme's classes, for the browser to insert.
    let drawn = v["html"].as_str().unwrap();
    assert!(
        drawn.starts_with(r#"<div class="custom-view"><div class="block-stat">"#),
        "{drawn}"
    );
    let md = v["view"][1]["text"]["html"].as_str().unwrap();
    assert!(
        md.contains("<strong>bold</strong>") && md.contains("&lt;b&gt;raw"),
        "{md}"
    );

    let (status, p) = json_of(&url("panics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        p["error"],
        "the widget panicked: the tenant service is down"
    );
    let (_, e) = json_of(&url("errs")).await;
    assert_eq!(e["error"], "no such tenant");
    let (_, s) = json_of(&url("slow")).await;
    assert_eq!(s["error"], "no answer within 0.2 s");
    let (_, b) = json_of(&url("bad-render")).await;
    assert!(
        b["error"].as_str().unwrap().contains("the template failed"),
        "{b}"
    );
    // The others still answer after those.
    let (status, _) = json_of(&url("backlog")).await;
    assert_eq!(status, 200);

    let (status, missing) = json_of(&url("nope")).await;
    assert_eq!(status, 404);
    assert!(
        missing["message"].as_str().unwrap().contains("nope"),
        "{missing}"
    );
    let (status, _) = json_of(&format!("{base}/api/v1/pages/none/widgets/tenants")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_widget_reads_its_template_and_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stages.html"),
        "<ul>{% for row in data.rows %}<li class=\"stage\">{{ row[0] }}</li>{% endfor %}</ul><p>{{ counts.submitted }} in</p>",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("snap.html"),
        "<p>{{ data.pipeline }} is {{ state }}</p>",
    )
    .unwrap();
    let file = dir.path().join("flowdeck.toml");
    std::fs::write(
        &file,
        r#"
        [[pages]]
        slug = "ops"
        title = "Ops"
        [[pages.widgets]]
        at = [0, 0]
        custom = { title = "Stage list", template = "stages.html", source = "stages", every = "2s" }
        [[pages.widgets]]
        at = [2, 0]
        custom = { title = "Snap", id = "snap", template = "snap.html" }
        "#,
    )
    .unwrap();
    let settings = FileConfig::load(&file).unwrap();
    let running = pipeline(1000);
    let handle = running.handle.clone();
    std::mem::forget(running.input);
    let config = Config::default();
    let state = Dashboard::new(config.clone())
        .pages(settings.pages)
        .state(handle)
        .unwrap();
    let base = serve_state(move |_| state, config).await;
    let (status, w) = json_of(&format!("{base}/api/v1/pages/ops/widgets/stage-list")).await;
    assert_eq!(status, 200, "{w}");
    let html = w["html"].as_str().unwrap();
    for stage in ["a", "b", "c"] {
        assert!(
            html.contains(&format!("<li class=\"stage\">{stage}</li>")),
            "{html}"
        );
    }
    assert_eq!(w["every"], 2);
    let (_, s) = json_of(&format!("{base}/api/v1/pages/ops/widgets/snap")).await;
    assert_eq!(s["html"], "<p>stream-test is running</p>");
}

#[test]
fn bad_custom_widgets_stop_startup_naming_the_page_and_widget() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let handle = || pipeline(10).handle;
    let start = |page: Page| {
        Dashboard::new(Config::default())
            .page(page)
            .state(handle())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let parse = start(
        Page::new("ops", "Ops").widget(
            Custom::new("Tenants", |_cx: WidgetCx| async {
                Ok::<_, String>(json!({}))
            })
            .template("{% for %}"),
            (0, 0),
        ),
    );
    assert!(
        parse.contains(r#"page "ops", widget 1 (custom "Tenants")"#)
            && parse.contains("does not parse"),
        "{parse}"
    );
    let untemplated = start(Page::new("ops", "Ops").widget(
        Custom::new("Tenants", |_cx: WidgetCx| async {
            Ok::<_, String>(json!({}))
        }),
        (0, 0),
    ));
    assert!(untemplated.contains("needs a template"), "{untemplated}");
    let twice = start(
        Page::new("ops", "Ops")
            .widget(
                Custom::view("A b", |_cx: WidgetCx| async {
                    Ok::<_, String>(View::new())
                }),
                (0, 0),
            )
            .widget(
                Custom::view("A-b", |_cx: WidgetCx| async {
                    Ok::<_, String>(View::new())
                }),
                (2, 0),
            ),
    );
    assert!(twice.contains("two custom widgets"), "{twice}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flowdeck.toml");
    std::fs::write(
        &file,
        "[[pages]]\nslug = \"ops\"\ntitle = \"Ops\"\n[[pages.widgets]]\nat = [0, 0]\ncustom = { title = \"T\", template = \"missing.html\" }\n",
    )
    .unwrap();
    let settings = FileConfig::load(&file).unwrap();
    let missing = Dashboard::new(Config::default())
        .pages(settings.pages)
        .state(handle())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        missing.contains("cannot read its template file") && missing.contains("missing.html"),
        "{missing}"
    );
}
