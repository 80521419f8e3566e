//! The wasm entry point: hydrates the page the server rendered. Nothing else lives here.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // A page of one of several pipelines talks to that pipeline alone.
    flowdeck_app::scope::init();
    // Hydration is asynchronous: a page other than the overview is a module of its own
    // (lazy routes), fetched before its part of the page hydrates. The live stream opens
    // once all of it has.
    wasm_bindgen_futures::spawn_local(async {
        let Some(body) = leptos::prelude::document().body() else {
            return;
        };
        leptos::mount::hydrate_from_async(body, flowdeck_app::App)
            .await
            .forget();
        flowdeck_app::live::hydrated();
    });
}
