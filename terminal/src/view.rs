//! Drawing: the header with the tabs, one tab's content (or an open task over them), the
//! key hints, and the help. Each function draws from the [`App`] and the [`LiveState`] it
//! is handed, so tests draw into ratatui's `TestBackend` and read the text.

use flowdeck_protocol::{
    format::{self, count, micros, uptime},
    stream::LiveState,
    ItemStatus, TaskDetail, WorkerState,
};
use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, Tabs, Wrap},
    Frame,
};

use crate::app::{App, Link, Tab};

/// Draws the whole screen. `state` is `None` until the first frame arrives.
pub fn draw(f: &mut Frame, app: &App, state: Option<&LiveState>) {
    let [header, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(header_line(app, state)), header);
    let titles: Vec<Line> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| Line::from(format!("{} {}", i + 1, t.title())))
        .collect();
    let selected = Tab::ALL.iter().position(|&t| t == app.tab).unwrap_or(0);
    f.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(app.theme.title().add_modifier(Modifier::REVERSED)),
        tabs,
    );
    match (state, &app.task) {
        _ if app.answering.is_some() => answering(f, body, app),
        (_, Some(Ok(detail))) => task(f, body, app, detail),
        (_, Some(Err(why))) => f.render_widget(
            Paragraph::new(why.as_str())
                .style(app.theme.bad())
                .block(block("Task", app)),
            body,
        ),
        (None, None) => f.render_widget(
            Paragraph::new("Waiting for the dashboard's stream…").style(app.theme.muted()),
            body,
        ),
        (Some(state), None) => match app.tab {
            Tab::Overview => overview(f, body, app, state),
            Tab::Stages => stages(f, body, app, state),
            Tab::Tasks => tasks(f, body, app, state),
            Tab::Errors => errors(f, body, app, state),
            Tab::Questions => questions(f, body, app, state),
            Tab::Pages => pages(f, body, app),
        },
    }
    f.render_widget(
        Paragraph::new(footer_line(app)).style(app.theme.muted()),
        footer,
    );
    if app.help {
        help(f, app);
    }
}

fn block<'a>(title: &'a str, app: &App) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(title, app.theme.title()))
}

