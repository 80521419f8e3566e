//! The monitor's views and keys over a made-up [`LiveState`], drawn into ratatui's test
//! backend: what a user would read on the screen.
#![allow(clippy::unwrap_used)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use flowdeck_protocol::{
    stream::{Full, ItemRow, LiveState, Point},
    Ancestor, ErrorInfo, ErrorSummary, FailedItem, ItemDetail, ItemStatus, PipelineState, Rule,
    Snapshot, StageSnapshot, TaskDetail, Totals, Warning, WorkerSnapshot, WorkerState,
};
use flowdeck_terminal::{
    app::{Action, App, Link, Tab},
    theme::Theme,
    view,
};
use ratatui::{backend::TestBackend, Terminal};

fn stage(name: &str, busy: f64, queued: u64) -> StageSnapshot {
    StageSnapshot {
        name: name.into(),
        capacity: 100,
        queued,
        busy_ratio: busy,
        completed: 900,
        failed: 12,
        workers: vec![
            WorkerSnapshot {
                id: 0,
                state: WorkerState::Busy,
                current_item: Some(41),
                processed: 450,
                ..Default::default()
            },
            WorkerSnapshot {
                id: 1,
                state: WorkerState::Idle,
                processed: 450,
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

fn state() -> LiveState {
    let kinds = ["Timeout", "Empty"];
    let items = (1..=60u64)
        .map(|id| {
            let failed = id % 10 == 0;
            ItemRow(
                id,
                if failed {
                    ItemStatus::Failed
                } else {
                    ItemStatus::Completed
                },
                (id % 2) as u16,
                1,
                id * 1000,
                failed.then(|| kinds[(id / 10 % 2) as usize].to_owned()),
            )
        })
        .collect();
    LiveState::from_full(Full {
        id: 7,
        snapshot: Snapshot {
            pipeline: "docs".into(),
            state: PipelineState::Running,
            uptime_ms: 125_000,
            totals: Totals {
                submitted: 1_234_567,
                completed: 1_200_000,
                failed: 24,
                throughput: 4_321.0,
                ..Default::default()
            },
            stages: vec![stage("parse", 0.2, 0), stage("enrich", 0.97, 80)],
            warnings: vec![Warning {
                rule: Rule::GrowingQueue,
                stage: Some("enrich".into()),
                worker: None,
                items: vec![],
                message: "stage enrich's queue grew by 40".into(),
                first_seen_ms: 1_000,
                last_seen_ms: 2_000,
                cleared_ms: None,
            }],
            ..Default::default()
        },
        retention: 100_000,
        items,
        history: (0..50)
            .map(|i| Point {
                at_ms: i * 250,
                output_rate: (i * 10) as f64,
                ..Default::default()
            })
            .collect(),
        errors: ErrorSummary {
            total: 24,
            by_kind: vec![("Timeout".into(), 20), ("Empty".into(), 4)],
            by_stage: vec![4, 20],
            recent: vec![FailedItem {
                id: 50,
                stage: 1,
                at_us: 50_000,
                error: ErrorInfo {
                    kind: "Timeout".into(),
                    message: "model call timed out".into(),
                },
            }],
        },
        questions: vec![],
    })
}

fn screen(app: &App, state: Option<&LiveState>) -> String {
    let mut t = Terminal::new(TestBackend::new(140, 36)).unwrap();
    t.draw(|f| view::draw(f, app, state)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn key(app: &mut App, state: &LiveState, code: KeyCode) -> Option<Action> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE), Some(state))
}

fn typed(app: &mut App, state: &LiveState, text: &str) {
    for c in text.chars() {
        key(app, state, KeyCode::Char(c));
    }
}

#[test]
fn the_overview_shows_counts_the_bottleneck_and_the_warnings() {
    let s = state();
    let app = App::new(Theme::Dark, Link::Live);
    let text = screen(&app, Some(&s));
    assert!(text.contains("docs is running · up 2m 05s"), "{text}");
    assert!(text.contains("[live]"));
    assert!(text.contains("Submitted 1,234,567"), "{text}");
    assert!(text.contains("Completed 1,200,000"));
    assert!(text.contains("Throughput 4.3k/s"));
    assert!(
        text.contains("Bottleneck: enrich (97% busy, 80 queued"),
        "{text}"
    );
    assert!(
        text.contains("⚠ Growing queue: stage enrich's queue grew by 40"),
        "{text}"
    );
    assert!(text.contains("warn: growing queue at enrich"), "{text}");
}

#[test]
fn before_the_first_frame_and_while_reconnecting_it_says_so() {
    let text = screen(&App::new(Theme::Plain, Link::Connecting), None);
    assert!(text.contains("Waiting for the dashboard's stream"));
    assert!(text.contains("[connecting]"));
    let s = state();
    let text = screen(
        &App::new(Theme::Plain, Link::Reconnecting("cannot connect".into())),
        Some(&s),
    );
    assert!(text.contains("[reconnecting (cannot connect)]"), "{text}");
    assert!(
        text.contains("Submitted 1,234,567"),
        "the last state stays on screen"
    );
    let text = screen(&App::new(Theme::Plain, Link::Stored(3)), Some(&s));
    assert!(text.contains("[stored run #3]"));
}

#[test]
fn stages_list_every_stage_and_worker() {
    let s = state();
    let mut app = App::new(Theme::Dark, Link::Live);
    key(&mut app, &s, KeyCode::Char('2'));
    assert_eq!(app.tab, Tab::Stages);
    let text = screen(&app, Some(&s));
    assert!(text.contains("enrich ◀ bottleneck"), "{text}");
    assert!(text.contains("1/1/0/2"), "busy/idle/blocked/all: {text}");
    assert!(text.contains("enrich-0") && text.contains("#41"), "{text}");
    assert!(text.contains("Workers (4)"));
}

/// A join stage's row shows the groups it waits for and their parts arrived of expected.
#[test]
fn a_join_stage_shows_its_waiting_groups() {
    let mut s = state();
    let mut join = stage("assemble", 0.1, 0);
    join.join = Some(flowdeck_protocol::JoinSnapshot {
        of: 0,
        waiting: 12,
        oldest_ms: 3_000,
        arrived: 87,
        expected: 120,
        ..Default::default()
    });
    s.snapshot.stages.push(join);
    let mut app = App::new(Theme::Dark, Link::Live);
    key(&mut app, &s, KeyCode::Char('2'));
    let text = screen(&app, Some(&s));
    assert!(text.contains("assemble ⋈ 12 groups 87/120"), "{text}");
    // Its lag is the oldest group's wait.
    let row = text.lines().find(|l| l.contains("assemble ⋈")).unwrap();
    assert!(row.contains("3.0 s") || row.contains("3 s"), "{row}");
}

#[test]
fn a_distributed_stages_worker_processes_list_their_workers() {
    let mut s = state();
    let worker = |id, state| flowdeck_protocol::WorkerSnapshot {
        id,
        state,
        current_item: Some(900 + u64::from(id)),
        ..Default::default()
    };
    let process = |name: &str, lost| flowdeck_protocol::ProcessSnapshot {
        process: name.into(),
        lost,
        stages: vec![flowdeck_protocol::ProcessStage {
            name: "enrich".into(),
            workers: vec![worker(0, WorkerState::Busy), worker(1, WorkerState::Idle)],
            ..Default::default()
        }],
        ..Default::default()
    };
    s.snapshot.processes = vec![process("gpu-1:77", false), process("gpu-2:78", true)];
    let mut app = App::new(Theme::Dark, Link::Live);
    key(&mut app, &s, KeyCode::Char('2'));
    let text = screen(&app, Some(&s));
    assert!(text.contains("Workers (8)"), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not shown: {text}"))
            .to_owned()
    };
    assert!(line("enrich-0 @ gpu-1:77").contains("busy"));
    assert!(line("enrich-1 @ gpu-1:77").contains("#901"));
    assert!(
        line("enrich-0 @ gpu-2:78").contains("lost"),
        "a lost process"
    );
}

#[test]
fn filters_narrow_the_task_list_and_enter_opens_the_selected_task() {
    let s = state();
    let mut app = App::new(Theme::Dark, Link::Live);
    key(&mut app, &s, KeyCode::Char('3'));
    let text = screen(&app, Some(&s));
    assert!(text.contains("Tasks: 60 of 60 retained"), "{text}");
    // Newest first.
    assert_eq!(
        key(&mut app, &s, KeyCode::Enter),
        Some(Action::OpenTask(60))
    );
    // s: queued, running, retrying, completed, failed.
    for _ in 0..5 {
        key(&mut app, &s, KeyCode::Char('s'));
    }
    assert_eq!(app.status, Some(ItemStatus::Failed));
    let text = screen(&app, Some(&s));
    assert!(
        text.contains("Tasks: 6 of 60 retained · status: failed"),
        "{text}"
    );
    assert!(!text.contains("#59"), "{text}");
    // The text filter: an error kind...
    key(&mut app, &s, KeyCode::Char('/'));
    typed(&mut app, &s, "empty");
    key(&mut app, &s, KeyCode::Enter);
    let text = screen(&app, Some(&s));
    assert!(text.contains("Tasks: 3 of 60 retained"), "{text}");
    key(&mut app, &s, KeyCode::Down);
    assert_eq!(
        key(&mut app, &s, KeyCode::Enter),
        Some(Action::OpenTask(30))
    );
    // ...or an id, with the stage filter.
    key(&mut app, &s, KeyCode::Char('c'));
    key(&mut app, &s, KeyCode::Char('/'));
    typed(&mut app, &s, "#41");
    key(&mut app, &s, KeyCode::Esc);
    let text = screen(&app, Some(&s));
    assert!(text.contains("Tasks: 1 of 60 retained"), "{text}");
    key(&mut app, &s, KeyCode::Char('g'));
    assert_eq!(app.tasks(&s).count(), 0, "item 41 is at stage 1, not 0");
}

#[test]
fn a_task_shows_its_stages_error_and_provenance_and_esc_goes_back() {
    let s = state();
    let mut app = App::new(Theme::Dark, Link::Live);
    app.task = Some(Ok(TaskDetail {
        detail: ItemDetail {
            id: 50,
            status: ItemStatus::Failed,
            stage: 1,
            created_us: 1_000,
            updated_us: 90_000,
            visits: vec![],
            parents: vec![7],
            error: Some(ErrorInfo {
                kind: "Timeout".into(),
                message: "model call timed out".into(),
            }),
            annotations: vec![],
            history: vec![],
        },
        provenance: vec![
            Ancestor {
                id: 50,
                depth: 0,
                parents: vec![7],
                stages: vec![0, 1],
                retained: true,
            },
            Ancestor {
                id: 7,
                depth: 1,
                parents: vec![],
                stages: vec![0],
                retained: false,
            },
        ],
        stage_names: vec!["parse".into(), "enrich".into()],
        started_unix_ms: 0,
        now_ms: 100,
        retryable: None,
        from_store: false,
    }));
    let text = screen(&app, Some(&s));
    assert!(text.contains("Task #50 failed at enrich"), "{text}");
    assert!(text.contains("Timeout: model call timed out"));
    assert!(text.contains("#7 via parse (no longer retained)"), "{text}");
    key(&mut app, &s, KeyCode::Esc);
    assert!(app.task.is_none());
}

#[test]
fn errors_list_kinds_stages_and_recent_failures() {
    let s = state();
    let mut app = App::new(Theme::Dark, Link::Live);
    key(&mut app, &s, KeyCode::Char('4'));
    let text = screen(&app, Some(&s));
    assert!(text.contains("By kind · 24 failed"), "{text}");
    assert!(text.contains("model call timed out"));
    assert_eq!(
        key(&mut app, &s, KeyCode::Enter),
        Some(Action::OpenTask(50))
    );
}

#[test]
fn question_mark_shows_the_keys_and_any_key_closes_them() {
    let s = state();
    let mut app = App::new(Theme::Dark, Link::Live);
    key(&mut app, &s, KeyCode::Char('?'));
    assert!(screen(&app, Some(&s)).contains("filter tasks by id (#42) or error kind"));
    key(&mut app, &s, KeyCode::Char('x'));
    assert!(!app.help);
    assert_eq!(key(&mut app, &s, KeyCode::Char('q')), Some(Action::Quit));
}

#[test]
fn a_worker_is_selected_and_restarted_from_the_stages_tab() {
    let mut s = state();
    s.snapshot.usage = "CPU 23% of a core (12% of 2) · memory 94 MiB".into();
    let mut app = App::new(Theme::Dark, Link::Live);
    assert!(screen(&app, Some(&s)).contains("Process: CPU 23% of a core"));
    key(&mut app, &s, KeyCode::Char('2'));
    // parse-0, parse-1, enrich-0: the third worker.
    key(&mut app, &s, KeyCode::Down);
    key(&mut app, &s, KeyCode::Down);
    assert_eq!(
        key(&mut app, &s, KeyCode::Char('R')),
        Some(Action::Restart("enrich".into(), 0))
    );
    // Past the last worker the selection stays on it.
    for _ in 0..10 {
        key(&mut app, &s, KeyCode::Down);
    }
    assert_eq!(app.selected_worker(Some(&s)), Some(("enrich".into(), 1)));
    app.said = Some(Err(
        "refused (409 Conflict): worker 1 of stage `enrich` runs no attempt now".into(),
    ));
    let text = screen(&app, Some(&s));
    assert!(text.contains("R restart it"), "{text}");
    assert!(text.contains("runs no attempt now"), "{text}");
}

#[test]
fn the_pages_tab_draws_a_views_blocks_and_sends_the_rest_to_a_browser() {
    use flowdeck_protocol::page::{
        Block, ChartSpec, ChartStyle, CustomSpec, Health, PageSpec, Placed, Widget, WidgetData,
    };
    use flowdeck_terminal::app::PageShown;
    let s = state();
    let custom = |title: &str| CustomSpec {
        title: title.into(),
        id: String::new(),
        every: 5,
        template: None,
        source: None,
        series: Vec::new(),
        range: 300,
    };
    let placed = |widget| Placed {
        at: (0, 0),
        span: (1, 1),
        widget,
    };
    let spec = PageSpec {
        slug: "ops".into(),
        title: "Operations".into(),
        widgets: vec![
            placed(Widget::Custom(custom("Backlog"))),
            placed(Widget::Custom(custom("Tenants"))),
            placed(Widget::Custom(custom("Broken"))),
            placed(Widget::Chart(ChartSpec {
                title: "Throughput".into(),
                series: vec!["x".parse().unwrap()],
                style: ChartStyle::Line,
                agg: None,
                range: 900,
            })),
        ],
    };
    let view = WidgetData {
        view: Some(vec![
            Block::Stat {
                label: "Queued".into(),
                value: "42".into(),
                hint: Some("across all stages".into()),
                health: Some(Health::Warn),
            },
            Block::Progress {
                label: "Done".into(),
                done: 5.0,
                total: 10.0,
            },
            Block::Badge {
                text: "no failures".into(),
                health: Health::Ok,
            },
            Block::Text {
                html: "<p>Items <strong>queue</strong> &lt;here&gt;</p>".into(),
            },
        ]),
        ..Default::default()
    };
    let html = WidgetData {
        html: Some("<table>...</table>".into()),
        ..Default::default()
    };
    let broken = WidgetData {
        error: Some("the widget panicked: down".into()),
        ..Default::default()
    };
    let mut app = App::new(Theme::Dark, Link::Live);
    app.pages = Ok(vec![PageShown {
        spec,
        url: "http://127.0.0.1:3000/pages/ops".into(),
        widgets: vec![Some(Ok(view)), Some(Ok(html)), Some(Ok(broken)), None],
    }]);
    key(&mut app, &s, KeyCode::Char('6'));
    assert_eq!(app.tab, Tab::Pages);
    let text = screen(&app, Some(&s));
    for want in [
        "Operations",
        "▸ Backlog",
        "Queued 42  across all stages",
        "Done [██████████··········] 5 of 10",
        "[no failures]",
        "Items queue <here>",
        "▸ Tenants",
        "open in a browser: http://127.0.0.1:3000/pages/ops",
        "the widget panicked: down",
        "▸ Throughput",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    // Tenants (a template) and Throughput (a chart) both send the reader to a browser.
    assert_eq!(text.matches("open in a browser").count(), 2, "{text}");
}
