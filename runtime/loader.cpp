#include "loader.hpp"

#include "log.hpp"

#include <algorithm>
#include <cstring>
#include <system_error>

namespace edgeflow {
namespace {

thread_local std::string t_init_failure;

std::string version(uint32_t major, uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

}  // namespace

void set_init_failure(std::string reason) { t_init_failure = std::move(reason); }

const char* kind_name(uint32_t kind) {
  switch (kind) {
    case EF_KIND_SOURCE: return "source";
    case EF_KIND_TRANSFORMER: return "transformer";
    case EF_KIND_SINK: return "sink";
    default: return "unknown";
  }
}

bool PluginRegistry::refuse(const std::string& file, const std::string& why) {
  refusals_.push_back(file + ": " + why);
  log_error("", "loader", refusals_.back());
  return false;
}

void PluginRegistry::load_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".so") files.push_back(e.path());
  }
  if (ec) {
    refusals_.push_back(dir.string() + ": cannot read plugin directory: " + ec.message());
    log_error("", "loader", refusals_.back());
    return;
  }
  std::sort(files.begin(), files.end());
  for (auto& f : files) load_file(f);
}

std::vector<std::string> PluginRegistry::load_new(const std::filesystem::path& dir) {
  std::vector<std::string> loaded;
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".so") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (auto& f : files) {
    std::string file = f.string();
    bool known = std::any_of(plugins_.begin(), plugins_.end(), [&](auto& p) { return p->file == file; });
    auto mtime = std::filesystem::last_write_time(f, ec);
    auto refused = refused_at_.find(file);
    // A refused file is tried again once it has changed.
    if (known || (refused != refused_at_.end() && refused->second == mtime)) continue;
    if (load_file(f)) loaded.push_back(file);
    else refused_at_[file] = mtime;
  }
  return loaded;
}

