//! Questions as the dashboard serves them: the Markdown body rendered for pages, who may
//! answer, and an answer taken (checked by the pipeline's registry) with its audit entry.

use flowdeck_protocol::question::{AnswerProblem, QuestionInfo, QuestionPage, Reply, Which};
use flowdeck_runtime::PipelineHandle;
use pulldown_cmark::{Event, Options, Parser};

use crate::{
    audit::Audit,
    auth::{Principal, Role},
    error::ApiError,
};

/// A question's Markdown body as HTML for a page. HTML written in the Markdown is shown as
/// text (the stage's author may quote a model's output), and the result passes an
/// allowlist: formatting, lists, tables, code and links to http(s) and mail, nothing that
/// runs or loads.
pub fn render(markdown: &str) -> String {
    let parser = Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .map(|e| match e {
        Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    ammonia::Builder::default()
        .rm_tags(["img"])
        .url_schemes(["http", "https", "mailto"].into())
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&html)
        .to_string()
}

/// `q` with its body rendered for a page.
pub fn for_page(mut q: QuestionInfo) -> QuestionInfo {
    q.body_html = Some(render(&q.body));
    q
}

/// A page of the live run's questions: pending first (oldest first), then the closed ones
/// kept (newest first), those `which` admits about `item`, their bodies rendered.
pub fn page(
    pipeline: &PipelineHandle,
    which: Which,
    item: Option<u64>,
    offset: usize,
    limit: usize,
) -> QuestionPage {
    let registry = pipeline.questions();
    let pending = registry.pending();
    let pending_count = pending.len() as u64;
    let keep = |q: &QuestionInfo| which.admits(q) && item.is_none_or(|i| q.item == i);
    // Most pages ask for the pending ones: the closed ones are read only past them.
    let matching: Vec<QuestionInfo> = if which == Which::Pending {
        pending.into_iter().filter(keep).collect()
    } else {
        pending
            .into_iter()
            .chain(registry.closed())
            .filter(keep)
            .collect()
    };
    QuestionPage {
        total: matching.len() as u64,
        pending: pending_count,
        questions: matching
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(for_page)
            .collect(),
    }
}

/// Why `who` may not answer `q`, if they may not: a readonly dashboard, a viewer, or
/// someone the question does not name when it names its answerers. With sign-in off,
/// whoever reaches the dashboard may.
pub fn refusal(readonly: bool, who: &Principal, q: &QuestionInfo) -> Option<ApiError> {
    if readonly {
        return Some(ApiError::Forbidden(
            "this dashboard is readonly: questions are answered elsewhere".into(),
        ));
    }
    // Sign-in off: nobody is named, and whoever reaches the dashboard may answer.
    who.name.as_ref()?;
    let role = match who.role {
        Role::Admin => "admin",
        Role::Viewer => "viewer",
    };
    if who.role == Role::Viewer {
        return Some(ApiError::Forbidden(format!(
            "{} is a viewer: viewers do not answer questions",
            who.label()
        )));
    }
    if !q.assigned_to(who.name.as_deref(), role) {
        return Some(ApiError::Forbidden(format!(
            "question {} is for {}, not {}",
            q.id,
            q.assignees.join(", "),
            who.label()
        )));
    }
    None
}

/// Answers question `id` of `pipeline` with `reply` as `who`, if they may: the audit log
/// records the attempt, whatever its outcome. Returns the closed question.
pub fn answer(
    pipeline: &PipelineHandle,
    audit: &Audit,
    readonly: bool,
    who: &Principal,
    id: u64,
    reply: &Reply,
) -> Result<QuestionInfo, ApiError> {
    let questions = pipeline.questions();
    let target = format!("question {id}");
    let outcome = match questions.get(id) {
        None => Err(ApiError::NotFound(format!("no question {id}"))),
        Some(q) => match refusal(readonly, who, &q) {
            Some(no) => Err(no),
            None => questions
                .answer(id, reply, who.name.as_deref())
                .map_err(problem),
        },
    };
    let target = match &outcome {
        Ok(q) => format!("{target} (item {}): {}", q.item, q.title),
        Err(_) => target,
    };
    let said = match &outcome {
        Ok(_) => format!("ok: {}", reply.choice),
        Err(e) => e.to_string(),
    };
    audit.record(who.label(), "answer", &target, said);
    outcome
}

/// The API's error for a refused answer.
pub fn problem(p: AnswerProblem) -> ApiError {
    match &p {
        AnswerProblem::Unknown { .. } => ApiError::NotFound(p.to_string()),
        AnswerProblem::Closed { .. } => ApiError::Conflict(p.to_string()),
        AnswerProblem::BadChoice { .. } => ApiError::BadField {
            field: "choice".into(),
            message: p.to_string(),
        },
        AnswerProblem::BadField { field, .. } => ApiError::BadField {
            field: format!("data.{field}"),
            message: p.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_render_markdown_and_show_html_as_text() {
        let html = render("**Bold** and <script>alert(1)</script> <img src=x onerror=alert(1)> [a](javascript:alert(1)) [b](https://example.com)");
        assert!(html.contains("<strong>Bold</strong>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "shown as text: {html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains(r#"href="https://example.com""#), "{html}");
        assert!(html.contains("noopener"), "{html}");
    }
}
