//! The user's own pages as a running dashboard serves them: the page specs, and the user's
//! table sources and health checks, which run when a widget asks for them. Built by
//! [`crate::dashboard::Dashboard`], read by the pages, the API and the built-in checks.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use flowdeck_protocol::page::{CheckResult, Health, PageLink, PageSpec, TableData, BUILTIN_CHECKS};

use crate::hub::Hub;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub(crate) type SourceFn = Arc<dyn Fn() -> BoxFuture<Result<TableData, String>> + Send + Sync>;
pub(crate) type CheckFn = Arc<dyn Fn() -> BoxFuture<Outcome> + Send + Sync>;

/// How long a health check or a table source may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What a health check found.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub health: Health,
    pub message: String,
}

impl Outcome {
    pub fn ok(message: impl Into<String>) -> Self {
        Outcome {
            health: Health::Ok,
            message: message.into(),
        }
    }
    pub fn warn(message: impl Into<String>) -> Self {
        Outcome {
            health: Health::Warn,
            message: message.into(),
        }
    }
    pub fn fail(message: impl Into<String>) -> Self {
        Outcome {
            health: Health::Fail,
            message: message.into(),
        }
    }
}

#[derive(Default)]
pub(crate) struct Builder {
    pub sources: HashMap<String, SourceFn>,
    pub checks: HashMap<String, CheckFn>,
    pub customs: crate::custom::CustomsBuilder,
}

impl Builder {
    pub fn finish(self, specs: Vec<PageSpec>) -> Pages {
        Pages(Arc::new(Inner {
            specs,
            sources: self.sources,
            checks: self.checks,
            customs: self.customs.finish(),
        }))
    }
}

struct Inner {
    specs: Vec<PageSpec>,
    sources: HashMap<String, SourceFn>,
    checks: HashMap<String, CheckFn>,
    customs: crate::custom::Customs,
}

/// The custom pages and what their widgets read. Cheap to clone.
#[derive(Clone)]
pub struct Pages(Arc<Inner>);

impl Default for Pages {
    fn default() -> Self {
        Builder::default().finish(Vec::new())
    }
}

impl Pages {
    /// The pages for the navigation, in the order they were added.
    pub fn links(&self) -> Vec<PageLink> {
        self.0
            .specs
            .iter()
            .map(|p| PageLink {
                slug: p.slug.clone(),
                title: p.title.clone(),
            })
            .collect()
    }

    pub fn has_source(&self, name: &str) -> bool {
        self.0.sources.contains_key(name)
    }

    /// Every table source there is: the built-in ones, then the user's, sorted.
    pub fn source_names(&self) -> Vec<String> {
        let mut user: Vec<String> = self.0.sources.keys().cloned().collect();
        user.sort();
        flowdeck_protocol::page::BUILTIN_SOURCES
            .iter()
            .map(|c| (*c).to_owned())
            .chain(user)
            .collect()
    }

    /// Every check there is: the built-in ones, then the user's, sorted.
    pub fn check_names(&self) -> Vec<String> {
        let mut user: Vec<String> = self.0.checks.keys().cloned().collect();
        user.sort();
        BUILTIN_CHECKS
            .iter()
            .map(|c| (*c).to_owned())
            .chain(user)
            .collect()
    }

    pub fn spec(&self, slug: &str) -> Option<PageSpec> {
        self.0.specs.iter().find(|p| p.slug == slug).cloned()
    }

    /// A source's rows: a built-in one from the live state, a user's from its function.
    /// The error names an unknown source, a source that failed, or one that timed out.
    pub async fn table(&self, hub: &Hub, name: &str) -> Result<TableData, String> {
        if let Some(t) = hub.with_state(|s| flowdeck_protocol::sources::builtin(s, name)) {
            return Ok(t);
        }
        let f = self
            .0
            .sources
            .get(name)
            .ok_or_else(|| format!("no table source named {name:?}"))?
            .clone();
        match tokio::time::timeout(CHECK_TIMEOUT, f()).await {
            Ok(rows) => rows,
            Err(_) => Err(format!(
                "the source {name:?} took longer than {} s",
                CHECK_TIMEOUT.as_secs()
            )),
        }
    }

    /// A custom widget's content, made at most once per its refresh; `None` for a page or
    /// widget there is not.
    pub(crate) async fn widget(
        &self,
        from: &crate::custom::Sources<'_>,
        slug: &str,
        id: &str,
    ) -> Option<flowdeck_protocol::page::WidgetData> {
        self.0.customs.content(slug, id, from).await
    }

    /// Runs the named checks side by side, each within [`CHECK_TIMEOUT`]; an unknown
    /// name fails with a message saying so.
    pub async fn checks(&self, hub: &Hub, names: &[String]) -> Vec<CheckResult> {
        let runs = names.iter().map(|name| async move {
            let outcome = match (name.as_str(), self.0.checks.get(name)) {
                ("pipeline", None) => pipeline_health(hub),
                (_, None) => Outcome::fail(format!("no health check named {name:?}")),
                (_, Some(f)) => match tokio::time::timeout(CHECK_TIMEOUT, f()).await {
                    Ok(o) => o,
                    Err(_) => {
                        Outcome::fail(format!("no answer within {} s", CHECK_TIMEOUT.as_secs()))
                    }
                },
            };
            CheckResult {
                name: name.clone(),
                health: outcome.health,
                message: outcome.message,
            }
        });
        futures::future::join_all(runs).await
    }
}

/// The built-in `pipeline` check: the health the Overview shows.
fn pipeline_health(hub: &Hub) -> Outcome {
    let (health, message) = hub.with_state(|s| s.health());
    Outcome { health, message }
}
