#!/usr/bin/env bash
# A live PostgreSQL → PostgreSQL mirror to watch: starts two private PostgreSQL servers (as the
# postgres user, on free loopback ports, in a temporary directory), runs
# examples/cdc-to-postgres.yaml between them, changes the source and shows both tables after
# each round. Installs postgresql with apt-get when missing and builds edgeflow in build/ (as
# scripts/quickstart.sh does). Everything is removed at the end.
#
#   bash scripts/pg-mirror-demo.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh
# shellcheck source=scripts/lib/build.sh
source scripts/lib/build.sh
build_dir="${BUILD_DIR:-build}"

step "dependencies"
edgeflow_install_deps "${EDGEFLOW_BUILD_DEPS[@]}" postgresql
edgeflow_build "$build_dir" "$(nproc)" -DCMAKE_BUILD_TYPE=Release -DEDGEFLOW_BUILD_TESTS=OFF -DEDGEFLOW_BUILD_BENCH=OFF \
  -DEDGEFLOW_SANITIZE=OFF

bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
run_as_postgres() { if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi; }
# A port nothing answers on (the server's start fails loudly if another takes it meanwhile).
free_port() {
  local p
  for p in $(shuf -i 20000-60000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "no free port found" >&2
  return 1
}

tmp=$(mktemp -d /tmp/edgeflow-pg-mirror.XXXXXX)
((EUID == 0)) && chown postgres "$tmp"
daemon=
cleanup() {
  [[ -n $daemon ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  for s in source target; do
    [[ -d $tmp/$s ]] && run_as_postgres "$bindir/pg_ctl" -D "$tmp/$s" -m fast -w stop >/dev/null 2>&1
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

declare -A port
for s in source target; do
  step "start the $s server"
  port[$s]=$(free_port)
  run_as_postgres "$bindir/initdb" -D "$tmp/$s" -A trust -U postgres -E UTF8 >/dev/null
  run_as_postgres "$bindir/pg_ctl" -D "$tmp/$s" -l "$tmp/$s.log" -w start \
    -o "-p ${port[$s]} -k $tmp -c listen_addresses=127.0.0.1 -c wal_level=logical -c fsync=off" >/dev/null
  echo "$s: 127.0.0.1:${port[$s]}"
done
sql() { "$bindir/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${port[$1]}" -U postgres -c "$2"; }
table="CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric(10,2), status text, updated timestamptz)"
sql source "$table; INSERT INTO orders SELECT g, 'customer ' || g, g * 10.5, 'new', now() FROM generate_series(1, 5) g"
sql target "$table"

export SOURCE_DSN="host=127.0.0.1 port=${port[source]} user=postgres dbname=postgres"
export TARGET_DSN="host=127.0.0.1 port=${port[target]} user=postgres dbname=postgres"
step "run examples/cdc-to-postgres.yaml (logs: $tmp/edgeflow.log)"
"$build_dir/bin/edgeflow" run --admin off --state-dir "$tmp/state" examples/cdc-to-postgres.yaml 2>"$tmp/edgeflow.log" &
daemon=$!

show() {
  local want got deadline=$((SECONDS + 30))
  want=$(sql source "SELECT id, customer, total, status FROM orders ORDER BY id")
  until got=$(sql target "SELECT id, customer, total, status FROM orders ORDER BY id") && [[ $got == "$want" ]]; do
    if ((SECONDS > deadline)); then
      echo "the target did not catch up within 30 s; source:" >&2
      echo "$want" >&2
      echo "target:" >&2
      echo "$got" >&2
      cat "$tmp/edgeflow.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "target (equal to the source):"
  sed 's/^/  /' <<<"$got"
}

step "the snapshot: the 5 rows the source had"
show
step "round 1: two orders paid, one new"
sql source "UPDATE orders SET status = 'paid', updated = now() WHERE id IN (2, 4); INSERT INTO orders VALUES (6, 'customer 6', 99.90, 'new', now())"
show
step "round 2: order 3 deleted, order 5 gets the key 50"
sql source "DELETE FROM orders WHERE id = 3; UPDATE orders SET id = 50 WHERE id = 5"
show
step "round 3: a thousand orders in one transaction"
sql source "INSERT INTO orders SELECT g, 'bulk ' || g, g, 'new', now() FROM generate_series(1000, 1999) g"
echo "  target rows: $(sql target "SELECT count(*) FROM orders") → waiting for $(sql source "SELECT count(*) FROM orders")"
show >/dev/null
echo "  target rows: $(sql target "SELECT count(*) FROM orders"), equal to the source"
echo
echo "pg-mirror-demo: ok — a live mirror, snapshot then stream, inserts, updates, a key change and deletes"
