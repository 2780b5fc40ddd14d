// Flow files: an operator's (or an attacker's) bytes → YAML guard → yaml-cpp → flow structure,
// and every option type of the config builder. The loader may refuse anything, but only with
// diagnostics: no crash, no unbounded expansion, no error without file:line.
#include "flow_config.hpp"

#include <cstdint>
#include <cstdlib>

using namespace edgeflow;

namespace {

constexpr uint32_t kSpec = sizeof(ef_option_spec);
const ef_option_spec kEveryType[] = {
    {kSpec, "s", EF_OPT_STRING, 0, "x", 0, 0, nullptr, "", ""},
    {kSpec, "secret", EF_OPT_STRING, EF_OPT_SECRET, nullptr, 0, 0, nullptr, "", ""},
    {kSpec, "i", EF_OPT_INT, EF_OPT_HAS_MIN | EF_OPT_HAS_MAX, "1", -5, 1e6, nullptr, "", ""},
    {kSpec, "d", EF_OPT_DOUBLE, 0, "1.5", 0, 0, nullptr, "", ""},
    {kSpec, "b", EF_OPT_BOOL, 0, "true", 0, 0, nullptr, "", ""},
    {kSpec, "t", EF_OPT_DURATION, EF_OPT_HAS_MIN, "1s", 1, 0, nullptr, "", ""},
    {kSpec, "z", EF_OPT_SIZE, 0, "1MiB", 0, 0, nullptr, "", ""},
    {kSpec, "e", EF_OPT_ENUM, 0, "a", 0, 0, "a|b|c", "", ""},
    {kSpec, "l", EF_OPT_STRING_LIST, 0, nullptr, 0, 0, nullptr, "", ""},
    {kSpec, "any", EF_OPT_ANY, EF_OPT_SECRET, nullptr, 0, 0, nullptr, "", ""},
};

ef_component every_type() {
  ef_component c{};
  c.struct_size = sizeof(ef_component);
  c.kind = EF_KIND_SINK;
  c.type = "every";
  c.options = kEveryType;
  c.option_count = sizeof kEveryType / sizeof kEveryType[0];
  return c;
}

void check(const host::Diagnostics& diag) {
  for (auto& e : diag.errors)
    if (e.rfind("fuzz.yaml", 0) != 0) std::abort();  // every error names the file
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static PluginRegistry none(nullptr);
  static const ef_component every = every_type();
  std::string text(reinterpret_cast<const char*>(data), size);
  YamlLimits limits;
  limits.max_alias_nodes = 10000;
  host::Diagnostics diag;
  load_flow_text("fuzz.yaml", text, none, limits, diag);
  check(diag);

  // Every map in the file, read as one component's config.
  host::Diagnostics config_diag;
  for (auto& doc : load_yaml_text("fuzz.yaml", text, limits, config_diag)) {
    if (!doc.IsMap()) continue;
    for (auto it = doc.begin(); it != doc.end(); ++it) {
      if (!it->second.IsMap()) continue;
      host::Doc out;
      host::Locations locations;
      std::set<std::string> secrets;
      host::ConfigBuilder b{"fuzz.yaml", config_diag, locations, &secrets};
      b.build(it->second, every, "c", {"type"}, out);
      InstanceSpec sink;
      sink_settings(it->second, "fuzz.yaml", "c", config_diag, secrets, sink);  // a sink's own keys beside them
    }
  }
  check(config_diag);
  return 0;
}
