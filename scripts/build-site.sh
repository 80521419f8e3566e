#!/usr/bin/env bash
# Rebuilds the browser site that ships inside flowdeck-server (server/site/): the wasm
# (release profile `wasm-release`, components erased for size, wasm-opt -Oz), its js
# loader and the stylesheet, each under a name carrying a hash of its content and with
# brotli and gzip copies; then records the digest of its sources in server/site/SOURCES.
# Only frontend developers need this (and its tools: the wasm32 target, the wasm-bindgen
# CLI at the lock file's version, wasm-opt and node, which scripts/setup.sh --site
# installs); everyone else builds the server with the committed site.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --site

out=server/site
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cargo build -p flowdeck-frontend --lib --target wasm32-unknown-unknown --profile wasm-release
wasm-bindgen --target web --no-typescript --out-dir "$tmp" --out-name flowdeck \
  target/wasm32-unknown-unknown/wasm-release/flowdeck_frontend.wasm
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --strip-debug --strip-producers \
  "$tmp/flowdeck_bg.wasm" -o "$tmp/flowdeck.wasm"
cp style/main.css "$tmp/flowdeck.css"

rm -rf "$out"
mkdir -p "$out/pkg"
cp -r public/. "$out/"
for ext in js wasm css; do
  hash=$(sha256sum "$tmp/flowdeck.$ext" | cut -c1-16)
  name="$out/pkg/flowdeck.$hash.$ext"
  cp "$tmp/flowdeck.$ext" "$name"
  gzip -9 -n -c "$name" > "$name.gz"
  node -e '
    const fs = require("fs"), zlib = require("zlib");
    const [src, dst] = process.argv.slice(1);
    fs.writeFileSync(dst, zlib.brotliCompressSync(fs.readFileSync(src), {
      params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_LGWIN]: 24 },
    }));' "$name" "$name.br"
done
scripts/site-digest.sh > "$out/SOURCES"
echo "build-site: server/site/ rebuilt"
ls -l "$out/pkg"
