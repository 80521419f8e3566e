//! Themes: dark, light, or following the system. The page's `<html data-theme>` picks the
//! palette (see `style/main.css`, built on CSS `light-dark()`), so switching needs no
//! re-render. The choice is kept in a cookie, which the server reads to render the first
//! paint in the right colours: no flash, no inline script.

use std::{fmt, str::FromStr};

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The cookie that remembers a browser's choice.
pub const COOKIE: &str = "flowdeck_theme";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Follow the operating system's light or dark setting.
    #[default]
    System,
    Light,
    Dark,
}

impl Theme {
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    /// The next one in the toggle's cycle.
    fn next(self) -> Theme {
        match self {
            Theme::System => Theme::Light,
            Theme::Light => Theme::Dark,
            Theme::Dark => Theme::System,
        }
    }

    /// The choice in a `Cookie` header, if it holds one.
    pub fn from_cookies(header: &str) -> Option<Theme> {
        header
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .and_then(|(_, v)| v.parse().ok())
    }
}

impl fmt::Display for Theme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Theme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(Theme::System),
            "light" => Ok(Theme::Light),
            "dark" => Ok(Theme::Dark),
            _ => Err(format!("theme must be system, light or dark; got {s:?}")),
        }
    }
}

/// The theme for browsers that have not chosen one, as the server is configured: provided
/// as context for every render.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerDefault(pub Theme);

/// The theme of the page being rendered: the browser's cookie, else the server's default.
pub fn current() -> Theme {
    #[cfg(feature = "ssr")]
    {
        let cookie = use_context::<http::request::Parts>().and_then(|p| {
            p.headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(Theme::from_cookies)
        });
        let default = use_context::<ServerDefault>().map_or(Theme::System, |d| d.0);
        cookie.unwrap_or(default)
    }
    #[cfg(not(feature = "ssr"))]
    {
        document_theme().unwrap_or_default()
    }
}

#[cfg(not(feature = "ssr"))]
fn document_theme() -> Option<Theme> {
    let root = leptos::prelude::document().document_element()?;
    root.get_attribute("data-theme")?.parse().ok()
}

/// Sets the page's theme and remembers it for a year.
fn apply(theme: Theme) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let doc = leptos::prelude::document();
        if let Some(root) = doc.document_element() {
            let _ = root.set_attribute("data-theme", theme.as_str());
        }
        if let Ok(html) = doc.dyn_into::<web_sys::HtmlDocument>() {
            let _ = html.set_cookie(&format!(
                "{COOKIE}={theme}; Path=/; Max-Age=31536000; SameSite=Lax"
            ));
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = theme;
}

/// The page's theme as a signal, so that what draws its own colours (charts on a canvas)
/// can draw again when it changes.
#[derive(Clone, Copy)]
struct Chosen(RwSignal<Theme>);

/// Provides the theme signal; the app calls it once.
pub fn provide() {
    provide_context(Chosen(RwSignal::new(current())));
}

/// The theme signal [`provide`] made.
pub fn use_theme() -> RwSignal<Theme> {
    use_context::<Chosen>().map_or_else(|| RwSignal::new(current()), |c| c.0)
}

/// The toggle in the top bar: system → light → dark.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    let theme = use_theme();
    view! {
        <button
            class="btn theme-toggle"
            data-testid="theme-toggle"
            title="Switch between the system's theme, light and dark"
            on:click=move |_| {
                let next = theme.get_untracked().next();
                theme.set(next);
                apply(next);
            }
        >
            {move || format!("Theme: {}", theme.get())}
        </button>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn themes_parse_cycle_and_come_from_cookies() {
        assert_eq!("dark".parse::<Theme>(), Ok(Theme::Dark));
        assert!("blue".parse::<Theme>().unwrap_err().contains("system"));
        assert_eq!(Theme::System.next().next().next(), Theme::System);
        assert_eq!(
            Theme::from_cookies("a=1; flowdeck_theme=light"),
            Some(Theme::Light)
        );
        assert_eq!(Theme::from_cookies("flowdeck_theme=neon"), None);
        assert_eq!(Theme::from_cookies(""), None);
    }
}