fn header_line<'a>(app: &App, state: Option<&LiveState>) -> Line<'a> {
    let t = app.theme;
    let mut spans = vec![Span::styled("flowdeck top", t.title()), Span::raw("  ")];
    if let Some(s) = state {
        let snap = &s.snapshot;
        let run_state = format!("{:?}", snap.state).to_lowercase();
        spans.push(Span::styled(
            snap.pipeline.clone(),
            Style::new().add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::raw(" is "));
        spans.push(Span::styled(run_state.clone(), t.status(&run_state)));
        spans.push(Span::raw(format!(" · up {}", uptime(snap.uptime_ms))));
        let (level, reason) = s.health();
        let level = level.as_str();
        let style = match level {
            "ok" => t.ok(),
            "warn" => t.warn(),
            _ => t.bad(),
        };
        spans.push(Span::raw(" · "));
        spans.push(Span::styled(format!("{level}: {reason}"), style));
        match snap.questions_pending {
            0 => {}
            1 => spans.push(Span::styled(" · 1 question waits", t.accent())),
            n => spans.push(Span::styled(
                format!(" · {} questions wait", count(n)),
                t.accent(),
            )),
        }
    }
    let (link, style) = match &app.link {
        Link::Connecting => ("connecting".to_owned(), t.muted()),
        Link::Live => ("live".to_owned(), t.ok()),
        Link::Reconnecting(why) => (format!("reconnecting ({why})"), t.warn()),
        Link::Stored(id) => (format!("stored run #{id}"), t.accent()),
    };
    spans.push(Span::raw("  ["));
    spans.push(Span::styled(link, style));
    spans.push(Span::raw("]"));
    Line::from(spans)
}

fn footer_line(app: &App) -> String {
    if app.editing {
        return format!("filter: {}▏  (Enter or Esc to finish)", app.text);
    }
    if app.answering.is_some() {
        return "←→ option · ↑↓ field · type into the field · Enter answer · Esc back".to_owned();
    }
    if app.task.is_some() {
        return "Esc back · ? help · q quit".to_owned();
    }
    let said = match &app.said {
        Some(Ok(done)) => format!("{done}  "),
        Some(Err(why)) => format!("{why}  "),
        None => String::new(),
    };
    let keys = match app.tab {
        Tab::Stages => "↑↓ select a worker · R restart it · Tab next · ? help · q quit".to_owned(),
        Tab::Pages => "↑↓ choose a page · Tab next · ? help · q quit".to_owned(),
        Tab::Tasks => "↑↓ select · Enter open · / text · s status · g stage · c clear · Tab next · ? help · q quit".to_owned(),
        Tab::Errors => "↑↓ select · Enter open · Tab next · ? help · q quit".to_owned(),
        Tab::Questions => "↑↓ select · Enter answer · Tab next · ? help · q quit".to_owned(),
        _ => "1-6 or Tab: pages · ? help · q quit".to_owned(),
    };
    format!("{said}{keys}")
}

fn overview(f: &mut Frame, area: Rect, app: &App, state: &LiveState) {
    let t = app.theme;
    let snap = &state.snapshot;
    let firing: Vec<_> = snap.warnings.iter().filter(|w| w.firing()).collect();
    let [counts, chart, lines] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(8),
        Constraint::Min(3),
    ])
    .areas(area);
    let tot = snap.totals;
    let mut spans = Vec::new();
    for (label, value, style) in [
        ("Submitted", count(tot.submitted), Style::new()),
        ("Queued", count(tot.queued), Style::new()),
        ("Running", count(tot.running), t.accent()),
        ("Completed", count(tot.completed), t.ok()),
        ("Failed", count(tot.failed), t.bad()),
        ("Throughput", format::rate(tot.throughput), Style::new()),
    ] {
        spans.push(Span::styled(format!("{label} "), t.muted()));
        spans.push(Span::styled(value, style.add_modifier(Modifier::BOLD)));
        spans.push(Span::raw("   "));
    }
    if let (Some(expected), Some(eta)) = (snap.expected, snap.eta_ms) {
        spans.push(Span::styled(
            format!("of {} · ETA {}", count(expected), format::millis(eta)),
            t.muted(),
        ));
    }
    f.render_widget(
        Paragraph::new(Line::from(spans)).block(block("Counts", app)),
        counts,
    );
    let width = usize::from(chart.width.saturating_sub(2));
    let rates: Vec<u64> = state
        .recent_history(width)
        .map(|p| p.output_rate.round() as u64)
        .collect();
    let peak = rates.iter().copied().max().unwrap_or(0);
    f.render_widget(
        Sparkline::default().data(&rates).style(t.accent()).block(
            block("Throughput out (items/s)", app).title_bottom(Line::from(format!(
                " now {} · peak {} ",
                format::rate(tot.throughput),
                format::rate(peak as f64)
            ))),
        ),
        chart,
    );
    let mut text = Vec::new();
    if !snap.usage.is_empty() {
        text.push(Line::from(vec![
            Span::styled("Process: ", t.muted()),
            Span::raw(snap.usage.clone()),
        ]));
    }
    match snap.bottleneck().and_then(|i| snap.stages.get(i)) {
        Some(s) => text.push(Line::from(vec![
            Span::styled("Bottleneck: ", t.muted()),
            Span::styled(s.name.clone(), t.warn().add_modifier(Modifier::BOLD)),
            Span::raw(format!(
                " ({:.0}% busy, {} queued, oldest waiting {})",
                s.busy_ratio * 100.0,
                count(s.queued),
                format::millis(s.oldest_queued_ms)
            )),
        ])),
        None => text.push(Line::styled(
            "No bottleneck: every stage keeps up.",
            t.muted(),
        )),
    }
    text.push(Line::raw(""));
    if firing.is_empty() {
        text.push(Line::styled("No health warnings.", t.muted()));
    }
    for w in firing {
        text.push(Line::from(vec![
            Span::styled(
                format!("⚠ {}: ", w.rule.title()),
                t.warn().add_modifier(Modifier::BOLD),
            ),
            Span::raw(w.message.clone()),
        ]));
    }
    f.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .block(block("Health", app)),
        lines,
    );
}

