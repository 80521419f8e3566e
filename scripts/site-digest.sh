#!/usr/bin/env bash
# Prints the digest of everything the browser site is built from: the app, the frontend
# and protocol crates, the styles and public files, the locked versions of the crates the
# frontend depends on (not the whole lock file: a server-only dependency does not change
# the site), the wasm build profile, the cargo config and the build script. server/site/SOURCES records the digest the
# committed site was built from; scripts/check-site.sh compares the two.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
{
  find app frontend protocol style public -type f | LC_ALL=C sort | xargs sha256sum
  sha256sum .cargo/config.toml scripts/build-site.sh scripts/merge-data-segments.py
  # The frontend's dependency closure in Cargo.lock, with versions and checksums.
  python3 - <<'PY' | sha256sum | sed 's/-$/frontend closure of Cargo.lock/'
import tomllib
lock = tomllib.load(open("Cargo.lock", "rb"))["package"]
by_name = {}
for p in lock:
    by_name.setdefault(p["name"], []).append(p)
def find(dep):
    name, *version = dep.split(" ")
    found = by_name[name]
    return found[0] if len(found) == 1 else next(p for p in found if p["version"] == version[0])
seen, todo = {}, [find("flowdeck-frontend")]
while todo:
    p = todo.pop()
    key = (p["name"], p["version"])
    if key not in seen:
        seen[key] = p.get("checksum", "")
        todo += [find(d) for d in p.get("dependencies", [])]
for (name, version), checksum in sorted(seen.items()):
    print(name, version, checksum)
PY
  # Only the wasm profile of the workspace manifest: adding a crate or a server
  # dependency does not change the site.
  sed -n '/^\[profile.wasm-release\]/,/^\[/p' Cargo.toml | sha256sum | sed 's/-$/[profile.wasm-release]/'
} | sha256sum | cut -d' ' -f1
