// The engine test fixture: a runtime with the built-in and testkit plugins, a temp dir, and
// readers of what testkit's plugins record.
#pragma once

#include "engine.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <map>
#include <sstream>

namespace edgeflow::test {

// Calls testkit's `testkit_open_gates` or `testkit_close_gates`.
inline void gates(const char* call);

class Engine : public ::testing::Test {
 protected:
  TempDir dir;
  Runtime rt{RuntimeOptions{{EDGEFLOW_PLUGIN_DIR, EDGEFLOW_TEST_PLUGIN_DIR}, dir.file("state"), {}}};

  // Substitutes $DIR in the YAML, loads and starts it.
  void start(std::string yaml) {
    for (size_t at; (at = yaml.find("$DIR")) != std::string::npos;) yaml.replace(at, 4, dir.path().string());
    host::Diagnostics diag;
    ASSERT_TRUE(rt.load({dir.write("flow.yaml", yaml)}, diag)) << edgeflow::test::join(diag.errors);
    rt.start();
  }
  void run(const std::string& yaml) {
    start(yaml);
    rt.wait();
  }
  Flow& flow(const std::string& name = "f") { return *rt.flow(name); }
  // Gated sinks start closed, whatever an earlier test in this process did.
  void SetUp() override { gates("testkit_close_gates"); }

  // token -> statuses the source saw, in order (a token acked twice shows up twice).
  std::map<uint64_t, std::vector<int>> acks(const std::string& file = "acks.txt") {
    std::map<uint64_t, std::vector<int>> out;
    for (auto& line : read_lines(dir.file(file))) {
      std::istringstream in(line);
      uint64_t token;
      int status;
      in >> token >> status;
      out[token].push_back(status);
    }
    return out;
  }
  static int n_of(const std::string& json) { return std::stoi(json.substr(json.find("\"n\":") + 4)); }
};

inline void gates(const char* call) {
  std::string path = std::string(EDGEFLOW_TEST_PLUGIN_DIR) + "/edgeflow-testkit.so";
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(h, nullptr) << "testkit is not loaded";
  auto fn = reinterpret_cast<void (*)()>(dlsym(h, call));
  ASSERT_NE(fn, nullptr) << call;
  fn();
  dlclose(h);
}
inline void open_gates() { gates("testkit_open_gates"); }


}  // namespace edgeflow::test
