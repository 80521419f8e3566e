//! Asking a person: a stage's task calls [`Ctx::ask`](crate::Ctx::ask) with a [`Question`]
//! and waits for the answer, while its worker goes on with other items.
//!
//! The attempt that asks is parked: its future (boxed for this, per attempt) moves to a
//! small task of its own and its worker goes on with the next item. When the attempt
//! ends, its outcome goes back to the stage, where the next free worker routes its outputs
//! or retries it as it would any attempt's. A stage caps how many of its items may wait at
//! once (`Stage::max_waiting`); past the cap, an asker waits for a place on its worker.
//!
//! The questions themselves are kept here ([`Questions`], one registry per pipeline): the
//! pending ones, the most recent closed ones, the first valid answer to each. An answer is
//! checked against the options and the form's fields before it is taken; a deadline
//! takes the default or fails the item.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    marker::PhantomData,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

pub use flowdeck_protocol::question::{
    AnswerInfo, AnswerProblem, DefaultChoice, Field, FieldKind, QuestionChange, QuestionId,
    QuestionInfo, QuestionState, Reply, SUBMIT,
};
use flowdeck_protocol::{question::check_reply, ItemId, StageIndex};
use futures::task::AtomicWaker;
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use tokio::sync::{oneshot, Notify, Semaphore};

use crate::clock::Clock;

/// How many closed questions a pipeline keeps in memory for its pages (the run store keeps
/// them all).
pub const CLOSED_KEPT: usize = 1_000;

/// The most items of one stage that may wait for a person at once, by default.
pub const MAX_WAITING: usize = 1_000;

/// A question for a person, built by a stage's task and asked with
/// [`Ctx::ask`](crate::Ctx::ask). `T` is the type its form fills in (`()` without a form).
///
/// ```
/// use std::time::Duration;
/// use flowdeck_runtime::Question;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Fix {
///     /// The corrected title.
///     title: String,
///     /// How sure the reviewer is, 1 to 5.
///     #[schemars(range(min = 1, max = 5))]
///     confidence: u8,
/// }
///
/// let q = Question::new("Publish this summary?")
///     .body("**Summary** of document 42")
///     .options(["publish", "rewrite", "drop"])
///     .form::<Fix>()
///     .default_after(Duration::from_secs(600), "drop")
///     .assignees(["alice", "ops"]);
/// assert_eq!(q.fields().len(), 2);
/// ```
pub struct Question<T = ()> {
    title: String,
    body: String,
    options: Vec<String>,
    fields: Vec<Field>,
    default: Option<(Duration, String)>,
    deadline: Option<Duration>,
    assignees: Vec<String>,
    _data: PhantomData<fn() -> T>,
}

impl Question<()> {
    pub fn new(title: impl Into<String>) -> Self {
        Question {
            title: title.into(),
            body: String::new(),
            options: Vec::new(),
            fields: Vec::new(),
            default: None,
            deadline: None,
            assignees: Vec::new(),
            _data: PhantomData,
        }
    }
}

impl<T> Question<T> {
    /// What the person reads before answering, in Markdown (HTML in it is shown as text).
    pub fn body(mut self, markdown: impl Into<String>) -> Self {
        self.body = markdown.into();
        self
    }

    /// The choices, in the order shown. A question with a form and no options is answered
    /// with the one choice [`SUBMIT`].
    pub fn options<S: Into<String>>(mut self, options: impl IntoIterator<Item = S>) -> Self {
        self.options = options.into_iter().map(Into::into).collect();
        self
    }

    /// A form made from `U`'s fields (its JSON Schema, from `schemars`): text, multiline
    /// text (`#[schemars(extend("format" = "textarea"))]`), number, integer (with its
    /// `range`), boolean, one of an enum's values, list of strings. An answer's fields are
    /// checked against it, and the answer's `data` is a `U`.
    pub fn form<U: schemars::JsonSchema + DeserializeOwned>(self) -> Question<U> {
        let schema = schemars::schema_for!(U);
        Question {
            title: self.title,
            body: self.body,
            options: self.options,
            fields: fields_of(schema.as_value()),
            default: self.default,
            deadline: self.deadline,
            assignees: self.assignees,
            _data: PhantomData,
        }
    }

    /// Takes `choice` when nobody answers within `after` (the answer then says
    /// `timed_out`, `by: None`, and has no form data).
    pub fn default_after(mut self, after: Duration, choice: impl Into<String>) -> Self {
        self.default = Some((after, choice.into()));
        self
    }

    /// Fails the item with a `TimedOut` error when nobody answers within `after` (a
    /// question with no default and no deadline waits until it is answered or cancelled).
    pub fn deadline(mut self, after: Duration) -> Self {
        self.deadline = Some(after);
        self
    }

    /// Who may answer: user names or roles (`admin`). None named: anyone who may control
    /// the pipeline.
    pub fn assignees<S: Into<String>>(mut self, who: impl IntoIterator<Item = S>) -> Self {
        self.assignees = who.into_iter().map(Into::into).collect();
        self
    }

