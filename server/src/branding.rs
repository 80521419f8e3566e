//! The dashboard made the user's own: a title, a logo, a colour palette and a CSS file. The
//! palette and the file become one stylesheet served at `/custom.css`, linked after the
//! built-in one so that it wins; the logo is served at `/logo`.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

/// The colours a palette may set, as the built-in stylesheet names them.
pub const COLOURS: [&str; 9] = [
    "bg", "panel", "border", "text", "muted", "accent", "ok", "warn", "bad",
];

/// A colour for both schemes (`"#0a7"`), or for light and dark (`["#0a7", "#3fb"]`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Colour {
    Both(String),
    Pair(String, String),
}

/// The title, logo and stylesheet the server shows.
#[derive(Clone, Debug, Default)]
pub struct Branding {
    pub title: Option<String>,
    /// The logo's bytes and content type.
    pub logo: Option<(Arc<[u8]>, &'static str)>,
    /// The palette's variables and the custom CSS file, in that order.
    pub css: Option<Arc<str>>,
}

impl Branding {
    /// The title in the header and the tab (default "flowdeck").
    pub fn title(&self) -> String {
        self.title.clone().unwrap_or_else(|| "flowdeck".to_owned())
    }

    /// Reads the logo and CSS files and renders the palette; every error names the file
    /// or the colour.
    pub fn load(
        title: Option<String>,
        palette: &BTreeMap<String, Colour>,
        css: Option<&Path>,
        logo: Option<&Path>,
    ) -> Result<Self, String> {
        let mut sheet = palette_css(palette)?;
        if let Some(path) = css {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the CSS file {}: {e}", path.display()))?;
            sheet.push_str(&text);
        }
        let logo = match logo {
            Some(path) => {
                let kind = logo_type(path)?;
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read the logo {}: {e}", path.display()))?;
                Some((Arc::from(bytes), kind))
            }
            None => None,
        };
        Ok(Branding {
            title,
            logo,
            css: (!sheet.is_empty()).then(|| Arc::from(sheet)),
        })
    }
}

fn logo_type(path: &Path) -> Result<&'static str, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    Ok(match ext.as_deref() {
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        _ => {
            return Err(format!(
                "the logo {} must be an .svg, .png, .jpg or .webp file",
                path.display()
            ))
        }
    })
}

/// A colour value CSS can take and that cannot break out of its declaration.
fn colour_ok(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '#' | '(' | ')' | ',' | '.' | '%' | ' ' | '-')
        })
}

/// `:root { --accent: light-dark(#light, #dark); ... }` for the colours the palette sets.
pub fn palette_css(palette: &BTreeMap<String, Colour>) -> Result<String, String> {
    if palette.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::from(":root {\n");
    for (name, colour) in palette {
        if !COLOURS.contains(&name.as_str()) {
            return Err(format!(
                "palette: unknown colour {name:?}; the colours are {}",
                COLOURS.join(", ")
            ));
        }
        let (light, dark) = match colour {
            Colour::Both(c) => (c, c),
            Colour::Pair(l, d) => (l, d),
        };
        for v in [light, dark] {
            if !colour_ok(v) {
                return Err(format!("palette: {name} = {v:?} is not a colour"));
            }
        }
        out.push_str(&format!("  --{name}: light-dark({light}, {dark});\n"));
    }
    out.push_str("}\n");
    Ok(out)
}

/// `GET /custom.css`.
pub async fn css(State(branding): State<Arc<Branding>>) -> Response {
    match &branding.css {
        Some(css) => (
            [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
            css.to_string(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /logo`.
pub async fn logo(State(branding): State<Arc<Branding>>) -> Response {
    match &branding.logo {
        Some((bytes, kind)) => {
            let mut r = bytes.to_vec().into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            r
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palettes_become_variables_and_refuse_injection() {
        let mut p = BTreeMap::new();
        p.insert("accent".to_owned(), Colour::Both("#ff8800".into()));
        p.insert(
            "bg".to_owned(),
            Colour::Pair("#fffdf5".into(), "rgb(10, 12, 20)".into()),
        );
        let css = palette_css(&p).unwrap();
        assert!(
            css.contains("--accent: light-dark(#ff8800, #ff8800);"),
            "{css}"
        );
        assert!(
            css.contains("--bg: light-dark(#fffdf5, rgb(10, 12, 20));"),
            "{css}"
        );

        p.insert(
            "accent".to_owned(),
            Colour::Both("red;} body{display:none".into()),
        );
        assert!(palette_css(&p).unwrap_err().contains("not a colour"));
        let mut q = BTreeMap::new();
        q.insert("link".to_owned(), Colour::Both("#000".into()));
        assert!(palette_css(&q)
            .unwrap_err()
            .contains("unknown colour \"link\""));
    }

    #[test]
    fn logos_need_an_image_type_and_files_must_exist() {
        assert!(logo_type(Path::new("a.exe")).is_err());
        assert_eq!(logo_type(Path::new("a.SVG")).unwrap(), "image/svg+xml");
        let err =
            Branding::load(None, &BTreeMap::new(), Some(Path::new("/nope.css")), None).unwrap_err();
        assert!(err.contains("/nope.css"), "{err}");
    }
}
