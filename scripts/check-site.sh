#!/usr/bin/env bash
# Fails, with what to do, when the browser site committed in server/site/ was built from
# other sources than the ones checked out: someone changed the frontend (app/, style/,
# protocol/, ...) without running scripts/build-site.sh.
#   scripts/check-site.sh               check this checkout
#   scripts/check-site.sh --self-test   show that the check fails on a changed source
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

check() { # check DIR: compares DIR's sources with DIR/server/site/SOURCES
  local want have
  want=$(cat "$1/server/site/SOURCES" 2>/dev/null || echo "none")
  have=$("$root/scripts/site-digest.sh" "$1")
  if [ "$want" != "$have" ]; then
    echo "check-site: the committed site (server/site/) is stale: it was built from sources" >&2
    echo "  with digest $want, but app/, frontend/, protocol/, style/, public/ or their locked" >&2
    echo "  dependencies now give $have." >&2
    echo "  Rebuild it with scripts/build-site.sh and commit server/site/." >&2
    return 1
  fi
}

if [ "${1:-}" = "--self-test" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$root" && tar cf - app frontend protocol style public Cargo.lock Cargo.toml .cargo scripts server/site/SOURCES) | (cd "$tmp" && tar xf -)
  check "$tmp" || { echo "self-test: the untouched copy should pass" >&2; exit 1; }
  echo "/* a change */" >> "$tmp/style/main.css"
  if check "$tmp" 2>/dev/null; then
    echo "self-test: a changed stylesheet was not noticed" >&2
    exit 1
  fi
  echo "check-site: self-test passed (a changed source fails the check)"
  exit 0
fi
check "$root"
echo "check-site: server/site/ matches its sources"