    /// The form's fields, as pages show them.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The choices an answer may take.
    fn choices(&self) -> Vec<String> {
        if self.options.is_empty() && !self.fields.is_empty() {
            vec![SUBMIT.to_owned()]
        } else {
            self.options.clone()
        }
    }

    /// What is wrong with the question as asked, if anything.
    pub(crate) fn problem(&self) -> Option<String> {
        let choices = self.choices();
        if self.title.trim().is_empty() {
            return Some("a question needs a title".into());
        }
        if choices.is_empty() {
            return Some(format!(
                "question {:?} offers no options and has no form",
                self.title
            ));
        }
        if let Some((_, choice)) = &self.default {
            if !choices.contains(choice) {
                return Some(format!(
                    "question {:?}: its default {choice:?} is not one of its options ({})",
                    self.title,
                    choices.join(", ")
                ));
            }
        }
        None
    }
}

/// A person's answer, or the default taken at the deadline.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer<T> {
    pub choice: String,
    /// The form's fields as given; `None` without a form, or when the default was taken.
    pub data: Option<T>,
    /// Who answered; `None` when the default was taken.
    pub by: Option<String>,
    pub at_unix_ms: u64,
    /// The default was taken because nobody answered in time.
    pub timed_out: bool,
}

/// Why [`Ctx::ask`](crate::Ctx::ask) has no answer. The attempt's outcome follows it,
/// whatever the task returns: a question that timed out fails the item with a `TimedOut`
/// error (not retried), one that was cancelled cancels it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unanswered {
    #[error("nobody answered {question:?} within {after:?}")]
    TimedOut { question: String, after: Duration },
    #[error(
        "the question was cancelled: its item was cancelled, or the pipeline drained or stopped"
    )]
    Cancelled,
    /// The question cannot be asked as written (no options, a default that is no option).
    #[error("{0}")]
    Invalid(String),
}

/// So that a task whose error type is `String` can write `cx.ask(q).await?`.
impl From<Unanswered> for String {
    fn from(e: Unanswered) -> Self {
        e.to_string()
    }
}

/// How a question closed, as its asker hears it.
#[derive(Debug)]
pub(crate) enum Closing {
    /// Boxed: the channel that brings it keeps room for it from the moment it is asked.
    Answered(Box<AnswerInfo>),
    /// With the question's title, for the item's error.
    TimedOut {
        title: String,
    },
    Cancelled,
}

/// Who hears a question's answer: the task that asked, in this process, or a process that
/// relayed it here (a reporting process's question, answered on its standalone dashboard).
pub(crate) enum Responder {
    Local(oneshot::Sender<Closing>),
    /// Answers are passed on with the question's id in the asking process.
    Relayed(Relay),
}

/// Where a relayed question's answers go: with its id here, the reply and who gave it.
pub type Relay = Arc<dyn Fn(QuestionId, &Reply, Option<&str>) + Send + Sync>;

/// A user's `on_question`: called when a question is asked and when it closes.
pub(crate) type QuestionCallback = Box<dyn Fn(&QuestionChange) + Send + Sync>;

/// Checks a form's data as the asking type reads it, past the fields' own checks.
type DataCheck = Box<dyn Fn(&serde_json::Value) -> Result<(), String> + Send + Sync>;

struct Open {
    info: QuestionInfo,
    responder: Responder,
    check: Option<DataCheck>,
    /// When its deadline passes (the default is taken, or it times out), if ever.
    expires: Option<tokio::time::Instant>,
}

#[derive(Default)]
struct Book {
    /// Boxed: the map's nodes keep room for entries they do not hold yet.
    pending: BTreeMap<QuestionId, Box<Open>>,
    /// The pending questions' deadlines, soonest first.
    deadlines: BTreeSet<(tokio::time::Instant, QuestionId)>,
    /// The most recent closed ones, oldest first.
    closed: VecDeque<QuestionInfo>,
}

/// One pipeline's questions.
pub struct Questions {
    pipeline: String,
    clock: Clock,
    next: AtomicU64,
    book: Mutex<Book>,
    callbacks: RwLock<Vec<QuestionCallback>>,
    /// Changes so far (asked or closed), for pages that list them.
    seq: AtomicU64,
    /// Every change, for the dashboard's stream and its run store.
    feed: tokio::sync::broadcast::Sender<QuestionChange>,
    /// Wakes the task that expires questions at their deadlines (one per registry, rather
    /// than a timer in every waiting item): a sooner deadline, or the registry is gone.
    sweep: Arc<Notify>,
    sweeping: AtomicBool,
    /// Set when the pipeline drains or stops: a question asked from then on is cancelled
    /// at once, as the waiting ones were, or a drain would wait for people.
    refusing: AtomicBool,
}

impl Drop for Questions {
    fn drop(&mut self) {
        self.sweep.notify_one();
    }
}

impl Questions {
    pub(crate) fn new(pipeline: String, clock: Clock) -> Self {
        Questions {
            pipeline,
            clock,
            next: AtomicU64::new(1),
            book: Mutex::default(),
            callbacks: RwLock::default(),
            seq: AtomicU64::new(0),
            feed: tokio::sync::broadcast::Sender::new(1024),
            sweep: Arc::new(Notify::new()),
            sweeping: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
        }
    }

