// The project `edgeflow plugin new` writes. tests/sdk_install builds every kind against the SDK
// package, runs its tests and its example flow in the daemon, so these templates cannot rot.
#include "scaffold.hpp"

#include <edgeflow/abi.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <utility>
#include <vector>

namespace edgeflow {

namespace {

const char* kCMakeLists = R"~~(# @NAME@: an edgeflow @KIND@ plugin, built against the installed edgeflow SDK.
#
#   cmake -S . -B build -DCMAKE_PREFIX_PATH=/usr     # where edgeflow-sdk is installed
#   cmake --build build && ctest --test-dir build
#   edgeflow run --plugin-dir build examples/flow.yaml
cmake_minimum_required(VERSION 3.25)
project(edgeflow-@NAME@ VERSION 0.1.0 LANGUAGES CXX)

# The SDK of edgeflow @SDK_VERSION@; its plugin ABI is in EdgeflowSDK_ABI_VERSION.
find_package(EdgeflowSDK @SDK_VERSION@ REQUIRED)

# edgeflow-@NAME@.so; `cmake --install build` puts it in <prefix>/lib/edgeflow/plugins.
edgeflow_add_plugin(@NAME@ SOURCES src/@NAME@.cpp)

# The unit tests run the component in the SDK's test harness: no daemon, no server.
include(CTest)
if(BUILD_TESTING)
  find_package(GTest REQUIRED)
  add_executable(@NAME@_tests test/@NAME@_test.cpp)
  target_include_directories(@NAME@_tests PRIVATE src)
  target_link_libraries(@NAME@_tests PRIVATE EdgeflowSDK::harness GTest::gtest_main)
  include(GoogleTest)
  gtest_discover_tests(@NAME@_tests)
endif()
)~~";

const char* kPluginCpp = R"~~(// The plugin's one exported symbol: its name, its version and the components it holds.
#include "@NAME@.hpp"

EDGEFLOW_PLUGIN("@NAME@", "0.1.0", @CLASS@)
)~~";

const char* kSourceHpp = R"~~(// @NAME@: an edgeflow source. It emits `count` JSON messages, {"n":1,"text":"hello"}, and
// ends; make run() read from your system instead.
//
//   source:
//     type: @NAME@
//     count: 10
//     text: hello
#pragma once

#include <edgeflow/sdk/plugin.hpp>

#include <cstdint>
#include <span>
#include <string>

class @CLASS@ : public edgeflow::sdk::Source {
 public:
  struct Config {
    int64_t count = 10;
    std::string text = "hello";
  };
  static constexpr const char* type = "@NAME@";
  static constexpr const char* description = "Emits count JSON messages, then ends.";
  static void describe(edgeflow::sdk::Spec<Config>& s) {
    s.option("count", &Config::count).greater_than(0).doc("How many messages to emit.").example("100");
    s.option("text", &Config::text).doc("The text every message carries.").example("hello");
  }

  // Parse and check only: `edgeflow validate` constructs it too. Connect in start().
  @CLASS@(edgeflow::sdk::Context c, Config cfg) : Source(c), cfg_(std::move(cfg)) {
    if (cfg_.text.empty()) throw c.config_error("text", "must not be empty; write the text messages carry, like text: hello");
  }

  void run() override {
    for (int64_t n = 1; n <= cfg_.count; ++n) {
      edgeflow::sdk::Message m = new_message();
      m.reset_doc();
      m.set(m.put("n"), n);
      m.set(m.put("text"), std::string_view(cfg_.text));
      m.set_content_type("application/json");
      m.set_token(uint64_t(n));  // what on_ack() hears back: in a real source, a read position
      ef_message* batch[] = {m.raw()};
      if (emit(batch) != EF_OK) {  // the flow is stopping, and the message is still ours
        free_message(m);
        return;
      }
    }
  }

  // Every emitted message is acknowledged exactly once, in any order, on run()'s thread. A real
  // source commits its read position here, up to the oldest message not yet delivered.
  void on_ack(std::span<const ef_ack> acks) override {
    for (const ef_ack& a : acks)
      if (a.status == EF_ACK_DELIVERED) ++delivered_;
  }
  int64_t delivered() const { return delivered_; }

