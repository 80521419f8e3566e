//! The task filter: what the Tasks page's search box, `GET /api/v1/tasks?q=` and the bulk
//! actions (`POST /api/v1/tasks/retry`, `/cancel`) read, in one grammar, so that what a
//! page lists is what an action on it acts on.
//!
//! Terms are separated by spaces and must all hold. A word matches text: the id, the
//! stage's name, the error's kind or message (case does not matter). `status:failed`,
//! `stage:enrich` and `kind:timeout` match exactly (a kind whatever its case). A term
//! starting with `-`, or a value starting with `!`, excludes: `-kind:timeout`,
//! `stage:!enrich`, `-retry`. A colon belongs to a key, so a word cannot hold one: an
//! unknown key is an error rather than a search that silently finds nothing, which matters
//! for an action on everything found.
//!
//! The grammar is also a regular expression ([`pattern`]), which the OpenAPI document
//! gives as the `pattern` of `q`; the two agree both ways (the server's tests and
//! schemathesis check it).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ItemId, ItemStatus, StageIndex};

/// The body of a bulk action (`POST /api/v1/tasks/retry`, `/cancel`): which items, as
/// `GET /api/v1/tasks` takes them, and whether only to count them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// What a bulk action did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BulkOutcome {
    /// The items found that the action applies to: failed ones for a retry, unfinished
    /// ones (queued, running, retrying, waiting) for a cancel.
    pub matched: u64,
    /// Those it acted on (none on a dry run).
    pub acted: u64,
    /// How many it could not act on.
    pub skipped_count: u64,
    /// The first [`NAMED_SKIPS`] of them, each with the reason.
    pub skipped: Vec<Skipped>,
    /// Only counted, nothing done.
    pub dry_run: bool,
}

/// The skipped items an answer names; its count covers all of them.
pub const NAMED_SKIPS: usize = 1_000;

/// An item a bulk action could not act on, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub id: ItemId,
    pub why: String,
}

/// The keys a term may name.
pub const KEYS: [&str; 3] = ["status", "stage", "kind"];

/// A parsed filter. The empty filter matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskFilter {
    terms: Vec<Term>,
}

#[derive(Clone, Debug, PartialEq)]
struct Term {
    exclude: bool,
    test: Test,
}

#[derive(Clone, Debug, PartialEq)]
enum Test {
    Status(ItemStatus),
    Stage(StageIndex),
    /// Lower case.
    Kind(String),
    /// Lower case.
    Text(String),
}

/// What a filter looks at in an item. The message may be missing (the browser's rows do
/// not carry it); a word then matches the rest.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub id: ItemId,
    pub status: ItemStatus,
    pub stage: StageIndex,
    pub kind: Option<&'a str>,
    pub message: Option<&'a str>,
}

/// Why a filter was refused, naming the term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterError {
    UnknownKey {
        term: String,
        key: String,
    },
    NoValue {
        term: String,
    },
    UnknownStatus {
        term: String,
        value: String,
    },
    UnknownStage {
        term: String,
        value: String,
        stages: Vec<String>,
    },
    /// A lone `-`, or a word starting with `-` or `!` after it.
    Malformed {
        term: String,
    },
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterError::UnknownKey { term, key } => write!(
                f,
                "filter term {term:?}: unknown key {key:?}; the keys are {} (a word may not hold a colon)",
                KEYS.join(", ")
            ),
            FilterError::NoValue { term } => {
                write!(f, "filter term {term:?}: nothing after the colon")
            }
            FilterError::UnknownStatus { term, value } => write!(
                f,
                "filter term {term:?}: {value:?} is not a status; the statuses are {}",
                ItemStatus::ALL.map(ItemStatus::as_str).join(", ")
            ),
            FilterError::UnknownStage {
                term,
                value,
                stages,
            } => write!(
                f,
                "filter term {term:?}: no stage named {value:?}; the stages are {}",
                stages.join(", ")
            ),
            FilterError::Malformed { term } => write!(
                f,
                "filter term {term:?}: write a word, key:value, -word or -key:value (key:!value excludes too)"
            ),
        }
    }
}

impl std::error::Error for FilterError {}