    pub(crate) fn on_change(&self, f: QuestionCallback) {
        self.callbacks.write().push(f);
    }

    fn now_unix_ms(&self) -> u64 {
        self.clock.started_unix_ms() + crate::clock::micros(self.clock.elapsed()) / 1000
    }

    /// How many times the questions changed (asked or closed).
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Every change from now on: questions asked and closed. A receiver that falls more
    /// than 1,024 changes behind is told it lagged, and reads [`Questions::pending`] again.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<QuestionChange> {
        self.feed.subscribe()
    }

    fn tell(&self, change: QuestionChange) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        let _ = self.feed.send(change.clone());
        for f in self.callbacks.read().iter() {
            if let Err(m) = crate::guard::call(|| f(&change)) {
                tracing::error!("an on_question callback panicked: {m}");
            }
        }
    }

    /// Opens a question; its id comes from `id` when the question was asked in another
    /// process (a relay keeps the asker's numbering), else the next of this pipeline. It
    /// expires `after` from now (its default taken, or timed out) if that is given.
    pub(crate) fn open(
        self: &Arc<Self>,
        mut info: QuestionInfo,
        responder: Responder,
        check: Option<DataCheck>,
        after: Option<Duration>,
    ) -> QuestionId {
        if info.id == 0 {
            info.id = self.next.fetch_add(1, Ordering::Relaxed);
        }
        if info.asked_unix_ms == 0 {
            info.asked_unix_ms = self.now_unix_ms();
            info.deadline_unix_ms = info
                .deadline_unix_ms
                .map(|after| info.asked_unix_ms + after);
        }
        info.pipeline.clone_from(&self.pipeline);
        let id = info.id;
        let change = QuestionChange::Asked(info.clone());
        let expires = after.map(|after| tokio::time::Instant::now() + after);
        let mut book = self.book.lock();
        if let Some(at) = expires {
            let soonest = book.deadlines.first().is_none_or(|&(first, _)| at < first);
            book.deadlines.insert((at, id));
            if soonest {
                self.sweep.notify_one();
            }
        }
        let local = matches!(responder, Responder::Local(_));
        book.pending.insert(
            id,
            Box::new(Open {
                info,
                responder,
                check,
                expires,
            }),
        );
        // Read under the lock that `refuse_new` sets it under: either this question is
        // among those it cancels, or it sees the flag here.
        let refused = local && self.refusing.load(Ordering::Acquire);
        drop(book);
        if expires.is_some() && !self.sweeping.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweep(Arc::downgrade(self), self.sweep.clone()));
        }
        self.tell(change);
        if refused {
            self.cancel(id);
        }
        id
    }

    /// Cancels every question asked in this process that waits, and any asked from now
    /// on (the pipeline drains or stops). Relayed ones are the asking process's to close.
    pub(crate) fn refuse_new(&self) {
        let waiting: Vec<QuestionId> = {
            let book = self.book.lock();
            self.refusing.store(true, Ordering::Release);
            book.pending
                .iter()
                .filter(|(_, o)| matches!(o.responder, Responder::Local(_)))
                .map(|(id, _)| *id)
                .collect()
        };
        for id in waiting {
            self.cancel(id);
        }
    }

    /// The pending questions, oldest first.
    pub fn pending(&self) -> Vec<QuestionInfo> {
        self.book
            .lock()
            .pending
            .values()
            .map(|o| o.info.clone())
            .collect()
    }

    /// The closed questions kept, newest first.
    pub fn closed(&self) -> Vec<QuestionInfo> {
        self.book.lock().closed.iter().rev().cloned().collect()
    }

    /// How many wait for an answer.
    pub fn pending_count(&self) -> usize {
        self.book.lock().pending.len()
    }

    /// One question, pending or among the closed ones kept.
    pub fn get(&self, id: QuestionId) -> Option<QuestionInfo> {
        let book = self.book.lock();
        book.pending
            .get(&id)
            .map(|o| o.info.clone())
            .or_else(|| book.closed.iter().find(|q| q.id == id).cloned())
    }

    /// Takes `reply` from `by` (a user or token name; `None` when sign-in is off) as the
    /// answer to question `id`, if it is still pending and the reply fits it. The first
    /// valid answer wins; the question stays open after a refused one.
    pub fn answer(
        &self,
        id: QuestionId,
        reply: &Reply,
        by: Option<&str>,
    ) -> Result<QuestionInfo, AnswerProblem> {
        let mut book = self.book.lock();
        let Some(open) = book.pending.get(&id) else {
            return Err(closed_problem(&book, id));
        };
        check_reply(&open.info.options, &open.info.fields, reply)?;
        // No data for a form is the form left empty: accepted when none of its fields is
        // required (check_reply said which one is), and typed as the empty form.
        let data = match (&reply.data, open.info.fields.is_empty()) {
            (_, true) => serde_json::Value::Null,
            (serde_json::Value::Null, false) => serde_json::Value::Object(Default::default()),
            (data, false) => data.clone(),
        };
        if let Some(check) = &open.check {
            if !open.info.fields.is_empty() {
                check(&data).map_err(|why| AnswerProblem::BadField {
                    field: "data".into(),
                    why,
                })?;
            }
        }
        let answer = AnswerInfo {
            choice: reply.choice.clone(),
            data,
            by: by.map(str::to_owned),
            at_unix_ms: self.now_unix_ms(),
            timed_out: false,
        };
        let info = self.close(
            &mut book,
            id,
            QuestionState::Answered,
            Some(answer.clone()),
            |r| match r {
                Responder::Local(tx) => {
                    let _ = tx.send(Closing::Answered(Box::new(answer.clone())));
                }
                Responder::Relayed(f) => f(id, reply, by),
            },
        );
        drop(book);
        if let Some(info) = &info {
            self.tell(QuestionChange::Closed(info.clone()));
        }
        info.ok_or(AnswerProblem::Unknown { id })
    }

    /// Closes question `id` at its deadline: with its default, or timed out. Nothing if it
    /// was answered meanwhile.
    pub(crate) fn expire(&self, id: QuestionId) {
        let mut book = self.book.lock();
        let Some(open) = book.pending.get(&id) else {
            return;
        };
        let default = open.info.default.clone();
        let now = self.now_unix_ms();
        let info = match default {
            Some(d) => {
                let answer = AnswerInfo {
                    choice: d.choice,
                    data: serde_json::Value::Null,
                    by: None,
                    at_unix_ms: now,
                    timed_out: true,
                };
                self.close(
                    &mut book,
                    id,
                    QuestionState::Defaulted,
                    Some(answer.clone()),
                    |r| {
                        if let Responder::Local(tx) = r {
                            let _ = tx.send(Closing::Answered(Box::new(answer.clone())));
                        }
                    },
                )
            }
            None => {
                let title = open.info.title.clone();
                self.close(&mut book, id, QuestionState::TimedOut, None, |r| {
                    if let Responder::Local(tx) = r {
                        let _ = tx.send(Closing::TimedOut { title });
                    }
                })
            }
        };
        drop(book);
        if let Some(info) = info {
            self.tell(QuestionChange::Closed(info));
        }
    }

    /// Closes question `id` as cancelled, if it is pending.
    pub fn cancel(&self, id: QuestionId) {
        let mut book = self.book.lock();
        let info = self.close(&mut book, id, QuestionState::Cancelled, None, |r| {
            if let Responder::Local(tx) = r {
                let _ = tx.send(Closing::Cancelled);
            }
        });
        drop(book);
        if let Some(info) = info {
            self.tell(QuestionChange::Closed(info));
        }
    }

    /// Puts a relayed question's closing as the asking process reports it (answered
    /// elsewhere, defaulted, timed out, cancelled): the asker's word is the last, so it
    /// replaces a closing recorded here (an answer here that lost a race with the
    /// deadline there).
    pub(crate) fn closed_elsewhere(&self, info: QuestionInfo) {
        let mut book = self.book.lock();
        let was = book.pending.remove(&info.id);
        if let Some(at) = was.as_ref().and_then(|o| o.expires) {
            book.deadlines.remove(&(at, info.id));
        }
        let was_pending = was.is_some();
        let known = book.closed.iter().position(|q| q.id == info.id);
        match known {
            Some(i) if book.closed[i] == info => return,
            Some(i) => book.closed[i] = info.clone(),
            None if was_pending => keep_closed(&mut book, info.clone()),
            None => return,
        }
        drop(book);
        self.tell(QuestionChange::Closed(info));
    }

    fn close(
        &self,
        book: &mut Book,
        id: QuestionId,
        state: QuestionState,
        answer: Option<AnswerInfo>,
        respond: impl FnOnce(Responder),
    ) -> Option<QuestionInfo> {
        let open = book.pending.remove(&id)?;
        if let Some(at) = open.expires {
            book.deadlines.remove(&(at, id));
        }
        let Open {
            mut info,
            responder,
            ..
        } = *open;
        info.state = state;
        info.answer = answer.map(Box::new);
        respond(responder);
        keep_closed(book, info.clone());
        Some(info)
    }
}