 private:
  Config cfg_;
  int64_t delivered_ = 0;
};
)~~";

const char* kSourceTest = R"~~(// @NAME@'s unit tests: the component runs in the SDK's test harness.
#include "@NAME@.hpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;

TEST(@CLASS@, EmitsCountMessagesAndHearsTheirAcks) {
  Harness<@CLASS@> h("count: 3\ntext: hi");
  h.run();
  auto out = h.emitted();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].payload, R"({"n":1,"text":"hi"})");
  EXPECT_EQ(out[2].token, 3u);
  h.ack_all_emitted();
  h.deliver();
  EXPECT_EQ(h.component().delivered(), 3);
}

TEST(@CLASS@, ConfigMistakesPointIntoTheFlowFile) {
  try {
    Harness<@CLASS@> h("count: 0", {.file = "flow.yaml"});
    FAIL() << "count: 0 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "flow.yaml:1:8: count: must be greater than 0, got 0");
  }
  try {
    Harness<@CLASS@> h("text: ''", {.file = "flow.yaml"});
    FAIL() << "an empty text was accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("flow.yaml:1:7: text: must not be empty", 0), 0u) << e.what();
  }
}
)~~";

const char* kSourceFlow = R"~~(# edgeflow run --plugin-dir build examples/flow.yaml
flow: @NAME@-example
source:
  type: @NAME@
  count: 5
  text: hello
sinks:
  out: { type: stdout }
)~~";

const char* kTransformerHpp = R"~~(// @NAME@: an edgeflow transformer. It writes a value into each message's JSON document at a
// path; a message it cannot change goes to the flow's dead letter with the reason.
//
//   steps:
//     - type: @NAME@
//       field: meta.site
//       value: plant-7
#pragma once

#include <edgeflow/sdk/plugin.hpp>

#include <string>

class @CLASS@ : public edgeflow::sdk::Transformer {
 public:
  struct Config {
    std::string field;
    std::string value = "edgeflow";
  };
  static constexpr const char* type = "@NAME@";
  static constexpr const char* description = "Writes a value at a path of each message's JSON document.";
  static void describe(edgeflow::sdk::Spec<Config>& s) {
    s.option("field", &Config::field).required().doc("Document path to write, like meta.site or tags[0].").example("meta.site");
    s.option("value", &Config::value).doc("The string written there.").example("plant-7");
  }

  // Parse and check only: `edgeflow validate` constructs it too.
  @CLASS@(edgeflow::sdk::Context c, Config cfg) : Transformer(c), cfg_(std::move(cfg)) {
    const std::string& f = cfg_.field;
    if (f.empty() || f.front() == '.' || f.back() == '.' || f.find("..") != std::string::npos)
      throw c.config_error("field", "'" + f + "' is not a document path; write it like meta.site");
  }

  void transform(edgeflow::sdk::Batch batch) override {
    // reject() and drop() only mark a message, so indexes stay valid for the whole loop.
    for (size_t i = 0; i < batch.size(); ++i) {
      edgeflow::sdk::Message m = batch[i];
      try {
        m.doc();
      } catch (const edgeflow::sdk::Error& e) {
        batch.reject(i, e.what());  // one bad payload is that message's problem, not the batch's
        continue;
      }
      edgeflow::sdk::Value v = m.try_put(cfg_.field);  // never over a value that is in the way
      if (!v) {
        batch.reject(i, cfg_.field + ": a value on the way is not an object or array");
        continue;
      }
      m.set(v, std::string_view(cfg_.value));
    }
  }

 private:
  Config cfg_;
};
)~~";

const char* kTransformerTest = R"~~(// @NAME@'s unit tests: the component runs in the SDK's test harness.
#include "@NAME@.hpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;

