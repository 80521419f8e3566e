//! Questions a stage asks a person, and their answers, as every client sees them: the
//! dashboard's Questions page, an item's page, `flowdeck top`, the API and the stream.
//!
//! A question offers choices (`options`) and may carry a form: fields made from a type on
//! the asking side, which an answer fills in and which are checked field by field before
//! the answer is taken. It may have a default choice taken at a deadline, or a deadline
//! after which the item fails; it may name who may answer.

use serde::{Deserialize, Serialize};

use crate::{ItemId, StageIndex};

/// A question's number, unique within its pipeline's run.
pub type QuestionId = u64;

/// The choice a question with a form but no options is answered with.
pub const SUBMIT: &str = "submit";

/// Where a question stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionState {
    /// Waiting for a person.
    Pending,
    /// A person answered it.
    Answered,
    /// Nobody answered by its deadline, and its default was taken.
    Defaulted,
    /// Nobody answered by its deadline and it had no default: its item failed.
    TimedOut,
    /// Its item was cancelled, or the pipeline drained or stopped, while it waited.
    Cancelled,
}

impl QuestionState {
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionState::Pending => "pending",
            QuestionState::Answered => "answered",
            QuestionState::Defaulted => "defaulted",
            QuestionState::TimedOut => "timed_out",
            QuestionState::Cancelled => "cancelled",
        }
    }

    pub fn is_pending(self) -> bool {
        self == QuestionState::Pending
    }
}

/// What kind of value a form field takes, and so how it is shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    /// Text over several lines.
    Multiline,
    Number {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    Integer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    Boolean,
    /// One of these values.
    OneOf {
        values: Vec<String>,
    },
    /// A list of strings.
    List,
}

/// One field of a question's form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// The key it has in the answer's `data`.
    pub name: String,
    /// What the form shows beside it (the type's doc comment, else the name).
    pub label: String,
    #[serde(flatten)]
    pub kind: FieldKind,
    /// Whether an answer must give it.
    pub required: bool,
}

/// A question's default: the choice taken when nobody answers within `after_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultChoice {
    pub choice: String,
    pub after_ms: u64,
}

/// How a question was answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnswerInfo {
    pub choice: String,
    /// The form's fields as given (`null` without a form or when the default was taken).
    #[serde(default)]
    pub data: serde_json::Value,
    /// Who answered; `None` when the default was taken at the deadline.
    pub by: Option<String>,
    pub at_unix_ms: u64,
    /// The default was taken because nobody answered in time.
    pub timed_out: bool,
}

/// A question as clients see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuestionInfo {
    pub id: QuestionId,
    /// The pipeline that asked.
    pub pipeline: String,
    /// The item it is about.
    pub item: ItemId,
    pub stage: StageIndex,
    pub stage_name: String,
    pub title: String,
    /// Markdown, as the stage wrote it. Pages show it rendered, with any HTML in it shown as
    /// text (`body_html`, made by the server).
    pub body: String,
    /// The rendered body, sanitized; filled in by the server for its pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_html: Option<String>,
    /// The choices, in order; a question with only a form has [`SUBMIT`].
    pub options: Vec<String>,
    /// The form's fields; empty without a form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultChoice>,
    /// Users or roles allowed to answer; empty: anyone who may control the pipeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignees: Vec<String>,
    pub asked_unix_ms: u64,
    /// When the default is taken or the item fails, if ever.
    pub deadline_unix_ms: Option<u64>,
    pub state: QuestionState,
    /// Boxed: a pending question (of thousands, perhaps) has none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Box<AnswerInfo>>,
}

impl QuestionInfo {
    /// Whether `user` (with `role`) is among those it names, or it names nobody.
    pub fn assigned_to(&self, user: Option<&str>, role: &str) -> bool {
        self.assignees.is_empty()
            || self
                .assignees
                .iter()
                .any(|a| a == role || user.is_some_and(|u| a == u))
    }
}

/// An answer as a person gives it: a choice, and the form's fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub choice: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Why an answer was not taken. The question stays open unless it was already closed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum AnswerProblem {
    /// No such question (or no longer kept).
    Unknown { id: QuestionId },
    /// It was closed before: answered (by whom, when), defaulted, timed out or cancelled.
    Closed {
        id: QuestionId,
        state: QuestionState,
        by: Option<String>,
        at_unix_ms: Option<u64>,
    },
    /// The choice is not one of its options.
    BadChoice {
        choice: String,
        options: Vec<String>,
    },
    /// A form field is missing, of the wrong type or out of range; `field` names it.
    BadField { field: String, why: String },
}

