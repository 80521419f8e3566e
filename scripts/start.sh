#!/usr/bin/env bash
# Sets up, builds and starts flowdeck with its demo pipeline on http://127.0.0.1:3000.
# Extra arguments go to the binary (see `target/release/flowdeck --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec target/release/flowdeck "$@"
