//! The browser site (wasm, its js loader, css, favicon), prebuilt by
//! `scripts/build-site.sh` into this crate's `site/` folder and compiled into the binary.
//!
//! The site is the same for every user (pages are data), so nobody but flowdeck's own
//! frontend developers builds it: a crate that depends on flowdeck gets a working
//! dashboard from `cargo build` alone, with no wasm toolchain. The files sit in a folder
//! named by a hash of their content, so they are served with `immutable` caching, and each
//! comes with brotli and gzip versions made once at build time: a request that accepts
//! them gets the smaller bytes with no compression work per request.

use std::sync::OnceLock;

use axum::{
    body::Body,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use flowdeck_app::SiteAssets;

#[derive(rust_embed::Embed)]
#[folder = "site"]
struct Site;

/// The digest of the sources the embedded site was built from (see `scripts/site-digest.sh`).
pub const SOURCES: &str = "SOURCES";

/// Where the built site's loader, main wasm module and stylesheet are: all in one folder
/// named by a hash of the build (`pkg/1a2b3c4d5e6f7a8b/flowdeck.js`), beside the lazily
/// loaded page modules the loader fetches by relative names.
pub(crate) fn assets() -> &'static SiteAssets {
    static ASSETS: OnceLock<SiteAssets> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let build = Site::iter().find_map(|f| {
            let rest = f.strip_prefix("pkg/")?;
            let (dir, name) = rest.split_once('/')?;
            (name == "flowdeck.js").then(|| format!("/pkg/{dir}"))
        });
        let build = build.as_deref().unwrap_or("/pkg");
        SiteAssets {
            js: format!("{build}/flowdeck.js"),
            wasm: format!("{build}/flowdeck.wasm"),
            css: format!("{build}/flowdeck.css"),
        }
    })
}

/// Which modules each lazily loaded page needs, for the page the server renders: given to
/// Leptos as context, it puts a `<link rel="preload">` for each in the page's head, so the
/// browser fetches them beside the main module instead of after hydration asks for them.
/// `None` for a site without page modules.
pub(crate) fn split_manifest() -> Option<leptos::WasmSplitManifest> {
    static MANIFEST: OnceLock<Option<leptos::WasmSplitManifest>> = OnceLock::new();
    MANIFEST
        .get_or_init(|| {
            let folder = assets().js.trim_end_matches("/flowdeck.js").to_owned();
            let file = Site::get(&format!("{}/__wasm_split_manifest.json", &folder[1..]))?;
            let modules = serde_json::from_slice(&file.data).ok()?;
            Some(leptos::WasmSplitManifest(
                leptos::prelude::ArcStoredValue::new((
                    folder,
                    modules,
                    "__wasm_split.js".to_owned(),
                )),
            ))
        })
        .clone()
}

/// The hashed file an unhashed name stands for (`pkg/flowdeck.js`), for links made before
/// names carried hashes.
fn alias(path: &str) -> Option<&'static str> {
    let a = assets();
    let target = match path {
        "pkg/flowdeck.js" => &a.js,
        "pkg/flowdeck.wasm" => &a.wasm,
        "pkg/flowdeck.css" => &a.css,
        _ => return None,
    };
    Some(target.trim_start_matches('/'))
}

/// How much the client wants an encoding: its `q`, 0 when refused or not named.
pub(crate) fn accepts(headers: &HeaderMap, coding: &str) -> f32 {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| {
            let mut it = part.split(';');
            let name = it.next()?.trim();
            if !name.eq_ignore_ascii_case(coding) && name != "*" {
                return None;
            }
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            Some(q)
        })
        .fold(0.0, f32::max)
}

/// The embedded file at `path` (without the leading `/`), if there is one, in the best
/// encoding the request accepts.
pub(crate) fn get(path: &str, headers: &HeaderMap) -> Option<Response> {
    // Precompressed copies and the digest are not files of the site.
    if path.ends_with(".br") || path.ends_with(".gz") || path == SOURCES {
        return None;
    }
    let (name, hashed) = match alias(path) {
        Some(target) => (target, false),
        None => (path, path.starts_with("pkg/")),
    };
    let plain = Site::get(name)?;
    let (br, gz) = (accepts(headers, "br"), accepts(headers, "gzip"));
    // Brotli when the client likes it at least as much as gzip: it is the smaller.
    let coding = if br > 0.0 && br >= gz {
        Some(("br", "br"))
    } else if gz > 0.0 {
        Some(("gzip", "gz"))
    } else {
        None
    };
    let (file, coding) = coding
        .and_then(|(coding, ext)| Site::get(&format!("{name}.{ext}")).map(|f| (f, Some(coding))))
        .unwrap_or((plain.clone(), None));
    let etag = format!(
        "\"{}{}\"",
        hex(&file.metadata.sha256_hash()[..16]),
        coding.map_or(String::new(), |c| format!("-{c}"))
    );
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(file.data.into_owned()))
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(plain.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(c) = coding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(c));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if hashed {
            // The name changes with the content: cache for good.
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    Some(response)
}

/// Whether the site is embedded (false only for a checkout whose site was deleted).
pub fn present() -> bool {
    Site::get(assets().js.trim_start_matches('/')).is_some()
}

/// The digest the embedded site was built from.
pub fn sources_digest() -> Option<String> {
    Site::get(SOURCES).map(|f| String::from_utf8_lossy(&f.data).trim().to_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).unwrap(),
        );
        h
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        assert_eq!(accepts(&headers("gzip, deflate, br"), "br"), 1.0);
        assert_eq!(accepts(&headers("gzip;q=0.8, br;q=0.5"), "gzip"), 0.8);
        assert_eq!(accepts(&headers("br;q=0"), "br"), 0.0);
        assert_eq!(accepts(&headers("identity"), "gzip"), 0.0);
        assert_eq!(accepts(&headers("*;q=0.3"), "br"), 0.3);
        assert_eq!(accepts(&HeaderMap::new(), "br"), 0.0);
    }
}