/// Expires the questions of `questions` as their deadlines pass, until the registry is
/// dropped.
async fn sweep(questions: std::sync::Weak<Questions>, wake: Arc<Notify>) {
    loop {
        let woken = wake.notified();
        let mut woken = std::pin::pin!(woken);
        woken.as_mut().enable();
        let next = {
            let Some(questions) = questions.upgrade() else {
                return;
            };
            let now = tokio::time::Instant::now();
            let mut due = Vec::new();
            {
                let mut book = questions.book.lock();
                while let Some(&(at, id)) = book.deadlines.first() {
                    if at > now {
                        break;
                    }
                    book.deadlines.pop_first();
                    due.push(id);
                }
            }
            for id in due {
                questions.expire(id);
            }
            let next = questions.book.lock().deadlines.first().map(|&(at, _)| at);
            next
        };
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = woken => {}
                }
            }
            None => woken.await,
        }
    }
}

fn keep_closed(book: &mut Book, info: QuestionInfo) {
    if book.closed.len() == CLOSED_KEPT {
        book.closed.pop_front();
    }
    book.closed.push_back(info);
}

fn closed_problem(book: &Book, id: QuestionId) -> AnswerProblem {
    match book.closed.iter().find(|q| q.id == id) {
        Some(q) => AnswerProblem::Closed {
            id,
            state: q.state,
            by: q.answer.as_ref().and_then(|a| a.by.clone()),
            at_unix_ms: q.answer.as_ref().map(|a| a.at_unix_ms),
        },
        None => AnswerProblem::Unknown { id },
    }
}

