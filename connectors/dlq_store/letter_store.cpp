#include "letter_store.hpp"

#include <edgeflow/sdk/expr/builtins.hpp>
#include <edgeflow/sdk/expr/value.hpp>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sqlite3.h>

#include <ctime>
#include <filesystem>

namespace edgeflow::dlq {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void put(Writer& w, std::string_view s) {
  // Text that is not UTF-8 (a key, a header) is shown with U+FFFD: the JSON stays valid.
  std::string valid = sdk::expr::is_utf8(s) ? std::string(s) : sdk::expr::valid_utf8(s);
  w.String(valid.data(), rapidjson::SizeType(valid.size()));
}

std::string pairs_json(const Pairs& pairs) {
  rapidjson::StringBuffer out;
  Writer w(out);
  w.StartObject();
  for (auto& [k, v] : pairs) {
    put(w, k);
    put(w, v);
  }
  w.EndObject();
  return std::string(out.GetString(), out.GetSize());
}

bool pairs_from(const rapidjson::Value& v, Pairs& out) {
  if (!v.IsObject()) return false;
  for (auto& m : v.GetObject()) {
    if (!m.value.IsString()) return false;
    out.emplace_back(std::string(m.name.GetString(), m.name.GetStringLength()),
                     std::string(m.value.GetString(), m.value.GetStringLength()));
  }
  return true;
}

std::string text_of(const rapidjson::Value& v) { return std::string(v.GetString(), v.GetStringLength()); }

// Statements are finalized whatever happens after they were prepared.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

}  // namespace

bool parse_time(std::string_view t, int64_t& ms) {
  try {
    ms = sdk::expr::builtin::parse_iso8601(t);
    return true;
  } catch (const sdk::expr::EvalError&) {
    return false;
  }
}

bool from_envelope(std::string_view json, Letter& out, std::string& error) {
  rapidjson::Document d;
  d.Parse(json.data(), json.size());
  if (d.HasParseError() || !d.IsObject()) {
    error = "not a dead-letter record (a JSON object with flow, stage, reason and payload)";
    return false;
  }
  auto str = [&](const char* k, std::string& to, bool required) {
    auto it = d.FindMember(k);
    if (it == d.MemberEnd()) return !required || (error = std::string("no '") + k + "' in the record", false);
    if (!it->value.IsString()) return (error = std::string("'") + k + "' is not a string", false);
    to = text_of(it->value);
    return true;
  };
  Letter l;
  if (!str("flow", l.flow, true) || !str("stage", l.stage, true) || !str("reason", l.reason, true) ||
      !str("failed_at", l.failed_at, true) || !str("key", l.key, false) || !str("content_type", l.content_type, false))
    return false;
  if (!parse_time(l.failed_at, l.failed_ms)) {
    error = "'failed_at' is not an ISO 8601 time: " + l.failed_at;
    return false;
  }
  if (auto it = d.FindMember("attempts"); it != d.MemberEnd()) {
    if (!it->value.IsInt64() || it->value.GetInt64() < 0) {
      error = "'attempts' is not a count";
      return false;
    }
    l.attempts = it->value.GetInt64();
  }
  for (auto [k, to] : {std::pair{"headers", &l.headers}, {"meta", &l.meta}}) {
    auto it = d.FindMember(k);
    if (it != d.MemberEnd() && !pairs_from(it->value, *to)) {
      error = std::string("'") + k + "' is not an object of strings";
      return false;
    }
  }
  auto p = d.FindMember("payload");
  auto b = d.FindMember("payload_base64");
  if (p != d.MemberEnd()) {
    if (p->value.IsString()) {
      l.payload = text_of(p->value);
    } else {
      rapidjson::StringBuffer buf;
      Writer w(buf);
      p->value.Accept(w);
      l.payload.assign(buf.GetString(), buf.GetSize());
      if (l.content_type.empty()) l.content_type = "application/json";
    }
  } else if (b != d.MemberEnd()) {
    if (!b->value.IsString() || !sdk::expr::decode_base64(text_of(b->value), l.payload)) {
      error = "'payload_base64' is not base64";
      return false;
    }
  } else {
    error = "no 'payload' or 'payload_base64' in the record";
    return false;
  }
  out = std::move(l);
  return true;
}

