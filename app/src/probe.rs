//! How far behind the runtime the page is: for every frame, the time from the oldest
//! runtime event it carries to the browser painting it (the frame's worst case: sampling
//! the newest change of each item instead would read low), in a millisecond histogram.
//!
//! Always on (one number a frame) and read from outside through
//! `window.__flowdeckLag()`, which returns `{count, p50, p95, p99, max}` in milliseconds as
//! JSON; `window.__flowdeckLagReset()` starts over. The live benchmark reads it.

use std::cell::RefCell;

use leptos::prelude::request_animation_frame;
use wasm_bindgen::{closure::Closure, JsValue};

/// Lags beyond this many milliseconds are counted in the last bucket.
const MAX_MS: usize = 10_000;

thread_local! {
    static HISTOGRAM: RefCell<Vec<u32>> = RefCell::new(vec![0; MAX_MS + 1]);
}

/// Records the lag of a frame's oldest change once the browser paints the frame.
pub(crate) fn record(started_unix_ms: u64, oldest_change_us: Option<u64>) {
    let Some(us) = oldest_change_us.filter(|_| started_unix_ms > 0) else {
        return;
    };
    request_animation_frame(move || {
        let now = js_sys::Date::now() as u64;
        let lag = now.saturating_sub(started_unix_ms + us / 1000) as usize;
        HISTOGRAM.with(|h| h.borrow_mut()[lag.min(MAX_MS)] += 1);
    });
}

fn summary() -> String {
    HISTOGRAM.with(|h| {
        let h = h.borrow();
        let count: u64 = h.iter().map(|&n| u64::from(n)).sum();
        let at = |q: f64| {
            let want = (count as f64 * q).ceil() as u64;
            let mut seen = 0;
            h.iter()
                .position(|&n| {
                    seen += u64::from(n);
                    seen >= want.max(1)
                })
                .unwrap_or(0)
        };
        let max = h.iter().rposition(|&n| n > 0).unwrap_or(0);
        format!(
            r#"{{"count":{count},"p50":{},"p95":{},"p99":{},"max":{max}}}"#,
            at(0.50),
            at(0.95),
            at(0.99)
        )
    })
}

/// Puts `__flowdeckLag` and `__flowdeckLagReset` on `window`.
pub(crate) fn install() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let read = Closure::<dyn Fn() -> String>::new(summary);
    let reset = Closure::<dyn Fn()>::new(|| HISTOGRAM.with(|h| h.borrow_mut().fill(0)));
    let _ = js_sys::Reflect::set(&window, &JsValue::from_str("__flowdeckLag"), read.as_ref());
    let _ = js_sys::Reflect::set(
        &window,
        &JsValue::from_str("__flowdeckLagReset"),
        reset.as_ref(),
    );
    // They live as long as the page.
    read.forget();
    reset.forget();
}
