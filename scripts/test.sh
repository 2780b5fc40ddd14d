#!/usr/bin/env bash
# The README's second command, and what CI runs (.ci/run):
#
#   bash scripts/test.sh
#
# Installs the build and test dependencies (apt-get, only when something is missing; the npm
# test tools of tests/tools with the machine's npm), builds
# everything in build-test/ with AddressSanitizer + UndefinedBehaviorSanitizer and with the
# benchmarks (compiled, not run), runs the whole ctest suite, then every fuzz target for a short
# while (scripts/fuzz.sh, $EDGEFLOW_FUZZ_SECONDS each, default 20; 0 skips it). The exit code is
# ctest's, or the fuzzers' when ctest passed. Extra arguments go to ctest, e.g.
# `bash scripts/test.sh -R Engine`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh
# shellcheck source=scripts/lib/build.sh
source scripts/lib/build.sh

build_dir="${BUILD_DIR:-build-test}"
jobs="$(nproc)"

step "dependencies"
edgeflow_install_deps "${EDGEFLOW_BUILD_DEPS[@]}" "${EDGEFLOW_TEST_DEPS[@]}"

# Test tools from npm: the official CloudEvents SDK judges the envelope step's events.
step "test tools (npm ci in tests/tools)"
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: the envelope tests judge CloudEvents with the official SDK (npm cloudevents);" \
    "install Node.js 20 and npm, then run this again" >&2
  exit 1
fi
(cd tests/tools && npm ci --no-audit --no-fund --loglevel=error)

step "configure $build_dir/ (sanitizers, tests, benchmarks)"
edgeflow_build "$build_dir" "$jobs" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DEDGEFLOW_SANITIZE=ON \
  -DEDGEFLOW_BUILD_TESTS=ON \
  -DEDGEFLOW_BUILD_BENCH=ON

# Sanitizers: stop at the first report, with a symbolised stack; leaks are errors too.
# Caller-set options win: they come last.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# gcc 12's leak checker crashes ("Tracer caught signal 11") walking the dynamic TLS of a process
# that dlopen'ed libraries with thread-locals (libpq's Kerberos and OpenSSL, via the postgres_cdc
# plugin). Not scanning TLS as a root can only add leak reports, never hide one; the ones it adds
# (Kerberos' per-thread data) are suppressed by name in tests/lsan.supp.
export LSAN_OPTIONS="use_tls=0:suppressions=$PWD/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

step "ctest (-j$jobs)"
started=$SECONDS
status=0
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" --timeout 600 "$@" || status=$?
echo "ctest finished in $((SECONDS - started))s with status $status"

fuzz_seconds="${EDGEFLOW_FUZZ_SECONDS:-20}"
if [[ $status -eq 0 && $fuzz_seconds -gt 0 ]]; then
  step "fuzz every target for ${fuzz_seconds}s (scripts/fuzz.sh)"
  bash scripts/fuzz.sh all "$fuzz_seconds" || status=$?
fi
exit "$status"
