// Finds plugins in the configured directories, loads each with Boost.DLL (RTLD_LOCAL), imports
// its single entry point and checks the ABI before anything of it is used.
#pragma once

#include <edgeflow/abi.h>

#include <boost/dll/shared_library.hpp>

#include <deque>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace edgeflow {

struct LoadedPlugin {
  std::string file;
  boost::dll::shared_library library;
  const ef_plugin_info* info = nullptr;
  // Its components at this host's ABI size (a deque: refs to them never move).
  std::deque<ef_component> components;
};

struct ComponentRef {
  const ef_component* component = nullptr;
  const LoadedPlugin* plugin = nullptr;
};

const char* kind_name(uint32_t kind);

class PluginRegistry {
 public:
  explicit PluginRegistry(const ef_host_api* host) : host_(host) {}

  // Loads every plugin file (*.so) of a directory; refusals are recorded, not thrown.
  void load_dir(const std::filesystem::path& dir);
  // Loads one file; on refusal returns false and records why (file, versions, reason).
  bool load_file(const std::filesystem::path& file);
  // Loads the plugin files of a directory that are not loaded yet (a reload); the files loaded.
  std::vector<std::string> load_new(const std::filesystem::path& dir);

  const ComponentRef* find(uint32_t kind, std::string_view type) const;
  std::vector<std::string> types(uint32_t kind) const;
  const std::list<ComponentRef>& components() const { return components_; }

  // Unloads every plugin none of whose components is in `used`, with the libraries only it
  // needed: a daemon that runs one Kafka flow does not keep libpq or Poco's TLS mapped. The refs
  // in `used` stay valid (a list does not move its elements).
  void unload_unused(const std::vector<const ComponentRef*>& used);

  const std::vector<std::string>& refusals() const { return refusals_; }

 private:
  bool refuse(const std::string& file, const std::string& why);
  const ef_host_api* host_;
  std::vector<std::unique_ptr<LoadedPlugin>> plugins_;
  std::list<ComponentRef> components_;
  std::vector<std::string> refusals_;
  std::map<std::string, std::filesystem::file_time_type> refused_at_;  // by load_new
};

// Records the reason a plugin gives through host->fail(nullptr, ...) during init.
void set_init_failure(std::string reason);

}  // namespace edgeflow
