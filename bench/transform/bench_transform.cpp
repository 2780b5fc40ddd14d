// Canonical mapping and content-based routing, measured on the real daemon: a ~400-byte
// CDC-style event mapped to 10 canonical fields (2 of them through functions), then routed
// three ways, each route written out (so every event is serialised once, as in production).
// Beside it: the same input through a passthrough step (the engine's floor for this shape),
// and jq doing the same mapping and routing decision, when installed. Then the validate step
// with a realistic schema (validate_schema.json: 30 keywords on the same events) against ajv,
// the validator of the JavaScript world, on the same events and schema (node and
// bench/transform/node_modules from `npm ci` there).
#include "bench.hpp"

#include <cstdio>
#include <fstream>
#include <string>

using namespace bench;

namespace {

const char* kMap = R"(
  - type: map
    unmapped: drop
    set:
      id: after.id
      customer: after.customer_id
      name: upper(after.customer_name)
      email: after.email
      total_cents: int(after.total * 100)
      currency: after.currency
      status: after.status
      region: after.region
      created_at: after.created_at
      op: op
  - type: route
    routes:
      - when: op == "d"
        to: [deletions]
      - when: total_cents >= 10000
        to: [large]
      - to: [orders]
)";

const char* kJq =
    "{id: .after.id, customer: .after.customer_id, name: (.after.customer_name|ascii_upcase), email: .after.email, "
    "total_cents: ((.after.total * 100)|round), currency: .after.currency, status: .after.status, region: "
    ".after.region, created_at: .after.created_at, op: .op} | .route = (if .op == \"d\" then \"deletions\" elif "
    ".total_cents >= 10000 then \"large\" else \"orders\" end)";

void write_events(const std::string& path, long n) {
  std::ofstream out(path);
  const char* ops[] = {"c", "u", "u", "d"};
  char line[1024];
  for (long i = 0; i < n; ++i) {
    std::snprintf(line, sizeof line,
                  R"({"op":"%s","ts_ms":%ld,"source":{"db":"shop","schema":"public","table":"orders","lsn":"0/%lX",)"
                  R"("txid":%ld,"commit_ts":"2026-11-24T12:00:00.123Z"},"before":null,"after":{"id":%ld,)"
                  R"("customer_id":"c-%05ld","customer_name":"customer number %ld","email":"c%ld@example.org",)"
                  R"("total":%ld.%02ld,"currency":"eur","status":"paid","region":"eu-west","created_at":)"
                  R"("2026-11-24T11:59:58.000Z","items":%ld}})",
                  ops[i % 4], 1732440000000 + i, 0x16B3748 + i * 64, 900000 + i / 10, i, i % 50000, i % 997, i % 50000,
                  (i * 7919) % 300, i % 100, 1 + i % 9);
    out << line << '\n';
  }
}

}  // namespace

int main(int argc, char** argv) {
  long n = 1000000 * (argc > 1 ? std::atol(argv[1]) : 1);
  std::string dir = temp_dir(), in = dir + "/cdc.jsonl";
  write_events(in, n);
  double avg = double(std::filesystem::file_size(in)) / double(n);
  std::printf("edgeflow transform benchmark (%s): %ld CDC-style events of %.0f bytes on average\n\n", EDGEFLOW_BIN, n, avg);
  header();

  std::string sinks = "sinks:\n  orders: { type: file, path: /dev/null, fsync: false }\n"
                      "  large: { type: file, path: /dev/null, fsync: false }\n"
                      "  deletions: { type: file, path: /dev/null, fsync: false }\n";
  std::string source = "source: { type: file, path: " + in + ", batch_size: 1024 }\n";
  Result base = run_flow(dir, "flow: base\n" + source + "steps: [ { type: passthrough } ]\nsinks: { out: { type: file, path: /dev/null, fsync: false } }\nmax_in_flight: 100000\n", n);
  row("edgeflow passthrough (baseline)", n, base, std::nullopt);
  Result parsed = run_flow(dir, "flow: parse\n" + source + "steps: [ { type: passthrough, parse: true } ]\nsinks: { out: { type: file, path: /dev/null, fsync: false } }\nmax_in_flight: 100000\n", n);
  row("edgeflow parse only", n, parsed, std::nullopt);
  Result mapped = run_flow(dir, "flow: canonical\n" + source + "steps:" + kMap + sinks + "max_in_flight: 100000\n", n);
  row("edgeflow map (10 fields) + route (3)", n, mapped, std::nullopt);
  std::printf("  map + route: %.0f msg/s per core (goal >= 500000); %.3f CPU s per million over the baseline\n",
              double(n) / mapped.cpu, (mapped.cpu - base.cpu) / double(n) * 1e6);
  if (installed("jq")) row("jq, same mapping and route decision", n, run({"jq", "-c", kJq}, in, "/dev/null", ""), mapped);
  else std::printf("jq: not installed (apt-get install jq), skipped\n");
  std::printf("ratio > 1: the peer spent that many times edgeflow's CPU for map + route\n\n");

  header();
  std::string schema = std::string(BENCH_DIR) + "/validate_schema.json";
  Result checked = run_flow(dir, "flow: validate\n" + source + "steps: [ { type: validate, schema_file: " + schema +
                                     " } ]\nsinks: { out: { type: file, path: /dev/null, fsync: false } }\nmax_in_flight: 100000\n",
                            n);
  row("edgeflow validate (30 keywords)", n, checked, std::nullopt);
  std::printf("  validate: %.3f CPU s per million over the baseline\n", (checked.cpu - base.cpu) / double(n) * 1e6);
  std::string ajv = std::string(BENCH_DIR) + "/node_modules/ajv";
  if (installed("node") && std::filesystem::exists(ajv)) {
    Result peer = run({"node", std::string(BENCH_DIR) + "/ajv_validate.js", schema, in}, "", dir + "/ajv.out", "");
    if (slurp(dir + "/ajv.out").find("valid=" + std::to_string(n) + " invalid=0") == std::string::npos)
      die("ajv did not find all events valid: " + slurp(dir + "/ajv.out"));
    row("ajv 8 (node), JSON.parse + validate", n, peer, checked);
  } else {
    std::printf("ajv: not installed (cd bench/transform && npm ci), skipped\n");
  }
  std::printf("ratio > 1: the peer spent that many times edgeflow's CPU for validate (edgeflow's includes reading "
              "and writing the file)\n");
  std::filesystem::remove_all(dir);
}
