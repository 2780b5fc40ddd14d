#!/usr/bin/env bash
# What a newcomer does, on a clean prefix: build the SDK package (edgeflow-sdk .deb) from sdk/
# alone, extract it into an empty prefix, scaffold a source, a transformer and a sink with
# `edgeflow plugin new`, build each against that prefix alone, run their generated tests, load
# them into the daemon and run flows through them; then the same for sdk/examples. A plugin
# build may use nothing of a daemon dependency: the script checks the headers each object was
# compiled from and the libraries each binary needs.
#
#   build_and_run.sh CMAKE EDGEFLOW_BIN SOURCE_DIR [-- PLUGIN_CONFIGURE_ARGS...]
set -euo pipefail

if (($# < 3)); then
  echo "usage: $0 CMAKE EDGEFLOW_BIN SOURCE_DIR [-- CMAKE_ARGS...]" >&2
  exit 2
fi
cmake=$1 edgeflow=$2 src=$3
shift 3
[[ ${1:-} == -- ]] && shift
cpack=$(dirname "$cmake")/cpack
ctest=$(dirname "$cmake")/ctest

tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgeflow-sdk-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

step() { printf '\n==> %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}
# The daemon's own dependencies, none of which a plugin build may touch.
daemon_deps='yaml-cpp|rapidjson|Poco|pqxx|libpq|postgresql|rdkafka|openssl|boost'

# check_clean BUILD_DIR: no object there was compiled with a daemon dependency's header, and no
# binary there needs a daemon dependency's library.
check_clean() {
  local build=$1 deps f
  deps=$(cd "$build" && ninja -t deps)
  grep -q 'edgeflow/sdk/plugin.hpp' <<<"$deps" || fail "ninja recorded no header dependencies in $build"
  if grep -E "/($daemon_deps)[^/]*/" <<<"$deps" | head -5 | grep .; then
    fail "$build was compiled with headers of a daemon dependency (above)"
  fi
  for f in "$build"/*.so "$build"/*_tests; do
    [[ -f $f ]] || continue
    if readelf -d "$f" | grep NEEDED | grep -E "$daemon_deps"; then
      fail "$f needs a daemon dependency's library (above)"
    fi
  done
}

# build_plugin PROJECT [CMAKE_ARGS...]: configures, builds and tests PROJECT against the prefix.
build_plugin() {
  local project=$1 build=$1/build
  shift
  "$cmake" -S "$project" -B "$build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" "$@" >"$project.configure.log" ||
    { cat "$project.configure.log"; fail "configuring $project failed"; }
  # An SDK installed elsewhere on the machine must not stand in for the one under test.
  grep -qx "EdgeflowSDK_DIR:PATH=$prefix/.*" "$build/CMakeCache.txt" ||
    fail "EdgeflowSDK was not found in $prefix: $(grep '^EdgeflowSDK_DIR' "$build/CMakeCache.txt")"
  "$cmake" --build "$build"
  check_clean "$build"
  (cd "$build" && "$ctest" --output-on-failure --no-tests=error) || fail "the tests of $project failed"
}

started=$SECONDS
step "build the SDK package from $src/sdk alone"
sdk_args=()
for arg in "$@"; do
  [[ $arg == -DCMAKE_CXX_COMPILER=* || $arg == -DCMAKE_CXX_COMPILER_LAUNCHER=* ]] && sdk_args+=("$arg")
done
"$cmake" -S "$src/sdk" -B "$tmp/sdk-build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${sdk_args[@]}" >"$tmp/sdk.log" ||
  { cat "$tmp/sdk.log"; fail "configuring the SDK alone failed"; }
"$cmake" --build "$tmp/sdk-build"
(cd "$tmp/sdk-build" && "$cpack" -G DEB >"$tmp/cpack.log") || { cat "$tmp/cpack.log"; fail "cpack failed"; }
deb=$(ls "$tmp"/sdk-build/edgeflow-sdk_*.deb)
dpkg-deb -f "$deb" Package Version Architecture Depends Recommends
[[ $(dpkg-deb -f "$deb" Package) == edgeflow-sdk ]] || fail "$deb is not the edgeflow-sdk package"
if dpkg-deb -f "$deb" Depends | grep -E "$daemon_deps|edgeflow"; then
  fail "the SDK package depends on the daemon or its libraries"
fi
package_seconds=$((SECONDS - started))

step "extract it into an empty prefix"
dpkg -x "$deb" "$tmp/root"
prefix=$tmp/root/usr
for want in include/edgeflow/abi.h include/edgeflow/sdk/plugin.hpp include/edgeflow/testing/harness.hpp \
  lib/libedgeflow-harness.a lib/cmake/EdgeflowSDK/EdgeflowSDKConfig.cmake; do
  [[ -f $prefix/$want ]] || fail "the SDK package lacks $want"
done
[[ ! -e $prefix/include/edgeflow/host ]] || fail "the SDK package ships the host's internal headers"

cd "$tmp"
loaded_seconds=
for kind in source transformer sink; do
  step "edgeflow plugin new my_$kind --kind $kind, then build and test it"
  t0=$SECONDS
  "$edgeflow" plugin new "my_$kind" --kind "$kind" --dir "$tmp/my_$kind"
  build_plugin "$tmp/my_$kind" "$@"
  "$edgeflow" plugins inspect "my_$kind" --plugin-dir "$tmp/my_$kind/build" | tee inspect.txt
  grep -q "^$kind my_$kind" inspect.txt || fail "the daemon does not load my_$kind"
  [[ -n $loaded_seconds ]] || loaded_seconds=$((SECONDS - t0))
  (cd "$tmp/my_$kind" && "$edgeflow" validate --plugin-dir build examples/flow.yaml) ||
    fail "the example flow of my_$kind does not validate"
  (cd "$tmp/my_$kind" && "$edgeflow" run --admin off --plugin-dir build --state-dir "$tmp/state-$kind" \
    examples/flow.yaml >out.txt) || fail "the example flow of my_$kind failed"
done

"$edgeflow" plugins inspect my_source --plugin-dir my_source/build | grep -q 'count (integer) default 10 greater than 0' ||
  fail "plugins inspect does not show count's exclusive bound"

step "what the example flows did"
[[ $(wc -l <my_source/out.txt) -eq 5 ]] || fail "my_source's flow printed $(wc -l <my_source/out.txt) lines, not 5"
grep -qx '{"n":5,"text":"hello"}' my_source/out.txt || fail "my_source's last message is missing"
[[ $(grep -c '"meta":{"site":"plant-7"}' my_transformer/out.txt) -eq 5 ]] || fail "my_transformer did not tag 5 messages"
[[ $(wc -l <my_sink/out.jsonl) -eq 1000 ]] || fail "my_sink wrote $(wc -l <my_sink/out.jsonl) lines, not 1000"

step "one flow through all three: the sink acks every 50 messages, 10 may be in flight"
cat >all.yaml <<'EOF'
flow: all-three
source: { type: my_source, count: 500, text: hi }
steps:
  - { type: my_transformer, field: meta.site, value: plant-7 }
max_in_flight: 10
sinks:
  out: { type: my_sink, path: all.jsonl, sync_every: 50, flush_interval: 1h }
EOF
"$edgeflow" run --admin off --plugin-dir my_source/build --plugin-dir my_transformer/build \
  --plugin-dir my_sink/build --state-dir "$tmp/state-all" all.yaml || fail "the flow through all three failed"
[[ $(wc -l <all.jsonl) -eq 500 ]] || fail "all.jsonl has $(wc -l <all.jsonl) lines, not 500"
grep -qx '{"n":500,"text":"hi","meta":{"site":"plant-7"}}' all.jsonl || fail "all.jsonl lacks the last message"

step "sdk/examples against the same prefix"
cp -r "$src/sdk/examples" "$tmp/examples"
build_plugin "$tmp/examples" "$@"
tmp_build=$tmp/examples/build
[[ -f $tmp_build/edgeflow-uppercase_field.so ]] || fail "the example plugin was not built"
"$cmake" --install "$tmp_build" --prefix "$tmp/plugin-prefix"
installed=$tmp/plugin-prefix/lib/edgeflow/plugins/edgeflow-uppercase_field.so
[[ -f $installed ]] || fail "the plugin was not installed under <prefix>/lib/edgeflow/plugins"

mkdir "$tmp/run"
cd "$tmp/run"

step "edgeflow plugins inspect uppercase_field"
"$edgeflow" plugins inspect uppercase_field --plugin-dir "$tmp_build" >inspect.txt
cat inspect.txt
grep -q '^transformer uppercase_field' inspect.txt || fail "inspect does not show the transformer"
grep -q 'on_missing (enum: keep|drop|reject) default "keep"' inspect.txt ||
  fail "inspect does not show the on_missing option"

step "edgeflow validate refuses a bad step config, with file:line:col"
cat >bad.yaml <<'EOF'
flow: bad
source: { type: file, path: in.jsonl }
steps:
  - type: uppercase_field
    field: customer..name
    on_missing: sometimes
sinks:
  out: { type: file, path: out.jsonl }
EOF
if "$edgeflow" validate --plugin-dir "$tmp_build" bad.yaml 2>validate.txt; then
  fail "validate accepted bad.yaml"
fi
cat validate.txt
grep -qF "bad.yaml:6:17: steps[0].on_missing: 'sometimes' is not one of: keep, drop, reject" validate.txt ||
  fail "validate did not report the bad on_missing value"
sed -i '/on_missing/d' bad.yaml
if "$edgeflow" validate --plugin-dir "$tmp_build" bad.yaml 2>validate.txt; then
  fail "validate accepted the path customer..name"
fi
cat validate.txt
grep -qF "bad.yaml:5:12: steps[0].field: 'customer..name' is not a document path" validate.txt ||
  fail "validate did not report the plugin's own error at the field's location"

step "edgeflow run"
# Untouched messages keep their exact bytes (the document is not serialised again); only
# ASCII letters change; a number where the string should be goes to the dead letter.
cat >in.jsonl <<'EOF'
{"id":1,"customer":{"name":"Ada Lovelace","city":"London"}}
{"id":2, "customer": {"city": "Arlington"}}
{"id":3,"customer":{"name":42}}
{"id":4,"customer":{"name":null}}
{"id":5,"customer":{"name":"zoë"},"tags":["a","b"]}
{"id":6,"customer":{"name":"ALREADY UPPER"} }
EOF
cat >flow.yaml <<'EOF'
flow: customers
source: { type: file, path: in.jsonl }
steps:
  - { type: uppercase_field, field: customer.name }
sinks:
  out: { type: file, path: out.jsonl }
dead_letter: { type: file, path: dlq.jsonl }
EOF
"$edgeflow" run --admin off --plugin-dir "$tmp_build" --state-dir "$tmp/state" flow.yaml ||
  fail "edgeflow run exited with $?"

cat >expected.jsonl <<'EOF'
{"id":1,"customer":{"name":"ADA LOVELACE","city":"London"}}
{"id":2, "customer": {"city": "Arlington"}}
{"id":4,"customer":{"name":null}}
{"id":5,"customer":{"name":"ZOë"},"tags":["a","b"]}
{"id":6,"customer":{"name":"ALREADY UPPER"} }
EOF
diff -u expected.jsonl out.jsonl || fail "out.jsonl differs from the expected lines"

[[ -f dlq.jsonl ]] || fail "nothing reached the dead letter"
cat dlq.jsonl
[[ $(wc -l <dlq.jsonl) -eq 1 ]] || fail "expected exactly one dead-lettered message"
for want in '"flow":"customers"' '"stage":"steps[0]"' \
  '"reason":"customer.name is a number, not a string"' \
  '"payload":{"id":3,"customer":{"name":42}}'; do
  grep -qF "$want" dlq.jsonl || fail "the dead letter lacks $want"
done

echo
echo "ok: the SDK package builds plugins the daemon loads and runs"
echo "timing: the SDK package built in ${package_seconds}s; from the extracted package to a loaded" \
  "plugin (scaffold, configure, build, test, inspect) ${loaded_seconds}s; everything $((SECONDS - started))s"
