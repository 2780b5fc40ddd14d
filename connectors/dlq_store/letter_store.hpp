// The repair station's store: dead letters in a SQLite file under the state directory, one row
// per letter with everything needed to send it again (payload, key, content type, headers,
// metadata) and why it failed (flow, stage, reason, time, attempts). Written by the dlq_store
// sink; read, replayed and purged by `edgeflow dlq` and the admin API.
//
// A replayed message carries the header kReplayHeader with its letter's id. If it fails again,
// the dead letter that comes back updates that letter (its earlier failure moves into `history`)
// instead of adding a new one.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct sqlite3;

namespace edgeflow::dlq {

inline constexpr const char* kReplayHeader = "edgeflow-replay-of";

struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using Pairs = std::vector<std::pair<std::string, std::string>>;

struct Letter {
  int64_t id = 0;
  std::string flow, stage, reason;
  std::string failed_at;  // ISO 8601, UTC
  int64_t failed_ms = 0;
  int64_t attempts = 0;
  std::string key, content_type;
  Pairs headers, meta;
  std::string payload;
  std::string state = "new";  // new | replayed
  int64_t replays = 0;
  std::string replayed_at;
  std::string history = "[]";  // JSON: earlier failures, oldest first: [{stage, reason, failed_at, attempts}]
};

struct Filter {
  std::string flow, stage;
  std::string reason;        // a substring, or a glob when it has * or ?
  int64_t since_ms = 0;      // failed at or after; 0: any
  int64_t until_ms = 0;      // failed before; 0: any
  std::string state;         // new | replayed; empty: any
  std::vector<int64_t> ids;  // empty: any
  int64_t limit = 0;         // 0: no limit
  bool empty() const {
    return flow.empty() && stage.empty() && reason.empty() && !since_ms && !until_ms && state.empty() && ids.empty();
  }
};

// A dead-letter envelope (the JSON the engine writes) as a letter; false with the reason.
bool from_envelope(std::string_view json, Letter& out, std::string& error);
// A letter as JSON (the admin API and `dlq show --json`); the payload as text when it is UTF-8,
// else as payload_base64.
std::string to_json(const Letter& l, bool with_payload = true);
// An ISO 8601 time ("2026-12-07T10:00:00Z", "...00.123+01:00"; no offset: UTC) → ms since the
// epoch; false if it is not one.
bool parse_time(std::string_view text, int64_t& ms);

class LetterStore {
 public:
  // Opens (or creates) the store; throws StoreError naming the file and the reason.
  explicit LetterStore(std::string path);
  ~LetterStore();
  LetterStore(const LetterStore&) = delete;
  LetterStore& operator=(const LetterStore&) = delete;

  // Stores the letters in one transaction (durable when it returns). A letter whose headers
  // carry kReplayHeader naming a letter in the store updates that one instead.
  void add(const std::vector<Letter>& letters);
  std::vector<Letter> list(const Filter& f) const;
  std::optional<Letter> get(int64_t id) const;
  // Forgets the letters the filter selects; how many.
  size_t purge(const Filter& f);
  // The letters were delivered when replayed.
  void mark_replayed(const std::vector<int64_t>& ids, const std::string& at);
  const std::string& path() const { return path_; }

 private:
  void exec(const char* sql) const;
  [[noreturn]] void fail(const std::string& what) const;

  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace edgeflow::dlq
