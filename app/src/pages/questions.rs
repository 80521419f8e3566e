//! Questions `/questions`: what the pipeline's stages asked people (`Ctx::ask`), pending
//! first (oldest first) with the time left before the default applies, then the answered
//! ones. Each shows its pipeline, stage and item (linked), who may answer, its body
//! (Markdown rendered by the server), its options as buttons and its form; an answer the
//! server refuses shows its reason by the field. The list is read again whenever the
//! pipeline's questions change (the stream's snapshot says when). An item's page shows its
//! own questions with the same cards ([`ItemQuestions`]).

use flowdeck_protocol::question::{
    check_reply, AnswerProblem, Field, FieldKind, QuestionInfo, QuestionQuery, QuestionState,
    Reply, Which,
};
use leptos::prelude::*;

use crate::{fetch::fetch_questions, format, live::use_live};

/// Questions a page shows at once.
const PER_PAGE: u64 = 50;

#[component]
pub fn Questions() -> impl IntoView {
    let live = use_live();
    // Read again when the questions change, and when a page of them is chosen.
    let seq = Memo::new(move |_| live.with(|s| s.snapshot.questions_seq).unwrap_or_default());
    let offset = RwSignal::new(0u64);
    let pending = Resource::new(
        move || (seq.get(), offset.get()),
        |(_, offset)| {
            fetch_questions(QuestionQuery {
                which: Which::Pending,
                offset,
                ..QuestionQuery::default()
            })
        },
    );
    let closed = Resource::new(
        move || seq.get(),
        |_| {
            fetch_questions(QuestionQuery {
                which: Which::Closed,
                ..QuestionQuery::default()
            })
        },
    );
    view! {
        <section class="questions">
            <div class="page-head"><h1>"Questions"</h1></div>
            // The cards are keyed by question: a list read again (a question asked or closed
            // anywhere) keeps the cards already shown, with what is being typed into them.
            <Transition fallback=|| view! { <p class="muted">"Loading the questions…"</p> }>
                {move || pending.get().map(|r| match r {
                    Ok(Ok(page)) => view! {
                        <p class="muted" data-testid="questions-pending">
                            {match page.total {
                                0 => "Nothing waits for an answer.".to_owned(),
                                1 => "1 question waits for an answer, oldest first.".to_owned(),
                                n => format!("{} questions wait for an answer, oldest first.", format::count(n)),
                            }}
                        </p>
                    }
                    .into_any(),
                    Ok(Err(why)) => view! { <p class="muted">{why}</p> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                })}
                <ol class="question-list" data-testid="pending-list">
                    <For
                        each=move || pending.get().and_then(Result::ok).and_then(Result::ok).map(|p| p.questions).unwrap_or_default()
                        key=|q| q.id
                        children=|q| view! { <QuestionCard q/> }
                    />
                </ol>
                {move || {
                    let total = pending.get().and_then(Result::ok).and_then(Result::ok).map_or(0, |p| p.total);
                    let from = offset.get_untracked();
                    (total > PER_PAGE).then(|| view! {
                        <p class="pager">
                            <button class="btn" disabled=from == 0
                                on:click=move |_| offset.update(|o| *o = o.saturating_sub(PER_PAGE))>"Earlier"</button>
                            {format!(" {}–{} of {} ", from + 1, (from + PER_PAGE).min(total), format::count(total))}
                            <button class="btn" data-testid="questions-next" disabled=from + PER_PAGE >= total
                                on:click=move |_| offset.update(|o| *o += PER_PAGE)>"Later"</button>
                        </p>
                    })
                }}
            </Transition>
            <h2>"Answered"</h2>
            <Transition fallback=|| ()>
                {move || closed.get().and_then(Result::ok).and_then(Result::ok).map(|page| {
                    if page.questions.is_empty() {
                        view! { <p class="muted">"None yet."</p> }.into_any()
                    } else {
                        view! {
                            <ol class="question-list" data-testid="closed-list">
                                {page.questions.into_iter().map(|q| view! { <QuestionCard q/> }).collect_view()}
                            </ol>
                        }
                        .into_any()
                    }
                })}
            </Transition>
        </section>
    }
}

/// The questions about one item, on its page: of the live run, or of stored run `run`.
#[component]
pub(crate) fn ItemQuestions(item: u64, #[prop(default = None)] run: Option<i64>) -> impl IntoView {
    let live = use_live();
    let seq = Memo::new(move |_| live.with(|s| s.snapshot.questions_seq).unwrap_or_default());
    let list = Resource::new(
        move || run.is_none().then(|| seq.get()),
        move |_| {
            fetch_questions(QuestionQuery {
                item: Some(item),
                run,
                ..QuestionQuery::default()
            })
        },
    );
    view! {
        <Transition fallback=|| ()>
            {move || list.get().and_then(Result::ok).and_then(Result::ok).filter(|p| !p.questions.is_empty()).map(|page| view! {
                <h2>"Questions"</h2>
                <ol class="question-list" data-testid="item-questions">
                    {page.questions.into_iter().map(|q| view! { <QuestionCard q readonly=run.is_some()/> }).collect_view()}
                </ol>
            })}
        </Transition>
    }
}

/// What a field's input holds, as typed.
#[derive(Clone, Debug, Default)]
struct Entry {
    text: String,
    checked: bool,
}

/// The answer's `data` from what was typed: each field given as its kind reads it. A
/// number that does not parse is sent as text, so the check names the field.
fn data_of(fields: &[Field], entries: &[RwSignal<Entry>]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (f, e) in fields.iter().zip(entries) {
        let e = e.get_untracked();
        let text = e.text.trim();
        let value = match &f.kind {
            FieldKind::Boolean => serde_json::Value::Bool(e.checked),
            _ if text.is_empty() => continue,
            FieldKind::Integer { .. } => text
                .parse::<i64>()
                .map_or_else(|_| serde_json::Value::String(text.to_owned()), Into::into),
            FieldKind::Number { .. } => text
                .parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(serde_json::Value::Number))
                .unwrap_or_else(|| serde_json::Value::String(text.to_owned())),
            FieldKind::List => serde_json::Value::Array(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::Value::String(l.to_owned()))
                    .collect(),
            ),
            FieldKind::Text | FieldKind::Multiline | FieldKind::OneOf { .. } => {
                serde_json::Value::String(e.text.clone())
            }
        };
        map.insert(f.name.clone(), value);
    }
    serde_json::Value::Object(map)
}

