#!/usr/bin/env bash
# Builds the release binary target/release/flowdeck with the whole site (wasm, js, css,
# public/) embedded in it.
set -euo pipefail
cd "$(dirname "$0")/.."
# The site first (wasm, js, css, public/), then the server, which embeds it: cargo-leptos
# would build both at once, and a server compiled before the site is final embeds a stale
# copy.
cargo leptos build --release --frontend-only
LEPTOS_OUTPUT_NAME=flowdeck cargo build --release -p flowdeck --bin flowdeck --no-default-features --features ssr
test -x target/release/flowdeck
