//! Several dashboards in one process (tests do this; so may a program that serves two
//! pipelines apart): building one while another renders its pages hangs no page.
//!
//! Leptos generates an app's route list by running the app once with a process-wide flag
//! set, and a resource first polled while that flag is set stays pending for good
//! (leptos-rs/leptos#4773). A dashboard built beside a page being rendered made that page
//! wait out the server's 30 s deadline and answer 503, which failed `auth.rs` on a loaded
//! machine. The route list is now generated once per process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use common::{pipeline, serve};
use flowdeck_server::{hub::LogLimits, router, state, Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn building_a_dashboard_while_another_renders_hangs_no_page() {
    let running = pipeline(1000);
    let handle = running.handle.clone();
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    let base = serve(handle.clone(), 100, LogLimits::default()).await;
    let http = reqwest::Client::builder()
        // A page renders in milliseconds; one held back by the flag never would.
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_eq!(http.get(&base).send().await.unwrap().status(), 200);

    // Other dashboards of the same pipeline, built one after another meanwhile.
    let building = Arc::new(AtomicBool::new(true));
    let builder = {
        let (building, rt) = (building.clone(), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || {
            let _rt = rt.enter();
            for _ in 0..40 {
                drop(router(state(&Config::default(), handle.clone())));
            }
            building.store(false, Ordering::Relaxed);
        })
    };
    let mut pages = 0;
    while building.load(Ordering::Relaxed) || pages < 20 {
        let path = ["/", "/errors", "/tasks"][pages % 3];
        let res = http.get(format!("{base}{path}")).send().await;
        let status = res.map(|r| r.status().as_u16()).map_err(|e| e.to_string());
        assert_eq!(status, Ok(200), "{path}, page {pages}");
        pages += 1;
    }
    builder.await.unwrap();
}
