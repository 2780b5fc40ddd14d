// Built against ABI 1.4, before ef_component grew `signal`: its components are the older, smaller
// struct, two in a row. The host must read them at that stride and see no signal hook.
#include <edgeflow/abi.h>

#include <cstddef>
#include <cstring>

namespace {

constexpr size_t kOldSize = offsetof(ef_component, signal);
struct OldComponent {
  unsigned char bytes[kOldSize];
};

ef_status create(ef_ctx*, const ef_value*, void** self) {
  *self = nullptr;
  return EF_OK;
}
void destroy(void*) {}
ef_status run(void*) { return EF_OK; }
void on_ack(void*, const ef_ack*, size_t) {}
ef_status write(void*, ef_batch*) { return EF_OK; }

OldComponent old(ef_component c) {
  c.struct_size = kOldSize;
  OldComponent o;
  std::memcpy(o.bytes, &c, kOldSize);
  return o;
}

}  // namespace

extern "C" EF_EXPORT const ef_plugin_info* edgeflow_plugin_init(const ef_host_api*, uint32_t, uint32_t) {
  static OldComponent components[2];
  ef_component source{};
  source.kind = EF_KIND_SOURCE;
  source.type = "old_source";
  source.create = create;
  source.destroy = destroy;
  source.run = run;
  source.on_ack = on_ack;
  ef_component sink{};
  sink.kind = EF_KIND_SINK;
  sink.type = "old_sink";
  sink.create = create;
  sink.destroy = destroy;
  sink.write = write;
  components[0] = old(source);
  components[1] = old(sink);
  static const ef_plugin_info info = {sizeof(ef_plugin_info), EF_ABI_MAJOR, 4, "old_minor", "1.0",
                                      reinterpret_cast<const ef_component*>(components), 2};
  return &info;
}
