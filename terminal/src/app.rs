//! What the monitor shows and how keys move it: the tab, the task list's filters and
//! selection, the open task, the help. Plain data with no terminal and no network, so the
//! views and keys are tested over a made-up [`LiveState`].

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use flowdeck_protocol::{
    page::{PageSpec, WidgetData},
    question::{FieldKind, QuestionId, QuestionInfo, Reply},
    stream::LiveState,
    ItemId, ItemStatus, TaskDetail,
};

use crate::theme::Theme;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Stages,
    Tasks,
    Errors,
    Questions,
    Pages,
}

impl Tab {
    pub const ALL: [Tab; 6] = [
        Tab::Overview,
        Tab::Stages,
        Tab::Tasks,
        Tab::Errors,
        Tab::Questions,
        Tab::Pages,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Stages => "Stages",
            Tab::Tasks => "Tasks",
            Tab::Errors => "Errors",
            Tab::Questions => "Questions",
            Tab::Pages => "Pages",
        }
    }
}

/// A question being answered: the option chosen, the form's fields as typed, the field
/// being typed into, and the server's last refusal.
#[derive(Clone, Debug, PartialEq)]
pub struct Answering {
    pub question: QuestionInfo,
    pub choice: usize,
    pub values: Vec<String>,
    pub field: usize,
    /// The server's last word: why it refused, or that it took the answer.
    pub said: Option<Result<String, String>>,
}

impl Answering {
    fn new(question: QuestionInfo) -> Self {
        let values = vec![String::new(); question.fields.len()];
        Answering {
            question,
            choice: 0,
            values,
            field: 0,
            said: None,
        }
    }

    /// The reply as typed: each field read as its kind takes it (a list is split at
    /// commas, a yes/no is a boolean); what does not parse goes as text, for the server
    /// to name.
    pub fn reply(&self) -> Reply {
        let choice = self
            .question
            .options
            .get(self.choice)
            .cloned()
            .unwrap_or_default();
        if self.question.fields.is_empty() {
            return Reply {
                choice,
                data: serde_json::Value::Null,
            };
        }
        let mut data = serde_json::Map::new();
        for (f, v) in self.question.fields.iter().zip(&self.values) {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let text = || serde_json::Value::String(v.to_owned());
            let value = match &f.kind {
                FieldKind::Integer { .. } => v.parse::<i64>().map_or_else(|_| text(), Into::into),
                FieldKind::Number { .. } => v
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(text, serde_json::Value::Number),
                FieldKind::Boolean => match v.to_lowercase().as_str() {
                    "y" | "yes" | "true" | "1" => true.into(),
                    "n" | "no" | "false" | "0" => false.into(),
                    _ => text(),
                },
                FieldKind::List => v
                    .split(',')
                    .map(|s| serde_json::Value::String(s.trim().to_owned()))
                    .collect(),
                _ => text(),
            };
            data.insert(f.name.clone(), value);
        }
        Reply {
            choice,
            data: serde_json::Value::Object(data),
        }
    }
}

/// A custom page as the monitor shows it: its spec, where a browser shows it, and each
/// widget's content (`None` for a built-in widget, which only a browser draws).
#[derive(Clone, Debug, PartialEq)]
pub struct PageShown {
    pub spec: PageSpec,
    pub url: String,
    pub widgets: Vec<Option<Result<WidgetData, String>>>,
}

/// The stream's state, for the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Live,
    /// The stream dropped; it reconnects on its own, resuming after the last frame.
    Reconnecting(String),
    /// A finished run read from the run store: nothing streams.
    Stored(i64),
}

/// What a key asks of the network.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    OpenTask(ItemId),
    Answer(QuestionId, Reply),
    /// Restart worker `.1` of stage `.0`.
    Restart(String, u16),
    Quit,
}