/// What one stage needs to ask: the places for its waiting items, and its pipeline's
/// questions. Shared by its worker slots.
pub(crate) struct StageAsking {
    pub stage: StageIndex,
    pub stage_name: Arc<str>,
    pub places: Arc<Semaphore>,
    pub max_waiting: usize,
    pub questions: Arc<Questions>,
}

/// An attempt that asked a person, driven on a task of its own from then on, off its
/// worker. The stage keeps this to cancel it, and that task reads it so that time spent
/// waiting for a person does not count against the stage's timeout.
pub(crate) struct Parked {
    pub item: ItemId,
    /// Since when a question waits (tokio's clock, as the attempt's timer), and the time
    /// spent waiting for answers before it.
    wait: Mutex<(Option<tokio::time::Instant>, Duration)>,
    /// How the last question closed without an answer, which decides the attempt's outcome.
    /// Boxed: most questions are answered.
    pub unanswered: Mutex<Option<Box<Unanswered>>>,
    cancelled: AtomicBool,
    cancel_waker: AtomicWaker,
    /// The question waiting now, so that cancelling the item closes it at once.
    question: Mutex<Option<(Arc<Questions>, QuestionId)>>,
    /// Its place among the stage's waiting items, held until its outcome goes back to a
    /// worker.
    place: Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl Parked {
    pub(crate) fn new(item: ItemId, place: tokio::sync::OwnedSemaphorePermit) -> Self {
        Parked {
            place: Mutex::new(Some(place)),
            item,
            wait: Mutex::new((None, Duration::ZERO)),
            unanswered: Mutex::new(None),
            cancelled: AtomicBool::new(false),
            cancel_waker: AtomicWaker::new(),
            question: Mutex::new(None),
        }
    }

    pub(crate) fn is_waiting(&self) -> bool {
        self.wait.lock().0.is_some()
    }

    /// The time waited for answers, the wait under way (if any) included.
    pub(crate) fn waited(&self) -> Duration {
        let (since, before) = *self.wait.lock();
        before + since.map_or(Duration::ZERO, |s| s.elapsed())
    }

    fn begin_wait(&self, questions: &Arc<Questions>, id: QuestionId) {
        *self.question.lock() = Some((questions.clone(), id));
        self.wait.lock().0 = Some(tokio::time::Instant::now());
    }

    fn end_wait(&self) {
        self.question.lock().take();
        let mut wait = self.wait.lock();
        if let Some(since) = wait.0.take() {
            wait.1 += since.elapsed();
        }
    }

    /// Cancels the parked attempt: its question closes as cancelled, and the attempt
    /// ends as cancelled.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        if let Some((questions, id)) = self.question.lock().clone() {
            questions.cancel(id);
        }
        self.cancel_waker.wake();
    }

    /// Gives its place among the stage's waiting items back.
    pub(crate) fn release(&self) {
        self.place.lock().take();
    }

    /// Resolves once the parked attempt is cancelled.
    pub(crate) fn cancelled(&self) -> ParkedCancel<'_> {
        ParkedCancel(self)
    }
}

pub(crate) struct ParkedCancel<'a>(&'a Parked);

impl std::future::Future for ParkedCancel<'_> {
    type Output = ();
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0.cancelled.load(Ordering::Acquire) {
            return std::task::Poll::Ready(());
        }
        self.0.cancel_waker.register(cx.waker());
        if self.0.cancelled.load(Ordering::Acquire) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }
}

/// Closes its question as cancelled if the asking future is dropped while it waits (the
/// attempt was cancelled, timed out or aborted).
struct CloseOnDrop {
    questions: Arc<Questions>,
    id: QuestionId,
    armed: bool,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.questions.cancel(self.id);
        }
    }
}

