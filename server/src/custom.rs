//! Custom widgets as a running dashboard serves them: each widget's producer (the user's
//! closure, or a data source the dashboard has), its template, and the last content made.
//! A widget's content is made at most once per `every`, whoever asks (one tab or fifty),
//! within a deadline; an error, a panic or a time-out becomes the widget's `error` and
//! never reaches the rest of the page.
//!
//! Templates are minijinja with HTML autoescape on, and what they produce is sanitized
//! (ammonia) before it leaves: no script, no event handler, no `javascript:` URL, and
//! inline style limited to properties that cannot leave the widget's box (no `position`).
//! The site's CSP stays as strict as it is; this is the second lock, not the only one.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use flowdeck_protocol::{
    metrics::{SeriesData, SeriesQuery},
    page::{Block, SeriesRef, TableData, WidgetData},
    Snapshot,
};
use flowdeck_runtime::PipelineHandle;

use futures::FutureExt;
use minijinja::{AutoEscape, Environment};
use serde_json::Value;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// A Rust widget's data: JSON for its template.
pub(crate) type DataFn = Arc<dyn Fn(WidgetCx) -> BoxFuture<Result<Value, String>> + Send + Sync>;
/// A Rust widget's view.
pub(crate) type ViewFn =
    Arc<dyn Fn(WidgetCx) -> BoxFuture<Result<Vec<Block>, String>> + Send + Sync>;

/// How long a custom widget's closure may take, unless it says otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// The most template work one render may do (minijinja's fuel: about one unit per
/// instruction), so a template looping over a huge range fails rather than hangs a thread.
const FUEL: u64 = 200_000;

/// What a custom widget's closure gets: the pipeline, and its snapshot as of now.
#[derive(Clone)]
pub struct WidgetCx {
    pub handle: PipelineHandle,
    pub snapshot: Snapshot,
}

/// Where a widget's content comes from.
#[derive(Clone)]
pub(crate) enum Producer {
    /// The user's closure's JSON, through a template.
    Data(DataFn),
    /// The user's closure's view.
    View(ViewFn),
    /// A table source's rows (config file), through a template.
    Source(String),
    /// Series over a range (config file), through a template.
    Series(Vec<SeriesRef>, u64),
    /// The pipeline's snapshot (config file), through a template.
    Snapshot,
}

/// One custom widget of one page.
pub(crate) struct Entry {
    pub producer: Producer,
    /// The template's name in the environment, for all but views.
    pub template: Option<String>,
    pub every: Duration,
    pub deadline: Duration,
    last: tokio::sync::Mutex<Option<(Instant, WidgetData)>>,
}

impl Entry {
    pub fn new(
        producer: Producer,
        template: Option<String>,
        every: Duration,
        deadline: Duration,
    ) -> Self {
        Entry {
            producer,
            template,
            every,
            deadline,
            last: tokio::sync::Mutex::new(None),
        }
    }
}

/// Every custom widget and the templates they render with.
#[derive(Clone)]
pub struct Customs {
    env: Arc<Environment<'static>>,
    widgets: Arc<HashMap<(String, String), Arc<Entry>>>,
}

impl Default for Customs {
    fn default() -> Self {
        Customs {
            env: Arc::new(environment()),
            widgets: Arc::default(),
        }
    }
}

/// The template environment: HTML autoescape for every template, bounded work.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_fuel(Some(FUEL));
    env
}

/// Collects widgets and templates before the server starts; a template that does not
/// parse is refused here, naming the page and the widget.
#[derive(Default)]
pub(crate) struct CustomsBuilder {
    env: Option<Environment<'static>>,
    widgets: HashMap<(String, String), Arc<Entry>>,
}

impl CustomsBuilder {
    pub fn has(&self, slug: &str, id: &str) -> bool {
        self.widgets.contains_key(&(slug.to_owned(), id.to_owned()))
    }

