#include "dlq_cli.hpp"

#include "admin_client.hpp"

#include <Poco/URI.h>

#include <cstdio>
#include <filesystem>
#include <iterator>

namespace edgeflow {

namespace {

int fail(const std::string& what, int code = 2) {
  std::fprintf(stderr, "edgeflow dlq: %s\n", what.c_str());
  return code;
}

std::string one_line(std::string s, size_t max) {
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return s.size() > max ? s.substr(0, max - 3) + "..." : s;
}

std::string pairs_text(const dlq::Pairs& pairs) {
  std::string out;
  for (auto& [k, v] : pairs) out += (out.empty() ? "" : ", ") + k + "=" + v;
  return out.empty() ? "(none)" : out;
}

void print_letter(const dlq::Letter& l) {
  std::printf("letter %lld: %s, replayed %lld time(s)%s\n", (long long)l.id, l.state.c_str(), (long long)l.replays,
              l.replayed_at.empty() ? "" : (", last at " + l.replayed_at).c_str());
  std::printf("  flow:      %s\n  stage:     %s\n  failed at: %s\n  attempts:  %lld\n  reason:    %s\n", l.flow.c_str(),
              l.stage.c_str(), l.failed_at.c_str(), (long long)l.attempts, l.reason.c_str());
  std::printf("  key:       %s\n  type:      %s\n  headers:   %s\n  meta:      %s\n", l.key.c_str(),
              l.content_type.empty() ? "(none)" : l.content_type.c_str(), pairs_text(l.headers).c_str(),
              pairs_text(l.meta).c_str());
  if (l.history != "[]") std::printf("  history:   %s\n", l.history.c_str());
  std::printf("  payload (%zu bytes):\n%s\n", l.payload.size(), l.payload.c_str());
}

int replay(const DlqArgs& a) {
  std::string query = "from=" + a.from + "&timeout=" + a.timeout;
  for (auto& [k, v] : a.filters) {
    std::string ev;
    Poco::URI::encode(v, "&=+?#[]%", ev);
    query += "&" + k + "=" + ev;
  }
  // The daemon answers when the replay is through.
  AdminReply r = admin_request(a.admin, a.admin_token, "POST", "/dlq/replay?" + query, 15 * 60);
  if (r.status == 0) return fail(r.error, 1);
  if (r.status != 200) return fail(std::to_string(r.status) + ": " + r.body, 1);
  std::printf("%s\n", r.body.c_str());
  // Every selected letter delivered: 0; any rejected again, unfinished or skipped: 1.
  bool clean = r.body.find("\"rejected_again\":0,") != std::string::npos &&
               r.body.find("\"not_finished\":0,") != std::string::npos && r.body.find("\"skipped\":[]") != std::string::npos;
  return clean ? 0 : 1;
}

}  // namespace

int cmd_dlq(const DlqArgs& a) {
  const std::string what = a.positional.empty() ? "" : a.positional[0];
  if (what != "list" && what != "show" && what != "replay" && what != "purge")
    return fail("dlq needs list, show ID, replay or purge");
  dlq::Filter f;
  std::string error;
  if (!filter_from_params(a.filters, f, error)) return fail(error);
  if (what == "replay") return replay(a);
  const std::string path = dead_letter_store_path(a.state_dir);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    // Not created here: a mistyped --state-dir would leave an empty store behind.
    std::fprintf(stderr, "edgeflow dlq: no dead letters: %s does not exist (is --state-dir the daemon's?)\n", path.c_str());
    return what == "list" ? 0 : 1;
  }
  try {
    dlq::LetterStore store(path);
    if (what == "show") {
      int64_t id = 0;
      if (a.positional.size() != 2 || (id = std::atoll(a.positional[1].c_str())) <= 0)
        return fail("show needs a letter id (from `edgeflow dlq list`)");
      auto l = store.get(id);
      if (!l) return fail("no letter " + std::to_string(id) + " in " + store.path(), 1);
      if (a.json) std::printf("%s\n", dlq::to_json(*l).c_str());
      else print_letter(*l);
      return 0;
    }
    if (what == "purge") {
      if (f.empty() && !a.all) return fail("purge needs a filter (--flow, --stage, --reason, --since, --until, --state, --id), or --all");
      std::printf("purged %zu letter(s)\n", store.purge(f));
      return 0;
    }
    auto letters = store.list(f);
    if (a.json) {
      std::printf("%s\n", letters_json(letters).c_str());
      return 0;
    }
    std::printf("%-6s %-16s %-14s %-24s %-8s %-7s %s\n", "ID", "FLOW", "STAGE", "FAILED AT", "STATE", "REPLAYS", "REASON");
    for (auto& l : letters)
      std::printf("%-6lld %-16s %-14s %-24s %-8s %-7lld %s\n", (long long)l.id, l.flow.c_str(), l.stage.c_str(),
                  l.failed_at.c_str(), l.state.c_str(), (long long)l.replays, one_line(l.reason, 100).c_str());
    return 0;
  } catch (const dlq::StoreError& e) {
    return fail(e.what(), 1);
  }
}

}  // namespace edgeflow