impl TaskFilter {
    /// Reads `raw` against the pipeline's stage names (a stage term names one of them).
    pub fn parse(raw: &str, stages: &[String]) -> Result<Self, FilterError> {
        let terms = raw
            .split(' ')
            .filter(|t| !t.is_empty())
            .map(|t| term(t, stages))
            .collect::<Result<_, _>>()?;
        Ok(TaskFilter { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether the item holds every term; `stages` names the stages by index.
    pub fn matches(&self, item: &Facts<'_>, stages: &[String]) -> bool {
        self.terms
            .iter()
            .all(|t| t.exclude != t.test.holds(item, stages))
    }
}

impl Test {
    fn holds(&self, item: &Facts<'_>, stages: &[String]) -> bool {
        match self {
            Test::Status(s) => item.status == *s,
            Test::Stage(s) => item.stage == *s,
            Test::Kind(k) => item.kind.is_some_and(|have| have.eq_ignore_ascii_case(k)),
            Test::Text(word) => {
                let has = |s: &str| s.to_lowercase().contains(word.as_str());
                item.id.to_string().contains(word.as_str())
                    || stages.get(usize::from(item.stage)).is_some_and(|n| has(n))
                    || item.kind.is_some_and(has)
                    || item.message.is_some_and(has)
            }
        }
    }
}

fn term(raw: &str, stages: &[String]) -> Result<Term, FilterError> {
    let malformed = || FilterError::Malformed {
        term: raw.to_owned(),
    };
    let (exclude, body) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    if body.is_empty() || body.starts_with(['-', '!']) {
        return Err(malformed());
    }
    let Some((key, value)) = body.split_once(':') else {
        return Ok(Term {
            exclude,
            test: Test::Text(body.to_lowercase()),
        });
    };
    if !KEYS.contains(&key) {
        return Err(FilterError::UnknownKey {
            term: raw.to_owned(),
            key: key.to_owned(),
        });
    }
    let (negated, value) = match value.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    if value.is_empty() {
        return Err(FilterError::NoValue {
            term: raw.to_owned(),
        });
    }
    if value.starts_with('!') {
        return Err(malformed());
    }
    let test = match key {
        "status" => Test::Status(
            ItemStatus::ALL
                .into_iter()
                .find(|s| s.as_str() == value)
                .ok_or_else(|| FilterError::UnknownStatus {
                    term: raw.to_owned(),
                    value: value.to_owned(),
                })?,
        ),
        "stage" => Test::Stage(
            stages
                .iter()
                .position(|s| s == value)
                .and_then(|i| StageIndex::try_from(i).ok())
                .ok_or_else(|| FilterError::UnknownStage {
                    term: raw.to_owned(),
                    value: value.to_owned(),
                    stages: stages.to_vec(),
                })?,
        ),
        _ => Test::Kind(value.to_lowercase()),
    };
    Ok(Term {
        exclude: exclude != negated,
        test,
    })
}

/// The grammar as a regular expression (for the OpenAPI document), for a pipeline with
/// these stages. Only what [`TaskFilter::parse`] takes matches: a stage name holding a
/// space or starting with `!` cannot be written in a term, so it is left out.
pub fn pattern(stages: &[String]) -> String {
    let statuses = ItemStatus::ALL.map(ItemStatus::as_str).join("|");
    let names: Vec<String> = stages
        .iter()
        .filter(|s| !s.is_empty() && !s.contains(' ') && !s.starts_with('!'))
        .map(|s| escape(s))
        .collect();
    let stage = if names.is_empty() {
        String::new()
    } else {
        format!("|stage:!?(?:{})", names.join("|"))
    };
    format!("^ *(?:-?(?:status:!?(?:{statuses}){stage}|kind:!?[^ !][^ ]*|[^ :!-][^ :]*)(?: +|$))*$")
}

/// `s` with the characters a regular expression gives a meaning escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages() -> Vec<String> {
        vec!["parse".into(), "enrich".into()]
    }

    fn item(id: ItemId, status: ItemStatus, stage: StageIndex, kind: Option<&str>) -> Facts<'_> {
        Facts {
            id,
            status,
            stage,
            kind,
            message: Some("upstream Timed out after 5s"),
        }
    }

    fn finds(raw: &str, f: &Facts<'_>) -> bool {
        TaskFilter::parse(raw, &stages())
            .unwrap()
            .matches(f, &stages())
    }

    #[test]
    fn terms_include_and_exclude() {
        let failed = item(42, ItemStatus::Failed, 1, Some("Timeout"));
        assert!(finds("", &failed));
        assert!(finds("  kind:timeout   stage:enrich ", &failed));
        assert!(finds("status:failed 42 enr", &failed));
        assert!(finds("timed", &failed), "the message");
        assert!(!finds("-kind:timeout", &failed));
        assert!(!finds("kind:!timeout", &failed));
        assert!(finds("-kind:!timeout", &failed), "two negations cancel");
        assert!(!finds("stage:!enrich", &failed));
        assert!(finds("stage:!parse", &failed));
        assert!(!finds("kind:time", &failed), "a kind matches whole");
        assert!(!finds("-42", &failed));
        assert!(!finds("status:queued", &failed));
        let queued = item(7, ItemStatus::Queued, 0, None);
        assert!(finds("-kind:timeout", &queued), "no kind is not that kind");
        assert!(!finds("kind:timeout", &queued));
    }

    #[test]
    fn bad_terms_name_the_problem() {
        let bad = |raw: &str| TaskFilter::parse(raw, &stages()).unwrap_err().to_string();
        assert!(bad("knd:timeout").contains("unknown key \"knd\""));
        assert!(bad("stage:nope").contains("the stages are parse, enrich"));
        assert!(bad("status:done").contains("not a status"));
        assert!(bad("kind:").contains("nothing after the colon"));
        assert!(bad("kind:!").contains("nothing after the colon"));
        for raw in ["-", "--x", "!x", "-!x", "kind:!!x", "a:b"] {
            assert!(TaskFilter::parse(raw, &stages()).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn escapes_what_a_pattern_reads() {
        assert_eq!(escape("a.b(c)"), "a\\.b\\(c\\)");
        assert!(pattern(&["a b".into(), "!x".into()]).contains("kind:"));
        assert!(!pattern(&["a b".into()]).contains("stage:"));
    }
}
