#!/usr/bin/env bash
# npm run build: the WebAssembly modules (dist/gpt2.mjs + .wasm; threaded: dist/gpt2-mt.*) and the C unit
# tests compiled to WebAssembly (build-wasm/test_*.cjs), with Debian's Emscripten 3.1.6.
# Skips work that is up to date (make decides).
# Arguments go to both `cmake --build` calls instead of their default targets: `--target gpt2_wasm`
# builds only the modules in dist/ (what `npm pack` runs, as "prepack").
set -eu
cd "$(dirname "$0")/.."
# Emscripten's JS optimiser needs Debian's acorn, which a non-Debian node does not search.
export NODE_PATH="${NODE_PATH:-/usr/share/nodejs}"
bash scripts/setup.sh start # Emscripten, cmake, make: installed when missing (as root), or says how
# GPT2_WERROR=ON: warnings are errors (tests/run.sh sets it; a user's build never has it).
# GPT2_WASM_BUILD / GPT2_WASM_DIST: another build folder and output folder (defaults
# build-wasm and dist), so that several builds of work in progress do not collide;
# the JS API reads GPT2_WASM_DIST too (on Node).
build_dir="${GPT2_WASM_BUILD:-build-wasm}"
# set only when asked, so that npm start after npm test does not rebuild everything
werror=()
if [ -n "${GPT2_WERROR:-}" ]; then werror=(-DGPT2_WERROR="$GPT2_WERROR"); fi
dist_args=()
if [ -n "${GPT2_WASM_DIST:-}" ]; then dist_args=(-DGPT2_DIST_DIR="$(realpath -m "$GPT2_WASM_DIST")"); fi
# emcmake would pass node a flag Node 20 rejects; name the emulator ourselves.
emcmake cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "${werror[@]}" \
  -DCMAKE_CROSSCOMPILING_EMULATOR="$(command -v node)" "${dist_args[@]}" >/dev/null
cmake --build "$build_dir" -j "$(nproc 2>/dev/null || echo 2)" "$@"
# The threaded build (Emscripten pthreads; every object compiled with -pthread, so its own
# build folder "<build>-mt"): dist/gpt2-mt.mjs + .wasm + .worker.js, and the C tests that
# exercise threads (build-wasm-mt/test_pool.cjs, test_kernels.cjs).
emcmake cmake -S . -B "$build_dir-mt" -DCMAKE_BUILD_TYPE=Release -DGPT2_WASM_THREADS=ON "${werror[@]}" \
  -DCMAKE_CROSSCOMPILING_EMULATOR="$(command -v node)" "${dist_args[@]}" >/dev/null
if [ "$#" -eq 0 ]; then set -- --target gpt2_wasm test_pool test_kernels; fi
cmake --build "$build_dir-mt" -j "$(nproc 2>/dev/null || echo 2)" "$@"
