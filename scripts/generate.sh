#!/usr/bin/env bash
# npm run generate: builds the native CLI when needed and generates text from the embedded
# model. Extra arguments go to `gpt2 generate`, e.g. npm run generate -- --prompt "Hello"
set -eu
cd "$(dirname "$0")/.."
bash scripts/setup.sh native
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j 2 --target gpt2 >/dev/null
if [ "$#" -eq 0 ]; then
  set -- --prompt "It was a fine morning, and" --max-tokens 60 --temperature 0.8 --top-k 40 --seed 1 --stats
fi
exec build/gpt2 generate "$@"