/// Asks `q` about the item of `cx` (unless it has a `problem`): parks the attempt (after
/// waiting for a place among the stage's waiting items), opens the question, records the
/// wait on the item, and waits for the answer, the deadline or a cancellation.
// Written out: see the comment inside.
#[allow(clippy::manual_async_fn)]
pub(crate) fn ask<T: DeserializeOwned + Send + 'static>(
    cx: &crate::Ctx,
    q: Box<Question<T>>,
) -> impl std::future::Future<Output = Result<Answer<T>, Unanswered>> + Send + '_ {
    // An `async` block, not an `async fn`, whose arguments would be kept twice.
    async move {
        // A place among the stage's waiting items is taken on the worker: past the cap,
        // askers queue there.
        let parked = cx.park().await?;
        let (asking, _, _) = cx.asking();
        // Only what the wait needs is kept across it: the question itself is the registry's.
        let after = q.default.as_ref().map(|(d, _)| *d).or(q.deadline);
        let with_form = !q.fields.is_empty();
        let (rx, id) = open(asking, parked.item, *q, after);
        let mut guard = CloseOnDrop {
            questions: asking.questions.clone(),
            id,
            armed: true,
        };
        let mark = |waiting| {
            let (asking, clock, events) = cx.asking();
            record(
                &events,
                parked.item,
                asking.stage,
                cx.attempt(),
                clock,
                waiting,
            )
        };
        mark(true).await;
        parked.begin_wait(&asking.questions, id);
        // The registry closes it at its deadline.
        let closing = rx.await.unwrap_or(Closing::Cancelled);
        guard.armed = false;
        parked.end_wait();
        mark(false).await;
        match closing {
            Closing::Answered(a) => {
                let a = *a;
                let data = match (&a.data, with_form) {
                    (serde_json::Value::Null, _) | (_, false) => None,
                    (data, true) => serde_json::from_value::<T>(data.clone()).ok(),
                };
                Ok(Answer {
                    choice: a.choice,
                    data,
                    by: a.by,
                    at_unix_ms: a.at_unix_ms,
                    timed_out: a.timed_out,
                })
            }
            Closing::TimedOut { title } => {
                let e = Unanswered::TimedOut {
                    question: title,
                    after: after.unwrap_or_default(),
                };
                *parked.unanswered.lock() = Some(Box::new(e.clone()));
                Err(e)
            }
            Closing::Cancelled => {
                *parked.unanswered.lock() = Some(Box::new(Unanswered::Cancelled));
                Err(Unanswered::Cancelled)
            }
        }
    }
}

/// Opens `q` about `item` in the stage's registry, its answer to come on the receiver;
/// returns that and its id.
fn open<T: DeserializeOwned + Send + 'static>(
    asking: &StageAsking,
    item: ItemId,
    q: Question<T>,
    after: Option<Duration>,
) -> (oneshot::Receiver<Closing>, QuestionId) {
    let options = q.choices();
    let Question {
        title,
        body,
        fields,
        default,
        assignees,
        ..
    } = q;
    let info = QuestionInfo {
        id: 0,
        pipeline: String::new(),
        item,
        stage: asking.stage,
        stage_name: asking.stage_name.to_string(),
        title,
        body,
        body_html: None,
        options,
        fields,
        default: default.map(|(after, choice)| DefaultChoice {
            choice,
            after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        }),
        assignees,
        asked_unix_ms: 0,
        deadline_unix_ms: after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        state: QuestionState::Pending,
        answer: None,
    };
    let check: DataCheck = Box::new(|data| {
        serde_json::from_value::<T>(data.clone())
            .map(drop)
            .map_err(|e| e.to_string())
    });
    let (tx, rx) = oneshot::channel();
    let id = asking
        .questions
        .open(info, Responder::Local(tx), Some(check), after);
    (rx, id)
}

/// Opens a question asked elsewhere about `parked`'s item, whose answers go to `relay`,
/// and records the item waiting for it; its closing there comes to [`relayed_closed`].
pub(crate) async fn relay(
    asking: &StageAsking,
    parked: &Parked,
    clock: Clock,
    events: Option<crate::events::WeakBatchSender>,
    attempt: u32,
    mut question: QuestionInfo,
    relay: Relay,
) -> QuestionId {
    question.state = QuestionState::Pending;
    question.answer = None;
    let id = asking
        .questions
        .open(question, Responder::Relayed(relay), None, None);
    record(&events, parked.item, asking.stage, attempt, clock, true).await;
    parked.begin_wait(&asking.questions, id);
    id
}

/// Closes the question relayed here as `id` as `closing` says it closed where it was
/// asked, and records the item's wait over.
pub(crate) async fn relayed_closed(
    asking: &StageAsking,
    parked: &Parked,
    clock: Clock,
    events: Option<crate::events::WeakBatchSender>,
    attempt: u32,
    id: QuestionId,
    mut closing: QuestionInfo,
) {
    let Some(here) = asking.questions.get(id) else {
        return;
    };
    closing.id = id;
    closing.item = here.item;
    closing.stage = here.stage;
    closing.stage_name = here.stage_name;
    closing.pipeline = here.pipeline;
    asking.questions.closed_elsewhere(closing);
    if parked.is_waiting() {
        parked.end_wait();
        record(&events, parked.item, asking.stage, attempt, clock, false).await;
    }
}

