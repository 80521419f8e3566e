#!/usr/bin/env bash
# Sets up and runs every check: the committed site against its sources, formatting, clippy
# on both feature sets with warnings denied, the cargo tests, the release build, a crate
# outside the workspace that depends on flowdeck, and the browser tests against both
# binaries (which also prove each runs alone from an empty directory).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "the committed site matches its sources"
scripts/check-site.sh
scripts/check-site.sh --self-test

step "format"
cargo fmt --all --check

step "no module imports back up (server, app, protocol)"
python3 scripts/check-cycles.py server/src app/src protocol/src

step "clippy (server side: ssr)"
cargo clippy --workspace --exclude flowdeck-frontend --all-targets -- -D warnings
step "clippy (the facade's cluster feature and its example)"
cargo clippy -p flowdeck --features cluster --all-targets -- -D warnings
step "clippy (browser side: hydrate, wasm32)"
cargo clippy -p flowdeck-frontend -p flowdeck-app --features flowdeck-app/hydrate --target wasm32-unknown-unknown -- -D warnings

step "cargo tests"
cargo test --workspace --exclude flowdeck-frontend

step "release build"
scripts/build.sh
step "the cluster example (facade feature cluster), for the browser tests"
cargo build -p flowdeck --features cluster --example cluster

step "the API against its OpenAPI document (schemathesis)"
scripts/api-fuzz.sh

step "a crate outside the workspace that depends on flowdeck (clean target directory)"
standalone_target=$(mktemp -d)
trap 'rm -rf "$standalone_target"' EXIT
(cd examples/standalone && CARGO_TARGET_DIR="$standalone_target" cargo build)
cp "$standalone_target/debug/standalone" target/standalone

step "browser tests"
# The progress, report, joins, widgets and bulk examples were built by the cargo tests (target/debug/examples/).
(cd end2end && FLOWDECK_BIN="$PWD/../target/release/flowdeck" STANDALONE_BIN="$PWD/../target/standalone" \
  PROGRESS_BIN="$PWD/../target/debug/examples/progress" REPORT_BIN="$PWD/../target/debug/examples/report" \
  JOINS_BIN="$PWD/../target/debug/examples/joins" WIDGETS_BIN="$PWD/../target/debug/examples/widgets" \
  BULK_BIN="$PWD/../target/debug/examples/bulk" \
  CLUSTER_BIN="$PWD/../target/debug/examples/cluster" NATS_SERVER="$PWD/../target/tools/nats/bin/nats-server" \
  node --test tests/)
