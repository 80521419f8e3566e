//! `flowdeck top`: a live terminal monitor of a running dashboard, over SSH as well as
//! anywhere a browser is not. It reads the same stream as the browser and applies it
//! with the same [`flowdeck_protocol::stream::LiveState`], so it resumes without gaps
//! after a dropped connection, and it keeps what the browser keeps: at most the server's
//! retention of items (100,000 by default) and 1,200 points of rate history.
//!
//! The model ([`app`]) and the drawing ([`view`]) are plain functions over that state;
//! [`run`] wires them to the terminal (ratatui over crossterm) and the network
//! ([`client`]).

pub mod app;
pub mod client;
pub mod theme;
pub mod view;

use std::time::{Duration, Instant};

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::sync::watch;

use app::{Action, App, Link};

/// What `flowdeck top` was asked.
#[derive(Clone, Debug)]
pub struct Options {
    pub url: String,
    pub token: Option<String>,
    /// A finished run from the run store instead of the live pipeline.
    pub run: Option<i64>,
    /// `dark` or `light` (colours are off with `NO_COLOR` or a dumb terminal).
    pub theme: Option<String>,
    /// How often the screen is redrawn.
    pub refresh: Duration,
}

/// How often an open task is read again while the pipeline runs.
const TASK_EVERY: Duration = Duration::from_secs(2);
/// How often the Pages tab reads the custom pages again while it is shown.
const PAGES_EVERY: Duration = Duration::from_secs(2);

/// Runs the monitor until the user quits. The terminal is restored on the way out, on an
/// error and on a panic.
pub async fn run(options: Options) -> Result<(), String> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return Err("flowdeck top draws on a terminal, and standard output is not one".into());
    }
    let client = client::Client::new(&options.url, options.token.clone())?;
    let state: client::Shared = Default::default();
    let (link_tx, link) = watch::channel(Link::Connecting);
    let follower = match options.run {
        Some(run) => {
            *state.lock() = Some(client.stored_run(run).await?);
            link_tx.send_replace(Link::Stored(run));
            None
        }
        None => Some(tokio::spawn(client.clone().follow(state.clone(), link_tx))),
    };
    let theme = theme::Theme::from_env(options.theme.as_deref());
    let mut terminal = ratatui::init();
    let result = ui(&mut terminal, &client, &state, link, theme, &options).await;
    ratatui::restore();
    if let Some(f) = follower {
        f.abort();
    }
    result
}

async fn ui(
    terminal: &mut ratatui::DefaultTerminal,
    client: &client::Client,
    state: &client::Shared,
    link: watch::Receiver<Link>,
    theme: theme::Theme,
    options: &Options,
) -> Result<(), String> {
    let mut app = App::new(theme, link.borrow().clone());
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(options.refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // A task is read off the screen's loop: a slow dashboard never freezes the keys.
    let (task_tx, mut task_rx) = tokio::sync::mpsc::channel(4);
    let read_task = |id: u64| {
        let (client, tx, run) = (client.clone(), task_tx.clone(), options.run);
        tokio::spawn(async move {
            let _ = tx.send((id, client.task(id, run).await)).await;
        });
    };
    // The task open (or being opened) and when it was last asked for.
    let mut open: Option<(u64, Instant)> = None;
    // Answers are sent off the screen's loop too, and so are restarts and page reads.
    let (answer_tx, mut answer_rx) = tokio::sync::mpsc::channel(4);
    let (said_tx, mut said_rx) = tokio::sync::mpsc::channel(4);
    let (pages_tx, mut pages_rx) = tokio::sync::mpsc::channel(1);
    // When the pages were last asked for, and whether an answer is awaited.
    let mut pages_asked: Option<Instant> = None;
    let mut pages_waiting = false;
    loop {
        app.link = link.borrow().clone();
        terminal
            .draw(|f| view::draw(f, &app, state.lock().as_ref()))
            .map_err(|e| format!("cannot draw: {e}"))?;
        tokio::select! {
            _ = tick.tick() => {
                let due = pages_asked.is_none_or(|at| at.elapsed() >= PAGES_EVERY);
                if app.tab == app::Tab::Pages && due && !pages_waiting && options.run.is_none() {
                    let (client, tx) = (client.clone(), pages_tx.clone());
                    tokio::spawn(async move {
                        let _ = tx.send(client.pages().await).await;
                    });
                    pages_asked = Some(Instant::now());
                    pages_waiting = true;
                }
                // An open task of a live pipeline is read again now and then.
                if let (Some((id, at)), None, Some(Ok(_))) = (open, options.run, &app.task) {
                    if at.elapsed() >= TASK_EVERY {
                        read_task(id);
                        open = Some((id, Instant::now()));
                    }
                }
            }
            Some(pages) = pages_rx.recv() => {
                app.pages = pages;
                pages_waiting = false;
            }
            Some(said) = said_rx.recv() => app.said = Some(said),
            Some((id, said)) = answer_rx.recv() => {
                if let Some(a) = app.answering.as_mut().filter(|a| a.question.id == id) {
                    a.said = Some(said);
                }
            }
            Some((id, detail)) = task_rx.recv() => {
                // Only the task still asked for; one closed meanwhile stays closed.
                if open.is_some_and(|(want, _)| want == id) {
                    app.task = Some(detail);
                }
            }
            event = keys.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    let had_task = app.task.is_some();
                    let action = app.on_key(key, state.lock().as_ref());
                    if had_task && app.task.is_none() {
                        open = None;
                    }
                    match action {
                        Some(Action::Quit) => return Ok(()),
                        Some(Action::OpenTask(id)) => {
                            read_task(id);
                            open = Some((id, Instant::now()));
                        }
                        Some(Action::Restart(stage, worker)) => {
                            let (client, tx) = (client.clone(), said_tx.clone());
                            tokio::spawn(async move {
                                let said = client.restart(&stage, worker).await.map(|()| {
                                    format!("Restarted {stage}-{worker}: its item is retried.")
                                });
                                let _ = tx.send(said).await;
                            });
                        }
                        Some(Action::Answer(id, reply)) => {
                            let (client, tx) = (client.clone(), answer_tx.clone());
                            tokio::spawn(async move {
                                let said = client.answer(id, &reply).await.map(|q| {
                                    let choice = q.answer.map(|a| a.choice).unwrap_or_default();
                                    format!("Answered “{choice}”: the item goes on.")
                                });
                                let _ = tx.send((id, said)).await;
                            });
                        }
                        None => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("cannot read the terminal: {e}")),
                None => return Ok(()),
            },
        }
    }
}
