#!/usr/bin/env bash
# Sets up and runs every check: formatting, clippy on both feature sets with warnings
# denied, the cargo tests, then the browser tests against the release binary (which also
# prove the binary runs alone from an empty directory).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "format"
cargo fmt --all --check

step "clippy (server side: ssr)"
cargo clippy --workspace --exclude flowdeck-frontend --all-targets -- -D warnings
step "clippy (browser side: hydrate, wasm32)"
cargo clippy -p flowdeck-frontend -p flowdeck-app --features flowdeck-app/hydrate --target wasm32-unknown-unknown -- -D warnings

step "cargo tests"
cargo test --workspace --exclude flowdeck-frontend

step "release build"
scripts/build.sh

step "browser tests"
(cd end2end && FLOWDECK_BIN="$PWD/../target/release/flowdeck" node --test tests/)