#[derive(Clone, Debug)]
pub struct App {
    pub tab: Tab,
    pub link: Link,
    pub theme: Theme,
    /// The task list's filters: by status, by stage, by text (an id, or a piece of the
    /// error kind).
    pub status: Option<ItemStatus>,
    pub stage: Option<u16>,
    pub text: String,
    /// Typing into the text filter.
    pub editing: bool,
    /// The selected row of the task list (or the Errors tab's recent failures), from the
    /// top.
    pub selected: usize,
    /// The task shown over the tabs, once loaded; `Err` says why it is not.
    pub task: Option<Result<TaskDetail, String>>,
    /// The question open for an answer, over the tabs.
    pub answering: Option<Answering>,
    pub help: bool,
    /// The custom pages, as last read (the Pages tab reads them every few seconds);
    /// `Err` says why they could not be.
    pub pages: Result<Vec<PageShown>, String>,
    /// What the last action said (a restart): done, or the server's refusal.
    pub said: Option<Result<String, String>>,
}

impl App {
    pub fn new(theme: Theme, link: Link) -> App {
        App {
            tab: Tab::Overview,
            link,
            theme,
            status: None,
            stage: None,
            text: String::new(),
            editing: false,
            selected: 0,
            task: None,
            answering: None,
            help: false,
            pages: Ok(Vec::new()),
            said: None,
        }
    }