bool PluginRegistry::load_file(const std::filesystem::path& path) {
  std::string file = path.string();
  auto p = std::make_unique<LoadedPlugin>();
  p->file = file;
  try {
    p->library.load(path, boost::dll::load_mode::rtld_local | boost::dll::load_mode::rtld_now);
  } catch (const std::system_error& e) {
    // Boost wraps dlerror()'s text ("invalid ELF header", "file too short"): keep just that.
    std::string what = e.what();
    const std::string tag = "dlerror system message: ";
    size_t at = what.find(tag);
    if (at != std::string::npos) {
      what = what.substr(at + tag.size());
      size_t close = what.rfind(')');
      if (close != std::string::npos) what.resize(close);
    }
    return refuse(file, "not a loadable shared library (" + what + ")");
  }
  if (!p->library.has(EF_ENTRY_SYMBOL)) {
    return refuse(file, std::string("no '") + EF_ENTRY_SYMBOL +
                            "' symbol: not an edgeflow plugin (build it with EDGEFLOW_PLUGIN and "
                            "edgeflow_add_plugin)");
  }
  auto& init = p->library.get<std::remove_pointer_t<ef_plugin_init_fn>>(EF_ENTRY_SYMBOL);
  t_init_failure.clear();
  const ef_plugin_info* info = init(host_, EF_ABI_MAJOR, EF_ABI_MINOR);
  if (!info) {
    return refuse(file, "plugin init failed: " +
                            (t_init_failure.empty() ? std::string("no reason given") : t_init_failure));
  }
  if (info->struct_size < sizeof(uint32_t) * 3) return refuse(file, "plugin descriptor is truncated");
  if (info->abi_major != EF_ABI_MAJOR) {
    return refuse(file, "built for plugin ABI " + version(info->abi_major, info->abi_minor) +
                            "; this edgeflow (release " EDGEFLOW_VERSION ") speaks plugin ABI " +
                            version(EF_ABI_MAJOR, EF_ABI_MINOR) +
                            ", and ABI majors must match: rebuild the plugin against an edgeflow SDK whose ABI is " +
                            std::to_string(EF_ABI_MAJOR) + ".x (`edgeflow version` shows both)");
  }
  if (info->abi_minor > EF_ABI_MINOR) {
    return refuse(file, "built for plugin ABI " + version(info->abi_major, info->abi_minor) +
                            ", newer than the plugin ABI " + version(EF_ABI_MAJOR, EF_ABI_MINOR) +
                            " of this edgeflow (release " EDGEFLOW_VERSION
                            "): upgrade edgeflow or rebuild the plugin against the SDK of this release");
  }
  if (info->struct_size < sizeof(ef_plugin_info) || !info->name || !info->components)
    return refuse(file, "plugin descriptor is incomplete (name or components missing)");
  // Components are read at the plugin's own struct size (an older plugin's is smaller) and
  // copied into host-owned structs of this ABI, the hooks it predates left NULL.
  constexpr size_t kOldest = offsetof(ef_component, signal);  // ABI 1.0 .. 1.4
  const size_t stride = info->component_count ? info->components[0].struct_size : 0;
  if (info->component_count && stride < kOldest)
    return refuse(file, "component 0 is truncated (struct_size " + std::to_string(stride) + ")");
  for (uint32_t i = 0; i < info->component_count; ++i) {
    const auto* raw = reinterpret_cast<const ef_component*>(reinterpret_cast<const char*>(info->components) + i * stride);
    if (raw->struct_size != stride)
      return refuse(file, "component " + std::to_string(i) + " has struct_size " + std::to_string(raw->struct_size) +
                              ", component 0 has " + std::to_string(stride) + ": the array is not one ABI's");
    ef_component& c = p->components.emplace_back();
    std::memcpy(&c, raw, std::min(stride, sizeof(ef_component)));
    if (!c.type || !c.create || !c.destroy)
      return refuse(file, "component " + std::to_string(i) + " is incomplete (type, create or destroy missing)");
    bool hooks_ok = (c.kind == EF_KIND_SOURCE && c.run && c.on_ack) ||
                    (c.kind == EF_KIND_TRANSFORMER && c.transform) ||
                    (c.kind == EF_KIND_SINK && c.write);
    if (!hooks_ok)
      return refuse(file, std::string(kind_name(c.kind)) + " '" + c.type + "' lacks its hooks");
    if (const ComponentRef* other = find(c.kind, c.type)) {
      return refuse(file, std::string(kind_name(c.kind)) + " type '" + c.type +
                              "' is already provided by " + other->plugin->file);
    }
  }
  const LoadedPlugin* loaded = plugins_.emplace_back(std::move(p)).get();
  for (auto& c : loaded->components) components_.push_back({&c, loaded});
  plugins_.back()->info = info;
  log(EF_LOG_DEBUG, "", "loader",
      "loaded " + file + " (plugin " + info->name + " " + (info->version ? info->version : "?") + ", plugin ABI " +
          version(info->abi_major, info->abi_minor) + ")");
  return true;
}

const ComponentRef* PluginRegistry::find(uint32_t kind, std::string_view type) const {
  for (auto& c : components_)
    if (c.component->kind == kind && type == c.component->type) return &c;
  return nullptr;
}

void PluginRegistry::unload_unused(const std::vector<const ComponentRef*>& used) {
  auto in_use = [&](const LoadedPlugin* p) {
    return std::any_of(used.begin(), used.end(), [&](const ComponentRef* c) { return c && c->plugin == p; });
  };
  components_.remove_if([&](const ComponentRef& c) { return !in_use(c.plugin); });
  for (auto it = plugins_.begin(); it != plugins_.end();) {
    if (in_use(it->get())) {
      ++it;
      continue;
    }
    log(EF_LOG_DEBUG, "", "loader", "unloaded " + (*it)->file + ": no flow uses it");
    it = plugins_.erase(it);
  }
}

std::vector<std::string> PluginRegistry::types(uint32_t kind) const {
  std::vector<std::string> out;
  for (auto& c : components_)
    if (c.component->kind == kind) out.emplace_back(c.component->type);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace edgeflow