std::string to_json(const Letter& l, bool with_payload) {
  rapidjson::StringBuffer out;
  Writer w(out);
  w.StartObject();
  w.Key("id");
  w.Int64(l.id);
  for (auto [k, v] : {std::pair{"flow", &l.flow}, {"stage", &l.stage}, {"reason", &l.reason},
                      {"failed_at", &l.failed_at}, {"key", &l.key}, {"content_type", &l.content_type},
                      {"state", &l.state}}) {
    w.Key(k);
    put(w, *v);
  }
  w.Key("attempts");
  w.Int64(l.attempts);
  w.Key("replays");
  w.Int64(l.replays);
  if (!l.replayed_at.empty()) {
    w.Key("replayed_at");
    put(w, l.replayed_at);
  }
  for (auto [k, v] : {std::pair{"headers", &l.headers}, {"meta", &l.meta}}) {
    w.Key(k);
    w.StartObject();
    for (auto& [name, value] : *v) {
      put(w, name);
      put(w, value);
    }
    w.EndObject();
  }
  w.Key("history");
  rapidjson::Document h;
  h.Parse(l.history.c_str());
  if (h.HasParseError()) {
    w.StartArray();
    w.EndArray();
  } else {
    h.Accept(w);
  }
  w.Key("payload_bytes");
  w.Uint64(l.payload.size());
  if (with_payload) {
    if (sdk::expr::is_utf8(l.payload)) {
      w.Key("payload");
      put(w, l.payload);
    } else {
      std::string b64;
      sdk::expr::append_base64(b64, l.payload);
      w.Key("payload_base64");
      put(w, b64);
    }
  }
  w.EndObject();
  return std::string(out.GetString(), out.GetSize());
}

LetterStore::LetterStore(std::string path) : path_(std::move(path)) {
  std::error_code ec;
  auto parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) throw StoreError("dead-letter store " + path_ + ": cannot create its directory: " + ec.message());
  if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StoreError("dead-letter store " + path_ + ": cannot open: " + why);
  }
  try {
    // Several writers (each flow's dead letter, the CLI, the admin API) share the file.
    exec("PRAGMA busy_timeout = 10000");
    exec("PRAGMA journal_mode = WAL");
    exec("PRAGMA synchronous = FULL");
    exec("CREATE TABLE IF NOT EXISTS letter (id INTEGER PRIMARY KEY AUTOINCREMENT, flow TEXT NOT NULL, "
         "stage TEXT NOT NULL, reason TEXT NOT NULL, failed_at TEXT NOT NULL, failed_ms INTEGER NOT NULL, "
         "attempts INTEGER NOT NULL, key BLOB NOT NULL, content_type TEXT NOT NULL, headers TEXT NOT NULL, "
         "meta TEXT NOT NULL, payload BLOB NOT NULL, state TEXT NOT NULL DEFAULT 'new', "
         "replays INTEGER NOT NULL DEFAULT 0, replayed_at TEXT, history TEXT NOT NULL DEFAULT '[]')");
    exec("CREATE INDEX IF NOT EXISTS letter_by_flow ON letter (flow, failed_ms)");
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

LetterStore::~LetterStore() { sqlite3_close(db_); }

void LetterStore::fail(const std::string& what) const {
  throw StoreError("dead-letter store " + path_ + ": " + what + ": " + sqlite3_errmsg(db_));
}

void LetterStore::exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw StoreError("dead-letter store " + path_ + ": " + why);
  }
}

