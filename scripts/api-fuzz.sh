#!/usr/bin/env bash
# Runs schemathesis (scripts/setup.sh --test installs it) against the release binary: it
# reads the OpenAPI document the binary serves and sends requests generated from it, valid
# and invalid, checking every answer: no 5xx, each status and body as documented, every
# schema-valid request accepted and every schema-violating one refused. Endpoints that end
# the demo (drain, stop) and the endless log stream are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
st=target/tools/schemathesis/bin/st
bin=${FLOWDECK_BIN:-target/release/flowdeck}
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
db=$(mktemp -d)
"$bin" --port "$port" --demo-rate 50 --db "$db/flowdeck.db" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$db"' EXIT
url="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
# scripts/schemathesis.toml says which operations differ in a check, and why.
"$st" --config-file scripts/schemathesis.toml run "$url/api/v1/openapi.json" --url "$url" \
  --exclude-path-regex '/pipeline/(drain|stop)$|/logs/stream$' \
  --phases examples,coverage,fuzzing \
  --max-examples "${FUZZ_EXAMPLES:-25}" \
  --request-timeout 10 \
  --seed 1 \
  --no-color