fn stages(f: &mut Frame, area: Rect, app: &App, state: &LiveState) {
    let t = app.theme;
    let snap = &state.snapshot;
    let bottleneck = snap.bottleneck();
    // A distributed stage's worker processes list their own workers after the stages'.
    let remote = || {
        snap.processes.iter().flat_map(|p| {
            p.stages
                .iter()
                .flat_map(move |s| s.workers.iter().map(move |w| (p, s, w)))
        })
    };
    let workers: usize =
        snap.stages.iter().map(|s| s.workers.len()).sum::<usize>() + remote().count();
    let [top, bottom] = Layout::vertical([
        Constraint::Length(snap.stages.len() as u16 + 3),
        Constraint::Min(3),
    ])
    .areas(area);
    let rows = snap.stages.iter().enumerate().map(|(i, s)| {
        let by = |state: WorkerState| s.workers.iter().filter(|w| w.state == state).count();
        let mut name = s.name.clone();
        if bottleneck == Some(i) {
            name.push_str(" ◀ bottleneck");
        }
        if s.paused {
            name.push_str(" (paused)");
        }
        if let Some(j) = &s.join {
            // A join: the groups it waits for, and their parts arrived of expected.
            name.push_str(&format!(
                " ⋈ {} groups {}/{}",
                count(j.waiting),
                count(j.arrived),
                count(j.expected)
            ));
        }
        Row::new(vec![
            Cell::from(name).style(if bottleneck == Some(i) {
                t.warn()
            } else {
                Style::new()
            }),
            Cell::from(format!(
                "{}/{}/{}/{}",
                by(WorkerState::Busy),
                by(WorkerState::Idle),
                by(WorkerState::Blocked),
                s.workers.len()
            )),
            Cell::from(count(s.queued)),
            Cell::from(count(s.in_flight)),
            Cell::from(count(s.completed)).style(t.ok()),
            Cell::from(count(s.failed)).style(t.bad()),
            Cell::from(count(s.retried)),
            Cell::from(format::rate(s.throughput)),
            Cell::from(format!(
                "{} / {}",
                micros(s.latency.p50_us),
                micros(s.latency.p99_us)
            )),
            // A join's lag is its oldest waiting group's, when that is older.
            Cell::from(format::millis(
                s.oldest_queued_ms
                    .max(s.join.as_ref().map_or(0, |j| j.oldest_ms)),
            )),
        ])
    });
    let header = Row::new([
        "Stage",
        "Busy/idle/blocked/all",
        "Queued",
        "In flight",
        "Completed",
        "Failed",
        "Retried",
        "Throughput",
        "p50 / p99",
        "Lag",
    ])
    .style(t.muted());
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(16),
                Constraint::Length(21),
                Constraint::Length(8),
                Constraint::Length(9),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(10),
                Constraint::Length(17),
                Constraint::Length(8),
            ],
        )
        .header(header)
        .block(block("Stages", app)),
        top,
    );
    // This process's workers can be selected (and restarted), so the list scrolls with the
    // selection; a remote process's are listed after them.
    let visible = usize::from(bottom.height.saturating_sub(3));
    let first = app.selected.saturating_sub(visible.saturating_sub(1));
    let rows: Vec<Row> = snap
        .stages
        .iter()
        .flat_map(|s| {
            s.workers
                .iter()
                .map(move |w| worker_row(t, format!("{}-{}", s.name, w.id), w.state.as_str(), w))
        })
        .enumerate()
        .map(|(i, r)| {
            if i == app.selected {
                r.style(t.selected())
            } else {
                r
            }
        })
        .chain(remote().map(|(p, s, w)| {
            // A lost process's last heartbeat is not what its workers do now.
            let state = if p.lost { "lost" } else { w.state.as_str() };
            worker_row(t, format!("{}-{} @ {}", s.name, w.id, p.process), state, w)
        }))
        .skip(first)
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(16),
                Constraint::Length(9),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(6),
                Constraint::Length(8),
            ],
        )
        .header(
            Row::new([
                "Worker",
                "State",
                "Item",
                "Processed",
                "Failed",
                "Busy",
                "Blocked",
            ])
            .style(t.muted()),
        )
        .block(block(&format!("Workers ({workers})"), app)),
        bottom,
    );
}

/// One worker's row of the workers table, under `name`, shown as `state`.
fn worker_row<'a>(
    t: crate::theme::Theme,
    name: String,
    state: &'a str,
    w: &flowdeck_protocol::WorkerSnapshot,
) -> Row<'a> {
    Row::new(vec![
        Cell::from(name),
        Cell::from(state).style(t.status(state)),
        Cell::from(w.current_item.map(|i| format!("#{i}")).unwrap_or_default()),
        Cell::from(count(w.processed)),
        Cell::from(count(w.failed)),
        Cell::from(format!("{:.0}%", w.busy_ratio * 100.0)),
        Cell::from(format!("{:.0}%", w.blocked_ratio * 100.0)),
    ])
}

