#!/usr/bin/env bash
# Fuzzes one target, or all of them, for SECONDS each under AddressSanitizer and UBSan:
#
#   bash scripts/fuzz.sh TARGET|all SECONDS [libFuzzer options...]
#
# Targets (tests/fuzz): flow, flow_test, expr, pgoutput, mqtt, http, ... Builds build-fuzz/ with clang and
# libFuzzer (installed with apt-get when missing). The seeds in tests/fuzz/corpus/TARGET are read,
# never written; what the run adds goes to build-fuzz/corpus/TARGET, and a crashing input to
# build-fuzz/crashes/TARGET/ (add it to the seed corpus: fuzz_replay.TARGET then replays it in
# every test run). Prints executions and coverage per target; exits non-zero on any crash.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh
# shellcheck source=scripts/lib/build.sh
source scripts/lib/build.sh

all_targets=(flow flow_test expr pgoutput mqtt http http_server json_schema payload buffer_record dlq_envelope)
[[ $# -ge 2 ]] || { echo "usage: bash scripts/fuzz.sh TARGET|all SECONDS [libFuzzer options]" >&2; exit 2; }
which=$1 seconds=$2
shift 2
if [[ $which == all ]]; then targets=("${all_targets[@]}"); else targets=("$which"); fi
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "unknown target '$t'; known: ${all_targets[*]}" >&2; exit 2; }
done
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "SECONDS must be a positive number" >&2; exit 2; }

build_dir="${FUZZ_BUILD_DIR:-build-fuzz}"
edgeflow_install_deps "${EDGEFLOW_BUILD_DEPS[@]}" "${EDGEFLOW_FUZZ_DEPS[@]}"
step "configure $build_dir/ (clang, libFuzzer, ASan + UBSan)"
CC=clang CXX=clang++ edgeflow_build "$build_dir" "$(nproc)" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGEFLOW_SANITIZE=ON -DEDGEFLOW_BUILD_FUZZ=ON

export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
status=0
for t in "${targets[@]}"; do
  step "fuzz $t for ${seconds}s"
  corpus="$build_dir/corpus/$t" crashes="$build_dir/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  log="$build_dir/fuzz-$t.log"
  # -rss_limit_mb and -timeout: an input that needs more memory or time than this is a finding.
  if "$build_dir/bin/fuzz_$t" "$corpus" "tests/fuzz/corpus/$t" -max_total_time="$seconds" \
       -rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1 -artifact_prefix="$crashes/" \
       "$@" >"$log" 2>&1; then
    echo "$t: ok"
  else
    status=1
    echo "$t: FAILED (log: $log; inputs: $crashes/)"
    tail -n 60 "$log"
  fi
  # libFuzzer's last status line (cov: edges, ft: features, corp: inputs) and final counters.
  grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -n 1 || true
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" || true
done
exit "$status"