    /// Adds a widget; `template` is its source, parsed now.
    pub fn add(
        &mut self,
        slug: &str,
        id: &str,
        template: Option<String>,
        producer: Producer,
        every: Duration,
        deadline: Duration,
    ) -> Result<(), String> {
        let name = match template {
            Some(source) => {
                let name = format!("{slug}/{id}");
                self.env
                    .get_or_insert_with(environment)
                    .add_template_owned(name.clone(), source)
                    .map_err(|e| format!("its template does not parse: {e:#}"))?;
                Some(name)
            }
            None => None,
        };
        let entry = Entry::new(producer, name, every, deadline);
        self.widgets
            .insert((slug.to_owned(), id.to_owned()), Arc::new(entry));
        Ok(())
    }

    pub fn finish(self) -> Customs {
        Customs {
            env: Arc::new(self.env.unwrap_or_else(environment)),
            widgets: Arc::new(self.widgets),
        }
    }
}

impl Customs {
    /// The widget's content: the last one made if it is younger than `every`, else made
    /// now. `None` for a page or widget there is not.
    pub(crate) async fn content(
        &self,
        slug: &str,
        id: &str,
        from: &Sources<'_>,
    ) -> Option<WidgetData> {
        let entry = self.widgets.get(&(slug.to_owned(), id.to_owned()))?.clone();
        // One maker at a time: the others wait for its content rather than run again.
        let mut last = entry.last.lock().await;
        if let Some((at, data)) = last.as_ref() {
            if at.elapsed() < entry.every {
                return Some(data.clone());
            }
        }
        let data = self.make(&entry, from).await;
        *last = Some((Instant::now(), data.clone()));
        Some(data)
    }

    async fn make(&self, entry: &Entry, from: &Sources<'_>) -> WidgetData {
        let mut out = WidgetData {
            at_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            every: entry.every.as_secs(),
            ..WidgetData::default()
        };
        let cx = || WidgetCx {
            handle: from.hub.pipeline().clone(),
            snapshot: from.hub.pipeline().snapshot(),
        };
        let data = match &entry.producer {
            Producer::View(f) => {
                match guarded(entry.deadline, AssertUnwindSafe(f(cx()))).await {
                    Ok(view) => {
                        out.html = Some(crate::view::html(&view));
                        out.view = Some(view);
                    }
                    Err(e) => out.error = Some(e),
                }
                return out;
            }
            Producer::Data(f) => guarded(entry.deadline, AssertUnwindSafe(f(cx()))).await,
            Producer::Source(name) => (from.table)(name.clone())
                .await
                .and_then(|t| serde_json::to_value(t).map_err(|e| e.to_string())),
            Producer::Series(series, range) => {
                let q = SeriesQuery {
                    series: series.clone(),
                    agg: None,
                    range: *range,
                    step: None,
                    since: None,
                };
                (from.series)(&q).and_then(|s| serde_json::to_value(s).map_err(|e| e.to_string()))
            }
            Producer::Snapshot => {
                serde_json::to_value(from.hub.pipeline().snapshot()).map_err(|e| e.to_string())
            }
        };
        match data {
            Ok(data) => {
                match self.render(entry, &data, from) {
                    Ok(html) => out.html = Some(html),
                    Err(e) => out.error = Some(e),
                }
                out.data = Some(data);
            }
            Err(e) => out.error = Some(e),
        }
        out
    }

    /// The template over `data` and the context, sanitized.
    fn render(&self, entry: &Entry, data: &Value, from: &Sources<'_>) -> Result<String, String> {
        let name = entry
            .template
            .as_deref()
            .ok_or("this widget has no template")?;
        let template = self.env.get_template(name).map_err(|e| e.to_string())?;
        let data = <minijinja::Value as serde::Deserialize>::deserialize(data)
            .map_err(|e| format!("its data cannot go to a template: {e}"))?;
        let s = from.hub.pipeline().snapshot();
        let t = &s.totals;
        let ctx = minijinja::context! {
            data => data,
            pipeline => s.pipeline.clone(),
            state => s.state.as_str(),
            run => from.run,
            theme => from.theme,
            counts => minijinja::context! {
                submitted => t.submitted,
                queued => t.queued,
                running => t.running,
                waiting => t.waiting,
                completed => t.completed,
                failed => t.failed,
                cancelled => t.cancelled,
                throughput => t.throughput,
            },
        };
        let html = template
            .render(ctx)
            .map_err(|e| format!("the template failed: {e:#}"))?;
        Ok(sanitize(&html))
    }
}