/// The `visible` rows of a list around the app's selection, scrolled so that the selection
/// stays on screen, the selected one highlighted.
fn selectable<T>(
    app: &App,
    items: impl Iterator<Item = T>,
    visible: usize,
    row: impl Fn(T) -> Row<'static>,
) -> Vec<Row<'static>> {
    let first = app.selected.saturating_sub(visible.saturating_sub(1));
    items
        .skip(first)
        .take(visible)
        .enumerate()
        .map(|(i, item)| {
            let r = row(item);
            if first + i == app.selected {
                r.style(app.theme.selected())
            } else {
                r
            }
        })
        .collect()
}

/// A stage's name from the snapshot, or nothing for an index it does not have.
fn stage_name(stages: &[flowdeck_protocol::StageSnapshot], i: u16) -> String {
    stages
        .get(usize::from(i))
        .map(|s| s.name.clone())
        .unwrap_or_default()
}

fn tasks(f: &mut Frame, area: Rect, app: &App, state: &LiveState) {
    let t = app.theme;
    let names = &state.snapshot.stages;
    let now_us = state.snapshot.uptime_ms * 1000;
    let total = app.tasks(state).count();
    let filter = format!(
        "status: {} · stage: {} · text: {}",
        app.status.map_or("all", ItemStatus::as_str),
        app.stage
            .and_then(|i| names.get(usize::from(i)))
            .map_or("all", |s| s.name.as_str()),
        if app.text.is_empty() {
            "—"
        } else {
            app.text.as_str()
        }
    );
    let visible = usize::from(area.height.saturating_sub(4));
    let rows = selectable(app, app.tasks(state), visible, |r| {
        let status = r.status().as_str();
        Row::new(vec![
            Cell::from(format!("#{}", r.id())),
            Cell::from(status).style(t.status(status)),
            Cell::from(stage_name(names, r.stage())),
            Cell::from(r.attempts().to_string()),
            Cell::from(format!(
                "{} ago",
                format::millis(now_us.saturating_sub(r.updated_us()) / 1000)
            )),
            Cell::from(r.error_kind().unwrap_or("").to_owned()).style(t.bad()),
        ])
    });
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(16),
                Constraint::Length(8),
                Constraint::Length(12),
                Constraint::Min(10),
            ],
        )
        .header(
            Row::new(["Item", "Status", "Stage", "Attempts", "Changed", "Error"]).style(t.muted()),
        )
        .block(block(
            &format!(
                "Tasks: {} of {} retained · {filter}",
                count(total as u64),
                count(state.items.len() as u64)
            ),
            app,
        )),
        area,
    );
}

fn errors(f: &mut Frame, area: Rect, app: &App, state: &LiveState) {
    let t = app.theme;
    let e = &state.errors;
    let names = &state.snapshot.stages;
    let [top, bottom] = Layout::vertical([Constraint::Length(8), Constraint::Min(3)]).areas(area);
    let [kinds, by_stage] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    f.render_widget(
        Table::new(
            e.by_kind.iter().map(|(k, n)| {
                Row::new(vec![
                    Cell::from(k.clone()).style(t.bad()),
                    Cell::from(count(*n)),
                ])
            }),
            [Constraint::Min(16), Constraint::Length(10)],
        )
        .block(block(&format!("By kind · {} failed", count(e.total)), app)),
        kinds,
    );
    f.render_widget(
        Table::new(
            e.by_stage.iter().enumerate().map(|(i, n)| {
                Row::new(vec![
                    Cell::from(names.get(i).map(|s| s.name.clone()).unwrap_or_default()),
                    Cell::from(count(*n)),
                ])
            }),
            [Constraint::Min(16), Constraint::Length(10)],
        )
        .block(block("By stage", app)),
        by_stage,
    );
    let visible = usize::from(bottom.height.saturating_sub(3));
    let rows = selectable(app, e.recent.iter(), visible, |r| {
        Row::new(vec![
            Cell::from(format!("#{}", r.id)),
            Cell::from(stage_name(names, r.stage)),
            Cell::from(r.error.kind.clone()).style(t.bad()),
            Cell::from(r.error.message.clone()),
        ])
    });
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(10),
                Constraint::Length(16),
                Constraint::Length(18),
                Constraint::Min(10),
            ],
        )
        .header(Row::new(["Item", "Stage", "Error", "Message"]).style(t.muted()))
        .block(block("Recent failures", app)),
        bottom,
    );
}

