#!/usr/bin/env bash
# scripts/setup.sh start|native|test - installs what `npm start`/`npm run build` (start),
# `npm run generate` (native) or `npm test` (test) needs and this machine lacks, so that each
# works as the first command after `git clone && npm ci`.
#
#   start:  Emscripten (emcc, emcmake), cmake, make               - the WebAssembly build
#   native: cmake, make, gcc                                      - the native CLI
#   test:   all of these, plus gcc's sanitizer runtimes, clang with libFuzzer and Chromium
#          (the C suites, the fuzzers, the browser tests), and the npm devDependencies
#
# As root on a machine with apt-get (Debian 12, the project's reference) the missing packages
# are installed (`apt-get update`, then `apt-get install -y ...`). Anyone else, or root with
# GPT2_NO_INSTALL=1, gets the one command to run and exit status 1; nothing is installed.
# Prints nothing when everything is there.
set -u
cd "$(dirname "$0")/.."
what=${1:-test}
case "$what" in start | native | test) ;; *) echo "usage: scripts/setup.sh start|native|test" >&2; exit 2 ;; esac

declare -A label=([start]="the WebAssembly build (npm start, npm run build)" [native]="the native build (npm run generate)" [test]="npm test")
have() { command -v "$1" >/dev/null 2>&1; }
some() { compgen -G "$1" >/dev/null; }

# Sets $packages: the Debian packages that `npm $what` needs and this machine lacks, each once.
find_missing() {
  local missing=() major
  need() { "${@:2}" || missing+=("$1"); } # need PACKAGE CHECK...: missing unless CHECK succeeds
  if [ "$what" != native ]; then
    need emscripten have emcmake
    need emscripten have emcc
  fi
  need cmake have cmake
  need make have make
  [ "$what" = start ] || need gcc have gcc
  if [ "$what" = test ]; then
    # gcc's AddressSanitizer/UBSan runtimes (tests/run.sh's sanitizer suite)
    need libasan8 some '/usr/lib/gcc/x86_64-linux-gnu/*/libasan.so'
    need libubsan1 some '/usr/lib/gcc/x86_64-linux-gnu/*/libubsan.so'
    need clang have clang
    # libFuzzer: clang only recommends its runtimes (Debian 12: clang 14, libclang-rt-14-dev)
    major=$(clang --version 2>/dev/null | sed -nE 's/.*clang version ([0-9]+).*/\1/p' | head -n 1)
    need "libclang-rt-${major:-14}-dev" some '/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a'
    need chromium test -x /usr/bin/chromium # the browser tests (npm's playwright-core drives it)
  fi
  packages=$(printf '%s\n' "${missing[@]+"${missing[@]}"}" | awk 'NF && !seen[$0]++' | tr '\n' ' ')
  packages=${packages% }
}

find_missing
if [ -n "$packages" ]; then
  if ! have apt-get; then
    echo "${label[$what]} needs: $packages (Debian package names; install them with your system's package manager)" >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ] || [ -n "${GPT2_NO_INSTALL:-}" ]; then
    echo "${label[$what]} needs system packages this machine lacks; install them with:" >&2
    echo "  sudo apt-get install -y $packages" >&2
    exit 1
  fi
  echo "setup: installing $packages (apt-get)" >&2
  # shellcheck disable=SC2086 # one word per package
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q $packages; } >&2; then
    echo "setup: apt-get install -y $packages failed (see above)" >&2
    exit 1
  fi
  hash -r
  wanted=$packages
  find_missing
  if [ -n "$packages" ]; then
    echo "setup: apt-get installed $wanted, but these are still missing: $packages (PATH=$PATH)" >&2
    exit 1
  fi
fi

# npm devDependencies (playwright-core, tiktoken, typescript, bundlers) for the tests:
# `npm ci` when node_modules is missing or older than the lock file.
if [ "$what" = test ] && { [ ! -f node_modules/.package-lock.json ] ||
                           [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  echo "setup: npm ci (the tests' npm devDependencies)" >&2
  npm ci --no-audit --no-fund >&2 || { echo "setup: npm ci failed" >&2; exit 1; }
fi
exit 0