impl std::fmt::Display for AnswerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerProblem::Unknown { id } => write!(f, "no question {id}"),
            AnswerProblem::Closed {
                id,
                state: QuestionState::Answered,
                by,
                at_unix_ms,
            } => write!(
                f,
                "question {id} was already answered by {} at {} (Unix ms)",
                by.as_deref().unwrap_or("anonymous"),
                at_unix_ms.unwrap_or_default()
            ),
            AnswerProblem::Closed { id, state, .. } => {
                write!(f, "question {id} is closed: {}", state.as_str())
            }
            AnswerProblem::BadChoice { choice, options } => write!(
                f,
                "{choice:?} is not one of the options: {}",
                options.join(", ")
            ),
            AnswerProblem::BadField { field, why } => write!(f, "field {field:?}: {why}"),
        }
    }
}

/// Which questions a list holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    /// Pending and closed.
    #[default]
    All,
    Pending,
    /// Closed with an answer: a person's, or the default taken at the deadline.
    Answered,
    /// Closed in any way: answered, defaulted, timed out, cancelled.
    Closed,
}

impl Which {
    pub fn admits(self, q: &QuestionInfo) -> bool {
        match self {
            Which::All => true,
            Which::Pending => q.state.is_pending(),
            Which::Answered => {
                matches!(q.state, QuestionState::Answered | QuestionState::Defaulted)
            }
            Which::Closed => !q.state.is_pending(),
        }
    }
}

/// A page of questions: pending first (oldest first), then closed ones (newest first).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuestionPage {
    /// How many match in all.
    pub total: u64,
    /// How many are pending, whatever the filter.
    pub pending: u64,
    pub questions: Vec<QuestionInfo>,
}

/// What a page of questions holds: which, about which item, and where it starts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuestionQuery {
    #[serde(default)]
    pub which: Which,
    pub item: Option<ItemId>,
    #[serde(default)]
    pub offset: u64,
    /// A stored run's questions, from the run store; `None`: the live run's.
    #[serde(default)]
    pub run: Option<i64>,
}

/// A change to a pipeline's questions, for the stream and for `on_question`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum QuestionChange {
    Asked(QuestionInfo),
    /// Answered, defaulted, timed out or cancelled.
    Closed(QuestionInfo),
}

impl QuestionChange {
    pub fn question(&self) -> &QuestionInfo {
        match self {
            QuestionChange::Asked(q) | QuestionChange::Closed(q) => q,
        }
    }
}