/// A refused answer: the reason, and the field it is about (`data.title`, `choice`).
#[derive(Clone, Debug, Default, serde::Deserialize)]
struct Refusal {
    message: String,
    #[serde(default)]
    field: Option<String>,
}

#[cfg(feature = "hydrate")]
async fn post_answer(id: u64, reply: &Reply, csrf: Option<String>) -> Result<(), Refusal> {
    let failed = |e: String| Refusal {
        message: e,
        field: None,
    };
    let body = serde_json::to_string(reply).map_err(|e| failed(e.to_string()))?;
    let path = crate::scope::href(&format!("/api/v1/questions/{id}/answer"));
    let mut request =
        gloo_net::http::Request::post(&path).header("content-type", "application/json");
    if let Some(token) = csrf {
        request = request.header("x-csrf-token", &token);
    }
    let response = request
        .body(body)
        .map_err(|e| failed(e.to_string()))?
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if response.ok() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    Err(serde_json::from_str::<Refusal>(&text).unwrap_or_else(|_| failed(text)))
}

#[cfg(not(feature = "hydrate"))]
async fn post_answer(_id: u64, _reply: &Reply, _csrf: Option<String>) -> Result<(), Refusal> {
    Err(Refusal {
        message: "answers are sent from the browser".into(),
        field: None,
    })
}

/// Time left before `deadline_unix_ms`, ticking each second in the browser (`None` on the
/// server, and until the page is live: the clocks of the two differ).
fn time_left(deadline_unix_ms: Option<u64>) -> impl Fn() -> Option<String> + Copy {
    let now = RwSignal::new(None::<u64>);
    #[cfg(feature = "hydrate")]
    {
        let tick = crate::widgets::poll::ticker(std::time::Duration::from_secs(1));
        Effect::new(move |_| {
            tick.track();
            now.set(Some(js_sys::Date::now() as u64));
        });
    }
    move || {
        let (deadline, now) = (deadline_unix_ms?, now.get()?);
        Some(format::millis(deadline.saturating_sub(now)))
    }
}

