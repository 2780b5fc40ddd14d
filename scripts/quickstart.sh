#!/usr/bin/env bash
# The README's first command: from a fresh Debian 12 machine to a running flow.
#
#   bash scripts/quickstart.sh
#
# Installs the build dependencies (apt-get, only when something is missing: run as root or with
# sudo the first time), builds a Release edgeflow in build/ (Ninja; ccache when installed), then
# runs examples/quickstart.yaml: 50 generated events mapped to a canonical shape, the large ones
# printed here, all of them appended to edgeflow-state/quickstart-out.jsonl. Then the Kafka part:
# starts the development broker (`edgeflow dev kafka`, in memory), runs
# examples/quickstart-kafka.yaml (generate → map → route → kafka) and shows what it produced by
# reading the topic back with examples/quickstart-kafka-read.yaml. BUILD_DIR=... builds somewhere else.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh
# shellcheck source=scripts/lib/build.sh
source scripts/lib/build.sh

build_dir="${BUILD_DIR:-build}"
flow=examples/quickstart.yaml
out=edgeflow-state/quickstart-out.jsonl   # the file sink's path in $flow, relative to here

step "dependencies"
edgeflow_install_deps "${EDGEFLOW_BUILD_DEPS[@]}"

step "configure $build_dir/ (Release, no tests, no benchmarks)"
edgeflow_build "$build_dir" "$(nproc)" \
  -DCMAKE_BUILD_TYPE=Release \
  -DEDGEFLOW_BUILD_TESTS=OFF \
  -DEDGEFLOW_BUILD_BENCH=OFF \
  -DEDGEFLOW_SANITIZE=OFF
echo "$build_dir/bin/edgeflow and $(find "$build_dir/lib/edgeflow/plugins" -name "*.so" 2>/dev/null | wc -l) plugins"

step "run $flow (events on stdout, logs on stderr)"
rm -f "$out"   # so the summary counts this run only (the file sink appends)
started=$SECONDS
status=0
"$build_dir/bin/edgeflow" run "$flow" || status=$?
took=$((SECONDS - started))

lines=0
[[ -f "$out" ]] && lines=$(wc -l <"$out")
echo
echo "output file: $root/$out"
echo "dead letters: $build_dir/bin/edgeflow dlq list --state-dir $root/edgeflow-state (none unless a message was rejected)"
if ((status != 0)); then
  echo "quickstart: edgeflow exited with status $status after ${took}s; $lines event(s) written" >&2
  exit "$status"
fi
echo "quickstart: ok — $lines events generated, mapped, routed (large ones to stdout) and written to $out in ${took}s"

step "start the development Kafka broker (edgeflow dev kafka: in memory, for development only)"
# Its stdout is ours to read: the banner, then bootstrap.servers=HOST:PORT once it listens.
exec {broker_out}< <(exec "$build_dir/bin/edgeflow" dev kafka --partitions 3 --topic quickstart.events --topic quickstart.large)
broker_pid=$!
trap 'kill "$broker_pid" 2>/dev/null || true' EXIT
EDGEFLOW_KAFKA=""
while IFS= read -r line <&"$broker_out"; do
  echo "  $line"
  if [[ $line == bootstrap.servers=* ]]; then
    EDGEFLOW_KAFKA=${line#bootstrap.servers=}
    break
  fi
done
[[ -n $EDGEFLOW_KAFKA ]] || { echo "quickstart: the development broker did not start" >&2; exit 1; }
export EDGEFLOW_KAFKA

step "run examples/quickstart-kafka.yaml (generate → map → route → kafka at $EDGEFLOW_KAFKA)"
"$build_dir/bin/edgeflow" run examples/quickstart-kafka.yaml

step "read quickstart.events back (examples/quickstart-kafka-read.yaml): key<TAB>event"
consumed=$("$build_dir/bin/edgeflow" run examples/quickstart-kafka-read.yaml)
echo "$consumed"
count=$(grep -c . <<<"$consumed" || true)
kill "$broker_pid" 2>/dev/null || true
if ((count != 20)); then
  echo "quickstart: expected the 20 produced events back from Kafka, read $count" >&2
  exit 1
fi
echo "quickstart: ok — 20 events produced to Kafka (idempotent, acknowledged by the broker) and read back"
echo "next: $build_dir/bin/edgeflow validate --print $flow; $build_dir/bin/edgeflow plugins list; README.md"
