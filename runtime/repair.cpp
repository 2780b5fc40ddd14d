#include "repair.hpp"

#include "log.hpp"

#include <edgeflow/host/config.hpp>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <condition_variable>
#include <map>
#include <mutex>

namespace edgeflow {

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool time_param(const std::string& name, const std::string& v, int64_t& ms, std::string& error) {
  int64_t ago = 0;
  if (dlq::parse_time(v, ms)) return true;
  if (host::parse_duration(v, ago) && ago > 0) {
    ms = now_ms() - ago;
    return true;
  }
  error = name + ": a time like 2026-12-07T10:00:00Z or a duration back from now like 1h, not '" + v + "'";
  return false;
}

bool id_param(std::string_view v, std::vector<int64_t>& ids) {
  while (!v.empty()) {
    size_t comma = v.find(',');
    std::string_view one = v.substr(0, comma);
    int64_t id = 0;
    auto r = std::from_chars(one.data(), one.data() + one.size(), id);
    if (r.ec != std::errc() || r.ptr != one.data() + one.size() || id <= 0) return false;
    ids.push_back(id);
    v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
  }
  return true;
}

// Where a letter goes back in: the step or sink that rejected it, if its flow still has it.
void entry(const Flow& f, const dlq::Letter& l, bool from_source, Injection& in) {
  in.first_step = 0;
  in.sink = -1;
  if (from_source) return;
  const auto& spec = f.spec();
  for (size_t i = 0; i < spec.steps.size(); ++i)
    if (spec.steps[i].key == l.stage) in.first_step = i;
  if (l.stage.rfind("sinks.", 0) == 0) in.sink = f.sink_index(l.stage.substr(6));
}

}  // namespace

bool filter_from_params(const Params& params, dlq::Filter& f, std::string& error) {
  for (auto& [k, v] : params) {
    if (k == "flow") f.flow = v;
    else if (k == "stage") f.stage = v;
    else if (k == "reason") f.reason = v;
    else if (k == "since") {
      if (!time_param("since", v, f.since_ms, error)) return false;
    } else if (k == "until") {
      if (!time_param("until", v, f.until_ms, error)) return false;
    } else if (k == "state") {
      if (v != "new" && v != "replayed") return (error = "state: new or replayed, not '" + v + "'", false);
      f.state = v;
    } else if (k == "id") {
      if (!id_param(v, f.ids)) return (error = "id: letter ids like 17 or 17,18, not '" + v + "'", false);
    } else if (k == "limit") {
      auto r = std::from_chars(v.data(), v.data() + v.size(), f.limit);
      if (r.ec != std::errc() || r.ptr != v.data() + v.size() || f.limit <= 0)
        return (error = "limit: a number of letters, at least 1, not '" + v + "'", false);
    } else {
      error = "unknown filter '" + k + "'; filters are flow, stage, reason, since, until, state, id and limit";
      return false;
    }
  }
  return true;
}

std::string letters_json(const std::vector<dlq::Letter>& letters) {
  std::string out = "{\"count\":" + std::to_string(letters.size()) + ",\"letters\":[";
  for (size_t i = 0; i < letters.size(); ++i) {
    if (i) out += ',';
    out += dlq::to_json(letters[i], false);
  }
  out += "]}";
  return out;
}

std::string replay_letters(Runtime& rt, dlq::LetterStore& store, dlq::Filter f, const ReplayOptions& o) {
  if (f.state.empty() && f.ids.empty()) f.state = "new";
  auto letters = store.list(f);

  struct Outcomes {
    std::mutex mutex;
    std::condition_variable cv;
    std::map<uint64_t, uint8_t> done;
  };
  auto outcomes = std::make_shared<Outcomes>();
  std::vector<std::string> skipped;
  size_t sent = 0;
  std::map<std::string, std::vector<Injection>> by_flow;
  for (auto& l : letters) {
    auto flow = rt.flow(l.flow);
    if (!flow) {
      skipped.push_back("letter " + std::to_string(l.id) + ": no flow '" + l.flow + "' in this daemon");
      continue;
    }
    Injection in;
    in.id = uint64_t(l.id);
    entry(*flow, l, o.from_source, in);
    in.payload = std::move(l.payload);
    in.key = std::move(l.key);
    in.content_type = std::move(l.content_type);
    for (auto& h : l.headers)
      if (h.first != dlq::kReplayHeader) in.headers.push_back(std::move(h));
    in.headers.emplace_back(dlq::kReplayHeader, std::to_string(l.id));
    in.meta = std::move(l.meta);
    by_flow[l.flow].push_back(std::move(in));
  }
  for (auto& [name, items] : by_flow) {
    size_t n = items.size();
    std::vector<uint64_t> ids;
    for (auto& i : items) ids.push_back(i.id);
    auto flow = rt.flow(name);  // a reload may have taken it since
    bool taken = flow && flow->inject(std::move(items), [outcomes](uint64_t id, uint8_t status) {
      {
        std::lock_guard lock(outcomes->mutex);
        outcomes->done[id] = status;
      }
      outcomes->cv.notify_all();
    });
    if (taken) {
      sent += n;
    } else {
      for (uint64_t id : ids)
        skipped.push_back("letter " + std::to_string(id) + ": flow '" + name + "' is not running (" +
                          (flow ? state_name(flow->state()) : "gone") + ")");
    }
  }
  {
    std::unique_lock lock(outcomes->mutex);
    outcomes->cv.wait_for(lock, o.timeout, [&] { return outcomes->done.size() >= sent; });
  }
  std::vector<int64_t> delivered;
  size_t rejected = 0, unfinished = 0;
  {
    std::lock_guard lock(outcomes->mutex);
    for (auto& [id, status] : outcomes->done) {
      if (status == EF_ACK_DELIVERED) delivered.push_back(int64_t(id));
      else if (status == EF_ACK_REJECTED) ++rejected;
      else ++unfinished;
    }
    unfinished += sent - outcomes->done.size();
  }
  store.mark_replayed(delivered, iso_timestamp());
  log_info("", "dlq", "replayed " + std::to_string(sent) + " letter(s): " + std::to_string(delivered.size()) +
                          " delivered, " + std::to_string(rejected) + " rejected again, " + std::to_string(unfinished) +
                          " not finished, " + std::to_string(skipped.size()) + " skipped");
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> w(out);
  w.StartObject();
  for (auto [k, v] : {std::pair{"selected", letters.size()}, {"replayed", sent}, {"delivered", delivered.size()},
                      {"rejected_again", rejected}, {"not_finished", unfinished}}) {
    w.Key(k);
    w.Uint64(v);
  }
  w.Key("skipped");
  w.StartArray();
  for (auto& why : skipped) w.String(why.data(), rapidjson::SizeType(why.size()));
  w.EndArray();
  w.EndObject();
  return std::string(out.GetString(), out.GetSize());
}

}  // namespace edgeflow
