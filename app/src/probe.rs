//! How far behind the runtime the page is: for every item a frame changes, the time from
//! the runtime event to the browser painting the frame, in a millisecond histogram.
//!
//! Always on (it costs one pass over the frame's items) and read from outside through
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

/// Records the lag of each change in a frame once the browser paints it.
pub(crate) fn record(started_unix_ms: u64, updated_us: Vec<u64>) {
    if started_unix_ms == 0 || updated_us.is_empty() {
        return;
    }
    request_animation_frame(move || {
        let now = js_sys::Date::now() as u64;
        HISTOGRAM.with(|h| {
            let mut h = h.borrow_mut();
            for us in updated_us {
                let lag = now.saturating_sub(started_unix_ms + us / 1000) as usize;
                h[lag.min(MAX_MS)] += 1;
            }
        });
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
