#!/usr/bin/env bash
# Installs what flowdeck needs to build and test, skipping whatever is already there:
# the wasm32 target, cargo-leptos 0.3.10, the wasm-bindgen CLI at the exact version in
# Cargo.lock, wasm-opt (binaryen from npm), Debian's Chromium, and the browser-test npm
# packages. Safe to run again: on a ready machine it takes a few seconds.
# Why these versions and sources: ../shared/TOOLCHAIN.md (downloads of prebuilt tools fail
# here, so nothing may be left for cargo-leptos or Playwright to download).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32 target"
  rustup target add wasm32-unknown-unknown
fi

if ! cargo leptos --version 2>/dev/null | grep -q '0.3.10'; then
  say "installing cargo-leptos 0.3.10 (about 20 minutes, once per machine)"
  cargo install cargo-leptos --locked --version 0.3.10
fi

wbg=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if [ -z "$wbg" ]; then
  say "Cargo.lock names no wasm-bindgen version"; exit 1
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wbg\$"; then
  say "installing wasm-bindgen-cli $wbg (about 5 minutes, once per version)"
  # No --locked: a locked dependency of the CLI is missing from the registry.
  cargo install wasm-bindgen-cli --version "$wbg"
fi

if ! wasm-opt --version 2>/dev/null | grep -q 'version 1[2-9][0-9]'; then
  say "installing wasm-opt from npm (Debian's is too old: the page would not hydrate)"
  npm install -g binaryen@132 >/dev/null
fi

if ! command -v chromium >/dev/null; then
  say "installing Chromium from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

if [ ! -d end2end/node_modules/playwright-core ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  say "installing the browser-test packages"
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
fi

say "ready"