TEST(@CLASS@, WritesTheValueAndRejectsWhatItCannotChange) {
  Harness<@CLASS@> h("field: meta.site\nvalue: plant-7");
  auto r = h.transform({{.payload = R"({"id":1})", .key = "k1"},
                        {.payload = R"({"id":2,"meta":"x"})"},
                        {.payload = "not json"}});
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].payload, R"({"id":1,"meta":{"site":"plant-7"}})");
  EXPECT_EQ(r.kept[0].key, "k1");
  ASSERT_EQ(r.rejected.size(), 2u);
  EXPECT_EQ(r.rejected[0].reason, "meta.site: a value on the way is not an object or array");
  EXPECT_EQ(r.rejected[1].reason.rfind("payload is not JSON", 0), 0u) << r.rejected[1].reason;
}

TEST(@CLASS@, ConfigMistakesPointIntoTheFlowFile) {
  try {
    Harness<@CLASS@> h("field: a..b", {.file = "flow.yaml"});
    FAIL() << "a..b was accepted";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "flow.yaml:1:8: field: 'a..b' is not a document path; write it like meta.site");
  }
  try {
    Harness<@CLASS@> h("value: x", {.file = "flow.yaml"});
    FAIL() << "a missing field was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("field: required option missing"), std::string::npos) << e.what();
  }
}
)~~";

const char* kTransformerFlow = R"~~(# edgeflow run --plugin-dir build examples/flow.yaml
flow: @NAME@-example
source: { type: generate, count: 5 }
steps:
  - type: @NAME@
    field: meta.site
    value: plant-7
sinks:
  out: { type: stdout }
)~~";

const char* kSinkHpp = R"~~(// @NAME@: an edgeflow sink. It appends each message's payload as one line to a file, and
// acknowledges a message only once its line is on disk: every `sync_every` messages, and
// whenever the runtime calls flush(). Like most real sinks, it holds acks across writes.
//
//   sinks:
//     out:
//       type: @NAME@
//       path: out.jsonl
//       sync_every: 100
#pragma once

#include <edgeflow/sdk/plugin.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

class @CLASS@ : public edgeflow::sdk::Sink {
 public:
  struct Config {
    std::string path;
    int64_t sync_every = 100;
  };
  static constexpr const char* type = "@NAME@";
  static constexpr const char* description = "Appends payloads as lines to a file, acknowledged once on disk.";
  static void describe(edgeflow::sdk::Spec<Config>& s) {
    s.option("path", &Config::path).required().doc("The file lines are appended to.").example("out.jsonl");
    s.option("sync_every", &Config::sync_every).range(1, 1000000).doc("Messages written between two fsyncs.").example("1000");
  }

  // Parse and check only: `edgeflow validate` constructs it too. The file is opened in start().
  @CLASS@(edgeflow::sdk::Context c, Config cfg) : Sink(c), cfg_(std::move(cfg)) {
    if (cfg_.path.empty()) throw c.config_error("path", "must name a file, like path: out.jsonl");
  }

  void start() override {
    fd_ = ::open(cfg_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) throw edgeflow::sdk::Error(cfg_.path + ": " + std::strerror(errno));
  }

  // A failure throws: the flow restarts, and whatever was not acked comes again.
  void write(edgeflow::sdk::Batch batch) override {
    for (size_t i = 0; i < batch.size(); ++i) {
      edgeflow::sdk::Message m = batch[i];
      line_.assign(m.payload());
      line_ += '\n';
      write_all(line_);
      held_.push_back(m);  // valid until acked
    }
    if (held_.size() >= size_t(cfg_.sync_every)) sync();
  }

  // The runtime calls flush() once the sink's flush_interval passed, whenever the flow waits for
  // room, and while it drains: what this sink holds is acked within one flush_interval.
  void flush(int32_t) override { sync(); }

  // Anything still held when stop() returns counts as not delivered and is read again after a
  // restart; syncing first acks it instead.
  void stop() override {
    if (fd_ < 0) return;
    try {
      sync();
    } catch (const std::exception& e) {
      context().warn(e.what());
    }
    ::close(fd_);
    fd_ = -1;
  }