/// What a widget's content may read: the pipeline (through its hub), the dashboard's
/// table sources and series, and the run and theme for the template's context. The
/// readers are handed in, so that this module needs nothing of the API or the pages.
pub(crate) struct Sources<'a> {
    pub hub: &'a crate::hub::Hub,
    /// A table source's rows.
    pub table: &'a (dyn Fn(String) -> BoxFuture<Result<TableData, String>> + Send + Sync),
    /// Series over a range, ending now.
    pub series: &'a (dyn Fn(&SeriesQuery) -> Result<Vec<SeriesData>, String> + Send + Sync),
    pub run: Option<i64>,
    pub theme: &'a str,
}

/// Runs a user's future within `deadline`; its error, a panic or the time-out come back as
/// one line for the widget to show.
async fn guarded<T, F>(deadline: Duration, fut: AssertUnwindSafe<F>) -> Result<T, String>
where
    F: Future<Output = Result<T, String>>,
{
    match tokio::time::timeout(deadline, fut.catch_unwind()).await {
        Err(_) => Err(format!("no answer within {} s", deadline.as_secs_f64())),
        Ok(Err(panic)) => Err(format!(
            "the widget panicked: {}",
            flowdeck_runtime::guard::message(panic.as_ref())
        )),
        Ok(Ok(r)) => r,
    }
}

/// CSS properties a template's inline style may set: looks, not placement, so nothing
/// can cover the page outside the widget.
const STYLE_PROPERTIES: [&str; 24] = [
    "color",
    "background-color",
    "font-weight",
    "font-style",
    "font-size",
    "font-family",
    "text-align",
    "text-decoration",
    "text-transform",
    "white-space",
    "vertical-align",
    "width",
    "min-width",
    "max-width",
    "height",
    "padding",
    "padding-left",
    "padding-right",
    "margin",
    "border",
    "border-bottom",
    "border-radius",
    "opacity",
    "display",
];

/// A template's output as the page may show it: ammonia's allowlist of tags and
/// attributes (no script, style element, iframe, form or event handler), links to
/// http(s) and mail only, `class` anywhere (the theme's classes), and inline style with
/// [`STYLE_PROPERTIES`] only.
pub fn sanitize(html: &str) -> String {
    ammonia::Builder::default()
        .add_generic_attributes(["class", "style", "title"])
        .filter_style_properties(STYLE_PROPERTIES.into_iter().collect::<HashSet<_>>())
        .url_schemes(["http", "https", "mailto"].into())
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizing_keeps_markup_and_drops_what_runs_or_escapes() {
        let dirty = r#"<div class="x" style="color: red; position: fixed; top: 0">ok</div>
            <script>alert(1)</script><img src=x onerror="alert(1)">
            <a href="javascript:alert(1)">a</a><a href="https://example.com">b</a>
            <style>body { display: none }</style><iframe src="https://example.com"></iframe>"#;
        let clean = sanitize(dirty);
        for gone in [
            "<script",
            "onerror",
            "javascript:",
            "position",
            "<style",
            "<iframe",
            "alert(1)</",
        ] {
            assert!(!clean.contains(gone), "{gone} left in {clean}");
        }
        assert!(clean.contains(r#"class="x""#), "{clean}");
        assert!(clean.contains("color:red"), "{clean}");
        assert!(clean.contains(r#"href="https://example.com""#), "{clean}");
    }

    #[test]
    fn templates_escape_data_and_bad_ones_are_refused() {
        let mut b = CustomsBuilder::default();
        let err = b
            .add(
                "ops",
                "t",
                Some("{% for x in %}".into()),
                Producer::Snapshot,
                Duration::from_secs(1),
                DEFAULT_DEADLINE,
            )
            .unwrap_err();
        assert!(err.contains("does not parse"), "{err}");
        let env = environment();
        let out = env
            .template_from_str("<b>{{ name }}</b>")
            .unwrap()
            .render(minijinja::context! { name => "<script>x</script>" })
            .unwrap();
        assert_eq!(out, "<b>&lt;script&gt;x&lt;&#x2f;script&gt;</b>");
    }
}
