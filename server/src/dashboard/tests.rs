use flowdeck_runtime::{Line, Stage};

use super::*;

fn pipeline() -> PipelineHandle {
    Line::<u64>::new("t")
        .stage(Stage::map(
            "parse",
            |n: u64, _cx: flowdeck_runtime::Ctx| async move { Ok::<_, String>(n) },
        ))
        .build()
        .unwrap()
        .start()
        .handle
}

fn message(d: &Dashboard, p: &PipelineHandle) -> String {
    d.check_pages(p).unwrap_err().to_string()
}

#[tokio::test]
async fn typed_pages_check_out_and_bad_names_stop_startup() {
    let p = pipeline();
    let mut dash = Dashboard::new(Config::default());
    let records = dash.counter("records_in");
    records.increment(3);
    let db = dash.check("database", || async { Outcome::ok("12 ms") });
    let regions = dash.source("regions", || async { Ok(TableData::default()) });
    let dash = dash.page(
        Page::new("monitor", "Production Monitor")
            .widget(
                Chart::new("Done")
                    .series(&builtin::tasks_completed())
                    .series(&records),
                (0, 0),
            )
            .widget(Metric::new("In", &records).format("{value:.1}/s"), (2, 0))
            .widget(
                Gauge::new("Memory", &builtin::memory()).scale(0.0, 1e9),
                (3, 0),
            )
            .widget(Table::new("Regions", &regions), (0, 1))
            .widget(
                Status::new("Health").check(&Check::pipeline()).check(&db),
                (2, 1),
            )
            .widget(Log::new("Log").span(4, 1), (0, 2)),
    );
    dash.check_pages(&p).unwrap();

    let dash = Dashboard::new(Config::default()).page(
        Page::new("s", "S").widget(Metric::new("Q", &builtin::stage_queued("pasre")), (0, 0)),
    );
    let err = message(&dash, &p);
    assert!(
        err.contains("widget 1 (metric \"Q\")")
            && err.contains("no stage \"pasre\"")
            && err.contains("parse"),
        "{err}"
    );

    let twice = Dashboard::new(Config::default())
        .page(Page::new("a", "A"))
        .page(Page::new("a", "B"));
    assert!(message(&twice, &p).contains("two pages have the slug \"a\""));

    let wide = Dashboard::new(Config::default())
        .page(Page::new("a", "A").widget(Chart::new("C").series(&builtin::cpu()), (3, 0)));
    assert!(message(&wide, &p).contains("does not fit"));
}

#[tokio::test]
async fn pages_from_data_name_unknown_metrics_sources_and_checks() {
    let p = pipeline();
    let spec = |widget: &str| -> PageSpec {
        serde_json::from_str(&format!(
            r#"{{"slug":"x","title":"X","widgets":[{{"at":[0,0],{widget}}}]}}"#
        ))
        .unwrap()
    };
    let cases = [
        (
            r#""metric":{"title":"M","series":"records_inn"}"#,
            "no metric named \"records_inn\"",
        ),
        (
            r#""table":{"title":"T","source":"regions"}"#,
            "no table source named \"regions\"",
        ),
        (
            r#""status":{"title":"S","checks":["pipeline","db"]}"#,
            "no health check named \"db\"",
        ),
    ];
    for (widget, want) in cases {
        let dash = Dashboard::new(Config::default()).pages([spec(widget)]);
        let err = message(&dash, &p);
        assert!(err.contains(want), "{err}");
        assert!(err.starts_with("page \"x\", widget 1"), "{err}");
    }
    // Declared in the store (as the config file's [metrics] does) is enough.
    let dash = Dashboard::new(Config::default()).pages([spec(
        r#""metric":{"title":"M","series":"flowdeck_stage_queued{stage=parse}"}"#,
    )]);
    dash.check_pages(&p).unwrap();
}

#[tokio::test]
async fn checks_run_with_a_deadline_and_sources_answer() {
    let p = pipeline();
    let mut dash = Dashboard::new(Config::default());
    dash.check("slow", || async {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        Outcome::ok("never")
    });
    dash.check("db", || async { Outcome::warn("replica lag 3 s") });
    dash.source("broken", || async { Err("connection refused".to_owned()) });
    let state = dash.state(p).unwrap();
    tokio::time::pause();
    let results = state
        .pages
        .checks(
            &state.hub,
            &["db".into(), "slow".into(), "pipeline".into(), "nope".into()],
        )
        .await;
    assert_eq!(results[0].health, Health::Warn);
    assert_eq!(results[0].message, "replica lag 3 s");
    assert_eq!(results[1].health, Health::Fail);
    assert!(results[1].message.contains("within 5 s"));
    assert_eq!(results[2].name, "pipeline");
    assert_eq!(results[3].health, Health::Fail);
    let err = state.pages.table(&state.hub, "broken").await.unwrap_err();
    assert_eq!(err, "connection refused");
    let stages = state.pages.table(&state.hub, "stages").await.unwrap();
    assert_eq!(stages.columns[0], "stage");
}
