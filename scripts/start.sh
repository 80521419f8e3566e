#!/usr/bin/env bash
# Builds and starts flowdeck with its demo pipeline on http://127.0.0.1:3000. Needs only
# Rust: the browser site is prebuilt. Extra arguments go to the binary
# (`target/release/flowdeck --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec target/release/flowdeck "$@"