/// Records the item starting (`waiting`) or ending a wait for a person. Boxed: a waiting
/// item's task keeps no room for it.
fn record(
    events: &Option<crate::events::WeakBatchSender>,
    item: ItemId,
    stage: StageIndex,
    attempt: u32,
    clock: Clock,
    waiting: bool,
) -> futures::future::BoxFuture<'static, ()> {
    let tracker = events.as_ref().and_then(|t| t.upgrade());
    let buf = crate::events::EventBuf::new(tracker);
    let (kind, from) = if waiting {
        (
            flowdeck_protocol::EventKind::Waiting,
            flowdeck_protocol::ItemStatus::Running,
        )
    } else {
        (
            flowdeck_protocol::EventKind::Answered,
            flowdeck_protocol::ItemStatus::Waiting,
        )
    };
    let here = crate::events::Subject {
        item,
        stage,
        worker: None,
    };
    let event = here
        .event(kind, Some(from), clock.now_us())
        .attempt(attempt, 0);
    Box::pin(buf.send_one(event))
}

/// The form fields of a JSON Schema's top-level object: its properties in order, each
/// with the kind the schema gives it (following `$ref`s into `$defs`), required as the
/// schema says. A property of a kind a form cannot take is shown as text.
pub(crate) fn fields_of(schema: &serde_json::Value) -> Vec<Field> {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .cloned()
        .unwrap_or_default();
    let resolve = |v: &serde_json::Value| -> serde_json::Value {
        let mut v = v.clone();
        for _ in 0..8 {
            let Some(r) = v.get("$ref").and_then(|r| r.as_str()) else {
                break;
            };
            let name = r.rsplit('/').next().unwrap_or_default();
            match defs.get(name) {
                Some(d) => v = d.clone(),
                None => break,
            }
        }
        v
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, prop)| {
            let prop = resolve(prop);
            let (kind, nullable) = kind_of(&prop, &resolve);
            let label = prop
                .get("description")
                .or_else(|| prop.get("title"))
                .and_then(|d| d.as_str())
                .map_or_else(|| name.replace('_', " "), str::to_owned);
            Field {
                name: name.clone(),
                label,
                kind,
                required: required.contains(&name.as_str()) && !nullable,
            }
        })
        .collect()
}