 private:
  void write_all(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw edgeflow::sdk::Error(cfg_.path + ": " + std::strerror(errno));
      bytes.remove_prefix(size_t(n));
    }
  }
  void sync() {
    if (held_.empty()) return;
    if (::fsync(fd_) != 0) throw edgeflow::sdk::Error(cfg_.path + ": fsync: " + std::strerror(errno));
    for (edgeflow::sdk::Message m : held_) ack(m, EF_ACK_DELIVERED);
    held_.clear();
  }

  Config cfg_;
  int fd_ = -1;
  std::string line_;
  std::vector<edgeflow::sdk::Message> held_;
};
)~~";

const char* kSinkTest = R"~~(// @NAME@'s unit tests: the component runs in the SDK's test harness.
#include "@NAME@.hpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;
using edgeflow::testing::Input;

namespace {

// A fresh file path per test, removed afterwards.
struct TempFile {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("@NAME@-" + std::to_string(::getpid()) + "-" +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".jsonl");
  ~TempFile() { std::filesystem::remove(path); }
};

std::vector<std::string> lines_of(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

}  // namespace

TEST(@CLASS@, HoldsAcksUntilTheLinesAreOnDisk) {
  TempFile f;
  Harness<@CLASS@> h("path: " + f.path.string() + "\nsync_every: 50");
  h.write({{.payload = R"({"n":1})"}, {.payload = R"({"n":2})"}});
  EXPECT_TRUE(h.acks().empty());  // written, not yet synced
  h.flush();
  EXPECT_EQ(h.acks().size(), 2u);
  EXPECT_EQ(lines_of(f.path), (std::vector<std::string>{R"({"n":1})", R"({"n":2})"}));
}

// As a flow drives it: at most 10 messages in flight, though the sink acks only every 50.
TEST(@CLASS@, NeverHoldsAFlowStill) {
  TempFile f;
  Harness<@CLASS@> h("path: " + f.path.string() + "\nsync_every: 50");
  std::vector<Input> in;
  for (int i = 0; i < 120; ++i) in.push_back({.payload = "{\"n\":" + std::to_string(i) + "}"});
  auto acks = h.deliver(in, /*batch_size=*/1, /*max_in_flight=*/10);
  ASSERT_EQ(acks.size(), 120u);
  for (auto& a : acks) EXPECT_EQ(a.status, EF_ACK_DELIVERED);
  EXPECT_EQ(lines_of(f.path).size(), 120u);
}

TEST(@CLASS@, ConfigMistakesPointIntoTheFlowFile) {
  try {
    Harness<@CLASS@> h("path: out.jsonl\nsync_every: 0", {.file = "flow.yaml"});
    FAIL() << "sync_every: 0 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "flow.yaml:2:13: sync_every: must be at least 1, got 0");
  }
  try {
    Harness<@CLASS@> h("sync_every: 5", {.file = "flow.yaml"});
    FAIL() << "a missing path was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("path: required option missing"), std::string::npos) << e.what();
  }
}
)~~";

const char* kSinkFlow = R"~~(# edgeflow run --plugin-dir build examples/flow.yaml
flow: @NAME@-example
source: { type: generate, count: 1000 }
sinks:
  out:
    type: @NAME@
    path: out.jsonl
    sync_every: 100
)~~";

const char* kReadme = R"~~(# @NAME@

An edgeflow @KIND@ plugin (`type: @NAME@`), built against the installed edgeflow SDK
(package `edgeflow-sdk`).

```sh
cmake -S . -B build -DCMAKE_PREFIX_PATH=/usr    # the prefix edgeflow-sdk is installed under
cmake --build build
ctest --test-dir build                          # unit tests in the SDK's test harness
edgeflow plugins inspect @NAME@ --plugin-dir build
edgeflow run --plugin-dir build examples/flow.yaml
```

- `src/@NAME@.hpp`: the component: its options (`describe`), its checks (the constructor,
  which `edgeflow validate` runs too) and its work.
- `src/@NAME@.cpp`: the one `EDGEFLOW_PLUGIN(...)` line that exports it.
- `test/@NAME@_test.cpp`: unit tests; the harness checks config exactly like the daemon.
- `examples/flow.yaml`: a flow that runs it with edgeflow's built-in components.

