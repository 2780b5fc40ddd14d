// Refuses to initialise and says why.
#include <edgeflow/abi.h>

#include <cstring>

extern "C" EF_EXPORT const ef_plugin_info* edgeflow_plugin_init(const ef_host_api* host, uint32_t, uint32_t) {
  const char* why = "license file /etc/edgeflow/license.key is missing";
  host->fail(nullptr, why, std::strlen(why));
  return nullptr;
}