    /// The questions the Questions tab lists: pending ones (oldest first), then the
    /// closed ones kept (newest first).
    pub fn questions<'a>(&self, state: &'a LiveState) -> Vec<&'a QuestionInfo> {
        let mut pending: Vec<&QuestionInfo> = state.pending_questions().collect();
        let mut closed: Vec<&QuestionInfo> = state
            .questions
            .values()
            .filter(|q| !q.state.is_pending())
            .collect();
        closed.reverse();
        pending.append(&mut closed);
        pending
    }

    /// Keys while a question is open: ←→ choose an option, ↑↓ move between fields, type
    /// into a field, Enter answers, Esc closes.
    fn on_answer_key(&mut self, key: KeyEvent) -> Option<Action> {
        let a = self.answering.as_mut()?;
        let fields = a.question.fields.len();
        match key.code {
            KeyCode::Esc => self.answering = None,
            KeyCode::Left => a.choice = a.choice.saturating_sub(1),
            KeyCode::Right => a.choice = (a.choice + 1).min(a.question.options.len().max(1) - 1),
            KeyCode::Up => a.field = a.field.saturating_sub(1),
            KeyCode::Down | KeyCode::Tab => a.field = (a.field + 1).min(fields.max(1) - 1),
            KeyCode::Backspace => {
                if let Some(v) = a.values.get_mut(a.field) {
                    v.pop();
                }
            }
            KeyCode::Char(c) if fields > 0 => {
                if let Some(v) = a.values.get_mut(a.field) {
                    v.push(c);
                }
            }
            // Without a form, a digit picks an option.
            KeyCode::Char(c @ '1'..='9') => {
                let i = usize::from(c as u8 - b'1');
                if i < a.question.options.len() {
                    a.choice = i;
                }
            }
            KeyCode::Enter if a.question.state.is_pending() => {
                return Some(Action::Answer(a.question.id, a.reply()));
            }
            _ => {}
        }
        None
    }

    /// The retained items the task list shows, newest first, with the filters applied.
    pub fn tasks<'a>(
        &'a self,
        state: &'a LiveState,
    ) -> impl Iterator<Item = &'a flowdeck_protocol::stream::ItemRow> + 'a {
        let text = self.text.trim().trim_start_matches('#').to_lowercase();
        let id: Option<ItemId> = text.parse().ok();
        state.items.values().rev().filter(move |r| {
            self.status.is_none_or(|s| r.status() == s)
                && self.stage.is_none_or(|s| r.stage() == s)
                && (text.is_empty()
                    || id == Some(r.id())
                    || r.error_kind()
                        .is_some_and(|k| k.to_lowercase().contains(&text)))
        })
    }

    /// Handles a key; returns what it asks of the network, if anything. `state` is what
    /// is shown, for the selection's bounds and the item under it.
    pub fn on_key(&mut self, key: KeyEvent, state: Option<&LiveState>) -> Option<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        if self.editing {
            match key.code {
                KeyCode::Enter | KeyCode::Esc => self.editing = false,
                KeyCode::Backspace => {
                    self.text.pop();
                }
                KeyCode::Char(c) => self.text.push(c),
                _ => {}
            }
            self.selected = 0;
            return None;
        }
        if self.help {
            self.help = false;
            return None;
        }
        if self.answering.is_some() {
            return self.on_answer_key(key);
        }
        if self.task.is_some() {
            match key.code {
                KeyCode::Esc | KeyCode::Backspace | KeyCode::Left => self.task = None,
                KeyCode::Char('q') => return Some(Action::Quit),
                KeyCode::Char('?') => self.help = true,
                _ => {}
            }
            return None;
        }
        match key.code {
            KeyCode::Char('q') => return Some(Action::Quit),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Tab | KeyCode::Right => self.switch(1),
            KeyCode::BackTab | KeyCode::Left => self.switch(Tab::ALL.len() - 1),
            KeyCode::Char(c @ '1'..='6') => {
                self.tab = Tab::ALL[usize::from(c as u8 - b'1')];
                self.selected = 0;
            }
            KeyCode::Down | KeyCode::Char('j') => {
                let len = self.list_len(state);
                if self.selected + 1 < len {
                    self.selected += 1;
                }
            }
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Home => self.selected = 0,
            KeyCode::PageDown => {
                self.selected = (self.selected + 10).min(self.list_len(state).saturating_sub(1))
            }
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(10),
            KeyCode::Char('/') if self.tab == Tab::Tasks => self.editing = true,
            KeyCode::Char('s') if self.tab == Tab::Tasks => {
                self.status = next(&ItemStatus::ALL, self.status);
                self.selected = 0;
            }
            KeyCode::Char('g') if self.tab == Tab::Tasks => {
                let stages: Vec<u16> = state
                    .map(|s| (0..s.snapshot.stages.len() as u16).collect())
                    .unwrap_or_default();
                self.stage = next(&stages, self.stage);
                self.selected = 0;
            }
            KeyCode::Char('c') if self.tab == Tab::Tasks => {
                self.status = None;
                self.stage = None;
                self.text.clear();
                self.selected = 0;
            }
            KeyCode::Char('R') if self.tab == Tab::Stages => {
                let (stage, worker) = self.selected_worker(state)?;
                return Some(Action::Restart(stage, worker));
            }
            KeyCode::Enter if self.tab == Tab::Questions => {
                let q =
                    state.and_then(|s| self.questions(s).get(self.selected).map(|q| (*q).clone()));
                self.answering = q.map(Answering::new);
            }
            KeyCode::Enter => return self.selected_item(state).map(Action::OpenTask),
            _ => {}
        }
        None
    }

    fn switch(&mut self, by: usize) {
        let at = Tab::ALL.iter().position(|&t| t == self.tab).unwrap_or(0);
        self.tab = Tab::ALL[(at + by) % Tab::ALL.len()];
        self.selected = 0;
    }

    fn list_len(&self, state: Option<&LiveState>) -> usize {
        let Some(state) = state else { return 0 };
        match self.tab {
            Tab::Tasks => self.tasks(state).count(),
            Tab::Errors => state.errors.recent.len(),
            Tab::Questions => self.questions(state).len(),
            Tab::Stages => state.snapshot.stages.iter().map(|s| s.workers.len()).sum(),
            Tab::Pages => self.pages.as_ref().map_or(0, Vec::len),
            _ => 0,
        }
    }

    /// The worker under the selection on the Stages tab (this process's workers, in the
    /// order the table lists them): its stage and number.
    pub fn selected_worker(&self, state: Option<&LiveState>) -> Option<(String, u16)> {
        if self.tab != Tab::Stages {
            return None;
        }
        state?
            .snapshot
            .stages
            .iter()
            .flat_map(|s| s.workers.iter().map(move |w| (s.name.clone(), w.id)))
            .nth(self.selected)
    }

    /// The item under the selection, on the tabs that list items.
    pub fn selected_item(&self, state: Option<&LiveState>) -> Option<ItemId> {
        let state = state?;
        match self.tab {
            Tab::Tasks => self.tasks(state).nth(self.selected).map(|r| r.id()),
            Tab::Errors => state.errors.recent.get(self.selected).map(|f| f.id),
            _ => None,
        }
    }
}

/// The value after `current` in `all`, then none (all), then the first again.
fn next<T: Copy + PartialEq>(all: &[T], current: Option<T>) -> Option<T> {
    match current {
        None => all.first().copied(),
        Some(c) => all
            .iter()
            .position(|&x| x == c)
            .and_then(|i| all.get(i + 1))
            .copied(),
    }
}