fn task(f: &mut Frame, area: Rect, app: &App, d: &TaskDetail) {
    let t = app.theme;
    let item = &d.detail;
    let stage = |i: u16| {
        d.stage_names
            .get(usize::from(i))
            .cloned()
            .unwrap_or_else(|| format!("stage {i}"))
    };
    let status = item.status.as_str();
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("Task #{} ", item.id), t.title()),
        Span::styled(status, t.status(status).add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            " at {} · created {} ago · last change {} ago",
            stage(item.stage),
            format::millis(d.now_ms.saturating_sub(item.created_us / 1000)),
            format::millis(d.now_ms.saturating_sub(item.updated_us / 1000)),
        )),
    ])];
    if d.from_store {
        lines.push(Line::styled(
            "No longer in the live view's memory: the copy the run store kept when it finished",
            t.muted(),
        ));
    }
    if let Some(e) = &item.error {
        lines.push(Line::from(vec![
            Span::styled(
                format!("{}: ", e.kind),
                t.bad().add_modifier(Modifier::BOLD),
            ),
            Span::raw(e.message.clone()),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Stages", t.title()));
    for v in &item.visits {
        let started = v.started_us.unwrap_or(v.queued_us);
        let finished = v.finished_us.unwrap_or(item.updated_us);
        lines.push(Line::raw(format!(
            "  {:<16} {:<12} {} attempt(s) · waited {} · ran {} · {}",
            stage(v.stage),
            v.worker
                .map(|w| format!("{}-{w}", stage(v.stage)))
                .unwrap_or_default(),
            v.attempts,
            micros(started.saturating_sub(v.queued_us)),
            micros(finished.saturating_sub(started)),
            v.outcome.map_or("in progress", ItemStatus::as_str)
        )));
    }
    if !item.annotations.is_empty() {
        lines.push(Line::raw(""));
        lines.push(Line::styled("Annotations", t.title()));
        for (k, v) in &item.annotations {
            lines.push(Line::raw(format!(
                "  {k} = {}",
                serde_json::to_string(v).unwrap_or_default()
            )));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Provenance", t.title()));
    if d.provenance.len() <= 1 && item.parents.is_empty() {
        lines.push(Line::styled("  pipeline input (no parents)", t.muted()));
    }
    for a in d.provenance.iter().filter(|a| a.depth > 0) {
        lines.push(Line::raw(format!(
            "  {}#{} via {}{}",
            "  ".repeat(a.depth as usize - 1),
            a.id,
            a.stages
                .iter()
                .map(|&s| stage(s))
                .collect::<Vec<_>>()
                .join(" → "),
            if a.retained {
                ""
            } else {
                " (no longer retained)"
            }
        )));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("History", t.title()));
    for e in item.history.iter().rev().take(30) {
        lines.push(Line::raw(format!(
            "  {:>9} ago  {:<10} at {}{}{}",
            format::millis(d.now_ms.saturating_sub(e.at_us / 1000)),
            format!("{:?}", e.kind).to_lowercase(),
            stage(e.stage),
            if e.attempt > 0 {
                format!(", attempt {}", e.attempt)
            } else {
                String::new()
            },
            e.error
                .as_ref()
                .map(|err| format!(": {} ({})", err.message, err.kind))
                .unwrap_or_default()
        )));
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block("Task", app)),
        area,
    );
}

const HELP: &[(&str, &str)] = &[
    (
        "1 2 3 4 5 6",
        "Overview, Stages, Tasks, Errors, Questions, Pages",
    ),
    ("Tab / Shift-Tab", "next / previous page"),
    ("↑ ↓  j k", "select a row (Stages, Tasks, Errors, Pages)"),
    (
        "R (Stages)",
        "restart the selected worker: its attempt is retried",
    ),
    ("PgUp PgDn Home", "move faster"),
    (
        "Enter",
        "open the selected task: stages, error, provenance, history",
    ),
    ("Esc", "back from a task or a question"),
    (
        "Enter (Questions)",
        "answer: ←→ option, ↑↓ field, type, Enter",
    ),
    ("/", "filter tasks by id (#42) or error kind"),
    ("s", "cycle the status filter"),
    ("g", "cycle the stage filter"),
    ("c", "clear the filters"),
    ("?", "this help (any key closes it)"),
    ("q  Ctrl-C", "quit"),
];

/// The custom pages: the selected one's widgets, a view's blocks as text, and where a
/// browser shows the rest (template widgets, charts, tables).
fn pages(f: &mut Frame, area: Rect, app: &App) {
    let t = app.theme;
    let pages = match &app.pages {
        Err(why) => {
            f.render_widget(
                Paragraph::new(why.as_str())
                    .style(t.bad())
                    .block(block("Pages", app)),
                area,
            );
            return;
        }
        Ok(p) if p.is_empty() => {
            f.render_widget(
                Paragraph::new("No custom pages (or not read yet).")
                    .style(t.muted())
                    .block(block("Pages", app)),
                area,
            );
            return;
        }
        Ok(p) => p,
    };
    let at = app.selected.min(pages.len() - 1);
    let page = &pages[at];
    let mut lines = vec![Line::from(
        pages
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                let style = if i == at { t.selected() } else { t.muted() };
                [
                    Span::styled(format!(" {} ", p.spec.title), style),
                    Span::raw(" "),
                ]
            })
            .collect::<Vec<_>>(),
    )];
    for (placed, content) in page.spec.widgets.iter().zip(&page.widgets) {
        let w = &placed.widget;
        lines.push(Line::raw(""));
        lines.push(Line::styled(format!("▸ {}", w.title()), t.title()));
        let browser = || Line::styled(format!("  open in a browser: {}", page.url), t.muted());
        match content {
            None => lines.push(browser()),
            Some(Err(why)) => lines.push(Line::styled(format!("  {why}"), t.bad())),
            Some(Ok(d)) => match (&d.error, &d.view) {
                (Some(e), _) => lines.push(Line::styled(format!("  {e}"), t.bad())),
                (None, Some(blocks)) => {
                    lines.extend(blocks.iter().flat_map(|b| block_lines(app, b)))
                }
                (None, None) => lines.push(browser()),
            },
        }
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block("Pages", app)),
        area,
    );
}

/// A view's block as lines of text.
fn block_lines(app: &App, b: &flowdeck_protocol::page::Block) -> Vec<Line<'static>> {
    use flowdeck_protocol::page::{Block as B, Health};
    let t = app.theme;
    let health = |h: Option<Health>| match h {
        Some(Health::Warn) => t.warn(),
        Some(Health::Fail) => t.bad(),
        Some(Health::Ok) => t.ok(),
        None => Style::new(),
    };
    let meter = |value: f64, max: f64| {
        let share = if max > 0.0 {
            (value / max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let full = (share * 20.0).round() as usize;
        format!("[{}{}]", "█".repeat(full), "·".repeat(20 - full))
    };
    let num = |v: f64| flowdeck_protocol::page::Cell::Num(v).text();
    match b {
        B::Stat {
            label,
            value,
            hint,
            health: h,
        } => vec![Line::from(vec![
            Span::styled(format!("  {label} "), t.muted()),
            Span::styled(value.clone(), health(*h).add_modifier(Modifier::BOLD)),
            Span::styled(
                hint.as_ref().map(|h| format!("  {h}")).unwrap_or_default(),
                t.muted(),
            ),
        ])],
        B::Bar { label, value, max } => vec![Line::raw(format!(
            "  {label} {} {}",
            meter(*value, *max),
            num(*value)
        ))],
        B::Progress { label, done, total } => vec![Line::raw(format!(
            "  {label} {} {} of {}",
            meter(*done, *total),
            num(*done),
            num(*total)
        ))],
        B::Sparkline { label, points } => {
            const TICKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
            let (lo, hi) = points
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &p| (lo.min(p), hi.max(p)));
            let span = if hi > lo { hi - lo } else { 1.0 };
            let line: String = points
                .iter()
                .map(|p| TICKS[(((p - lo) / span) * 7.0).round() as usize % 8])
                .collect();
            vec![Line::raw(format!("  {label} {line}"))]
        }
        B::Table { columns, rows } => std::iter::once(Line::styled(
            format!("  {}", columns.join(" │ ")),
            t.muted(),
        ))
        .chain(rows.iter().map(|r| {
            let cells: Vec<String> = r.iter().map(|c| c.text()).collect();
            Line::raw(format!("  {}", cells.join(" │ ")))
        }))
        .collect(),
        B::List { items } => items
            .iter()
            .map(|i| Line::raw(format!("  • {i}")))
            .collect(),
        B::KeyValue { pairs } => pairs
            .iter()
            .map(|(k, v)| {
                Line::from(vec![
                    Span::styled(format!("  {k}: "), t.muted()),
                    Span::raw(v.clone()),
                ])
            })
            .collect(),
        B::Badge { text, health: h } => {
            vec![Line::styled(format!("  [{text}]"), health(Some(*h)))]
        }
        B::Text { html } => vec![Line::raw(format!("  {}", text_of(html)))],
    }
}

/// Sanitized HTML as plain text: its tags dropped and the few entities a sanitizer writes
/// read back.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim()
        .to_owned()
}

