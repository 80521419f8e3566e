//! Colours after the dashboard's themes (dark, light), or none: `NO_COLOR` (no-color.org)
//! and a dumb terminal get plain text, with the layout unchanged.

use ratatui::style::{Color, Modifier, Style};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Theme {
    Dark,
    Light,
    /// No colour at all: bold and reverse only.
    Plain,
}

impl Theme {
    /// The theme asked for (`dark`, `light`; anything else is dark), unless the environment
    /// says no colour.
    pub fn pick(asked: Option<&str>, no_color: bool, term: Option<&str>) -> Theme {
        if no_color || term == Some("dumb") {
            return Theme::Plain;
        }
        match asked {
            Some("light") => Theme::Light,
            _ => Theme::Dark,
        }
    }

    /// [`Theme::pick`] from this process's environment.
    pub fn from_env(asked: Option<&str>) -> Theme {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme::pick(asked, no_color, std::env::var("TERM").ok().as_deref())
    }

    fn colour(self, dark: Color, light: Color) -> Style {
        match self {
            Theme::Dark => Style::new().fg(dark),
            Theme::Light => Style::new().fg(light),
            Theme::Plain => Style::new(),
        }
    }

    pub fn accent(self) -> Style {
        self.colour(Color::Rgb(0x4d, 0xab, 0xf7), Color::Rgb(0x1c, 0x5f, 0xd6))
    }
    pub fn ok(self) -> Style {
        self.colour(Color::Rgb(0x51, 0xcf, 0x66), Color::Rgb(0x2b, 0x8a, 0x3e))
    }
    pub fn warn(self) -> Style {
        self.colour(Color::Rgb(0xfc, 0xc4, 0x19), Color::Rgb(0xb0, 0x6d, 0x00))
    }
    pub fn bad(self) -> Style {
        self.colour(Color::Rgb(0xff, 0x6b, 0x6b), Color::Rgb(0xc9, 0x2a, 0x2a))
    }
    pub fn muted(self) -> Style {
        match self {
            Theme::Plain => Style::new(),
            _ => self.colour(Color::Rgb(0x86, 0x8e, 0x96), Color::Rgb(0x6b, 0x72, 0x79)),
        }
    }
    /// The selected row.
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    pub fn title(self) -> Style {
        self.accent().add_modifier(Modifier::BOLD)
    }
    /// The style of an item or worker status by its name.
    pub fn status(self, status: &str) -> Style {
        match status {
            "completed" | "live" | "running" | "finished" => self.ok(),
            "failed" | "aborted" | "lost" => self.bad(),
            "retrying" | "blocked" | "paused" | "reconnecting" => self.warn(),
            "busy" => self.accent(),
            _ => self.muted(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_and_a_dumb_terminal_get_plain_text() {
        assert_eq!(
            Theme::pick(Some("light"), true, Some("xterm")),
            Theme::Plain
        );
        assert_eq!(Theme::pick(None, false, Some("dumb")), Theme::Plain);
        assert_eq!(Theme::pick(Some("light"), false, None), Theme::Light);
        assert_eq!(
            Theme::pick(None, false, Some("xterm-256color")),
            Theme::Dark
        );
        assert_eq!(Theme::Plain.bad(), Style::new());
    }
}