/// Checks `reply` against `options` and `fields`: the choice is an option, every required
/// field is given, each given field has its kind's type and range, and nothing else is
/// given. The first problem found names the field.
pub fn check_reply(
    options: &[String],
    fields: &[Field],
    reply: &Reply,
) -> Result<(), AnswerProblem> {
    if !options.contains(&reply.choice) {
        return Err(AnswerProblem::BadChoice {
            choice: reply.choice.clone(),
            options: options.to_vec(),
        });
    }
    let bad = |field: &str, why: String| AnswerProblem::BadField {
        field: field.to_owned(),
        why,
    };
    let empty = serde_json::Map::new();
    let data = match &reply.data {
        serde_json::Value::Null => &empty,
        serde_json::Value::Object(map) => map,
        _ if fields.is_empty() => &empty,
        other => {
            return Err(bad(
                "data",
                format!("must be an object of the form's fields, got {other}"),
            ))
        }
    };
    if fields.is_empty() {
        if let Some(name) = data.keys().next() {
            return Err(bad(name, "this question has no form".into()));
        }
        return Ok(());
    }
    if let Some(name) = data.keys().find(|k| !fields.iter().any(|f| f.name == **k)) {
        return Err(bad(name, "is not a field of this form".into()));
    }
    for field in fields {
        let value = data.get(&field.name).filter(|v| !v.is_null());
        let Some(value) = value else {
            if field.required {
                return Err(bad(&field.name, "is required".into()));
            }
            continue;
        };
        let in_range =
            |n: f64, min: &Option<f64>, max: &Option<f64>| -> Result<(), AnswerProblem> {
                if let Some(min) = min.filter(|m| n < *m) {
                    return Err(bad(&field.name, format!("must be at least {min}, got {n}")));
                }
                if let Some(max) = max.filter(|m| n > *m) {
                    return Err(bad(&field.name, format!("must be at most {max}, got {n}")));
                }
                Ok(())
            };
        match &field.kind {
            FieldKind::Text | FieldKind::Multiline => {
                if !value.is_string() {
                    return Err(bad(&field.name, format!("must be text, got {value}")));
                }
            }
            FieldKind::Number { min, max } => match value.as_f64() {
                Some(n) => in_range(n, min, max)?,
                None => return Err(bad(&field.name, format!("must be a number, got {value}"))),
            },
            FieldKind::Integer { min, max } => {
                match value.as_i64().or_else(|| value.as_u64().map(|n| n as i64)) {
                    Some(n) => in_range(n as f64, min, max)?,
                    None => {
                        return Err(bad(
                            &field.name,
                            format!("must be a whole number, got {value}"),
                        ))
                    }
                }
            }
            FieldKind::Boolean => {
                if !value.is_boolean() {
                    return Err(bad(
                        &field.name,
                        format!("must be true or false, got {value}"),
                    ));
                }
            }
            FieldKind::OneOf { values } => {
                if !value
                    .as_str()
                    .is_some_and(|v| values.iter().any(|x| x == v))
                {
                    return Err(bad(
                        &field.name,
                        format!("must be one of {}, got {value}", values.join(", ")),
                    ));
                }
            }
            FieldKind::List => {
                let ok = value
                    .as_array()
                    .is_some_and(|a| a.iter().all(serde_json::Value::is_string));
                if !ok {
                    return Err(bad(
                        &field.name,
                        format!("must be a list of text, got {value}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<Field> {
        let field = |name: &str, kind, required| Field {
            name: name.into(),
            label: name.into(),
            kind,
            required,
        };
        vec![
            field("title", FieldKind::Text, true),
            field(
                "score",
                FieldKind::Integer {
                    min: Some(0.0),
                    max: Some(10.0),
                },
                true,
            ),
            field("tags", FieldKind::List, false),
            field(
                "tone",
                FieldKind::OneOf {
                    values: vec!["formal".into(), "plain".into()],
                },
                false,
            ),
            field("urgent", FieldKind::Boolean, false),
        ]
    }

    fn reply(choice: &str, data: serde_json::Value) -> Reply {
        Reply {
            choice: choice.into(),
            data,
        }
    }

    #[test]
    fn replies_are_checked_field_by_field_and_the_problem_names_the_field() {
        let options = vec!["publish".to_owned(), "drop".to_owned()];
        let ok = reply(
            "publish",
            serde_json::json!({"title": "A", "score": 7, "tags": ["x"], "tone": "plain"}),
        );
        assert_eq!(check_reply(&options, &fields(), &ok), Ok(()));
        let field = |r: &Reply| match check_reply(&options, &fields(), r) {
            Err(AnswerProblem::BadField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(&reply("publish", serde_json::json!({"score": 1}))),
            "title"
        );
        assert_eq!(
            field(&reply(
                "publish",
                serde_json::json!({"title": "A", "score": 11})
            )),
            "score"
        );
        assert_eq!(
            field(&reply(
                "publish",
                serde_json::json!({"title": "A", "score": 1.5})
            )),
            "score"
        );
        assert_eq!(
            field(&reply(
                "publish",
                serde_json::json!({"title": 3, "score": 1})
            )),
            "title"
        );
        assert_eq!(
            field(&reply(
                "publish",
                serde_json::json!({"title": "A", "score": 1, "tone": "rude"})
            )),
            "tone"
        );
        assert_eq!(
            field(&reply(
                "publish",
                serde_json::json!({"title": "A", "score": 1, "tags": [1]})
            )),
            "tags"
        );
        assert_eq!(
            field(&reply(
                "publish",
                serde_json::json!({"title": "A", "score": 1, "extra": 1})
            )),
            "extra"
        );
        assert_eq!(field(&reply("publish", serde_json::json!([1]))), "data");
        assert!(matches!(
            check_reply(
                &options,
                &fields(),
                &reply("rewrite", serde_json::Value::Null)
            ),
            Err(AnswerProblem::BadChoice { .. })
        ));
        // No form: no data.
        assert_eq!(
            check_reply(&options, &[], &reply("drop", serde_json::Value::Null)),
            Ok(())
        );
        assert!(check_reply(&options, &[], &reply("drop", serde_json::json!({"x": 1}))).is_err());
    }

    #[test]
    fn assignees_name_users_or_roles() {
        let mut q: QuestionInfo = serde_json::from_value(serde_json::json!({
            "id": 1, "pipeline": "p", "item": 2, "stage": 0, "stage_name": "s", "title": "t",
            "body": "", "options": ["ok"], "asked_unix_ms": 0, "deadline_unix_ms": null,
            "state": "pending"
        }))
        .unwrap();
        assert!(q.assigned_to(None, "admin"));
        q.assignees = vec!["alice".into(), "ops".into()];
        assert!(q.assigned_to(Some("alice"), "admin"));
        assert!(q.assigned_to(Some("bob"), "ops"));
        assert!(!q.assigned_to(Some("bob"), "admin"));
    }
}