namespace {

void bind_text(sqlite3_stmt* s, int i, std::string_view v) { sqlite3_bind_text64(s, i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8); }
void bind_blob(sqlite3_stmt* s, int i, std::string_view v) { sqlite3_bind_blob64(s, i, v.data(), v.size(), SQLITE_STATIC); }

std::string column(sqlite3_stmt* s, int i) {
  auto p = static_cast<const char*>(sqlite3_column_blob(s, i));
  return p ? std::string(p, size_t(sqlite3_column_bytes(s, i))) : std::string();
}

int64_t replay_of(const Letter& l) {
  for (auto& [k, v] : l.headers) {
    if (k != kReplayHeader) continue;
    try {
      size_t used = 0;
      long long id = std::stoll(v, &used);
      return used == v.size() && id > 0 ? id : 0;
    } catch (const std::exception&) {
      return 0;
    }
  }
  return 0;
}

// The WHERE clause of a filter and its bindings, in order.
struct Where {
  std::string sql;
  std::vector<std::string> texts;
  std::vector<int64_t> ints;
  std::vector<bool> is_text;
};

Where where(const Filter& f) {
  Where w;
  auto add = [&](const std::string& cond) { w.sql += (w.sql.empty() ? " WHERE " : " AND ") + cond; };
  auto text = [&](const std::string& cond, const std::string& v) {
    add(cond);
    w.texts.push_back(v);
    w.is_text.push_back(true);
    w.ints.push_back(0);
  };
  auto num = [&](const std::string& cond, int64_t v) {
    add(cond);
    w.texts.emplace_back();
    w.is_text.push_back(false);
    w.ints.push_back(v);
  };
  if (!f.flow.empty()) text("flow = ?", f.flow);
  if (!f.stage.empty()) text("stage = ?", f.stage);
  if (!f.reason.empty()) {
    if (f.reason.find_first_of("*?") != std::string::npos) text("reason GLOB ?", f.reason);
    else text("instr(reason, ?) > 0", f.reason);
  }
  if (f.since_ms) num("failed_ms >= ?", f.since_ms);
  if (f.until_ms) num("failed_ms < ?", f.until_ms);
  if (!f.state.empty()) text("state = ?", f.state);
  if (!f.ids.empty()) {
    std::string in = "id IN (";
    for (size_t i = 0; i < f.ids.size(); ++i) in += i ? ",?" : "?";
    add(in + ")");
    for (int64_t id : f.ids) {
      w.texts.emplace_back();
      w.is_text.push_back(false);
      w.ints.push_back(id);
    }
  }
  return w;
}

void bind(sqlite3_stmt* s, const Where& w) {
  for (size_t i = 0; i < w.is_text.size(); ++i) {
    if (w.is_text[i]) bind_text(s, int(i + 1), w.texts[i]);
    else sqlite3_bind_int64(s, int(i + 1), w.ints[i]);
  }
}

constexpr const char* kColumns =
    "id, flow, stage, reason, failed_at, failed_ms, attempts, key, content_type, headers, meta, payload, state, "
    "replays, coalesce(replayed_at, ''), history";

Letter read_row(sqlite3_stmt* s) {
  Letter l;
  l.id = sqlite3_column_int64(s, 0);
  l.flow = column(s, 1);
  l.stage = column(s, 2);
  l.reason = column(s, 3);
  l.failed_at = column(s, 4);
  l.failed_ms = sqlite3_column_int64(s, 5);
  l.attempts = sqlite3_column_int64(s, 6);
  l.key = column(s, 7);
  l.content_type = column(s, 8);
  rapidjson::Document d;
  for (auto [i, to] : {std::pair{9, &l.headers}, {10, &l.meta}}) {
    std::string text = column(s, i);
    d.Parse(text.c_str());
    if (!d.HasParseError()) pairs_from(d, *to);
  }
  l.payload = column(s, 11);
  l.state = column(s, 12);
  l.replays = sqlite3_column_int64(s, 13);
  l.replayed_at = column(s, 14);
  l.history = column(s, 15);
  return l;
}

}  // namespace