fn questions(f: &mut Frame, area: Rect, app: &App, state: &LiveState) {
    let t = app.theme;
    let list = app.questions(state);
    let pending = list.iter().filter(|q| q.state.is_pending()).count();
    let visible = usize::from(area.height.saturating_sub(3));
    let rows = selectable(app, list.into_iter(), visible, |q| {
        let state = q.state.as_str();
        let answer = q
            .answer
            .as_ref()
            .map(|a| format!("{} ({})", a.choice, a.by.as_deref().unwrap_or("default")))
            .unwrap_or_default();
        Row::new(vec![
            Cell::from(format!("#{}", q.id)),
            Cell::from(state).style(if q.state.is_pending() {
                t.accent()
            } else {
                t.muted()
            }),
            Cell::from(format!("{} #{}", q.stage_name, q.item)),
            Cell::from(q.title.clone()),
            Cell::from(answer),
        ])
    });
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(7),
                Constraint::Length(10),
                Constraint::Length(18),
                Constraint::Min(20),
                Constraint::Length(24),
            ],
        )
        .header(Row::new(["Id", "State", "Item", "Question", "Answer"]).style(t.muted()))
        .block(block(&format!("Questions · {pending} pending"), app)),
        area,
    );
}

/// An open question: what it asks (its Markdown as written), its options with the chosen
/// one marked, its form's fields with what was typed, and the server's last word.
fn answering(f: &mut Frame, area: Rect, app: &App) {
    let t = app.theme;
    let Some(a) = &app.answering else { return };
    let q = &a.question;
    let mut lines = vec![
        Line::styled(q.title.clone(), t.title()),
        Line::styled(
            format!(
                "{} · {} · item #{} · {}",
                q.pipeline,
                q.stage_name,
                q.item,
                q.state.as_str()
            ),
            t.muted(),
        ),
        Line::raw(""),
    ];
    lines.extend(q.body.lines().map(|l| Line::raw(l.to_owned())));
    lines.push(Line::raw(""));
    if !q.fields.is_empty() {
        for (i, (field, value)) in q.fields.iter().zip(&a.values).enumerate() {
            let marker = if i == a.field { "▸ " } else { "  " };
            lines.push(Line::from(vec![
                Span::raw(marker),
                Span::styled(
                    format!(
                        "{}{}: ",
                        field.label,
                        if field.required { " *" } else { "" }
                    ),
                    t.title(),
                ),
                Span::raw(value.clone()),
                Span::raw(if i == a.field { "▏" } else { "" }),
            ]));
        }
        lines.push(Line::raw(""));
    }
    let mut options = vec![Span::raw("Answer: ")];
    for (i, o) in q.options.iter().enumerate() {
        let style = if i == a.choice {
            t.accent().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        options.push(Span::styled(format!(" {} {o} ", i + 1), style));
        options.push(Span::raw(" "));
    }
    lines.push(Line::from(options));
    if let Some(said) = &a.said {
        lines.push(Line::raw(""));
        lines.push(match said {
            Ok(m) => Line::styled(m.clone(), t.ok()),
            Err(m) => Line::styled(m.clone(), t.bad()),
        });
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(&format!("Question #{}", q.id), app)),
        area,
    );
}

fn help(f: &mut Frame, app: &App) {
    let area = f.area();
    let w = area.width.min(72);
    let h = (HELP.len() as u16 + 4).min(area.height);
    let rect = Rect::new((area.width - w) / 2, (area.height - h) / 2, w, h);
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:>16}  "),
                    app.theme.accent().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    f.render_widget(Clear, rect);
    f.render_widget(Paragraph::new(lines).block(block("Keys", app)), rect);
}
