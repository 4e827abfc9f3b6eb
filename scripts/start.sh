#!/usr/bin/env bash
# npm start: builds the WebAssembly module when needed and serves the demo page on
# http://127.0.0.1:8080/ (the embedded model loads by itself; type a prompt, press Generate).
# Extra arguments go to the server, e.g. npm start -- --port 9000
set -eu
cd "$(dirname "$0")/.."
bash scripts/build-wasm.sh --target gpt2_wasm >/dev/null
exec node scripts/serve.mjs "$@"