void LetterStore::add(const std::vector<Letter>& letters) {
  if (letters.empty()) return;
  Stmt ins, get_old, upd;
  auto prep = [&](Stmt& st, const char* sql) {
    if (sqlite3_prepare_v2(db_, sql, -1, &st.s, nullptr) != SQLITE_OK) fail("cannot prepare");
  };
  prep(ins, "INSERT INTO letter (flow, stage, reason, failed_at, failed_ms, attempts, key, content_type, headers, "
            "meta, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
  prep(get_old, "SELECT stage, reason, failed_at, attempts, history FROM letter WHERE id = ?");
  prep(upd, "UPDATE letter SET stage = ?, reason = ?, failed_at = ?, failed_ms = ?, attempts = ?, history = ?, "
            "state = 'new', replays = replays + 1 WHERE id = ?");
  exec("BEGIN IMMEDIATE");
  try {
    for (const Letter& l : letters) {
      if (int64_t id = replay_of(l)) {
        sqlite3_bind_int64(get_old.s, 1, id);
        int rc = sqlite3_step(get_old.s);
        if (rc == SQLITE_ROW) {
          // Failed again: the failure before this one joins the letter's history.
          std::string history = column(get_old.s, 4);
          rapidjson::Document h;
          h.Parse(history.c_str());
          if (h.HasParseError() || !h.IsArray()) h.SetArray();
          auto& a = h.GetAllocator();
          rapidjson::Value before(rapidjson::kObjectType);
          for (auto [k, i] : {std::pair{"stage", 0}, {"reason", 1}, {"failed_at", 2}}) {
            std::string v = column(get_old.s, i);
            before.AddMember(rapidjson::StringRef(k), rapidjson::Value(v.c_str(), rapidjson::SizeType(v.size()), a), a);
          }
          before.AddMember("attempts", int64_t(sqlite3_column_int64(get_old.s, 3)), a);
          h.PushBack(before, a);
          rapidjson::StringBuffer buf;
          Writer w(buf);
          h.Accept(w);
          sqlite3_reset(get_old.s);
          std::string updated(buf.GetString(), buf.GetSize());
          bind_text(upd.s, 1, l.stage);
          bind_text(upd.s, 2, l.reason);
          bind_text(upd.s, 3, l.failed_at);
          sqlite3_bind_int64(upd.s, 4, l.failed_ms);
          sqlite3_bind_int64(upd.s, 5, l.attempts);
          bind_text(upd.s, 6, updated);
          sqlite3_bind_int64(upd.s, 7, id);
          if (sqlite3_step(upd.s) != SQLITE_DONE) fail("cannot update letter " + std::to_string(id));
          sqlite3_reset(upd.s);
          continue;
        }
        sqlite3_reset(get_old.s);
        if (rc != SQLITE_DONE) fail("cannot read letter " + std::to_string(id));
        // Purged meanwhile: it comes back as a letter of its own.
      }
      std::string headers = pairs_json(l.headers), meta = pairs_json(l.meta);
      bind_text(ins.s, 1, l.flow);
      bind_text(ins.s, 2, l.stage);
      bind_text(ins.s, 3, l.reason);
      bind_text(ins.s, 4, l.failed_at);
      sqlite3_bind_int64(ins.s, 5, l.failed_ms);
      sqlite3_bind_int64(ins.s, 6, l.attempts);
      bind_blob(ins.s, 7, l.key);
      bind_text(ins.s, 8, l.content_type);
      bind_text(ins.s, 9, headers);
      bind_text(ins.s, 10, meta);
      bind_blob(ins.s, 11, l.payload);
      if (sqlite3_step(ins.s) != SQLITE_DONE) fail("cannot add a letter");
      sqlite3_reset(ins.s);
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::vector<Letter> LetterStore::list(const Filter& f) const {
  Where w = where(f);
  std::string sql = std::string("SELECT ") + kColumns + " FROM letter" + w.sql + " ORDER BY id";
  if (f.limit > 0) sql += " LIMIT " + std::to_string(f.limit);
  Stmt st;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK) fail("cannot prepare");
  bind(st.s, w);
  std::vector<Letter> out;
  for (int rc; (rc = sqlite3_step(st.s)) != SQLITE_DONE;) {
    if (rc != SQLITE_ROW) fail("cannot read");
    out.push_back(read_row(st.s));
  }
  return out;
}

std::optional<Letter> LetterStore::get(int64_t id) const {
  Filter f;
  f.ids = {id};
  auto all = list(f);
  if (all.empty()) return std::nullopt;
  return all[0];
}

size_t LetterStore::purge(const Filter& f) {
  Where w = where(f);
  std::string sql = "DELETE FROM letter" + w.sql;
  if (f.limit > 0) sql = "DELETE FROM letter WHERE id IN (SELECT id FROM letter" + w.sql + " ORDER BY id LIMIT " +
                         std::to_string(f.limit) + ")";
  Stmt st;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK) fail("cannot prepare");
  bind(st.s, w);
  if (sqlite3_step(st.s) != SQLITE_DONE) fail("cannot purge");
  return size_t(sqlite3_changes(db_));
}

void LetterStore::mark_replayed(const std::vector<int64_t>& ids, const std::string& at) {
  if (ids.empty()) return;
  Stmt st;
  if (sqlite3_prepare_v2(db_, "UPDATE letter SET state = 'replayed', replays = replays + 1, replayed_at = ? WHERE id = ?",
                         -1, &st.s, nullptr) != SQLITE_OK)
    fail("cannot prepare");
  exec("BEGIN IMMEDIATE");
  try {
    for (int64_t id : ids) {
      bind_text(st.s, 1, at);
      sqlite3_bind_int64(st.s, 2, id);
      if (sqlite3_step(st.s) != SQLITE_DONE) fail("cannot mark letter " + std::to_string(id));
      sqlite3_reset(st.s);
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace edgeflow::dlq
