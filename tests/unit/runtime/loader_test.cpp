#include "engine.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <fstream>
#include <string>

using namespace edgeflow;

namespace {

std::string bad(const std::string& name) { return std::string(EDGEFLOW_BAD_PLUGIN_DIR) + "/edgeflow-" + name + ".so"; }

// Loads one file and returns the single refusal it produced.
std::string refusal_of(const std::string& file) {
  PluginRegistry reg(runtime_host_api());
  EXPECT_FALSE(reg.load_file(file));
  EXPECT_EQ(reg.refusals().size(), 1u);
  EXPECT_TRUE(reg.components().empty());
  return reg.refusals().empty() ? "" : reg.refusals()[0];
}

}  // namespace

TEST(Loader, LoadsTestkitAndListsItsComponents) {
  PluginRegistry reg(runtime_host_api());
  reg.load_dir(EDGEFLOW_TEST_PLUGIN_DIR);
  EXPECT_TRUE(reg.refusals().empty());
  ASSERT_NE(reg.find(EF_KIND_SOURCE, "sequence"), nullptr);
  ASSERT_NE(reg.find(EF_KIND_TRANSFORMER, "script"), nullptr);
  ASSERT_NE(reg.find(EF_KIND_SINK, "flaky"), nullptr);
  EXPECT_EQ(reg.find(EF_KIND_SINK, "sequence"), nullptr);  // kinds are separate namespaces
  EXPECT_STREQ(reg.find(EF_KIND_SINK, "flaky")->plugin->info->name, "testkit");
}

TEST(Loader, RefusesAnotherAbiMajorNamingBothVersions) {
  std::string why = refusal_of(bad("bad_major"));
  EXPECT_NE(why.find(bad("bad_major")), std::string::npos) << why;
  EXPECT_NE(why.find("built for plugin ABI 2.0"), std::string::npos) << why;
  std::string ours = "this edgeflow (release " EDGEFLOW_VERSION ") speaks plugin ABI " + std::to_string(EF_ABI_MAJOR) +
                     "." + std::to_string(EF_ABI_MINOR);
  EXPECT_NE(why.find(ours), std::string::npos) << why;
  EXPECT_NE(why.find("ABI majors must match"), std::string::npos) << why;
}

TEST(Loader, RefusesANewerMinor) {
  std::string why = refusal_of(bad("newer_minor"));
  std::string major = std::to_string(EF_ABI_MAJOR) + ".";
  EXPECT_NE(why.find("built for plugin ABI " + major + std::to_string(EF_ABI_MINOR + 1) +
                     ", newer than the plugin ABI " + major + std::to_string(EF_ABI_MINOR) +
                     " of this edgeflow (release " EDGEFLOW_VERSION ")"),
            std::string::npos) << why;
}

// A plugin built before ef_component grew (ABI 1.4) loads: its components are read at its own
// struct size, and the hooks it predates are absent.
TEST(Loader, LoadsAPluginOfAnOlderMinorWithItsSmallerComponents) {
  PluginRegistry reg(runtime_host_api());
  ASSERT_TRUE(reg.load_file(bad("old_minor"))) << (reg.refusals().empty() ? "" : reg.refusals()[0]);
  const auto* source = reg.find(EF_KIND_SOURCE, "old_source");
  const auto* sink = reg.find(EF_KIND_SINK, "old_sink");
  ASSERT_TRUE(source && sink);
  EXPECT_EQ(source->component->signal, nullptr);
  EXPECT_NE(source->component->run, nullptr);
  EXPECT_NE(sink->component->write, nullptr);
  EXPECT_EQ(source->component->struct_size, offsetof(ef_component, signal));
}

TEST(Loader, RefusesALibraryWithoutTheEntrySymbol) {
  std::string why = refusal_of(bad("no_entry"));
  EXPECT_NE(why.find("no 'edgeflow_plugin_init' symbol"), std::string::npos) << why;
}

TEST(Loader, RefusesAFileThatIsNotASharedLibrary) {
  std::string why = refusal_of(bad("not_a_library"));
  EXPECT_NE(why.find("not a loadable shared library"), std::string::npos) << why;
  EXPECT_NE(why.find("edgeflow-not_a_library.so"), std::string::npos) << why;
}