/// A property's form kind, and whether it may be null (an `Option`).
fn kind_of(
    prop: &serde_json::Value,
    resolve: &dyn Fn(&serde_json::Value) -> serde_json::Value,
) -> (FieldKind, bool) {
    // `Option<T>` of a referenced type: `anyOf: [T, {type: null}]`.
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = prop.get(key).and_then(|a| a.as_array()) {
            let is_null =
                |v: &serde_json::Value| v.get("type").and_then(|t| t.as_str()) == Some("null");
            let non_null: Vec<serde_json::Value> =
                alts.iter().filter(|a| !is_null(a)).map(resolve).collect();
            let nullable = non_null.len() < alts.len();
            // An enum with described variants: `oneOf` of constants.
            let consts: Vec<String> = non_null
                .iter()
                .filter_map(|a| {
                    a.get("const")
                        .or_else(|| a.get("enum").and_then(|e| e.get(0)))
                        .and_then(|c| c.as_str())
                        .map(str::to_owned)
                })
                .collect();
            if !consts.is_empty() && consts.len() == non_null.len() {
                return (FieldKind::OneOf { values: consts }, nullable);
            }
            if let [one] = non_null.as_slice() {
                return (kind_of(one, resolve).0, nullable);
            }
        }
    }
    if let Some(values) = prop.get("enum").and_then(|e| e.as_array()) {
        let values: Vec<String> = values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        return (FieldKind::OneOf { values }, false);
    }
    let types: Vec<&str> = match prop.get("type") {
        Some(serde_json::Value::String(t)) => vec![t.as_str()],
        Some(serde_json::Value::Array(ts)) => ts.iter().filter_map(|t| t.as_str()).collect(),
        _ => Vec::new(),
    };
    let nullable = types.contains(&"null");
    let bound = |k: &str| prop.get(k).and_then(|v| v.as_f64());
    let kind = match types.iter().find(|t| **t != "null").copied() {
        Some("integer") => FieldKind::Integer {
            min: bound("minimum"),
            max: bound("maximum"),
        },
        Some("number") => FieldKind::Number {
            min: bound("minimum"),
            max: bound("maximum"),
        },
        Some("boolean") => FieldKind::Boolean,
        Some("array") => FieldKind::List,
        Some("string") => {
            let format = prop.get("format").and_then(|f| f.as_str());
            if matches!(format, Some("textarea" | "multiline")) {
                FieldKind::Multiline
            } else {
                FieldKind::Text
            }
        }
        _ => FieldKind::Text,
    };
    (kind, nullable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    enum Tone {
        Formal,
        Plain,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Fix {
        /// The corrected title.
        title: String,
        #[schemars(extend("format" = "textarea"))]
        summary: String,
        #[schemars(range(min = 1, max = 5))]
        confidence: u8,
        weight: f64,
        urgent: bool,
        tags: Vec<String>,
        tone: Tone,
        note: Option<String>,
    }

    #[test]
    fn a_type_gives_its_fields_with_kinds_labels_and_what_is_required() {
        let q = Question::new("t").options(["ok"]).form::<Fix>();
        let fields: Vec<(&str, &FieldKind, bool)> = q
            .fields()
            .iter()
            .map(|f| (f.name.as_str(), &f.kind, f.required))
            .collect();
        assert_eq!(
            fields,
            [
                ("title", &FieldKind::Text, true),
                ("summary", &FieldKind::Multiline, true),
                (
                    "confidence",
                    &FieldKind::Integer {
                        min: Some(1.0),
                        max: Some(5.0)
                    },
                    true
                ),
                (
                    "weight",
                    &FieldKind::Number {
                        min: None,
                        max: None
                    },
                    true
                ),
                ("urgent", &FieldKind::Boolean, true),
                ("tags", &FieldKind::List, true),
                (
                    "tone",
                    &FieldKind::OneOf {
                        values: vec!["Formal".into(), "Plain".into()]
                    },
                    true
                ),
                ("note", &FieldKind::Text, false),
            ]
        );
        assert_eq!(q.fields()[0].label, "The corrected title.");
        assert_eq!(q.fields()[1].label, "summary");
    }

    #[test]
    fn a_question_that_cannot_be_answered_is_refused() {
        assert!(
            Question::new("t").problem().is_some(),
            "no options, no form"
        );
        assert!(Question::new("t")
            .options(["a"])
            .default_after(Duration::from_secs(1), "b")
            .problem()
            .is_some());
        assert!(Question::new(" ").options(["a"]).problem().is_some());
        let form_only = Question::new("t").form::<Fix>();
        assert_eq!(form_only.choices(), [SUBMIT]);
        assert!(form_only.problem().is_none());
    }

    fn info() -> QuestionInfo {
        QuestionInfo {
            id: 0,
            pipeline: String::new(),
            item: 7,
            stage: 0,
            stage_name: "review".into(),
            title: "Publish?".into(),
            body: String::new(),
            body_html: None,
            options: vec!["publish".into(), "drop".into()],
            fields: Vec::new(),
            default: None,
            assignees: Vec::new(),
            asked_unix_ms: 0,
            deadline_unix_ms: None,
            state: QuestionState::Pending,
            answer: None,
        }
    }

    #[test]
    fn the_first_valid_answer_wins_and_a_bad_one_leaves_it_open() {
        let qs = Arc::new(Questions::new("docs".into(), Clock::new()));
        let changes = Arc::new(Mutex::new(Vec::new()));
        let seen = changes.clone();
        qs.on_change(Box::new(move |c| seen.lock().push(c.clone())));
        let (tx, mut rx) = oneshot::channel();
        let id = qs.open(info(), Responder::Local(tx), None, None);
        assert_eq!(qs.pending_count(), 1);
        let bad = Reply {
            choice: "maybe".into(),
            data: serde_json::Value::Null,
        };
        assert!(matches!(
            qs.answer(id, &bad, Some("alice")),
            Err(AnswerProblem::BadChoice { .. })
        ));
        assert!(rx.try_recv().is_err(), "still open");
        let good = Reply {
            choice: "publish".into(),
            data: serde_json::Value::Null,
        };
        let closed = qs.answer(id, &good, Some("alice")).unwrap();
        assert_eq!(closed.state, QuestionState::Answered);
        assert!(
            matches!(rx.try_recv(), Ok(Closing::Answered(a)) if a.by.as_deref() == Some("alice"))
        );
        match qs.answer(id, &good, Some("bob")) {
            Err(AnswerProblem::Closed { by, .. }) => assert_eq!(by.as_deref(), Some("alice")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            qs.answer(99, &good, None),
            Err(AnswerProblem::Unknown { id: 99 })
        ));
        assert_eq!(qs.pending_count(), 0);
        assert_eq!(qs.closed().len(), 1);
        let kinds: Vec<bool> = changes
            .lock()
            .iter()
            .map(|c| matches!(c, QuestionChange::Asked(_)))
            .collect();
        assert_eq!(kinds, [true, false]);
    }

    #[test]
    fn a_deadline_takes_the_default_or_times_out() {
        let qs = Arc::new(Questions::new("docs".into(), Clock::new()));
        let mut with_default = info();
        with_default.default = Some(DefaultChoice {
            choice: "drop".into(),
            after_ms: 10,
        });
        let (tx, mut rx) = oneshot::channel();
        let id = qs.open(with_default, Responder::Local(tx), None, None);
        qs.expire(id);
        assert!(
            matches!(rx.try_recv(), Ok(Closing::Answered(a)) if a.timed_out && a.by.is_none() && a.choice == "drop")
        );
        assert_eq!(qs.get(id).unwrap().state, QuestionState::Defaulted);
        let (tx, mut rx) = oneshot::channel();
        let id = qs.open(info(), Responder::Local(tx), None, None);
        qs.expire(id);
        assert!(matches!(rx.try_recv(), Ok(Closing::TimedOut { .. })));
        assert_eq!(qs.get(id).unwrap().state, QuestionState::TimedOut);
    }
}