/// One question: what was asked, about which item, how long is left, and either its
/// options and form (pending, for those who may answer) or its answer.
#[component]
pub(crate) fn QuestionCard(q: QuestionInfo, #[prop(optional)] readonly: bool) -> AnyView {
    let live = use_live();
    let state = q.state.as_str();
    let id = q.id;
    let left = time_left(q.deadline_unix_ms);
    let default = q.default.clone();
    // Who may answer is known once the server has said who is looking.
    let may_answer = {
        let q = q.clone();
        move || {
            let viewer = live.viewer();
            !readonly
                && q.state.is_pending()
                && viewer.can_control
                && q.assigned_to(viewer.name.as_deref(), &viewer.role)
        }
    };
    let form = {
        let (q, may_answer) = (q.clone(), may_answer.clone());
        move || may_answer().then(|| view! { <AnswerForm q=q.clone()/> })
    };
    let refused = {
        let pending = q.state.is_pending();
        move || {
            (pending && !readonly && !may_answer()).then(|| {
                view! {
                    <p class="muted">"You may not answer this question."</p>
                }
            })
        }
    };
    // The card and each of its parts are erased (`into_any`): as one type, the page runs past
    // the compiler's query depth in the browser build.
    let meta = view! {
        <p class="muted question-meta">
            {format!("{} · {} · ", q.pipeline, q.stage_name)}
            <a href=super::task_href(q.item)>{format!("item #{}", q.item)}</a>
            {format!(" · asked {} UTC", format::clock(q.asked_unix_ms))}
            {(!q.assignees.is_empty()).then(|| format!(" · for {}", q.assignees.join(", ")))}
            {q.state.is_pending().then(|| view! {
                {move || left().map(|l| view! {
                    " · " <span data-testid="countdown">{format!("{l} left")}</span>
                })}
                {default.clone().map(|d| format!(" · then “{}”", d.choice))}
            })}
        </p>
    }
    .into_any();
    let given = q.answer.clone().map(|a| {
        let who = match (&a.by, q.state) {
            (_, QuestionState::Defaulted) => "the default, nobody answered in time".to_owned(),
            (Some(by), _) => format!("by {by}"),
            (None, _) => "anonymously".to_owned(),
        };
        let data =
            (!a.data.is_null()).then(|| serde_json::to_string_pretty(&a.data).unwrap_or_default());
        view! {
            <p data-testid="answer-given">
                <strong>{a.choice.clone()}</strong>
                {format!(" · {who} · {} UTC", format::clock(a.at_unix_ms))}
            </p>
            {data.map(|d| view! { <pre class="json"><code>{d}</code></pre> })}
        }
        .into_any()
    });
    let closed = matches!(q.state, QuestionState::TimedOut | QuestionState::Cancelled).then(|| {
        view! {
            <p class="muted" data-testid="answer-given">
                {if q.state == QuestionState::TimedOut {
                    "Nobody answered in time: the item failed."
                } else {
                    "Cancelled with its item."
                }}
            </p>
        }
        .into_any()
    });
    view! {
        <li class="question" data-state=state data-question=id.to_string() data-item=q.item.to_string() data-testid="question">
            <h3>{q.title.clone()}</h3>
            {meta}
            <div class="question-body" inner_html=q.body_html.clone().unwrap_or_default()></div>
            {form}
            {refused}
            {given}
            {closed}
        </li>
    }
    .into_any()
}

