//! Widgets of your own, and a worker restarted from the dashboard.
//!
//! ```sh
//! cargo run -p flowdeck --example widgets
//! ```
//!
//! The page "Custom" has a template widget (rendered on the server, sanitized: the
//! template's script, event handler, `javascript:` link and escaping style are dropped),
//! a declarative view, a widget whose closure panics (its frame says so; the others go
//! on), and a built-in metric of the uptime. The stage `hang` never finishes the first attempt of items
//! 3, 60, 117, ...: the stalled-worker warning fires, and the workers page (or `flowdeck
//! top`) can restart the worker, whose item is then retried.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use flowdeck::{prelude::*, Agg, Health};
use serde_json::json;

const TEMPLATE: &str = r#"
<p class="tpl-name">{{ data.name }}</p>
<script>window.pwned = 1</script>
<img alt="" onerror="window.pwned = 2">
<a class="tpl-link" href="javascript:window.pwned = 3">a link</a>
<div class="tpl-cover" style="position: fixed; top: 0; left: 0; width: 100px; height: 100px; color: red">cover</div>
<table>
  <tr><th>Pipeline</th><td class="tpl-pipeline">{{ pipeline }}</td></tr>
  <tr><th>Completed</th><td class="tpl-completed">{{ counts.completed }}</td></tr>
  <tr><th>Refreshed</th><td class="tpl-refreshes">{{ data.refreshes }}</td></tr>
  {% for t in data.tenants %}<tr><th>{{ t.name }}</th><td>{{ t.queued }}</td></tr>{% endfor %}
</table>
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let running = Line::<u64>::new("ops")
        .stage(
            Stage::map("work", |n: u64, _cx| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, String>(n)
            })
            .workers(2),
        )
        .stage(
            Stage::map("hang", |n: u64, cx: Ctx| async move {
                if n % 57 == 3 && cx.attempt() == 1 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, String>(n)
            })
            .retry(RetryPolicy::attempts(3)),
        )
        .build()?
        .start();

    // How many times the widget's data was made: it moves every refresh, whatever the
    // pipeline does (it stands still while `hang` is stuck).
    let refreshes = Arc::new(AtomicU64::new(0));
    let hostile = Custom::new("Tenants", move |cx: WidgetCx| {
        let n = refreshes.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            let queued = cx.snapshot.totals.queued;
            Ok::<_, String>(json!({
                "name": "<img src=x onerror=alert(1)>",
                "refreshes": n,
                "tenants": [{ "name": "acme", "queued": queued }, { "name": "globex", "queued": 0 }],
            }))
        }
    })
    .template(TEMPLATE)
    .every(Duration::from_secs(1));
    let backlog = Custom::view("Backlog", |cx: WidgetCx| async move {
        let t = cx.snapshot.totals;
        let health = if t.queued > 100 {
            Health::Warn
        } else {
            Health::Ok
        };
        Ok::<_, String>(
            View::new()
                .stat_with("Queued", t.queued.to_string(), "across all stages", health)
                .progress("Done", t.completed as f64, t.submitted.max(1) as f64)
                .badge(
                    if t.failed == 0 {
                        "no failures"
                    } else {
                        "failures"
                    },
                    health,
                )
                .markdown("Items **queue** at `hang` while its worker is stuck."),
        )
    })
    .every(Duration::from_secs(1));
    let broken = Custom::new("Broken", |_cx: WidgetCx| async move {
        if true {
            panic!("the tenant service is down");
        }
        Ok::<_, String>(json!({}))
    })
    .template("never shown");
    let mut config = Config::from_env()?;
    config.warnings = Some(flowdeck::runtime::warnings::Thresholds {
        stalled_ms: 2_000,
        ..Default::default()
    });
    let dashboard = Dashboard::new(config);
    // A number that moves every second, for a built-in widget beside the custom ones.
    let uptime = dashboard.gauge("uptime_seconds");
    let started = std::time::Instant::now();
    let ticking = uptime.clone();
    tokio::spawn(async move {
        loop {
            ticking.set(started.elapsed().as_secs_f64().floor());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let page = Page::new("custom", "Custom")
        .widget(
            Metric::new("Uptime", &uptime)
                .agg(Agg::Last)
                .format("{value:.0} s"),
            (0, 0),
        )
        .widget(hostile, (1, 0))
        .widget(backlog.span(1, 1), (3, 0))
        .widget(broken.span(4, 1), (0, 1));

    let dashboard = dashboard
        .page(page)
        .start_or_any_port(running.handle.clone())
        .await?;
    println!("dashboard on {}", dashboard.url());
    let input = running.input.clone();
    tokio::spawn(async move {
        for n in 0u64.. {
            if input.send(n).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    drop(running.outputs);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
