#!/usr/bin/env bash
# Proves the installed SDK is enough to write a plugin: installs the `sdk` component of a
# build, builds sdk/examples against that prefix alone, and runs the example in the daemon.
#
#   build_and_run.sh CMAKE EDGEFLOW_BIN SOURCE_DIR BINARY_DIR [-- EXAMPLE_CONFIGURE_ARGS...]
set -euo pipefail

if (($# < 4)); then
  echo "usage: $0 CMAKE EDGEFLOW_BIN SOURCE_DIR BINARY_DIR [-- CMAKE_ARGS...]" >&2
  exit 2
fi
cmake=$1 edgeflow=$2 src=$3 bin=$4
shift 4
[[ ${1:-} == -- ]] && shift

tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgeflow-sdk-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

step() { printf '\n==> %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

step "install the sdk component of $bin"
"$cmake" --install "$bin" --prefix "$tmp/prefix" --component sdk

step "build sdk/examples against $tmp/prefix"
"$cmake" -S "$src/sdk/examples" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" "$@"
# An SDK installed elsewhere on the machine must not stand in for the one under test.
grep -qx "EdgeflowSDK_DIR:PATH=$tmp/prefix/.*" "$tmp/build/CMakeCache.txt" ||
  fail "EdgeflowSDK was not found in $tmp/prefix: $(grep '^EdgeflowSDK_DIR' "$tmp/build/CMakeCache.txt")"
"$cmake" --build "$tmp/build"
plugin=$tmp/build/edgeflow-uppercase_field.so
[[ -f $plugin ]] || fail "$plugin was not built"

step "the example's unit tests (SDK test harness from the installed prefix)"
[[ -x $tmp/build/uppercase_field_tests ]] || fail "the example's tests were not built (GoogleTest or EdgeflowSDK::host missing?)"
(cd "$tmp/build" && ctest --output-on-failure) || fail "the example's unit tests failed"

step "install the example plugin"
"$cmake" --install "$tmp/build" --prefix "$tmp/plugin-prefix"
installed=$tmp/plugin-prefix/lib/edgeflow/plugins/edgeflow-uppercase_field.so
[[ -f $installed ]] || fail "the plugin was not installed under <prefix>/lib/edgeflow/plugins"

mkdir "$tmp/run"
cd "$tmp/run"

step "edgeflow plugins inspect uppercase_field"
"$edgeflow" plugins inspect uppercase_field --plugin-dir "$tmp/build" >inspect.txt
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
if "$edgeflow" validate --plugin-dir "$tmp/build" bad.yaml 2>validate.txt; then
  fail "validate accepted bad.yaml"
fi
cat validate.txt
grep -qF "bad.yaml:6:17: steps[0].on_missing: 'sometimes' is not one of: keep, drop, reject" validate.txt ||
  fail "validate did not report the bad on_missing value"
sed -i '/on_missing/d' bad.yaml
if "$edgeflow" validate --plugin-dir "$tmp/build" bad.yaml 2>validate.txt; then
  fail "validate accepted the path customer..name"
fi
cat validate.txt
grep -qF "bad.yaml:5:12: field: 'customer..name' is not a document path" validate.txt ||
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
"$edgeflow" run --admin off --plugin-dir "$tmp/build" --state-dir "$tmp/state" flow.yaml ||
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
echo "ok: the installed SDK builds a plugin the daemon loads and runs"