/// The options and form of a pending question, for someone who may answer it: the fields
/// as its kinds take them, checked before sending, and the server's refusal shown by the
/// field it names.
#[component]
fn AnswerForm(q: QuestionInfo) -> impl IntoView {
    let id = q.id;
    let entries: Vec<RwSignal<Entry>> = q
        .fields
        .iter()
        .map(|_| RwSignal::new(Entry::default()))
        .collect();
    let refusal = RwSignal::new(None::<Refusal>);
    let sending = RwSignal::new(false);
    let answer_with = {
        let (fields, options, entries) = (q.fields.clone(), q.options.clone(), entries.clone());
        move |choice: String| {
            let reply = Reply {
                choice,
                data: if fields.is_empty() {
                    serde_json::Value::Null
                } else {
                    data_of(&fields, &entries)
                },
            };
            // The server checks again; this names the field before a round trip.
            if let Err(p) = check_reply(&options, &fields, &reply) {
                let field = match &p {
                    AnswerProblem::BadField { field, .. } => Some(format!("data.{field}")),
                    _ => Some("choice".to_owned()),
                };
                refusal.set(Some(Refusal {
                    message: p.to_string(),
                    field,
                }));
                return;
            }
            let csrf = use_live().viewer().csrf;
            sending.set(true);
            leptos::task::spawn_local(async move {
                refusal.set(post_answer(id, &reply, csrf).await.err());
                sending.set(false);
            });
        }
    };
    let field_error = move |name: String| {
        move || {
            refusal.get().filter(|r| r.field.as_deref() == Some(&format!("data.{name}"))).map(|r| view! {
                <span class="error" data-testid="field-error" data-field=name.clone()>{r.message}</span>
            })
        }
    };
    let fields = q
        .fields
        .iter()
        .zip(entries.iter().copied())
        .map(|(f, entry)| {
            let name = f.name.clone();
            let label = f.label.clone();
            let required = f.required;
            let input = match &f.kind {
                FieldKind::Multiline | FieldKind::List => view! {
                    <textarea name=name.clone() data-field=name.clone() required=required rows="3"
                        placeholder=if matches!(f.kind, FieldKind::List) { "one per line" } else { "" }
                        on:input=move |ev| entry.update(|e| e.text = event_target_value(&ev))></textarea>
                }
                .into_any(),
                FieldKind::Boolean => view! {
                    <input type="checkbox" name=name.clone() data-field=name.clone()
                        on:change=move |ev| entry.update(|e| e.checked = event_target_checked(&ev))/>
                }
                .into_any(),
                FieldKind::OneOf { values } => view! {
                    <select name=name.clone() data-field=name.clone() required=required
                        on:change=move |ev| entry.update(|e| e.text = event_target_value(&ev))>
                        <option value="">"—"</option>
                        {values.iter().map(|v| view! { <option value=v.clone()>{v.clone()}</option> }).collect_view()}
                    </select>
                }
                .into_any(),
                FieldKind::Integer { min, max } | FieldKind::Number { min, max } => {
                    let step = if matches!(f.kind, FieldKind::Integer { .. }) { "1" } else { "any" };
                    view! {
                        <input type="number" step=step name=name.clone() data-field=name.clone() required=required
                            min=min.map(|m| m.to_string()) max=max.map(|m| m.to_string())
                            on:input=move |ev| entry.update(|e| e.text = event_target_value(&ev))/>
                    }
                    .into_any()
                }
                FieldKind::Text => view! {
                    <input type="text" name=name.clone() data-field=name.clone() required=required
                        on:input=move |ev| entry.update(|e| e.text = event_target_value(&ev))/>
                }
                .into_any(),
            };
            view! {
                <label class="field">
                    <span>{label}{required.then_some(" *")}</span>
                    {input}
                    {field_error(name)}
                </label>
            }
        })
        .collect_view();
    view! {
        <div class="question-form">
            {fields}
            <p class="options">
                {q.options.iter().map(|o| {
                    let (o, answer_with) = (o.clone(), answer_with.clone());
                    view! {
                        <button class="btn" data-testid="answer" data-choice=o.clone() disabled=move || sending.get()
                            on:click=move |_| answer_with(o.clone())>{o.clone()}</button>
                    }
                }).collect_view()}
            </p>
            {move || refusal.get().filter(|r| !r.field.as_deref().is_some_and(|f| f.starts_with("data."))).map(|r| view! {
                <p class="error" role="alert" data-testid="answer-error">{r.message}</p>
            })}
        </div>
    }
}