TEST(Loader, ReportsTheReasonAPluginGivesForFailingInit) {
  std::string why = refusal_of(bad("init_error"));
  EXPECT_NE(why.find("plugin init failed: license file /etc/edgeflow/license.key is missing"), std::string::npos) << why;
}

TEST(Loader, TurnsAnExceptionInInitIntoARefusal) {
  std::string why = refusal_of(bad("init_throws"));
  EXPECT_NE(why.find("plugin init failed: describe() exploded"), std::string::npos) << why;
}

TEST(Loader, ABadPluginInADirectoryDoesNotStopTheGoodOnes) {
  PluginRegistry reg(runtime_host_api());
  reg.load_dir(EDGEFLOW_BAD_PLUGIN_DIR);
  reg.load_dir(EDGEFLOW_TEST_PLUGIN_DIR);
  EXPECT_EQ(reg.refusals().size(), 6u);
  EXPECT_NE(reg.find(EF_KIND_SOURCE, "sequence"), nullptr);
}

TEST(Loader, RefusesASecondPluginProvidingTheSameType) {
  PluginRegistry reg(runtime_host_api());
  ASSERT_TRUE(reg.load_file(std::string(EDGEFLOW_TEST_PLUGIN_DIR) + "/edgeflow-testkit.so"));
  // The same file under another registry entry: every type is already taken.
  EXPECT_FALSE(reg.load_file(std::string(EDGEFLOW_TEST_PLUGIN_DIR) + "/edgeflow-testkit.so"));
  ASSERT_EQ(reg.refusals().size(), 1u);
  EXPECT_NE(reg.refusals()[0].find("is already provided by"), std::string::npos) << reg.refusals()[0];
}

TEST(Loader, AMissingPluginDirectoryIsReported) {
  PluginRegistry reg(runtime_host_api());
  reg.load_dir("/nonexistent/edgeflow/plugins");
  ASSERT_EQ(reg.refusals().size(), 1u);
  EXPECT_NE(reg.refusals()[0].find("cannot read plugin directory"), std::string::npos);
}

namespace {

// Whether a file is mapped into this process (/proc/self/maps names every mapped file).
bool mapped(const std::string& file_name) {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.size() >= file_name.size() && line.compare(line.size() - file_name.size(), file_name.size(), file_name) == 0)
      return true;
  return false;
}

}  // namespace

TEST(Loader, UnloadsThePluginsNoFlowUsesAndKeepsTheOthers) {
  PluginRegistry reg(runtime_host_api());
  reg.load_dir(EDGEFLOW_PLUGIN_DIR);
  reg.load_dir(EDGEFLOW_TEST_PLUGIN_DIR);
  ASSERT_TRUE(reg.refusals().empty());
  const ComponentRef* source = reg.find(EF_KIND_SOURCE, "sequence");
  const ComponentRef* sink = reg.find(EF_KIND_SINK, "file");
  ASSERT_NE(source, nullptr);
  ASSERT_NE(sink, nullptr);
  ASSERT_NE(reg.find(EF_KIND_TRANSFORMER, "map"), nullptr);
  // dedupe loads first: without -fno-gnu-unique it defined libstdc++'s inline statics for all
  // the plugins after it and could not be unloaded.
  const char* unused[] = {"/edgeflow-dedupe.so", "/edgeflow-map.so", "/edgeflow-route.so", "/edgeflow-kafka.so"};
  for (const char* f : unused) ASSERT_TRUE(mapped(f)) << f;

  reg.unload_unused({source, sink, nullptr});

  // Unmapped, not merely forgotten.
  for (const char* f : unused) EXPECT_FALSE(mapped(f)) << f;
  EXPECT_EQ(reg.find(EF_KIND_TRANSFORMER, "map"), nullptr);
  EXPECT_TRUE(mapped("/edgeflow-testkit.so"));
  EXPECT_TRUE(mapped("/edgeflow-file.so"));
  // The kept refs are the same objects, and every component of a kept plugin stays listed.
  EXPECT_EQ(reg.find(EF_KIND_SOURCE, "sequence"), source);
  EXPECT_EQ(reg.find(EF_KIND_SINK, "file"), sink);
  EXPECT_NE(reg.find(EF_KIND_SINK, "flaky"), nullptr);
  for (auto& c : reg.components())
    EXPECT_TRUE(c.plugin == source->plugin || c.plugin == sink->plugin) << c.component->type;
  EXPECT_STREQ(source->component->type, "sequence");
}
