#!/usr/bin/env bash
# Rebuilds the browser site that ships inside flowdeck-server (server/site/): the wasm
# (release profile `wasm-release`, split into a main module and lazily loaded pages by
# wasm-split-cli, each through wasm-opt -Oz), its js loaders and the stylesheet, all in
# one folder named by a hash of its content and with brotli and gzip copies; then records
# the digest of its sources in server/site/SOURCES.
# Only frontend developers need this (and its tools: the wasm32 target, the wasm-bindgen
# CLI at the lock file's version, wasm-split-cli, wasm-opt and node, which scripts/setup.sh --site
# installs); everyone else builds the server with the committed site.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --site

out=server/site
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/split" "$tmp/bound" "$tmp/build"

# --emit-relocs keeps what wasm-split-cli needs to move code and data between modules;
# --no-merge-data-segments gives it one data segment per static, so that each page's data
# can move with its code (scripts/merge-data-segments.py says why, and merges them back).
RUSTFLAGS="-Clink-args=--emit-relocs -Clink-args=--no-merge-data-segments" \
  cargo build -p flowdeck-frontend --lib --target wasm32-unknown-unknown --profile wasm-release
# Splits the wasm at the lazy routes (app/src/pages/lazy.rs): a main module, one module per
# page, chunks of code that several pages share, and __wasm_split.js, which fetches them.
wasm-split-cli target/wasm32-unknown-unknown/wasm-release/flowdeck_frontend.wasm "$tmp/split" \
  --out-name flowdeck
wasm-bindgen --target web --no-typescript --keep-lld-exports --no-demangle \
  --out-dir "$tmp/bound" --out-name flowdeck "$tmp/split/flowdeck.wasm"
mv "$tmp/bound/flowdeck_bg.wasm" "$tmp/split/flowdeck.wasm"
cp "$tmp/bound/flowdeck.js" "$tmp/build/flowdeck.js"
cp "$tmp/split/__wasm_split.js" "$tmp/build/__wasm_split.js"
cp style/main.css "$tmp/build/flowdeck.css"
# Every module through wasm-opt, two at a time (one per core here).
find "$tmp/split" -name '*.wasm' -print0 | xargs -0 -P 2 -I{} sh -c \
  'wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --strip-debug --strip-producers "$1" -o "$2/$(basename "$1")" 2>/dev/null' \
  _ {} "$tmp/build"
# The main module is what every first load waits for, and what the size budget binds
# (server/tests/site.rs): it is optimized again until nothing changes, about 20 s more for
# about 100 bytes brotli. The page modules are not worth the minutes.
wasm-opt -Oz --converge --enable-bulk-memory --enable-nontrapping-float-to-int --strip-debug \
  --strip-producers "$tmp/build/flowdeck.wasm" -o "$tmp/build/flowdeck.wasm"
# Only the main module's segments are merged: it loads first, so the zeros in its gaps are
# written before the page modules' data there. A page module's gap could hold data already
# loaded, which its zeros would overwrite.
scripts/merge-data-segments.py "$tmp/build/flowdeck.wasm"

# The modules name each other by relative paths (./flowdeck.js, ./chunk_3.wasm), so the
# build goes in one folder named by a hash of all of its files: any change gives a new
# folder, and everything in it can be cached for good.
# Which modules each page needs (its own and the shared chunks), read from the loader's
# makeLoad calls: the server names them in <link rel="preload"> on that page, so that they
# download beside the main module instead of after it.
node -e '
  const fs = require("fs");
  const js = fs.readFileSync(process.argv[1], "utf8");
  const fetched = (f) => f.match(/new URL\("\.\/([^"]+)\.wasm"/)?.[1];
  const chunks = {};
  for (const m of js.matchAll(/^const (__chunk_\d+) = makeLoad\(([\s\S]*?), \[\]\);$/gm)) chunks[m[1]] = fetched(m[2]);
  const manifest = {};
  for (const m of js.matchAll(/^export const __wasm_split_load_(\w+) = wrapAsyncCb\(makeLoad\(([\s\S]*?), \[([^\]]*)\]\)\);$/gm)) {
    const deps = m[3].split(",").map((d) => chunks[d.trim()]).filter(Boolean);
    manifest[m[1]] = [...deps, fetched(m[2])].filter(Boolean);
  }
  if (Object.keys(manifest).length === 0) throw new Error("no page modules found in " + process.argv[1]);
  fs.writeFileSync(process.argv[2], JSON.stringify(manifest));
' "$tmp/build/__wasm_split.js" "$tmp/build/__wasm_split_manifest.json"

hash=$(cd "$tmp/build" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
rm -rf "$out"
mkdir -p "$out/pkg"
cp -r public/. "$out/"
mv "$tmp/build" "$out/pkg/$hash"
find "$out/pkg/$hash" -type f -print0 | xargs -0 -P 2 -n 16 gzip -9 -n -k
node -e '
  const fs = require("fs"), path = require("path"), zlib = require("zlib");
  const dir = process.argv[1];
  for (const name of fs.readdirSync(dir).filter(n => !n.endsWith(".gz"))) {
    const src = path.join(dir, name);
    fs.writeFileSync(src + ".br", zlib.brotliCompressSync(fs.readFileSync(src), {
      params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_LGWIN]: 24 },
    }));
  }' "$out/pkg/$hash"
scripts/site-digest.sh > "$out/SOURCES"
echo "build-site: server/site/ rebuilt"
ls -l "$out/pkg/$hash"/flowdeck.*
echo "$(ls "$out/pkg/$hash"/*.wasm | wc -l) wasm modules, $(du -sh "$out/pkg/$hash" | cut -f1) with their compressed copies"
