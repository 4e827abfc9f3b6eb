#!/usr/bin/env bash
# Runs every test (this is what `npm test` and CI run):
#   0. scripts/setup.sh test: installs missing system packages (as root) or says which, and npm ci
#   1. native Release build + the C unit tests (ctest)
#   1b. the same C tests for other targets: gcc -march=x86-64-v2 and x86-64-v4 (run where this
#      CPU can), clang; every C build here has warnings as errors (GPT2_WERROR=ON)
#   2. the same C tests built with AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer)
#   2b. the libFuzzer harnesses (tests/fuzz/run.sh, clang), about 10 s each
#   3. the WebAssembly build (npm run build) and the same C tests compiled to WASM, under Node
#   4. the Node tests (node --test tests/**/*.test.mjs): CLIs, the JS API, the types
# Prints one closing line "tests: N passed, N failed" (test executables / node tests).
set -u
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
log_dir=test-output
mkdir -p "$log_dir"
if ! bash scripts/setup.sh test; then
  echo "tests: 0 passed, 1 failed"
  exit 1
fi
# Warnings are errors in every build this script makes (CMake option GPT2_WERROR; also read by
# scripts/build-wasm.sh and tests/fuzz/run.sh), never in a user's build.
export GPT2_WERROR=ON

# Adds ctest's counts ("N tests failed out of M") to the totals.
count_ctest() {
  local line total bad
  line=$(grep -E 'tests? failed out of [0-9]+' "$1" | tail -n 1)
  if [ -z "$line" ]; then failed=$((failed + 1)); return; fi
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
  bad=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
  passed=$((passed + total - bad))
  failed=$((failed + bad))
}

run_c_suite() { # name, build dir, extra cmake args... (RUN=0: build only)
  local name=$1 dir=$2
  shift 2
  echo "== $name"
  if ! { cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DGPT2_WERROR=ON "$@" >"$log_dir/$name-configure.log" 2>&1 &&
         cmake --build "$dir" -j "$jobs" >"$log_dir/$name-build.log" 2>&1; }; then
    echo "$name: build failed:"; tail -n 30 "$log_dir/$name-configure.log" "$log_dir/$name-build.log"
    failed=$((failed + 1))
    return
  fi
  if [ "${RUN:-1}" = 0 ]; then
    echo "$name: built with warnings as errors (not run: this CPU cannot execute it)"
    passed=$((passed + 1))
    return
  fi
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" 2>&1 | tee "$log_dir/$name-ctest.log" | grep -vE '^\s*(Start|Test project)' 
  count_ctest "$log_dir/$name-ctest.log"
}

run_c_suite native build
# Which warnings gcc raises depends on -march (it changes inlining), so the C code is built for
# more targets than this CPU's, and with clang: a warning another machine's native build would
# raise fails here too. x86-64-v4 (AVX-512) runs only where the CPU has it.
cpu_has() { local f; for f in "$@"; do grep -qw "$f" /proc/cpuinfo 2>/dev/null || return 1; done; }
run_c_suite x86-64-v2 build-x86-64-v2 -DGPT2_NATIVE_ARCH=OFF -DCMAKE_C_FLAGS=-march=x86-64-v2
v4_run=0; cpu_has avx512f avx512bw avx512cd avx512dq avx512vl && v4_run=1
RUN=$v4_run run_c_suite x86-64-v4 build-x86-64-v4 -DGPT2_NATIVE_ARCH=OFF -DCMAKE_C_FLAGS=-march=x86-64-v4
run_c_suite clang build-clang -DCMAKE_C_COMPILER=clang
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_c_suite sanitize build-sanitize -DGPT2_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug

# libFuzzer harnesses (clang): saved crash inputs, then each harness for FUZZ_SECONDS (default
# 10); one test per harness ("fuzz: N passed, N failed")
echo "== fuzz"
bash tests/fuzz/run.sh "${FUZZ_SECONDS:-10}" 2>&1 | tee "$log_dir/fuzz.log"
fuzz_line=$(grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed' "$log_dir/fuzz.log" | tail -n 1)
if [ -z "$fuzz_line" ]; then failed=$((failed + 1)); else
  passed=$((passed + $(awk '{print $2}' <<<"$fuzz_line"))); failed=$((failed + $(awk '{print $4}' <<<"$fuzz_line")))
fi

echo "== wasm"
if bash scripts/build-wasm.sh >"$log_dir/wasm-build.log" 2>&1; then
  ctest --test-dir build-wasm --output-on-failure -j "$jobs" 2>&1 | tee "$log_dir/wasm-ctest.log" | grep -vE '^\s*(Start|Test project)'
  count_ctest "$log_dir/wasm-ctest.log"
  # the threaded build's own tests (pthreads in WASM under Node)
  ctest --test-dir build-wasm-mt --output-on-failure -R 'test_(pool|kernels)' 2>&1 | tee "$log_dir/wasm-mt-ctest.log" | grep -vE '^\s*(Start|Test project)'
  count_ctest "$log_dir/wasm-mt-ctest.log"
else
  echo "wasm: build failed:"; tail -n 30 "$log_dir/wasm-build.log"
  failed=$((failed + 1))
fi

echo "== node tests"
node_files=$(find tests -name '*.test.mjs' | sort)
if [ -n "$node_files" ]; then
  node --test --test-reporter=spec $node_files 2>&1 | tee "$log_dir/node.log"
  p=$(grep -E '^ℹ pass [0-9]+' "$log_dir/node.log" | tail -n 1 | grep -oE '[0-9]+')
  f=$(grep -E '^ℹ fail [0-9]+' "$log_dir/node.log" | tail -n 1 | grep -oE '[0-9]+')
  if [ -z "$p" ]; then failed=$((failed + 1)); else passed=$((passed + p)); failed=$((failed + ${f:-0})); fi
fi

echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
