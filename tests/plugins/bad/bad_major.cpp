// Claims a future ABI major: the loader must refuse it before touching anything else.
#include <edgeflow/abi.h>

extern "C" EF_EXPORT const ef_plugin_info* edgeflow_plugin_init(const ef_host_api*, uint32_t, uint32_t) {
  static const ef_plugin_info info = {sizeof(ef_plugin_info), EF_ABI_MAJOR + 1, 0, "bad_major", "1.0", nullptr, 0};
  return &info;
}
