#!/usr/bin/env bash
# Builds the release binary target/release/flowdeck with the whole site (wasm, js, css,
# public/) embedded in it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo leptos build --release
# cargo-leptos builds the server alongside the wasm; build it once more now that the site
# is final, so the embedded copy is this build's (a no-op when it already is).
LEPTOS_OUTPUT_NAME=flowdeck cargo build --release -p flowdeck --bin flowdeck --no-default-features --features ssr
test -x target/release/flowdeck
