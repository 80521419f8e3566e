//! The prebuilt site as the server sends it, over real HTTP: the page names the site's
//! files by hashed names, which are cached for good; each goes out precompressed in the
//! best encoding the request accepts (and as plain bytes to one that accepts none); pages
//! and JSON are compressed on the fly, the live stream per connection (frame by frame:
//! tests/stream.rs reads it so). And the wasm stays within
//! its size budget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{pipeline, serve};
use flowdeck_server::hub::LogLimits;
use reqwest::{header, Client};

/// The budget of the first load's wasm, brotli-compressed, as browsers download it: the
/// main module, which holds the shell and the overview; every other page is a module of
/// its own, fetched when first visited (app/src/pages/lazy.rs). Issue #11 set 300 KB; it
/// is 299,080 bytes (2026-12-03), down from 610,159 when the whole site was one module: the
/// next page must make room (docs/dashboard.md, "Bundle size", says where).
const WASM_BROTLI_BUDGET: usize = 300_000;

/// The budget of the largest page module, brotli-compressed: the custom pages', which
/// carries every widget (79 KB on 2026-11-29).
const PAGE_BROTLI_BUDGET: usize = 100_000;

/// The tests of this file take turns: run side by side, each on a tokio runtime of its
/// own in one process, a page now and then answered 503 "took longer than 30 s" within a
/// second (3 of 15 runs side by side, 0 of 15 one at a time). A dashboard has one runtime;
/// what several runtimes in one process share there (Leptos' process-wide executor and
/// reactive state) is the suspect, not proven.
static TURNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn server() -> (String, Client, tokio::sync::MutexGuard<'static, ()>) {
    let turn = TURNS.lock().await;
    let running = pipeline(1000);
    std::mem::forget(running.input);
    let base = serve(running.handle, 100, LogLimits::default()).await;
    (base, plain_client(), turn)
}

/// A client that decodes nothing itself: the tests read the encodings as sent. (Built
/// alongside `flowdeck top`, which asks reqwest to decode, the workspace's reqwest can.)
fn plain_client() -> Client {
    Client::builder().no_gzip().no_brotli().build().unwrap()
}

async fn get(http: &Client, url: &str, accept: Option<&str>) -> reqwest::Response {
    let mut req = http.get(url);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT_ENCODING, a);
    }
    req.send().await.unwrap()
}

