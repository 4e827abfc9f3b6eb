#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang in build-fuzz/ and runs
# each one (a harness that does not build fails alone), one after another on one core: first its saved crash inputs
# (tests/fuzz/regressions/<harness>/, each replayed once), then fuzzing for SECONDS seconds
# from the seed corpus (tests/fuzz/corpus/<harness>/; new inputs go to
# build-fuzz/corpus/<harness>/, never into the committed seeds).
#
#   bash tests/fuzz/run.sh [seconds-per-harness] [harness ...]    (default 10 s, all harnesses)
#
# Any crash, sanitizer report (ASan, UBSan, LeakSanitizer), timeout (> 10 s on one input) or
# out-of-memory (> 2 GB) fails the harness; the input is saved in build-fuzz/artifacts/<harness>/.
# Prints "PASS/FAIL <harness> (N executions)" per harness and a closing line
# "fuzz: N passed, N failed" (one test per harness). Logs: test-output/fuzz/.
set -u
cd "$(dirname "$0")/../.."
secs=${1:-10}
[ $# -gt 0 ] && shift
build=build-fuzz
logs=test-output/fuzz
mkdir -p "$logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if ! cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DGPT2_FUZZ=ON -DGPT2_WERROR="${GPT2_WERROR:-OFF}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
       >"$logs/configure.log" 2>&1; then
  echo "fuzz: configure failed (is clang installed?):"; tail -n 30 "$logs/configure.log"
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi

if [ $# -gt 0 ]; then
  harnesses=("$@")
else
  harnesses=()
  for src in tests/fuzz/fuzz_*.c; do n=$(basename "$src" .c); harnesses+=("${n#fuzz_}"); done
fi

passed=0
failed=0
for name in "${harnesses[@]}"; do
  bin=$build/tests/fuzz/fuzz_$name
  case $name in encode|utf8) dict=tests/fuzz/dict/text.dict ;; *) dict=tests/fuzz/dict/json.dict ;; esac
  mkdir -p "$build/corpus/$name" "$build/artifacts/$name"
  log=$logs/$name.log
  ok=1
  : >"$log"
  if ! cmake --build "$build" --target "fuzz_$name" -j 1 >"$logs/build-$name.log" 2>&1; then
    echo "FAIL $name (build failed: $logs/build-$name.log)"
    grep -E 'error' "$logs/build-$name.log" | head -n 10
    failed=$((failed + 1))
    continue
  fi
  # 1. the saved crash inputs, each run once
  regressions=()
  if [ -d "tests/fuzz/regressions/$name" ]; then
    while IFS= read -r f; do regressions+=("$f"); done < <(find "tests/fuzz/regressions/$name" -type f | sort)
  fi
  if [ "${#regressions[@]}" -gt 0 ] &&
     ! "$bin" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=64 "${regressions[@]}" >>"$log" 2>&1; then
    ok=0
  fi
  # 2. fuzzing for a bounded time
  if [ "$ok" -eq 1 ] &&
     ! timeout $((secs + 120)) "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=64 \
         -dict="$dict" -print_final_stats=1 -artifact_prefix="$build/artifacts/$name/" \
         "$build/corpus/$name" "tests/fuzz/corpus/$name" >>"$log" 2>&1; then
    ok=0
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$')
  if [ "$ok" -eq 1 ]; then
    echo "PASS $name (${runs:-0} executions in ${secs} s, ${#regressions[@]} regression inputs)"
    passed=$((passed + 1))
  else
    echo "FAIL $name (log: $log; crash inputs: $build/artifacts/$name/)"
    grep -E 'ERROR|FUZZ_CHECK|runtime error|SUMMARY|Test unit written' "$log" | head -n 20
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
