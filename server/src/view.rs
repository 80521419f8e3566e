//! A custom widget's view drawn as HTML on the server, in the classes of the site's theme
//! (so it looks like the built-in widgets and follows light, dark and a palette): what the
//! browser inserts as is. Every text is escaped; Markdown blocks arrive sanitized.

use std::fmt::Write;

use flowdeck_protocol::page::{Block, Cell, Health};

/// The blocks, one under the other, in a `custom-view` box.
pub fn html(blocks: &[Block]) -> String {
    let mut out = String::from(r#"<div class="custom-view">"#);
    for b in blocks {
        block(&mut out, b);
    }
    out.push_str("</div>");
    out
}

/// Text as HTML, escaped as the templates escape it (minijinja's escaper).
fn esc(text: &str) -> String {
    minijinja::HtmlEscape(text).to_string()
}

fn num(v: f64) -> String {
    Cell::Num(v).text()
}

/// A share of `max` as a CSS width, 0 to 100 per cent.
fn width(value: f64, max: f64) -> String {
    let share = if max > 0.0 {
        (value / max).clamp(0.0, 1.0)
    } else {
        0.0
    };
    format!("width: {:.1}%", share * 100.0)
}

fn health(h: Option<Health>) -> String {
    h.map(|h| format!(r#" data-health="{}""#, h.as_str()))
        .unwrap_or_default()
}

fn meter(out: &mut String, label: &str, value: f64, max: f64, text: &str) {
    let _ = write!(
        out,
        r#"<div class="block-bar"><span>{}</span><span class="meter"><span class="meter-fill" style="{}"></span></span><span class="num">{}</span></div>"#,
        esc(label),
        width(value, max),
        esc(text)
    );
}

fn block(out: &mut String, b: &Block) {
    match b {
        Block::Stat {
            label,
            value,
            hint,
            health: h,
        } => {
            let _ = write!(
                out,
                r#"<div class="block-stat"{}><div class="card-label">{}</div><div class="card-value">{}</div>"#,
                health(*h),
                esc(label),
                esc(value)
            );
            if let Some(hint) = hint {
                let _ = write!(out, r#"<div class="muted">{}</div>"#, esc(hint));
            }
            out.push_str("</div>");
        }
        Block::Bar { label, value, max } => meter(out, label, *value, *max, &num(*value)),
        Block::Progress { label, done, total } => meter(
            out,
            label,
            *done,
            *total,
            &format!("{} of {}", num(*done), num(*total)),
        ),
        Block::Sparkline { label, points } => {
            let (lo, hi) = points
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &p| (lo.min(p), hi.max(p)));
            let span = if hi > lo { hi - lo } else { 1.0 };
            let step = 100.0 / (points.len().max(2) - 1) as f64;
            let line: Vec<String> = points
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    format!(
                        "{:.1},{:.1}",
                        i as f64 * step,
                        28.0 - (p - lo) / span * 26.0
                    )
                })
                .collect();
            let _ = write!(
                out,
                r#"<div class="block-spark"><span>{}</span><svg viewBox="0 0 100 30" preserveAspectRatio="none" aria-hidden="true"><polyline points="{}"></polyline></svg></div>"#,
                esc(label),
                line.join(" ")
            );
        }
        Block::Table { columns, rows } => {
            out.push_str(r#"<table class="grid"><thead><tr>"#);
            for c in columns {
                let _ = write!(out, "<th>{}</th>", esc(c));
            }
            out.push_str("</tr></thead><tbody>");
            for r in rows {
                out.push_str("<tr>");
                for c in r {
                    let _ = write!(out, "<td>{}</td>", esc(&c.text()));
                }
                out.push_str("</tr>");
            }
            out.push_str("</tbody></table>");
        }
        Block::List { items } => {
            out.push_str(r#"<ul class="block-list">"#);
            for i in items {
                let _ = write!(out, "<li>{}</li>", esc(i));
            }
            out.push_str("</ul>");
        }
        Block::KeyValue { pairs } => {
            out.push_str(r#"<dl class="block-kv">"#);
            for (k, v) in pairs {
                let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
            }
            out.push_str("</dl>");
        }
        Block::Badge { text, health: h } => {
            let _ = write!(
                out,
                r#"<span class="badge"{}>{}</span>"#,
                health(Some(*h)),
                esc(text)
            );
        }
        // Rendered from Markdown and sanitized when the view was built.
        Block::Text { html } => {
            let _ = write!(out, r#"<div class="block-text">{html}</div>"#);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_draw_escaped_in_the_themes_classes() {
        let html = html(&[
            Block::Stat {
                label: "<b>Queued</b>".into(),
                value: "42".into(),
                hint: None,
                health: Some(Health::Warn),
            },
            Block::Progress {
                label: "Done".into(),
                done: 5.0,
                total: 10.0,
            },
            Block::Table {
                columns: vec!["tenant".into()],
                rows: vec![vec![Cell::from("<script>")]],
            },
        ]);
        assert!(html.starts_with(r#"<div class="custom-view">"#), "{html}");
        assert!(
            html.contains(r#"<div class="block-stat" data-health="warn">"#),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;Queued"), "{html}");
        assert!(html.contains(r#"style="width: 50.0%""#), "{html}");
        assert!(html.contains("5 of 10"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }
}
