// Built against a newer minor than the host has: it may call hooks the host lacks.
#include <edgeflow/abi.h>

extern "C" EF_EXPORT const ef_plugin_info* edgeflow_plugin_init(const ef_host_api*, uint32_t, uint32_t) {
  static const ef_plugin_info info = {sizeof(ef_plugin_info), EF_ABI_MAJOR, EF_ABI_MINOR + 1, "newer_minor", "1.0", nullptr, 0};
  return &info;
}
