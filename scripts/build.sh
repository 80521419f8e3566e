#!/usr/bin/env bash
# Builds the release binary target/release/flowdeck, with the prebuilt site of
# server/site/ compiled in: the binary runs alone from any directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p flowdeck-cli --bin flowdeck
test -x target/release/flowdeck