`cmake --install build` puts `edgeflow-@NAME@.so` under `<prefix>/lib/edgeflow/plugins`, where
the daemon installed in that prefix finds it. A Debian package of the plugin depends on the
plugin ABI, not on an edgeflow release: `Depends: edgeflow-abi-@ABI_MAJOR@ (>= @ABI@)`.
The plugin guide (docs/plugin-guide.md in edgeflow) has the whole contract.
)~~";

std::string camel(const std::string& name) {
  std::string out;
  bool up = true;
  for (char c : name) {
    if (c == '_') {
      up = true;
      continue;
    }
    out += up ? char(std::toupper(static_cast<unsigned char>(c))) : c;
    up = false;
  }
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out.insert(0, "Plugin");
  return out;
}

std::string fill(std::string text, const std::vector<std::pair<std::string, std::string>>& vars) {
  for (auto& [key, value] : vars)
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
      text.replace(at, key.size(), value);
  return text;
}

}  // namespace

ScaffoldResult scaffold_plugin(const std::string& name, const std::string& kind, const std::string& dir_arg) {
  namespace fs = std::filesystem;
  bool name_ok = !name.empty() && name.size() <= 64 && name[0] >= 'a' && name[0] <= 'z';
  for (char c : name) name_ok = name_ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  if (!name_ok)
    return {false, "plugin name '" + name + "': use lowercase letters, digits and _, starting with a letter "
                   "(at most 64), like modbus_poller; it is the `type:` flows will write"};
  const char* hpp = nullptr;
  const char* test = nullptr;
  const char* flow = nullptr;
  if (kind == "source") hpp = kSourceHpp, test = kSourceTest, flow = kSourceFlow;
  else if (kind == "transformer") hpp = kTransformerHpp, test = kTransformerTest, flow = kTransformerFlow;
  else if (kind == "sink") hpp = kSinkHpp, test = kSinkTest, flow = kSinkFlow;
  else return {false, "--kind is source, transformer or sink, not '" + kind + "'"};

  fs::path dir = dir_arg.empty() ? fs::path(name) : fs::path(dir_arg);
  std::error_code ec;
  if (fs::exists(dir, ec) && !(fs::is_directory(dir, ec) && fs::is_empty(dir, ec)))
    return {false, dir.string() + " already exists and is not an empty directory; choose another with --dir"};

  std::string release = EDGEFLOW_VERSION;
  std::string sdk_version = release.substr(0, release.find('.', release.find('.') + 1));
  std::vector<std::pair<std::string, std::string>> vars = {
      {"@NAME@", name},
      {"@CLASS@", camel(name)},
      {"@KIND@", kind},
      {"@SDK_VERSION@", sdk_version},
      {"@ABI_MAJOR@", std::to_string(EF_ABI_MAJOR)},
      {"@ABI@", std::to_string(EF_ABI_MAJOR) + "." + std::to_string(EF_ABI_MINOR)},
  };
  std::vector<std::pair<std::string, const char*>> files = {
      {"CMakeLists.txt", kCMakeLists},
      {"src/" + name + ".hpp", hpp},
      {"src/" + name + ".cpp", kPluginCpp},
      {"test/" + name + "_test.cpp", test},
      {"examples/flow.yaml", flow},
      {"README.md", kReadme},
  };
  for (auto& [rel, text] : files) {
    fs::path p = dir / rel;
    fs::create_directories(p.parent_path(), ec);
    if (ec) return {false, p.parent_path().string() + ": " + ec.message()};
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << fill(text, vars);
    out.close();
    if (!out) return {false, p.string() + ": " + std::strerror(errno)};
  }
  std::string d = dir.string();
  return {true, "wrote a " + kind + " plugin project in " + d + "/ (type: " + name +
                    ")\nnext:\n  cmake -S " + d + " -B " + d + "/build -DCMAKE_PREFIX_PATH=/usr   # where edgeflow-sdk is\n"
                    "  cmake --build " + d + "/build && ctest --test-dir " + d + "/build\n"
                    "  cd " + d + " && edgeflow run --plugin-dir build examples/flow.yaml\n"};
}

}  // namespace edgeflow
