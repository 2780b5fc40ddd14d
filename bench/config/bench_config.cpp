// Loading a large flow file: `edgeflow validate` on a 10 MiB flow (a map step whose lookup table
// holds 175,000 entries, the largest thing a real flow file carries), against the peer every YAML
// loader is measured by here: yaml-cpp's own LoadFile of the same file, which edgeflow builds on
// (bench_config_yaml_cpp: no guard, no checks, no JSON). Also a small flow, for the fixed cost.
// Wall time, CPU and peak RSS from wait4 rusage; three runs each, alternating, the median shown.
//
// The goal (issue 16): a 10 MiB valid flow validates in under 2 s, in bounded memory.
#include "bench.hpp"

#include <algorithm>

namespace {

using namespace bench;

std::string big_flow(size_t entries) {
  std::string s =
      "flow: big\n"
      "description: a 10 MiB flow file, to measure loading\n"
      "source: { type: generate, count: 1 }\n"
      "steps:\n"
      "  - type: map\n"
      "    set:\n"
      "      country: lookup('countries', id)\n"
      "    lookups:\n"
      "      countries:\n";
  for (size_t i = 0; i < entries; ++i)
    s += "        c" + std::to_string(i) + ": \"Country number " + std::to_string(i) + " of the lookup table\"\n";
  s += "sinks:\n  out: { type: drop }\n";
  return s;
}

Result median(std::vector<Result> rs) {
  std::sort(rs.begin(), rs.end(), [](auto& a, auto& b) { return a.wall < b.wall; });
  return rs[rs.size() / 2];
}

void print(const char* name, const Result& r, const Result* base) {
  std::printf("%-34s %8.3f %8.3f %10ld", name, r.wall, r.cpu, r.max_rss_kib);
  if (base) std::printf("   %5.2fx", r.wall / base->wall);
  std::printf("\n");
}

}  // namespace

int main() {
  std::string dir = temp_dir();
  std::string big = dir + "/big.yaml", small = dir + "/small.yaml";
  std::string text = big_flow(175000);
  std::ofstream(big) << text;
  std::ofstream(small) << big_flow(10);
  std::string peer = (std::filesystem::path(program_invocation_name).parent_path() / "bench_config_yaml_cpp").string();
  std::printf("flow file of %.1f MiB (175,000 lookup entries); median of 3 runs\n", double(text.size()) / 1048576);
  std::printf("%-34s %8s %8s %10s %8s\n", "", "wall s", "cpu s", "RSS KiB", "of peer");
  std::vector<Result> ef_big, peer_big, ef_small;
  for (int i = 0; i < 3; ++i) {
    peer_big.push_back(run({peer, big}, "", dir + "/peer.out", dir + "/peer.err"));
    ef_big.push_back(run({EDGEFLOW_BIN, "validate", big}, "", dir + "/ef.out", dir + "/ef.err"));
    ef_small.push_back(run({EDGEFLOW_BIN, "validate", small}, "", dir + "/ef.out", dir + "/ef.err"));
  }
  if (slurp(dir + "/ef.out").find("ok: 1 flow(s) valid") == std::string::npos) die("validate did not pass:\n" + slurp(dir + "/ef.err"));
  Result p = median(peer_big), e = median(ef_big);
  print("yaml-cpp LoadFile (peer)", p, nullptr);
  print("edgeflow validate, 10 MiB", e, &p);
  print("edgeflow validate, small flow", median(ef_small), nullptr);
  std::printf("goal: under 2 s for 10 MiB: %s (%.2f s)\n", e.wall < 2 ? "met" : "MISSED", e.wall);
  std::filesystem::remove_all(dir);
  return 0;
}
