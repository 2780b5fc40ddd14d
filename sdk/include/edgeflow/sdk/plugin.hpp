// The header plugin authors include. A component is a class with
//
//   struct Config { ... };                           // plain members with defaults
//   static void describe(edgeflow::sdk::Spec<Config>&);  // options, declared once
//   static constexpr const char* type = "file";      // `type:` in flow YAML
//   static constexpr const char* description = "...";
//   Ctor(edgeflow::sdk::Context, Config);             // parse only, no I/O (validate runs it)
//
// deriving from Source, Transformer or Sink; one EDGEFLOW_PLUGIN(...) line exports them.
// Exceptions never cross the ABI: the trampolines turn them into EF_ERROR plus the message.
#pragma once

#include <edgeflow/abi.h>
#include <edgeflow/sdk/config.hpp>
#include <edgeflow/sdk/host.hpp>

#include <exception>
#include <span>
#include <string>
#include <vector>

namespace edgeflow::sdk {

class Component {
 public:
  explicit Component(Context ctx) : ctx_(ctx) {}
  virtual ~Component() = default;
  Component(const Component&) = delete;
  Component& operator=(const Component&) = delete;
  // Connect / open; failures throw.
  virtual void start() {}
  virtual void stop() {}
  const Context& context() const { return ctx_; }

 private:
  Context ctx_;
};

class Source : public Component {
 public:
  static constexpr ef_kind kind = EF_KIND_SOURCE;
  using Component::Component;
  // Read and emit until emit()/poll() say the flow is stopping or the input ends.
  virtual void run() = 0;
  // Optional (ABI 1.5), not virtual: declare `void on_signal(Value command)` to take operator
  // commands. It runs on another thread while run() runs: check, queue, return; throw to refuse.
  virtual void on_ack(std::span<const ef_ack> acks) = 0;

 protected:
  Message new_message() const { return Message(host().message_new(context().raw())); }
  void free_message(Message m) const { host().message_free(context().raw(), m.raw()); }
  // Returns EF_OK (the host owns the messages), EF_BUSY (timeout; caller still owns them)
  // or EF_STOPPING (caller still owns them).
  ef_status emit(std::span<ef_message* const> msgs, int32_t timeout_ms = -1) const {
    return host().emit(context().raw(), msgs.data(), msgs.size(), timeout_ms);
  }
  // Delivers acks and waits up to timeout_ms; false once the flow is stopping.
  bool poll(int32_t timeout_ms) const {
    return host().poll(context().raw(), timeout_ms) != EF_STOPPING;
  }
  size_t in_flight() const { return host().in_flight(context().raw()); }
};

class Transformer : public Component {
 public:
  static constexpr ef_kind kind = EF_KIND_TRANSFORMER;
  using Component::Component;
  virtual void transform(Batch batch) = 0;
};

class Sink : public Component {
 public:
  static constexpr ef_kind kind = EF_KIND_SINK;
  using Component::Component;
  // Take the batch; ack() every message, now or later from any thread.
  virtual void write(Batch batch) = 0;
  virtual void flush(int32_t /*timeout_ms*/) {}