fn encoding(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_files_have_hashed_names_immutable_caching_and_precompressed_bytes() {
    let (base, http, _turn) = server().await;
    let html = get(&http, &format!("{base}/"), None)
        .await
        .text()
        .await
        .unwrap();
    let names: Vec<String> = ["js", "wasm", "css"]
        .iter()
        .map(|ext| {
            let file = format!("/flowdeck.{ext}");
            let end = html
                .find(&file)
                .unwrap_or_else(|| panic!("the page names no {file}:\n{html}"));
            let start = html[..end].rfind("/pkg/").unwrap();
            html[start..end + file.len()].to_owned()
        })
        .collect();
    // The build's folder: 16 hex digits of a hash of all its files.
    let folder = names[0]
        .trim_start_matches("/pkg/")
        .split('/')
        .next()
        .unwrap();
    assert!(
        folder.len() == 16 && folder.bytes().all(|b| b.is_ascii_hexdigit()),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .all(|n| n.starts_with(&format!("/pkg/{folder}/"))),
        "{names:?}"
    );
    // The page modules, by the names the split loader fetches them with.
    let loader = get(&http, &format!("{base}/pkg/{folder}/__wasm_split.js"), None)
        .await
        .text()
        .await
        .unwrap();
    let modules: Vec<String> = loader
        .match_indices("\"./")
        .map(|(i, _)| loader[i + 3..].split('"').next().unwrap().to_owned())
        .filter(|m| m.ends_with(".wasm"))
        .collect();
    assert!(
        modules
            .iter()
            .any(|m| m.starts_with("split___workers_route")),
        "the workers page is a module of its own: {modules:?}"
    );
    let mut sizes = Vec::new();
    for name in names
        .iter()
        .cloned()
        .chain(modules.iter().map(|m| format!("/pkg/{folder}/{m}")))
    {
        let url = format!("{base}{name}");
        let plain = get(&http, &url, None).await;
        assert_eq!(plain.status(), 200, "{name}");
        assert_eq!(encoding(&plain), None);
        assert_eq!(
            plain.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let plain = plain.bytes().await.unwrap().len();
        let br = get(&http, &url, Some("gzip, deflate, br")).await;
        assert_eq!(encoding(&br).as_deref(), Some("br"), "{name}");
        assert_eq!(br.headers()[header::VARY], "accept-encoding");
        let br = br.bytes().await.unwrap().len();
        let gz = get(&http, &url, Some("gzip")).await;
        assert_eq!(encoding(&gz).as_deref(), Some("gzip"), "{name}");
        let gz = gz.bytes().await.unwrap().len();
        assert!(
            br <= gz && gz < plain,
            "{name}: br {br}, gzip {gz}, plain {plain}"
        );
        sizes.push((name.clone(), plain, gz, br));
    }
    let pages = &sizes[3..];
    let largest = pages.iter().max_by_key(|s| s.3).unwrap();
    println!(
        "{} lazily loaded modules, {} bytes with brotli in all; the largest is {} at {} bytes",
        pages.len(),
        pages.iter().map(|s| s.3).sum::<usize>(),
        largest.0,
        largest.3
    );
    assert!(
        largest.3 <= PAGE_BROTLI_BUDGET,
        "{} is {} bytes with brotli, over the page budget of {PAGE_BROTLI_BUDGET}",
        largest.0,
        largest.3
    );
    let (_, wasm_plain, wasm_gz, wasm_br) = &sizes[1];
    println!("wasm: {wasm_plain} bytes, {wasm_gz} gzip, {wasm_br} brotli");
    assert!(
        *wasm_br <= WASM_BROTLI_BUDGET,
        "the wasm is {wasm_br} bytes with brotli, over its budget of {WASM_BROTLI_BUDGET}: find what grew (twiggy top) before raising it"
    );
    // The unhashed names still answer, revalidated each time.
    let alias = get(&http, &format!("{base}/pkg/flowdeck.css"), None).await;
    assert_eq!(alias.status(), 200);
    assert_eq!(alias.headers()[header::CACHE_CONTROL], "no-cache");
}

/// The `<link rel="preload">` targets of a page's head that are wasm modules.
async fn preloaded_modules(http: &Client, url: &str) -> Vec<String> {
    let res = get(http, url, None).await;
    let status = res.status();
    let html = res.text().await.unwrap();
    assert_eq!(status, 200, "{url}: {html}");
    let head = html.split("</head>").next().unwrap().to_owned();
    head.split("<link")
        .filter(|l| l.contains(r#"rel="preload""#))
        .filter_map(|l| {
            l.split(r#"href=""#)
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .filter(|h| h.ends_with(".wasm"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_preloads_its_own_modules_and_no_others() {
    let (base, http, _turn) = server().await;
    // The overview is in the main module: only that is preloaded.
    let overview = preloaded_modules(&http, &format!("{base}/")).await;
    assert_eq!(overview.len(), 1, "{overview:?}");
    assert!(overview[0].ends_with("/flowdeck.wasm"), "{overview:?}");
    // The workers page: the main module, its own and the chunks it shares, each served.
    // Leptos adds a lazy route's preloads only if the route's view resolved before it
    // writes the head; under a loaded machine it now and then resolves after (3 of 15
    // renders while the whole workspace's tests ran), and the page comes without them:
    // the browser then fetches the module when hydration asks. Up to three renders.
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers = preloaded_modules(&http, &format!("{base}/workers")).await;
        if workers.len() > 1 {
            break;
        }
    }
    assert!(
        workers
            .iter()
            .any(|m| m.contains("/split___workers_route_view")),
        "{workers:?}"
    );
    assert!(workers.iter().any(|m| m.contains("/chunk_")), "{workers:?}");
    assert!(
        !workers
            .iter()
            .any(|m| m.contains("/split___tasks_route_view")),
        "another page's module: {workers:?}"
    );
    for module in &workers {
        let res = get(&http, &format!("{base}{module}"), None).await;
        assert_eq!(res.status(), 200, "{module}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_json_and_the_stream_are_compressed() {
    let (base, http, _turn) = server().await;
    let page = get(&http, &format!("{base}/tasks"), Some("br")).await;
    assert_eq!(page.status(), 200);
    assert_eq!(encoding(&page).as_deref(), Some("br"));
    let json = get(&http, &format!("{base}/api/v1/stages"), Some("gzip")).await;
    assert_eq!(encoding(&json).as_deref(), Some("gzip"));
    let plain = get(&http, &format!("{base}/api/v1/stages"), None).await;
    assert_eq!(encoding(&plain), None);
    for (accept, coding) in [
        (Some("gzip, deflate, br"), Some("gzip")),
        (Some("br"), Some("br")),
        (Some("br;q=0, identity"), None),
        (None, None),
    ] {
        let stream = get(&http, &format!("{base}/api/events"), accept).await;
        assert_eq!(stream.status(), 200);
        assert_eq!(encoding(&stream).as_deref(), coding, "{accept:?}");
        assert_eq!(stream.headers()[header::VARY], "accept-encoding");
    }
}
