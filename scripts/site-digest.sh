#!/usr/bin/env bash
# Prints the digest of everything the browser site is built from: the app, the frontend
# and protocol crates, the styles and public files, the lock file, the wasm build profile,
# the cargo config and the build script. server/site/SOURCES records the digest the
# committed site was built from; scripts/check-site.sh compares the two.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
{
  find app frontend protocol style public -type f | LC_ALL=C sort | xargs sha256sum
  sha256sum Cargo.lock .cargo/config.toml scripts/build-site.sh
  # Only the wasm profile of the workspace manifest: adding a crate or a server
  # dependency does not change the site.
  sed -n '/^\[profile.wasm-release\]/,/^\[/p' Cargo.toml | sha256sum | sed 's/-$/[profile.wasm-release]/'
} | sha256sum | cut -d' ' -f1