 protected:
  void ack(Message m, ef_ack_status status, std::string_view reason = {}) const {
    host().ack(context().raw(), m.raw(), status, reason.data(), reason.size());
  }
  void ack_all(Batch b, ef_ack_status status, std::string_view reason = {}) const {
    host().ack_batch(context().raw(), b.raw(), status, reason.data(), reason.size());
  }
};

namespace detail {

inline void report(ef_ctx* ctx, const char* what) {
  std::string_view w(what);
  host().fail(ctx, w.data(), w.size());
}

template <class F>
ef_status guard(ef_ctx* ctx, F&& f) noexcept {
  try {
    f();
    return EF_OK;
  } catch (const std::exception& e) {
    report(ctx, e.what());
  } catch (...) {
    report(ctx, "unknown exception");
  }
  return EF_ERROR;
}

template <class T>
struct Instance {
  ef_ctx* ctx;
  T impl;
};

template <class T>
Instance<T>* inst(void* self) {
  return static_cast<Instance<T>*>(self);
}

template <class T>
const Spec<typename T::Config>& spec_of() {
  static const Spec<typename T::Config> s = [] {
    Spec<typename T::Config> sp;
    T::describe(sp);
    return sp;
  }();
  return s;
}

template <class T>
ef_component make_component() {
  ef_component c{};
  c.struct_size = sizeof(ef_component);
  c.kind = T::kind;
  c.type = T::type;
  c.description = T::description;
  c.options = spec_of<T>().data();
  c.option_count = spec_of<T>().size();
  c.create = [](ef_ctx* ctx, const ef_value* config, void** self) {
    return guard(ctx, [&] {
      typename T::Config cfg{};
      spec_of<T>().bind(cfg, Value(config));
      *self = new Instance<T>{ctx, T(Context(ctx), std::move(cfg))};
    });
  };
  c.start = [](void* self) {
    return guard(inst<T>(self)->ctx, [&] { inst<T>(self)->impl.start(); });
  };
  c.stop = [](void* self) { guard(inst<T>(self)->ctx, [&] { inst<T>(self)->impl.stop(); }); };
  c.destroy = [](void* self) { delete inst<T>(self); };
  if constexpr (T::kind == EF_KIND_SOURCE) {
    c.run = [](void* self) { return guard(inst<T>(self)->ctx, [&] { inst<T>(self)->impl.run(); }); };
    c.on_ack = [](void* self, const ef_ack* acks, size_t n) {
      guard(inst<T>(self)->ctx, [&] { inst<T>(self)->impl.on_ack(std::span<const ef_ack>(acks, n)); });
    };
    // A source that takes operator commands declares `void on_signal(Value command)`.
    if constexpr (requires(T& t, Value v) { t.on_signal(v); }) {
      c.signal = [](void* self, const ef_value* command) {
        return guard(inst<T>(self)->ctx, [&] { inst<T>(self)->impl.on_signal(Value(command)); });
      };
    }
  } else if constexpr (T::kind == EF_KIND_TRANSFORMER) {
    c.transform = [](void* self, ef_batch* b) {
      return guard(inst<T>(self)->ctx, [&] { inst<T>(self)->impl.transform(Batch(b)); });
    };
  } else {
    c.write = [](void* self, ef_batch* b) {
      return guard(inst<T>(self)->ctx, [&] { inst<T>(self)->impl.write(Batch(b)); });
    };
    c.flush = [](void* self, int32_t timeout_ms) {
      return guard(inst<T>(self)->ctx, [&] { inst<T>(self)->impl.flush(timeout_ms); });
    };
  }
  return c;
}

template <class... Ts>
const ef_plugin_info* plugin_info(const char* name, const char* version) {
  static const ef_component components[] = {make_component<Ts>()...};
  static const ef_plugin_info info = {sizeof(ef_plugin_info), EF_ABI_MAJOR, EF_ABI_MINOR, name,
                                      version, components, uint32_t(sizeof...(Ts))};
  return &info;
}

inline bool host_too_old(uint32_t major, uint32_t minor, uint32_t my_minor) {
  return major != EF_ABI_MAJOR || minor < my_minor;
}

// Runs inside edgeflow_plugin_init: refuses a host with another major or an older minor.
template <class... Ts>
const ef_plugin_info* init(const ef_host_api* h, uint32_t major, uint32_t minor, const char* name,
                           const char* version) noexcept {
  g_host = h;
  if (host_too_old(major, minor, EF_ABI_MINOR)) {
    std::string why = std::string("plugin ") + name + " needs host ABI " +
                      std::to_string(EF_ABI_MAJOR) + "." + std::to_string(EF_ABI_MINOR) +
                      " or a newer minor, host has " + std::to_string(major) + "." +
                      std::to_string(minor);
    report(nullptr, why.c_str());
    return nullptr;
  }
  const ef_plugin_info* info = nullptr;
  if (guard(nullptr, [&] { info = plugin_info<Ts...>(name, version); }) != EF_OK) return nullptr;
  return info;
}

}  // namespace detail
}  // namespace edgeflow::sdk

// Exports the plugin's entry point: EDGEFLOW_PLUGIN("name", "1.2.0", FileSource, FileSink)
#define EDGEFLOW_PLUGIN(NAME, VERSION, ...)                                              \
  extern "C" EF_EXPORT const ef_plugin_info* edgeflow_plugin_init(                      \
      const ef_host_api* host, uint32_t abi_major, uint32_t abi_minor) {                 \
    return ::edgeflow::sdk::detail::init<__VA_ARGS__>(host, abi_major, abi_minor, NAME, \
                                                      VERSION);                         \
  }
