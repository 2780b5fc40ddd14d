# shellcheck shell=bash disable=SC2034  # the lists are used by the scripts that source this
# The one list of Debian packages edgeflow needs, and the function that installs them.
# Sourced by scripts/quickstart.sh and scripts/test.sh (and packaging/Containerfile); add a
# package here, never in the scripts themselves.

# Everything needed to configure and build the whole tree (tests and benchmarks included).
EDGEFLOW_BUILD_DEPS=(
  cmake
  ninja-build
  g++
  ccache
  pkg-config
  libyaml-cpp-dev
  rapidjson-dev
  libpcre2-dev  # the validate step: JSON Schema patterns (ECMA-262 through PCRE2, with a match limit)
  libpq-dev     # PostgreSQL CDC: the replication connection (libpq)
  libpqxx-dev   # PostgreSQL CDC: the initial snapshot (libpqxx 6.4)
  librdkafka-dev  # Kafka source and sink, and `edgeflow dev kafka` (the mock cluster)
  libpoco-dev   # the admin API's HTTP server (runtime/admin.cpp); the HTTP connectors
  libssl-dev    # MQTT source and sink: TLS (OpenSSL) under edgeflow's own MQTT client
  libsqlite3-dev  # disk buffers (runtime/disk_buffer) and the dead-letter store (connectors/dlq_store)
  zlib1g-dev    # its records' CRC-32
  libboost-dev
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
)

# What scripts/test.sh needs on top of the build deps: servers and tools the integration tests
# start themselves (postgresql, mosquitto).
EDGEFLOW_TEST_DEPS=(
  postgresql  # server + client binaries (/usr/lib/postgresql/15/bin), for tests/integration
  # The peer bench/kafka measures edgeflow against (`kcat -C | kcat -P`; run with `--target
  # bench-kafka`). No test needs it, nor a Kafka server: the Kafka tests use librdkafka's
  # in-process mock cluster. It is here so the machine that builds the benchmarks can run them.
  kcat
  prometheus  # promtool: the admin tests check /metrics with Prometheus' own parser
  curl        # the admin and HTTP tests use it as an independent client
  json-schema-test-suite  # the official JSON Schema tests, run through the validate step
  # The MQTT integration tests start a private mosquitto and use its clients as independent peers;
  # bench/mqtt measures edgeflow against mosquitto_sub. openssl: the TLS tests make their own CA.
  mosquitto
  mosquitto-clients
  openssl
  wrk         # bench/http: the load generator (64 keep-alive connections)
  chromium    # the web console's tests drive it headless (puppeteer-core, tests/tools)
)

# What scripts/fuzz.sh needs on top of the build deps: clang with libFuzzer's runtime.
EDGEFLOW_FUZZ_DEPS=(
  clang
  libclang-rt-14-dev
)

# What a machine needs to *run* a release build (the .deb and the container declare the same).
EDGEFLOW_RUNTIME_DEPS=(
  libyaml-cpp0.7
  libpqxx-6.4   # the postgres_cdc plugin
  libpq5        # the postgres_cdc plugin
  librdkafka1   # the kafka plugin, and the daemon itself (`edgeflow dev kafka`)
  libpoconetssl80 libpococrypto80  # the http plugin (TLS; with libpoconet80 and libpocofoundation80)
  libpoconet80 libpocofoundation80  # the daemon's admin API
  libssl3       # the mqtt plugin (TLS)
  libsqlite3-0 zlib1g  # disk buffers and the dead-letter store
)

# edgeflow_install_deps PACKAGE...
# Installs the packages that are missing, with apt-get; does nothing (and needs neither root nor
# the network) when every one is already installed, so re-runs are fast.
edgeflow_install_deps() {
  local missing=() p
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: no dpkg-query here (not Debian-like): install the equivalents of: $*" >&2
    echo "deps: carrying on; CMake will say what is missing" >&2
    return 0
  fi
  for p in "$@"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" != ii* ]]; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    echo "deps: all ${#} packages already installed"
    return 0
  fi
  echo "deps: missing: ${missing[*]}"
  if [[ "$(id -u)" != 0 ]]; then
    echo "deps: installing packages needs root; run this script with sudo, or first:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
}
